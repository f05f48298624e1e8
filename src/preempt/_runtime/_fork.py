"""fork() under the runtime: the child goes on with a working runtime, never a silent hang.

``fork()`` copies the whole process but only the thread that called it. Everything the runtime
keeps in memory arrives intact in the child — the scheduler, every goroutine's greenlet, the
timer heap, the run queue — but its threads do not: sysmon (the C monitor thread), the fallback
monitor's POSIX timer (timers are not inherited either) and the offload pool's threads are gone.
Its file descriptors arrive as *shared* copies: the hub's epoll instance and its wake-up eventfd
are the parent's own, so without care each process would take the other's fd events and
wake-ups. Left like that, the child hung: a computing goroutine was never preempted, a
``sleep()`` behind it never returned, a ``blocking()`` call in flight never completed, and a
fork from another thread left a scheduler that refused every new ``run()``.

Go has no fork (``syscall.ForkExec`` execs at once); gevent reinitialises its hub in the child
and keeps every greenlet, and so do we. The handlers here are registered with
``os.register_at_fork`` once, when the runtime is imported. In the child:

1. **Fork on the M** (the thread running ``run()``; normally a goroutine calls ``os.fork()``):
   the runtime goes on. The forking goroutine returns from ``os.fork()`` with 0, and every other
   goroutine goes on from where it was, runnable or waiting — the child has the parent's
   goroutines, each now running twice, once per process (as in gevent). sysmon is restarted for
   the same M (``CoreMonitor.after_fork_child``: the C core keeps the forking thread's registry
   slot and generation, see pe_thread.c), so preemption — synchronous and asynchronous — and
   timer-driven wake-ups work; the fallback monitor arms a new timer. sysmon's own counters
   (``stats()``'s timer-request count) restart from zero in the child.
2. **The poller** stops sharing: a new epoll and eventfd, every watched fd registered again
   (``Poller.after_fork_child``, its invariant 4). The watched fds themselves are still shared
   with the parent, as any fd is after fork: data on a shared pipe or socket goes to whichever
   process reads it first.
3. **The offload pool** is dropped: its threads do not exist here. A goroutine waiting in
   ``blocking()`` gets PreemptError ("... the process forked while this blocking() call ran in
   the offload pool; its thread does not exist in the child ...") instead of waiting for ever;
   a call that had already finished delivers its result; the parent's calls complete normally.
   The child's next ``blocking()`` makes a new pool (``offload.py`` rule 5).
4. **Fork on another OS thread** while ``run()`` runs on the M: the M does not exist in the
   child, so neither does any goroutine. The old runtime's state is dropped — the scheduler is
   forgotten, the signal handlers and the SLOT hook it installed are put back, its epoll and
   eventfd copies closed, its pool dropped — without touching the greenlets of the dead thread.
   CPython freed that thread's interpreter state in the child; greenlet refuses to switch to
   them (they belong to another thread), and deallocating one would make greenlet queue it to
   be killed by a thread that never runs again. So the scheduler and everything it reaches are
   kept (leaked) for the life of the process, interpreter exit included. A fresh
   ``preempt.run()`` then works on the forking thread, which CPython made the main thread.
   Objects shared with the dead goroutines (a Chan one of them waited on) must not be reused.
5. Everything else that holds threads, fds or locks across a fork:
   ``preempt.threads`` — only the forking thread stays registered (pe_thread.c); handles of the
   others answer ThreadExited; its handle table's lock is held across the fork (``before`` to
   ``after_*``, the ``concurrent.futures`` habit), so the child never inherits it locked by a
   thread that is gone. The C core (``_corelib``) holds no thread or fd of its own beyond
   sysmon; its registry, region table and sysmon state are reset by its own
   ``pthread_atfork`` child handler. Your own threads are gone and your fds shared, as after
   any fork.
6. The fork ``subprocess.Popen`` makes to run ``preexec_fn`` is left alone: that child runs
   ``preexec_fn`` and execs. Restarting sysmon there could switch goroutines inside
   ``preexec_fn``, and nothing else it could reset is used before the exec.

7. CPython 3.13 leaves ``_PyRuntime.main_tstate`` naming the dead main thread after a fork
   from another thread, so no Python signal handler would ever run in that child (preemption
   and Ctrl-C included; measured on 3.13.0 without preempt too). The child handler points it at
   the forking thread, which CPython made the main thread (``pe_py_after_fork_child``), for
   every ``os.fork()`` after preempt is imported.
8. The wakeup-fd relay (``csrc/pe_wakeup.c``, ``_signals.py`` rule 5) has no thread in the
   child and shares its pipe with the parent's: while it relays, a new pipe and thread take
   over, under ``run()`` or a bridge alike.
9. ``preempt.gevent.enable()`` or ``preempt.aio`` instead of ``run()``: the bridge's sysmon is
   restarted in the child the same way (``_bridge.py`` fork rule 2), so a pre-fork gevent
   server's workers are preempted like the parent; a fork from another thread drops the bridge
   in the child. Rule 6 holds for bridges too.

What a user gets: a child that is a working copy of the parent's program. A child that should
do one job and end calls ``os._exit()`` when done (the usual rule after fork), or returns from
main, after which ``run()`` kills the child's copies of the other goroutines as usual (their
``finally`` blocks run in the child too); ``blocking()`` calls in flight fail in the child; a
fork from a thread other than the M gives a child without goroutines, ready for a new ``run()``.
A fork inside a ``blocking()`` function is such a fork: its child is that pool thread and must
exec or ``os._exit()``. sysmon and the pool are threads, so on Python 3.12+ ``os.fork()`` inside
``run()`` emits CPython's DeprecationWarning about forking a multi-threaded process: the
runtime's own threads and locks are handled here; the warning still holds for the program's.

(An alternative would be to keep only the forking goroutine, as POSIX keeps only the forking
thread. Rejected: the other goroutines cannot simply vanish — killing them would run their
``finally`` blocks a second time, once per process, and dropping them unwound would leave the
channels and mutexes they hold stuck — and a goroutine that forks to hand work to a child would
find the goroutines it talks to missing. Another would be to refuse: a clear error at the
child's first runtime call. Rejected: a child that goes on working (``multiprocessing``'s fork
start method runs its target right in the forking goroutine) would find no runtime at all, and
refusing cleanly — knowing what to drop and what not to touch — is most of the work of going
on.)

Where these run: ``_before`` and ``_after_in_parent`` in the parent, on the forking thread, GIL
held; ``_after_in_child`` in the child, on the forking thread (its only thread), GIL held,
inside the forking goroutine's ``os.fork()`` call when the M forked — before it, or any other
goroutine, runs on.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable, List

from . import _park, _signals

_kept: List[Any] = []       # dropped schedulers of a dead M (rule 4), never freed
_held: Any = None           # the lock _before took, released by the after handlers


def _handles_lock() -> Any:
    """preempt.threads' handle-table lock, if that module is loaded (rule 5)."""
    threads = sys.modules.get("preempt.threads")
    return getattr(threads, "_handles_lock", None)


