"""Timers: a binary heap of deadlines on the M, run by the hub.

``sleep``, ``select(timeout=...)``, ``Event.wait(timeout=...)`` and ``join(timeout=...)`` all
add a :class:`Timer` here. The hub runs the expired ones; a G that parks checks the heap's top
(one ``monotonic()`` call) and visits the hub when a timer is due, so timers fire even while Gs
hand the CPU to each other directly. When the top of the heap changes, the new deadline is
published to the monitor (``set_next_deadline``): the C monitor preempts a computing G the moment
a timer is due (docs/design.md §4, timer-driven preemption); the Python fallback only has its slice.

Invariants:

1. The heap holds ``(when, seq, timer)``; ``seq`` breaks ties in FIFO order and keeps timers
   from ever being compared.
2. Cancelling is lazy (``timer.active = False``); ``s.ntimers`` counts active timers only, so
   deadlock detection sees "no timer pending" correctly. When cancelled entries outnumber live
   ones (a ``select`` with a long timeout in a loop), the heap is rebuilt without them.
3. A timer callback runs on the hub, must not block, and usually just calls ``ready()``.
   Timer-woken Gs go to ``runnext`` (Go's ``goready``), so a ticker is not queued behind CPU hogs.
4. Every deadline in the heap is a finite monotonic time below ``WHEN_MAX`` (the C monitor's
   int64 nanoseconds): callers validate durations with ``_timeouts.py`` first, where "for ever"
   means no timer at all, and ``add_timer`` refuses anything else. A sleep for ever parks on
   ``FOREVER``, a blocker with no timer, so the deadlock check sees it has nothing to wait for.
5. The hub never asks epoll to wait more than ``POLL_MAX`` (``next_deadline``): epoll cannot
   wait longer than INT_MAX ms (24.8 days), and a longer timer just costs one idle wake a day.
"""

from __future__ import annotations

import heapq
import itertools
from time import monotonic
from typing import TYPE_CHECKING, Any, Callable

from .._errors import PreemptError
from . import _park
from ._timeouts import TIMEOUT_MAX, check_seconds

if TYPE_CHECKING:
    from ._g import Goroutine
    from ._sched import Scheduler

_seq = itertools.count()
WHEN_MAX = (2**63 - 1) / 1e9 - 1.0   # s: the latest deadline the monitor's int64 ns can hold
POLL_MAX = 86400.0                   # s: the longest single idle wait of the hub (invariant 5)


class Timer:
    """One deadline and its callback ``fn(arg)``."""

    __slots__ = ("when", "fn", "arg", "active", "s")

    def __init__(self, s: Scheduler, when: float, fn: Callable[[Any], None], arg: Any) -> None:
        self.s = s
        self.when = when
        self.fn = fn
        self.arg = arg
        self.active = True

    def cancel(self) -> None:
        """Stops the timer if it has not fired. Idempotent."""
        if self.active:
            self.active = False
            s = self.s
            s.ntimers -= 1
            s.ncancelled += 1
            if s.ncancelled > 64 and s.ncancelled > len(s.timers) // 2:
                s.timers = [e for e in s.timers if e[2].active]
                heapq.heapify(s.timers)
                s.ncancelled = 0

    def describe(self, reason: Any) -> str:
        return f"{reason} ({max(0.0, self.when - monotonic()):.3f} s left)"


def add_timer(s: Scheduler, when: float, fn: Callable[[Any], None], arg: Any) -> Timer:
    """Schedules ``fn(arg)`` on the hub at monotonic time ``when``. M thread.

    Raises:
        PreemptError: ``when`` is NaN, infinite or past ``WHEN_MAX`` (invariant 4): an internal
            error, since every public duration is validated before it becomes a deadline.
    """
    if not when <= WHEN_MAX:          # NaN fails too
        raise PreemptError(f"preempt: internal error: timer deadline {when!r} is not a finite "
                           "monotonic time in the monitor's range; durations must go through "
                           "_timeouts.check_timeout() first")
    t = Timer(s, when, fn, arg)
    h = s.timers
    if not h or when < h[0][0]:
        s.monitor.set_next_deadline(when)
    heapq.heappush(h, (when, next(_seq), t))
    s.ntimers += 1
    return t


def run_timers(s: Scheduler, now: float) -> int:
    """Runs every expired timer. Hub only. Returns how many fired."""
    h = s.timers
    n = 0
    while h and h[0][0] <= now:
        t = heapq.heappop(h)[2]
        if t.active:
            t.active = False
            s.ntimers -= 1
            n += 1
            t.fn(t.arg)
        else:
            s.ncancelled -= 1
    s.monitor.set_next_deadline(h[0][0] if h else None)   # None: no timer pending
    return n


def next_deadline(s: Scheduler) -> float:
    """When the idle hub must wake: the earliest active deadline, but no later than ``POLL_MAX``
    from now (invariant 5), or +inf when no timer is pending. Drops cancelled entries from the
    top. Hub only."""
    h = s.timers
    while h and not h[0][2].active:
        heapq.heappop(h)
        s.ncancelled -= 1
    if not h:
        return float("inf")
    when = h[0][0]
    latest = monotonic() + POLL_MAX
    return when if when < latest else latest


def _wake(g: Goroutine) -> None:
    _park.ready(g, True)


class _Forever:
    """The blocker of a sleep for ever: no timer; only an interrupt ends it (invariant 4)."""

    __slots__ = ()

    def cancel(self) -> None:
        pass

    def describe(self, reason: Any) -> str:
        return reason or "sleep (for ever)"


FOREVER = _Forever()


def sleep(seconds: float) -> None:
    """Blocks the running goroutine for ``seconds`` (at least; other Gs run meanwhile).

    Args:
        seconds: How long: an int or float (or another real number, such as a Fraction or a
            Decimal) >= 0. 0 just yields, like :func:`preempt.gosched`. ``math.inf``, or any
            value above 2**31 s (about 68 years), sleeps for ever: only an interrupt or the end
            of ``run()`` ends it, and when nothing else can wake any goroutine, ``run()`` raises
            :class:`preempt.Deadlock` naming "sleep (for ever)".

    Raises:
        TypeError: ``seconds`` is not a number (a str, None, a complex, ...) or is a bool.
        ValueError: ``seconds`` is NaN or negative (as for ``time.sleep``).
        PreemptError: Called outside ``preempt.run()`` or from another OS thread.

    Example::

        preempt.sleep(0.25)
    """
    s = _park.sched
    if s is None or s.cur is None:
        s = _park.check_sched("preempt.sleep()")
    if not (type(seconds) is float and 0.0 < seconds <= TIMEOUT_MAX):
        seconds = check_seconds(seconds, "preempt.sleep()")     # rules in _timeouts.py
        if seconds is None:
            _park.park("sleep (for ever)", FOREVER)
            return
        if seconds == 0:
            _park.gosched()
            return
    g = s.cur
    t = add_timer(s, monotonic() + seconds, _wake, g)
    _park.park("sleep", t)
