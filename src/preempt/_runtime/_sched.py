"""The scheduler: run queue, hub, run()/go(), deadlock detection, shutdown, SIGINT.

``run(main)`` makes a :class:`Scheduler` for the calling thread (the M), a hub greenlet and the
main G, and switches to the hub. The hub is the scheduler's own greenlet (gevent's habit): it runs
expired timers, polls fds and offload completions, picks the next G and switches to it, and
sleeps in epoll when nothing is runnable. Gs mostly bypass it and switch to each other directly
(``_park.py``); they come back to the hub only when it has work.

Every G runs inside a *worker* greenlet whose parent is the hub: the worker calls the G's
function, records its result or exception, and then, instead of dying, offers itself to the next
new G (the free list in ``_park.exit_g``).

When main returns, leftover Gs are killed (Go just exits; we prefer their ``finally`` blocks to
run): each gets ``GreenletExit`` at the point where it waits or was preempted; Gs that never
started are dropped. Then ``run()`` returns main's result or raises main's exception.

Deadlock (Go's "all goroutines are asleep"): nothing runnable, no active timer, no fd or offload
outstanding, yet Gs wait. The hub raises :class:`preempt.Deadlock` in main, naming every waiting G
and what it waits on; if main does not catch it, ``run()`` raises it.

Invariants:

1. The hub never runs user code and survives an exception at any bytecode: an exception that
   escapes one loop iteration (a signal handler raising) is delivered to main, not lost.
2. KeyboardInterrupt goes to main only. The SIGINT handler raises it directly when main is the
   running G outside runtime code; otherwise it records it and wakes the hub, which delivers it
   to main (interrupting main's wait) before picking any other G.
3. One runtime per process: a nested or concurrent ``run()`` raises PreemptError.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import traceback
from collections import deque
from typing import Any, Callable, Optional

from greenlet import GreenletExit, getcurrent, greenlet

from .._errors import Deadlock, PreemptError
from . import _hotpath, _park, _preempt, _sysmon
from ._g import DEAD, RUNNABLE, WAITING, Goroutine
from ._netpoll import Poller
from ._timers import add_timer, next_deadline, run_timers

DEFAULT_SLICE = 0.010


class Scheduler:
    """The per-run scheduler state. Attributes are read by ``_park``, ``_timers``, ``_preempt``."""

    # The hand-off path's fields are slots: the C version of it (csrc/pe_hot.c) reads them at
    # fixed offsets. Everything else lives in __dict__.
    __slots__ = ("cur", "runnext", "runq", "streak", "tick", "mtick", "hub_wanted", "timers",
                 "npoll", "hub", "free", "__dict__")

    def __init__(self, slice_seconds: float) -> None:
        self.ident = threading.get_ident()
        self.thread_name = threading.current_thread().name
        self.is_main_thread = threading.current_thread() is threading.main_thread()
        self.slice = slice_seconds
        self.runq: deque = deque()
        self.runnext: Optional[Goroutine] = None
        self.streak = 0
        self.cur: Optional[Goroutine] = None
        self.main: Optional[Goroutine] = None
        self.hub: Any = None
        self.gs: dict = {}               # id -> live G
        self.free: list = []             # idle worker greenlets
        self.free_max = 4096
        self.timers: list = []
        self.ntimers = 0
        self.ncancelled = 0
        self.npoll = 0
        self.tick = 0
        self.spawned = 0
        self.npreempt = 0
        self.ndeferred = 0
        self.hub_wanted = False
        self.sigint_pending = False
        self.killing = False
        self.consumed_seq = 0
        self.latencies: deque = deque(maxlen=4096)
        self.monitor = _sysmon.new_monitor(self)
        # Where every switch to a G stores ``tick``: the C monitor's shared schedtick word (its
        # slice clock restarts), or a private word for monitors that read ``tick`` themselves.
        # A store, not a call: it is on the hand-off path.
        self.mtick = getattr(self.monitor, "tick_view", None) or memoryview(bytearray(8)).cast("Q")
        self.poller = Poller(self)
        self.offload: Any = None
        self._old_sigint: Any = None

    # -- greenlets -----------------------------------------------------------------------

    def bind(self, g: Goroutine) -> Any:
        """Gives a G that starts now a worker greenlet (reused when possible)."""
        glet = self.free.pop() if self.free else greenlet(_worker_run, self.hub)
        g.glet = glet
        return glet

    def spawn(self, fn: Callable, args: tuple, kwargs: dict, name: Optional[str],
              preemptible: bool) -> Goroutine:
        g = Goroutine(fn, args, kwargs, name, preemptible)
        self.gs[g.id] = g
        self.spawned += 1
        self.runq.append(g)
        return g

    # -- the hub -------------------------------------------------------------------------

    def hub_main(self) -> None:
        while True:
            try:
                if self._hub_step():
                    return
            except BaseException as e:   # invariant 1
                m = self.main
                if m is None or m.state is DEAD:
                    raise
                self.interrupt(m, e)

    def _hub_step(self) -> bool:
        """One round of the hub; returns True when run() must end."""
        self.cur = None
        if self.hub_wanted:
            self.hub_wanted = False
            if self.sigint_pending and self.main.state is not DEAD:
                self.sigint_pending = False
                self.interrupt(self.main, KeyboardInterrupt())
        if self.timers:
            run_timers(self, _park.monotonic())
        if self.npoll or self.poller.completions:
            self.poller.poll(0)
        if self.main.state is DEAD and not self.killing:
            self._kill_leftovers()
        nxt = _park.pick(self)
        if nxt is not None:
            _park.run_g(self, nxt)
            return False
        if not self.gs:
            return True
        if self.ntimers or self.npoll:
            dl = next_deadline(self)
            timeout = None if dl == float("inf") else max(0.0, dl - _park.monotonic())
            self.monitor.on_idle()
            try:
                self.poller.poll(timeout)
            finally:
                self.monitor.on_wake()
            return False
        if self.killing:
            return True            # Gs blocked in their finally blocks: abandon them
        self.interrupt(self.main, Deadlock(self.describe_deadlock()))
        return False

    def describe_deadlock(self) -> str:
        lines = ["all goroutines are asleep - deadlock! Nothing is runnable, no timer, fd or "
                 "blocking() call is pending, and these goroutines wait:"]
        for g in self.gs.values():
            if g.state is WAITING:
                lines.append(f"  goroutine {g.id} {g.name!r}: {g.describe_wait()}")
        lines.append("Check for a missing send, close(), unlock(), done() or set(). "
                     "preempt.dump() prints their stacks.")
        return "\n".join(lines)

    def interrupt(self, g: Goroutine, exc: BaseException) -> None:
        """Makes g raise ``exc`` where it waits or was switched out. Hub / runtime code."""
        if g.state is WAITING:
            b = g.blocker
            if b is not None:
                b.cancel()
            g.wake_exc = exc
            _park.ready(g, True)
        elif g.state is RUNNABLE:
            if g.wait_reason is not None and g.wake_exc is None and g.glet is not None:
                # its wait was completed (invariant 5 in _g.py): finish the operation first
                if g.pending_exc is None or isinstance(exc, GreenletExit):
                    g.pending_exc = exc
                add_timer(self, _park.monotonic(), _noop, None)   # the hook raises it soon
                return
            g.wake_exc = exc
            if g.glet is not None:     # move it to the front: runnext
                if self.runnext is not g:
                    try:
                        self.runq.remove(g)
                    except ValueError:
                        pass
                    _park.ready(g, True)

    def _kill_leftovers(self) -> None:
        self.killing = True
        self.sigint_pending = False
        for q in (self.runq,):
            keep = deque(g for g in q if g.glet is not None)
            self.runq = keep
        if self.runnext is not None and self.runnext.glet is None:
            self.runnext = None
        for g in list(self.gs.values()):
            if g.glet is None:         # never started: nothing to unwind
                g.exc = None
                self.gs.pop(g.id, None)
                g._finish()
            else:
                self.interrupt(g, GreenletExit())

    # -- signals -------------------------------------------------------------------------

    def install_sigint(self) -> None:
        if not self.is_main_thread:
            return
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._old_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def restore_sigint(self) -> None:
        if self._old_sigint is not None:
            signal.signal(signal.SIGINT, self._old_sigint)
            self._old_sigint = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        """Python-level SIGINT handler on the M (invariant 2)."""
        g = self.cur
        m = self.main
        if (g is m and m is not None and getcurrent() is m.glet
                and not _preempt.in_runtime(frame)):
            raise KeyboardInterrupt
        self.sigint_pending = True
        self.hub_wanted = True
        self.poller.wakeup()
        if g is not None and getcurrent() is g.glet and g.nopreempt == 0 and g.preemptible \
                and not _preempt.in_denied(frame):
            _park.yield_preempted(self, g)


def _noop(arg: Any) -> None:
    """A timer that only makes the monitor preempt soon (a pending interrupt). Hub."""


def _worker_main(g: Goroutine) -> None:
    """The body of every worker greenlet: run G after G (reuse) until the free list is full.

    One function, not a loop calling a helper: every frame here is part of each parked G's
    stack (on 3.10 a heap frame and a C frame; on 3.11+ frame-stack bytes and saved C stack).
    """
    s = _park.sched
    while g is not None:
        try:
            exc = g.wake_exc
            if exc is not None:
                g.wake_exc = None
                raise exc
            fn, args, kwargs = g.fn, g.args, g.kwargs
            g.fn = g.args = g.kwargs = None      # a parked G keeps only what its frames hold
            if kwargs:
                g.result = fn(*args, **kwargs)
            elif not args:
                g.result = fn()                  # CALL, not CALL_FUNCTION_EX: on 3.11+ a Python
            elif len(args) == 1:                 # callee runs in this C frame, so a parked G's
                g.result = fn(args[0])           # saved C stack is one interpreter frame smaller
            else:
                g.result = fn(*args)
            fn = args = kwargs = None
            exc = g.pending_exc                  # an interrupt came after its last checkpoint
            if exc is not None:
                g.pending_exc = None
                raise exc
        except GreenletExit:
            pass
        except BaseException as e:
            g.exc = e
        fn = args = kwargs = exc = None
        _g_done(s, g)
        g = _park.exit_g(s, g)


def _g_done(s: Scheduler, g: Goroutine) -> None:
    """Bookkeeping for a G whose function returned or raised. Its worker greenlet, runtime code."""
    del s.gs[g.id]
    waited = g.joiners is not None and len(g.joiners._q) > 0
    g._finish()
    if g.exc is not None and g is not s.main and not waited:
        _report_unjoined(g)


try:   # small frame stacks (csrc/pe_gstack.c): a worker greenlet's first call sets one up
    from .. import _gstack

    _worker_run: Callable = functools.partial(_gstack.call, _worker_main)
except ImportError:            # pure-Python install: CPython's own 16 KiB chunks
    _worker_run = _worker_main

_preempt.register_bottom_code(_worker_main.__code__)   # the G's own frames start above it


def _report_unjoined(g: Goroutine) -> None:
    try:
        msg = "".join(traceback.format_exception(type(g.exc), g.exc, g.exc.__traceback__))
        sys.stderr.write(f"preempt: goroutine {g.id} {g.name!r} raised and nobody was joining "
                         f"it (join() it to handle the error):\n{msg}")
        sys.stderr.flush()
    except Exception:
        pass


def _slice_from(slice_arg: Optional[float]) -> float:
    if slice_arg is not None:
        return float(slice_arg)
    env = os.environ.get("PREEMPT_SLICE_MS")
    if env:
        try:
            return float(env) / 1000.0
        except ValueError:
            raise PreemptError(f"PREEMPT_SLICE_MS={env!r} is not a number of milliseconds; "
                               "set it to e.g. 10, or unset it") from None
    return DEFAULT_SLICE


def run(main: Callable[..., Any], *args: Any, slice: Optional[float] = None,
        **kwargs: Any) -> Any:
    """Runs ``main(*args, **kwargs)`` as the main goroutine, with a scheduler on this thread.

    Returns when main returns; goroutines still alive then are killed (their ``finally`` blocks
    run). On the main thread, Python code is preempted every ``slice`` seconds.

    Args:
        main: The main goroutine's function.
        *args: Its positional arguments.
        slice: The time slice in seconds (default 10 ms, or ``PREEMPT_SLICE_MS``); 0 turns
            preemption off (cooperative scheduling only).
        **kwargs: Its keyword arguments.

    Returns:
        What ``main`` returned.

    Raises:
        BaseException: main's exception, including KeyboardInterrupt.
        preempt.Deadlock: Every goroutine blocked for good and main did not catch it.
        PreemptError: ``run()`` is already running (nested, or on another thread).

    Example::

        def main():
            ch = preempt.Chan()
            preempt.go(ch.send, 42)
            return ch.recv()

        assert preempt.run(main) == 42
    """
    cur = _park.sched
    if cur is not None:
        where = "inside it" if cur.ident == threading.get_ident() else \
            f"on thread {cur.thread_name!r}"
        raise PreemptError(f"preempt.run() is already running {where}; there is one runtime per "
                           "process: start more work with preempt.go() instead")
    s = Scheduler(_slice_from(slice))
    _park.sched = s
    _hotpath.set_sched(s)
    try:
        s.hub = greenlet(s.hub_main, getcurrent())
        s.main = s.spawn(main, args, kwargs, "main", True)
        s.install_sigint()
        if s.slice > 0:
            s.monitor.start(s.slice)
        try:
            s.hub.switch()
        finally:
            s.monitor.stop()
            s.restore_sigint()
    finally:
        _park.sched = None
        _hotpath.set_sched(None)
        _teardown(s)
    m = s.main
    if m.state is not DEAD:
        raise PreemptError("preempt.run(): the scheduler stopped before main finished (internal "
                           "error); please report it with preempt.dump() output")
    if m.exc is not None:
        raise m.exc
    return m.result


def _teardown(s: Scheduler) -> None:
    free, s.free = s.free, []
    for glet in free:           # idle workers: let them end (GreenletExit in exit_g)
        try:
            glet.throw(GreenletExit)
        except BaseException:
            pass
    s.poller.close()
    if s.offload is not None:
        s.offload.shutdown(wait=False)


def go(fn: Callable[..., Any], *args: Any, name: Optional[str] = None, preemptible: bool = True,
       **kwargs: Any) -> Goroutine:
    """Starts ``fn(*args, **kwargs)`` in a new goroutine; returns at once.

    Args:
        fn: The function to run.
        *args: Its positional arguments.
        name: A name for dump(), deadlock messages and error reports (default: fn's name).
        preemptible: False runs it cooperatively: it is never preempted, only switched out when
            it blocks or calls gosched().
        **kwargs: Its keyword arguments.

    Returns:
        The :class:`Goroutine`; ``join()`` it for the result.

    Raises:
        PreemptError: Called outside ``preempt.run()`` or from another OS thread.
    """
    s = _park.sched
    if s is None or s.cur is None or s.cur.glet is not getcurrent():
        s = _park.check_sched("preempt.go()")
    g = Goroutine(fn, args, kwargs, name, preemptible)
    s.gs[g.id] = g
    s.spawned += 1
    s.runq.append(g)
    return g


def current() -> Goroutine:
    """The running goroutine.

    Raises:
        PreemptError: Called outside ``preempt.run()`` or from another OS thread.
    """
    s = _park.sched
    if s is None or s.cur is None or s.cur.glet is not getcurrent():
        s = _park.check_sched("preempt.current()")
    return s.cur
