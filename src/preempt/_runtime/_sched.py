"""The scheduler: its state (run queue, ``runnext``, timers, poller, monitor), the hub, deadlock
detection and the end of a run; signal handlers' exceptions reach main through it (their
routing is ``_signals.py``'s).

``run(main)`` (``_run.py``) makes a :class:`Scheduler` for the calling thread (the M), a hub
greenlet and the main G, and switches to the hub. The hub is the scheduler's own greenlet (gevent's habit): it runs
expired timers, polls fds and offload completions, picks the next G and switches to it, and
sleeps in epoll when nothing is runnable. Gs mostly bypass it and switch to each other directly
(``_park.py``); they come back to the hub only when it has work.

Every G runs inside a *worker* greenlet whose parent is the hub (``_worker.py``).

When main returns, leftover Gs are killed (Go just exits; we prefer their ``finally`` blocks to
run): each gets ``GreenletExit`` at the point where it waits or was preempted; Gs that never
started are dropped. Then ``run()`` returns main's result or raises main's exception. The exit
does not wait for goroutines that cannot or will not finish (Go's rule: the program's exit
waits for no goroutine): one parked inside a native call (async preemption) is abandoned at
once — a native frame cannot be unwound, and its call would otherwise run to completion first —
and one still alive ``EXIT_GRACE`` seconds after it was told to exit (it blocks in a ``finally``
block, or caught GreenletExit and went on) is abandoned then. ``run()`` says which on stderr.
An abandoned G is never resumed: its greenlet is kept (leaked) for the life of the process, so
that neither the garbage collector nor interpreter exit throws into it and restarts its code.

Deadlock (Go's "all goroutines are asleep"): nothing runnable, no active timer, no fd or offload
outstanding, yet Gs wait. The hub raises :class:`preempt.Deadlock` in main, naming every waiting G
and what it waits on; if main does not catch it, ``run()`` raises it.

Invariants:

1. The hub never runs user code and survives an exception at any bytecode: an exception that
   escapes one loop iteration (a signal handler raising) is delivered to main, not lost.
2. Exceptions raised by Python signal handlers (KeyboardInterrupt included) go to main only
   (``_signals.py``): raised directly when main is the running G outside runtime code; otherwise
   queued, and the hub delivers them to main (interrupting main's wait) before picking any
   other G. Main parked inside a native call is abandoned with the exception (see above).
3. One runtime per process: a nested or concurrent ``run()`` raises PreemptError.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from typing import Any, Callable, Optional

from greenlet import GreenletExit, greenlet

from .._errors import Cancelled, Deadlock
from . import _fork  # noqa: F401  (registers the at-fork handlers, once per process)
from . import _csysmon, _g, _park, _sysmon, _worker
from ._cancel import outranks
from ._g import Goroutine
from ._rules import DEAD, RUNNABLE, WAITING
from ._netpoll import Poller
from ._timers import add_timer, next_deadline, run_timers

DEFAULT_SLICE = 0.010
EXIT_GRACE = 1.0        # seconds run() waits for killed goroutines before abandoning them


def new_word() -> memoryview:
    """A private 64-bit word as a memoryview: the shape csrc/pe_hot.c stores ``ticks`` and
    ``mtick`` through (it checks it: 8 bytes, writable)."""
    return memoryview(bytearray(8)).cast("Q")


class Scheduler:
    """The per-run scheduler state. Attributes are read by ``_park``, ``_timers``, ``_preempt``."""

    # The hand-off path's fields are slots: the C version of it (csrc/pe_hot.c) reads them at
    # fixed offsets. Everything else lives in __dict__.
    __slots__ = ("cur", "runnext", "runq", "streak", "ticks", "mtick", "iofront", "hub_wanted",
                 "timers", "npoll", "hub", "free", "free_max", "main", "gs", "spawned", "__dict__")

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
        # The switch count, bumped at every switch: a machine word, so that the C path counts
        # with an add instead of allocating an int per switch. ``tick`` reads it.
        self.ticks = new_word()
        # How many Gs at the head of runq were put there by I/O and have not run yet: the
        # I/O-woken Gs' FIFO segment (_netpoll.py invariant 6). A word: sysmon reads it.
        self.iofront = new_word()
        self.spawned = 0
        self.npreempt = 0
        self.ndeferred = 0
        self.hub_wanted = False
        self.signal_excs: deque = deque()   # raised by signal handlers, for main (_signals.py)
        self.routing = False
        self.native: set = set()         # Gs parked inside a native call (_asynchook.py)
        self.abandoned: list = []        # (G, why) that run() will not wait for
        self.killing = False
        self.kill_expired = False
        self.exit_exc: Optional[BaseException] = None   # a signal's exception during shutdown
        self.consumed_seq = 0
        self.latencies: deque = deque(maxlen=4096)
        self.monitor = new_monitor(self)
        # Where every switch to a G stores ``tick``: the C monitor's shared schedtick word (its
        # slice clock restarts), or a private word for monitors that read ``tick`` themselves.
        # A store, not a call: it is on the hand-off path.
        self.mtick = self.monitor.tick_view or new_word()
        self.poller = Poller(self)
        self.offload: Any = None

    @property
    def tick(self) -> int:
        """Switches so far on this M (``ticks[0]``; ``_park`` bumps it)."""
        return self.ticks[0]

    # -- greenlets -----------------------------------------------------------------------

    def bind(self, g: Goroutine) -> Any:
        """Gives a G that starts now a worker greenlet (reused when possible)."""
        glet = self.free.pop() if self.free else greenlet(_worker.worker_run, self.hub)
        g.glet = glet
        return glet

    def spawn(self, fn: Callable, args: tuple, kwargs: dict, name: Optional[str],
              preemptible: bool) -> Goroutine:
        g = _g.new_g(fn, args, kwargs, name, preemptible)
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
            self.monitor.hub_done()
            if self.signal_excs:
                self._deliver_signal_excs()
        if self.timers:
            run_timers(self, _park.monotonic())
        if self.npoll or self.poller.completions:
            self.poller.poll(0)
        if self.killing and self.kill_expired:
            return True            # the exit grace is over (or a signal cut it short)
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

    def _deliver_signal_excs(self) -> None:
        """Hands what signal handlers raised to main, one at a time (_signals.py rule 3). Hub."""
        q = self.signal_excs
        m = self.main
        while q:
            if m.state is DEAD:             # shutting down: the exception ends it now
                e = q.popleft()
                if self.exit_exc is None:
                    self.exit_exc = e
                self.killing = self.kill_expired = True
                continue
            if m.wake_exc is not None or m.pending_exc is not None:
                self.hub_wanted = True      # main has not taken the previous one yet
                self.monitor.want_hub()
                return
            self.interrupt(m, q.popleft())
            if m.state is DEAD:             # it was abandoned in native code with it
                continue
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
        """Makes g raise ``exc`` where it waits or was switched out, or at its next checkpoint
        (``_g.py``, ``_cancel.py``). Hub / runtime code.

        Two interrupts that meet on one G before it runs keep the stronger
        (``_cancel.outranks``). Main parked inside a native call cannot raise before the call
        returns: for a signal's exception it is abandoned with ``exc``, so run() ends now
        (module docstring); a cancellation waits for the call.
        """
        if (g in self.native and g is self.main
                and not isinstance(exc, (GreenletExit, Cancelled))):
            self.abandon(g, "parked inside a native call when it had to raise "
                            f"{type(exc).__name__}", exc)
            return
        if g.state is WAITING:
            b = g.blocker
            if b is not None:
                b.cancel()
            g.wake_exc = exc
            _park.ready(g, True)
        elif g.state is RUNNABLE:
            if g.wait_reason is not None and g.wake_exc is None and g.glet is not None:
                # its wait was completed (invariant 5 in _g.py): finish the operation first
                self._keep(g, exc)
                return
            if g.wake_exc is not None and outranks(g.wake_exc, exc):
                return
            g.wake_exc = exc
            if g.glet is not None:     # move it to the front: runnext
                if self.runnext is not g:
                    _park.unqueue(self, g)
                    _park.ready(g, True)
        elif g.state is not DEAD:      # running: it interrupted itself (cancel(), a handler)
            self._keep(g, exc)

    def _keep(self, g: Goroutine, exc: BaseException) -> None:
        """Keeps exc for g's next checkpoint and asks sysmon for a preemption now (a timer
        due now): a G that goes on computing raises it at its next safe-point."""
        if g.pending_exc is None or outranks(exc, g.pending_exc):
            g.pending_exc = exc
        add_timer(self, _park.monotonic(), _noop, None)

    def _kill_leftovers(self) -> None:
        self.killing = True
        q = self.runq                  # in place: sysmon reads this deque's length
        keep = [g for g in q if g.glet is not None]
        q.clear()
        q.extend(keep)
        self.iofront[0] = 0
        if self.runnext is not None and self.runnext.glet is None:
            self.runnext = None
        if self.gs:
            add_timer(self, _park.monotonic() + EXIT_GRACE, _end_grace, self)
        for g in list(self.gs.values()):
            if g.glet is None:         # never started: nothing to unwind
                g.exc = None
                self.gs.pop(g.id, None)
                g._finish()
            elif g in self.native:     # its native frames cannot be unwound: do not wait
                self.abandon(g, "parked inside a native call, which cannot be interrupted")
            else:
                self.interrupt(g, GreenletExit())

    def abandon(self, g: Goroutine, why: str, exc: Optional[BaseException] = None) -> None:
        """Gives up on g for good: it is never resumed (module docstring). Hub / runtime code."""
        self.abandoned.append((g, why))
        self.native.discard(g)
        self.gs.pop(g.id, None)
        if self.runnext is g:
            self.runnext = None
        _park.unqueue(self, g)
        b = g.blocker
        if b is not None:
            b.cancel()
        _keep_forever(g.glet)
        g.glet = None
        g.exc = exc
        g._finish()

    def abandon_leftovers(self) -> None:
        """run() ends with these Gs alive: abandon and report them. Runtime code, after the hub."""
        for g in list(self.gs.values()):
            if g.state is not DEAD:
                self.abandon(g, f"still {g.state} ({g.describe_wait() or 'computing'}) "
                                f"{EXIT_GRACE:g} s after it was told to exit")
        if self.abandoned:
            _report_abandoned(self.abandoned)

def _noop(arg: Any) -> None:
    """A timer that only makes the monitor preempt soon (a pending interrupt). Hub."""


def _end_grace(s: "Scheduler") -> None:
    """The kill phase's timer: stop waiting for killed goroutines. Hub."""
    if s.killing:
        s.kill_expired = True


