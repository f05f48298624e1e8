"""Timers: a binary heap of deadlines on the M, run by the hub.

``sleep``, ``select(timeout=...)``, ``Event.wait(timeout=...)`` and ``join(timeout=...)`` all
add a :class:`Timer` here. The hub runs the expired ones; a G that parks checks the heap's top
(one ``monotonic()`` call) and visits the hub when a timer is due, so timers fire even while Gs
hand the CPU to each other directly. When the top of the heap changes, the new deadline is
published to the monitor (``set_next_deadline``): the C monitor preempts a computing G the moment
a timer is due (DESIGN.md §4, timer-driven preemption); the Python fallback only has its slice.

Invariants:

1. The heap holds ``(when, seq, timer)``; ``seq`` breaks ties in FIFO order and keeps timers
   from ever being compared.
2. Cancelling is lazy (``timer.active = False``); ``s.ntimers`` counts active timers only, so
   deadlock detection sees "no timer pending" correctly. When cancelled entries outnumber live
   ones (a ``select`` with a long timeout in a loop), the heap is rebuilt without them.
3. A timer callback runs on the hub, must not block, and usually just calls ``ready()``.
   Timer-woken Gs go to ``runnext`` (Go's ``goready``), so a ticker is not queued behind CPU hogs.
"""

from __future__ import annotations

import heapq
import itertools
from time import monotonic
from typing import Any, Callable

from . import _park

_seq = itertools.count()


class Timer:
    """One deadline and its callback ``fn(arg)``."""

    __slots__ = ("when", "fn", "arg", "active", "s")

    def __init__(self, s: Any, when: float, fn: Callable[[Any], None], arg: Any) -> None:
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


def add_timer(s: Any, when: float, fn: Callable[[Any], None], arg: Any) -> Timer:
    """Schedules ``fn(arg)`` on the hub at monotonic time ``when``. M thread."""
    t = Timer(s, when, fn, arg)
    h = s.timers
    if not h or when < h[0][0]:
        s.monitor.set_next_deadline(when)
    heapq.heappush(h, (when, next(_seq), t))
    s.ntimers += 1
    return t


def run_timers(s: Any, now: float) -> int:
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


def next_deadline(s: Any) -> float:
    """The earliest active deadline, or +inf. Drops cancelled entries from the top."""
    h = s.timers
    while h and not h[0][2].active:
        heapq.heappop(h)
        s.ncancelled -= 1
    return h[0][0] if h else float("inf")


def _wake(g: Any) -> None:
    _park.ready(g, True)


def sleep(seconds: float) -> None:
    """Blocks the running goroutine for ``seconds`` (at least; other Gs run meanwhile).

    Args:
        seconds: How long; 0 or less just yields (like :func:`preempt.gosched`).

    Raises:
        PreemptError: Called outside ``preempt.run()`` or from another OS thread.
    """
    s = _park.sched
    if s is None or s.cur is None:
        s = _park.check_sched("preempt.sleep()")
    if seconds <= 0:
        _park.gosched()
        return
    g = s.cur
    t = add_timer(s, monotonic() + seconds, _wake, g)
    _park.park("sleep", t)
