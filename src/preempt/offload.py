"""Running blocking calls off the M: ``preempt.blocking(fn, *args)``.

A call that blocks in C (a DNS lookup, a file read on a slow disk, a library without a
non-blocking API) would stop every goroutine, since they share the M. :func:`blocking` runs it
in a small pool of OS threads instead; the calling goroutine parks, and the others run. When the
call ends, the pool thread stores the result in the call's record, queues a completion and
writes the hub's eventfd (``_runtime/_netpoll.py``); the hub readies the goroutine, which returns
the result or raises the exception.

Rules:

1. The pool is created lazily, per ``run()``, with ``PREEMPT_OFFLOAD_THREADS`` threads (default
   4), and shut down when ``run()`` ends.
2. An outstanding call counts as pending I/O: the hub does not report a deadlock while one runs.
3. If the waiting goroutine is interrupted (KeyboardInterrupt, end of run()), the call is
   abandoned: it finishes in its thread and its result is dropped.
4. The pool's threads leave their signal mask alone. Linux delivers a process-directed signal
   to the main thread (the M) unless it blocks it or already has one pending, and CPython runs
   Python handlers there; one that lands on a pool thread trips its handler without waking the
   M, and sysmon notices the tripped handler and signals the M (``csrc/pe_sysmon.c``). Blocking
   signals here instead would be inherited by every process ``fn`` starts: a ``subprocess`` run
   inside ``blocking()`` would ignore Ctrl-C.
5. After ``fork()`` the pool's threads do not exist in the child (``_runtime/_fork.py``). A call
   that was running or queued there fails in the child with PreemptError, while the parent gets
   its result as usual; a call that had finished is delivered normally. The child makes a new
   pool at its next ``blocking()``. The M never waits on a lock a pool thread may hold: the
   result travels through plain attributes of the call record, not a ``Future``, so a fork at
   any moment leaves the child nothing to deadlock on.
6. A call is outstanding (rule 2) from before ``submit()``, and the goroutine is readied only if
   it parked for the call. Under :func:`preempt.patch` the pool's own locks park goroutines, so
   ``submit()`` itself may park (``Thread.start()`` waits for the new thread); a call that
   finished meanwhile used to count itself done before it was counted outstanding and ready
   the goroutine out of that other wait, which then hung for ever or ended in a false
   Deadlock. Now the completion is only recorded then, and the goroutine does not park.

.. warning:: ``fn`` runs on another OS thread: it must not touch goroutine primitives (Chan,
   Mutex, ...), which raise PreemptError there.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ._errors import PreemptError
from ._runtime import _park

__all__ = ["blocking"]

_FORKED = ("preempt.blocking(): the process forked while this blocking() call ran in the offload "
           "pool; its thread does not exist in the child, so the call's result reaches only the "
           "parent (a call still queued there is lost the same way). Call it again in the child "
           "if the child needs the result, or finish blocking() calls before forking")


class _Call:
    """One outstanding blocking() call: the park blocker and the completion record.

    ``ran``, ``value`` and ``exc`` are written by the pool thread (GIL held, before it queues
    the completion); everything else on the M.
    """

    __slots__ = ("s", "g", "pool", "done", "abandoned", "waiting", "ran", "value", "exc")

    def __init__(self, s: Any, g: Any, pool: "_Pool") -> None:
        self.s = s
        self.g = g
        self.pool = pool
        self.done = False
        self.abandoned = False
        self.waiting = False        # the goroutine parked for this call (rule 6)
        self.ran = False
        self.value: Any = None
        self.exc: Any = None

    def work(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        """Runs the call and queues its completion for the hub. Pool thread."""
        try:
            self.value = fn(*args, **kwargs)
        except BaseException as e:   # fn's exception is the caller's, whatever it is
            self.exc = e
        self.ran = True
        self.s.poller.complete(self.finish, None)

    def cancel(self) -> None:                  # rule 3 (hub / runtime code)
        if not self.abandoned and not self.done:
            self.abandoned = True
            self.s.npoll -= 1
            self.pool.calls.discard(self)

    def describe(self, reason: Any) -> str:
        return f"{reason} in the offload pool"

    def finish(self, _: Any = None) -> None:
        """Readies the waiting goroutine once (a fork child may queue it twice). Hub, via
        Poller.complete."""
        if self.abandoned or self.done:
            return
        self.done = True
        self.s.npoll -= 1
        self.pool.calls.discard(self)
        if self.waiting:                       # rule 6: never out of another wait
            _park.ready(self.g, True)


class _Pool(ThreadPoolExecutor):
    """The offload pool of one run(); ``calls`` are its outstanding calls. M thread only."""

    def __init__(self, n: int) -> None:
        super().__init__(max_workers=n, thread_name_prefix="preempt-offload")
        self.calls: set = set()

    def after_fork_child(self, m_survived: bool) -> None:
        """fork() child: this pool's threads do not exist here (rule 5). The scheduler has
        dropped the pool; its calls are settled through the hub's completions. Child after
        fork, on the forking thread, before any goroutine runs (``_runtime/_fork.py``)."""
        if not m_survived:        # the M and its goroutines are gone too: nobody waits
            self.calls.clear()
            return
        for call in list(self.calls):
            if not call.ran:
                call.exc = PreemptError(_FORKED)
            # queued again even if the parent had queued it before the fork: finish() runs once
            call.s.poller.complete(call.finish, None)


def _pool(s: Any) -> _Pool:
    if s.offload is None:
        n = int(os.environ.get("PREEMPT_OFFLOAD_THREADS", "4") or 4)
        s.offload = _Pool(max(1, n))
    return s.offload


def blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Runs ``fn(*args, **kwargs)`` on an offload thread; the goroutine waits, the others run.

    Args:
        fn: A blocking function (it must not use goroutine primitives).
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Returns:
        What ``fn`` returned.

    Raises:
        BaseException: What ``fn`` raised.
        PreemptError: The process forked while the call ran, and this is the child (the
            parent gets the result; module docstring, rule 5).

    Example::

        addr = preempt.blocking(socket.getaddrinfo, "example.org", 443)
    """
    s = _park.check_sched("preempt.blocking()")
    pool = _pool(s)
    call = _Call(s, s.cur, pool)
    pool.calls.add(call)                       # rule 6: outstanding before submit() ...
    s.npoll += 1
    try:
        pool.submit(call.work, fn, args, kwargs)   # ... which may park under patch()
    except BaseException:
        call.cancel()
        raise
    if not call.done:
        call.waiting = True
        _park.park("blocking", call)
    exc = call.exc
    if exc is not None:
        call.exc = None
        try:
            raise exc
        finally:
            exc = None          # no frame -> exception -> traceback -> frame cycle
    value = call.value
    call.value = None
    return value