def _before() -> None:
    """Parent, on the forking thread, GIL held, right before fork()."""
    global _held
    lock = _handles_lock()
    if lock is not None:
        lock.acquire()
        _held = lock


def _release() -> None:
    global _held
    lock, _held = _held, None
    if lock is not None:
        lock.release()


def _after_in_parent() -> None:
    """Parent, on the forking thread, right after fork(): nothing changed here."""
    _release()


def _after_in_child() -> None:
    """Child, on its only thread, right after fork(): rules 1-9."""
    _release()
    _repair_main_tstate()
    if _for_preexec(sys._getframe(1)):
        return
    _step("the wakeup-fd relay", _signals.wakeup_after_fork_child)     # rule 8
    s = _park.sched
    if s is None:
        _bridges_go_on()                                                # rule 9
        return
    if s.ident == threading.get_ident():
        _go_on(s)
    else:
        _drop(s)


def _bridges_go_on() -> None:
    """Rule 8: ``preempt.gevent``/``preempt.aio`` get a new sysmon (``_bridge.py`` fork rule
    2), if one was enabled."""
    bridge = sys.modules.get("preempt._bridge")
    if bridge is not None and bridge._monitors:
        _step("the bridge's sysmon", bridge.after_fork_child)


def _repair_main_tstate() -> None:
    """Rule 7 (pe_py_after_fork_child): whether or not run() is running."""
    try:
        from .. import _corelib

        _corelib.core()[1].pe_py_after_fork_child()
    except Exception:          # no core (another platform): nothing to repair
        pass


def _for_preexec(caller: Any) -> bool:
    """Rule 6: ``caller`` (who called fork) is subprocess's ``Popen._execute_child``."""
    return (caller is not None and caller.f_code.co_name == "_execute_child"
            and caller.f_globals.get("__name__") == "subprocess")


def _go_on(s: Any) -> None:
    """Rules 1-3: the M forked; the runtime goes on in the child. The poller first: the
    restarted sysmon reads its epoll fd."""
    s.signal_excs.clear()      # CPython forgets tripped handlers in the child; so do we
    _step("the poller", lambda: s.poller.after_fork_child(True))
    _step("sysmon", lambda: s.monitor.after_fork_child(True))
    _step("the offload pool", lambda: _drop_pool(s, True))


def _drop(s: Any) -> None:
    """Rule 4: the M does not exist in the child; forget its runtime, touching no greenlet."""
    _keep_forever(s)           # first: nothing below may free a greenlet of the dead thread
    s.routing = False          # its signal handlers route nowhere now
    _step("sysmon", lambda: s.monitor.after_fork_child(False))
    _step("the signal handlers", lambda: _put_back_handlers(s))
    _step("the poller", lambda: s.poller.after_fork_child(False))
    _step("the offload pool", lambda: _drop_pool(s, False))
    _park.set_sched(None)


def _put_back_handlers(s: Any) -> None:
    from . import _signals

    _signals.uninstall(s)      # what run() installed, as its exit would


def _drop_pool(s: Any, m_survived: bool) -> None:
    pool, s.offload = s.offload, None
    if pool is not None:
        pool.after_fork_child(m_survived)


def _keep_forever(obj: Any) -> None:
    """Keeps ``obj`` and all it reaches alive for the life of the process, interpreter exit
    included: the extra reference is never dropped, so neither the garbage collector nor
    module teardown deallocates the dead thread's greenlets (rule 4)."""
    _kept.append(obj)
    try:
        import ctypes

        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    except Exception:          # no ctypes: the list holds it until interpreter exit
        pass


def _step(what: str, fn: Callable[[], None]) -> None:
    """Runs one reset; a failure is reported, not raised (CPython would print and ignore it
    anyway, and the other resets must still run)."""
    try:
        fn()
    except BaseException as e:
        try:
            sys.stderr.write(f"preempt: after fork(), the child could not reset {what} "
                             f"({type(e).__name__}: {e}); its goroutines may not be preempted or "
                             "woken as they should: please report it\n")
            sys.stderr.flush()
        except Exception:
            pass


if not globals().get("_registered"):     # once per process, even if the module is reloaded
    os.register_at_fork(before=_before, after_in_parent=_after_in_parent,
                        after_in_child=_after_in_child)
    _registered = True
