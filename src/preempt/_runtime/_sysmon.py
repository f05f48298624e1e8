"""The monitor interface, and its pure-Python fallback (a POSIX timer signal).

The monitor watches the M and asks for a preemption when the running G has used its slice or a
timer is due. The scheduler talks to it through these calls; whoever implements them can drive
preemption:

==========================  ====================================================================
``start(slice_seconds)``    begin watching (called by ``run()`` on the M, slice > 0)
``stop()``                  stop watching and restore whatever ``start`` changed
``tick_view``               a one-item ``"Q"`` memoryview, or None; at every switch to a G the
                            scheduler stores its switch count ``sched.tick`` there (a store, not
                            a call: it is on the hand-off path). Monitors with None read
                            ``sched.tick`` themselves
``on_idle()``               the hub is about to block in epoll: nothing runs
``on_wake()``               the hub's poll returned: Gs may run again
``set_next_deadline(t)``    the earliest timer deadline, ``time.monotonic()`` seconds, or None
                            when no timer is pending (published when the heap's top changes)
``req_seq() -> int``        number of the latest request; ``_preempt_hook`` compares it with the
                            scheduler's ``consumed_seq`` and ignores stale ones
``req_reason() -> int``     why the latest request was made (``_rules.REASON_*``; a monitor
                            that cannot tell says ``REASON_SLICE``); read before ``ack``
``ack(seq)``                the hook consumed request ``seq`` (the C monitor stops re-sending)
``want_hub()``/``hub_done``  a signal handler queued work for the hub / the hub took it (the C
                            monitor counts it as runnable work, so it preempts for it)
``latencies_us``            the latest request -> hook latencies (µs), for ``stats()``
``counters()``/``stats()``  the monitor's own figures for ``stats()`` (None / {} when none)
``after_fork_child(m)``     in a fork() child (``_fork.py``): ``m`` True, the M forked and the
                            runtime goes on: watch it again (no monitor thread or timer
                            survives a fork); False, the M does not exist there: forget it
==========================  ====================================================================

A request is: increment the sequence, then make CPython call ``_preempt._preempt_hook`` from a
Python-level signal handler on the M (the C monitor trips SLOT; the fallback is already inside
its tick handler). Swapping implementations is the one line in ``_sched.new_monitor``.

The fallback (:class:`PosixTimerMonitor`): a POSIX timer (``timer_create(CLOCK_MONOTONIC)``, called
through ctypes) delivers signal ``SIGRTMAX - 1`` every slice; on each tick, if no switch happened
since the previous one (``sched.tick`` did not move: Go's ``schedtick`` check in sysmon), the G has
run at least a whole slice: make a request. A G therefore gives up the CPU after one to two
slices. It works only when ``run()`` is on the main thread (CPython runs signal handlers there
only); elsewhere it warns once and scheduling is cooperative. It ignores ``set_next_deadline``:
timers wait for the end of the running G's slice.

Why not ``setitimer``: ``ITIMER_REAL`` raises SIGALRM, which belongs to the application (and to
pytest-timeout, ``signal.alarm`` users...): arming it would cancel theirs. ``ITIMER_PROF`` is
ticked by the scheduler clock (4 ms here: HZ=250), too coarse for slices under a few ms. A POSIX
timer is precise and its signal is ours (the C core's SLOT is ``SIGRTMAX``, so no clash). If
``timer_create`` cannot be reached, ``ITIMER_PROF``/SIGPROF is used instead.

(An alternative fallback would be a Python thread calling ``_thread.interrupt_main(SLOT)`` each
slice. Rejected: that thread needs the GIL to run, so it gets it only at the interpreter's own
switch interval (5 ms), adding jitter and GIL traffic for nothing setitimer does not do.)
"""

from __future__ import annotations

import ctypes
import signal
import threading
import warnings
from typing import Any, Optional, Sequence

from . import _preempt, _signals
from ._rules import REASON_SLICE

_warned_off_main = False


class NullMonitor:
    """No preemption: cooperative scheduling only. Also the interface's defaults (above)."""

    tick_view: Optional[memoryview] = None
    latencies_us: Sequence[float] = ()      # request -> hook (µs), the latest, for stats()

    def counters(self) -> Optional[dict]:
        """The monitor's own counters for ``stats()["monitor_counters"]``, or None."""
        return None

    def stats(self) -> dict:
        """What the monitor adds to ``stats()`` (its paths and latencies)."""
        return {}

    def start(self, slice_seconds: float) -> None:
        pass

    def stop(self) -> None:
        pass

    def on_idle(self) -> None:
        pass

    def on_wake(self) -> None:
        pass

    def set_next_deadline(self, t: Optional[float]) -> None:
        pass

    def req_seq(self) -> int:
        return 0

    def req_reason(self) -> int:
        return REASON_SLICE

    def ack(self, seq: int) -> None:
        pass

    def want_hub(self) -> None:
        """A signal handler queued work for the hub (_signals.py): treat it as runnable work."""

    def hub_done(self) -> None:
        """The hub took that work."""

    def after_fork_child(self, m_survived: bool) -> None:
        """fork() child: nothing to restart or forget."""