_kept: list = []


def _keep_forever(glet: Any) -> None:
    """Keeps an abandoned G's greenlet from ever being deallocated: greenlet would throw
    GreenletExit into it, resuming its code (for a G parked in native code, the rest of the
    native call) at an arbitrary later moment. The extra reference is never dropped, so it
    survives interpreter exit too. Runtime code."""
    if glet is None:
        return
    _kept.append(glet)
    try:
        import ctypes

        ctypes.pythonapi.Py_IncRef(ctypes.py_object(glet))
    except Exception:    # no ctypes: the list holds it until interpreter exit
        pass


def _report_abandoned(abandoned: list) -> None:
    try:
        lines = [f"preempt: run() returned without waiting for {len(abandoned)} goroutine(s), "
                 "which will never run again:"]
        for g, why in abandoned:
            lines.append(f"  goroutine {g.id} {g.name!r}: {why}")
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def new_monitor(sched: Scheduler) -> Any:
    """The monitor for a new scheduler: the C sysmon (csrc/pe_sysmon.c) where the core is
    available and run() is on the main thread, else the Python fallback (``_sysmon.py``).
    ``PREEMPT_SYSMON=python`` forces the fallback (for comparison and debugging)."""
    if os.environ.get("PREEMPT_SYSMON", "").lower() != "python" and _csysmon.usable():
        return _csysmon.CoreMonitor(sched)
    return _sysmon.PosixTimerMonitor(sched)