class PosixTimerMonitor(NullMonitor):
    """The pure-Python fallback: a timer signal every slice, main thread only."""

    def __init__(self, sched: Any) -> None:
        self.sched = sched
        self.seq = 0
        self.last_tick = -1
        self.active = False
        self._old: Any = None
        self._timer: Optional[_PosixTimer] = None
        self._signum = 0

    def start(self, slice_seconds: float) -> None:
        global _warned_off_main
        if threading.current_thread() is not threading.main_thread():
            if not _warned_off_main:
                _warned_off_main = True
                warnings.warn(
                    f"preempt.run() on thread {threading.current_thread().name!r}: Python-code "
                    "preemption needs the main thread (CPython runs signal handlers only there), "
                    "so goroutines here switch only when they block or call preempt.gosched(); "
                    "call run() from the main thread for preemption", RuntimeWarning, stacklevel=4)
            return
        timer = _PosixTimer.create(TICK_SIGNAL)
        signum = TICK_SIGNAL if timer is not None else signal.SIGPROF
        old = signal.getsignal(signum)
        if old not in (signal.SIG_DFL, signal.SIG_IGN, None):
            if timer is not None:
                timer.delete()
            warnings.warn(f"signal {signum} already has a handler: preempt's fallback monitor "
                          "leaves it alone and scheduling is cooperative; remove that handler "
                          "for preemption", RuntimeWarning, stacklevel=4)
            return
        self._signum = signum
        self._old = _signals.take_over(signum, self._on_alarm)
        if timer is not None:
            timer.arm(slice_seconds)
            self._timer = timer
        else:
            signal.setitimer(signal.ITIMER_PROF, slice_seconds, slice_seconds)
        self.active = True

    def stop(self) -> None:
        if not self.active:
            return
        self.active = False
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        else:
            signal.setitimer(signal.ITIMER_PROF, 0, 0)
        _signals.give_back(self._signum, self._old)

    def req_seq(self) -> int:
        return self.seq

    def after_fork_child(self, m_survived: bool) -> None:
        """fork() child: neither POSIX timers nor interval timers are inherited, so the tick
        stopped. ``m_survived``: the M forked and the runtime goes on: arm a new timer (the tick
        handler is still installed). Else the M does not exist here: put the old handler back.
        Child after fork, on the forking thread, GIL held, before any goroutine runs."""
        if not self.active:
            return
        self._timer = None          # the parent's timer id means nothing here: never delete it
        if not m_survived:
            self.active = False
            _signals.give_back(self._signum, self._old)
            return
        self.last_tick = -1
        if self._signum == signal.SIGPROF:
            signal.setitimer(signal.ITIMER_PROF, self.sched.slice, self.sched.slice)
            return
        timer = _PosixTimer.create(self._signum)
        if timer is None:           # stop() then disarms ITIMER_PROF, which is not armed: harmless
            self.active = False
            _signals.give_back(self._signum, self._old)
            warnings.warn("preempt: could not re-create the preemption timer after fork(); "
                          "goroutines in this child switch only when they block",
                          RuntimeWarning, stacklevel=2)
            return
        timer.arm(self.sched.slice)
        self._timer = timer

    def _on_alarm(self, signum: int, frame: Any) -> None:
        # Trivial on purpose: decide, number the request, hand it to the hook.
        t = self.sched.tick
        if t != self.last_tick:
            self.last_tick = t
            return
        self.seq += 1
        _preempt._preempt_hook(signum, frame)


TICK_SIGNAL = signal.SIGRTMAX - 1


class _timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _timespec), ("it_value", _timespec)]


class _sigevent(ctypes.Structure):      # glibc x86-64 layout: 64 bytes
    _fields_ = [("sigev_value", ctypes.c_void_p), ("sigev_signo", ctypes.c_int),
                ("sigev_notify", ctypes.c_int), ("_pad", ctypes.c_int * 12)]


class _PosixTimer:
    """A CLOCK_MONOTONIC POSIX timer that raises one signal periodically (ctypes, libc)."""

    _libc: Any = None

    def __init__(self, libc: Any, tid: Any) -> None:
        self._libc = libc
        self._tid = tid

    @classmethod
    def create(cls, signum: int) -> Optional["_PosixTimer"]:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if not hasattr(libc, "timer_create"):
                libc = ctypes.CDLL("librt.so.1", use_errno=True)
            libc.timer_create.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
            libc.timer_settime.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                           ctypes.c_void_p]
            libc.timer_delete.argtypes = [ctypes.c_void_p]
            sev = _sigevent()
            sev.sigev_signo = signum
            sev.sigev_notify = 0                      # SIGEV_SIGNAL
            tid = ctypes.c_void_p()
            if libc.timer_create(1, ctypes.byref(sev), ctypes.byref(tid)) != 0:  # MONOTONIC
                return None
            return cls(libc, tid)
        except (OSError, AttributeError):
            return None

    def arm(self, period: float) -> None:
        sec, frac = divmod(period, 1.0)
        ts = _timespec(int(sec), max(1, int(frac * 1e9)) if not sec else int(frac * 1e9))
        spec = _itimerspec(ts, ts)
        self._libc.timer_settime(self._tid, 0, ctypes.byref(spec), None)

    def delete(self) -> None:
        if self._tid is not None:
            self._libc.timer_delete(self._tid)
            self._tid = None

