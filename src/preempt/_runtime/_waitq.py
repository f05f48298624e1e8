"""Waiters and wait queues: the one structure every blocking primitive parks on.

A :class:`Waiter` is Go's ``sudog``: one G waiting in one queue, with a slot for the value it
sends or receives. A :class:`WaitQ` is a FIFO of waiters (trio's parking lot); Chan has two
(senders, receivers), Mutex, WaitGroup, Event, Once and ``join`` have one each.

A G that waits on several things at once — ``select`` over many channels, or one queue plus a
timeout — puts one waiter in each queue, all sharing one :class:`Sel`. The first party to claim a
waiter of that Sel wins (``Sel.winner``); the other waiters are stale and are skipped by
``dequeue()`` and removed by ``Sel.cancel()`` when the G wakes.

Invariants:

1. ``dequeue()`` returns only claimable waiters and claims them: a waiter is handed out at most
   once, and of the waiters sharing a Sel, at most one is ever handed out.
2. A timer that fires for a Sel claims it with the ``TIMEOUT`` marker, so a timeout and a
   hand-off can never both happen.
3. A woken G removes its remaining waiters (``Sel.cancel()``) before returning to user code, so
   no stale waiter outlives its wait (no leak for ``select`` in a loop).

(An alternative would be unlinking every sibling eagerly inside ``dequeue()``. Rejected: the
woken G does it itself, once, outside the hand-off path that ping-pong measures.)
"""

from __future__ import annotations

from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, Any, Optional
from weakref import ref as _weakref

from . import _park
from ._timeouts import TIMEOUT_MAX, check_timeout

if TYPE_CHECKING:
    from ._g import Goroutine
    from ._sched import Scheduler

TIMEOUT: Any = object()     # Sel.winner when the timer fired first


class Waiter:
    """One G waiting in one WaitQ (Go's sudog)."""

    __slots__ = ("g", "elem", "ok", "sel", "index", "q", "closed")

    def __init__(self, g: Goroutine, elem: Any = None) -> None:
        self.g = g
        self.elem = elem          # the value being sent, or the value received
        self.ok = False           # a value was delivered (recv) / taken (send)
        self.sel: Optional[Sel] = None
        self.q: Optional[WaitQ] = None
        self.closed = False       # woken because the channel was closed
        # self.index: the select case this waiter stands for (set by select only)

    def cancel(self) -> None:
        """Removes the waiter from its queue (interrupting the wait). Idempotent."""
        q = self.q
        if q is not None:
            q.remove(self)

    def describe(self, reason: Optional[str]) -> str:
        owner = self.q.owner if self.q is not None else None
        return f"{reason} on {owner!r}" if owner is not None else (reason or "")


class Sel:
    """One G's wait on several waiters and/or a timer; the first claim wins."""

    __slots__ = ("g", "waiters", "winner", "timer")

    def __init__(self, g: Goroutine) -> None:
        self.g = g
        self.waiters: list = []
        self.winner: Any = None
        self.timer: Any = None

    def fire_timeout(self) -> None:
        """Timer callback (hub): claims the Sel for the timeout and wakes the G."""
        if self.winner is None:
            self.winner = TIMEOUT
            self.timer = None
            _park.ready(self.g, True)

    def cancel(self) -> None:
        """Removes every waiter still queued and stops the timer. Idempotent."""
        for w in self.waiters:
            q = w.q
            if q is not None:
                q.remove(w)
        t = self.timer
        if t is not None:
            self.timer = None
            t.cancel()

    def describe(self, reason: Optional[str]) -> str:
        owners = ", ".join(repr(w.q.owner) for w in self.waiters if w.q is not None)
        return f"{reason} on {owners}" if owners else (reason or "")


class _Strong:
    """A strong reference with a weak reference's call: for owners that have no weak ones."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __call__(self) -> Any:
        return self.obj


class WaitQ:
    """A FIFO of waiters, with the parking-lot operations the sync primitives need.

    Args:
        owner: The primitive owning the queue, named in deadlock messages and dump(). Held
            by a weak reference: the owner holds its queues, so a strong one would make every
            Chan, Mutex and Event a cycle that only the garbage collector frees (and whose
            gen-0 collections were the tail of the cancellation benchmark). Whoever waits on
            the queue holds the owner, so it is alive whenever it is named.
    """

    __slots__ = ("_q", "_owner")

    def __init__(self, owner: Any = None) -> None:
        self._q: deque = deque()
        if owner is not None:
            try:
                owner = _weakref(owner)
            except TypeError:      # a str or another value without weak references: no cycle
                owner = _Strong(owner)
        self._owner = owner

    @property
    def owner(self) -> Any:
        """The primitive owning the queue, or None (none given, or it is gone)."""
        r = self._owner
        return None if r is None else r()

    def __len__(self) -> int:
        return len(self._q)

    def enqueue(self, w: Waiter) -> None:
        w.q = self
        self._q.append(w)

    def dequeue(self) -> Optional[Waiter]:
        """Takes and claims the first claimable waiter (invariant 1), or returns None."""
        q = self._q
        while q:
            w = q.popleft()
            w.q = None
            sel = w.sel
            if sel is None:
                return w
            if sel.winner is None:
                sel.winner = w
                return w
        return None

    def remove(self, w: Waiter) -> None:
        try:
            self._q.remove(w)
        except ValueError:
            pass
        w.q = None

    def waiters(self) -> list:
        return [w.g for w in self._q if w.sel is None or w.sel.winner is None]

    def statistics(self) -> dict:
        """Counts, in trio's ``statistics()`` habit."""
        return {"waiting": len(self.waiters())}

    # -- parking-lot operations ----------------------------------------------------------

    def wait(self, reason: str, timeout: Optional[float] = None) -> bool:
        """Parks the running G in this queue until woken (True) or the timeout passes (False).

        Args:
            reason: Why it waits (dump(), deadlock messages); ``reason + "()"`` names the
                caller in argument errors.
            timeout: Seconds at most, an int or float >= 0; 0 returns False at once (no wait).
                None, ``math.inf`` or above 2**31 s waits for ever. Public callers validate it
                first (``_timeouts.py``); a valid value costs one or two checks here.

        Raises:
            TypeError: ``timeout`` is not None or a number, or is a bool.
            ValueError: ``timeout`` is NaN or negative.
        """
        s = _park.running_sched(reason)
        g = s.cur
        if timeout is not None and not (type(timeout) is float and 0.0 <= timeout <= TIMEOUT_MAX):
            timeout = check_timeout(timeout, f"{reason}()")     # rules in _timeouts.py
        if timeout is None:
            self.park_cached(s, g, reason)
            return True
        if timeout <= 0:
            return False
        from ._timers import add_timer

        w = Waiter(g)
        sel = Sel(g)
        w.sel = sel
        sel.waiters.append(w)
        self.enqueue(w)
        sel.timer = add_timer(s, monotonic() + timeout, Sel.fire_timeout, sel)
        try:
            _park.park(reason, sel)
        finally:
            sel.cancel()
        return sel.winner is w

    def park_cached(self, s: Scheduler, g: Goroutine, reason: str, elem: Any = None) -> Waiter:
        """Parks g, the running G of s, in this queue with its cached waiter holding ``elem``;
        returns the waiter once woken. One cached waiter per G (Go's sudog cache) is enough:
        a G waits in at most one queue at a time, except in select, which makes its own.
        The C twin is ``pe_wait`` in csrc/pe_hot.c."""
        w = g.waiter
        if w is None:
            w = g.waiter = Waiter(g)
        w.elem = elem
        w.ok = False
        w.closed = False
        w.q = self
        self._q.append(w)
        _park.park_checked(s, g, reason, w)
        return w

    def wake_one(self) -> Optional[Waiter]:
        """Readies the first waiter's G; returns the waiter or None."""
        w = self.dequeue()
        if w is not None:
            w.ok = True
            _park.ready(w.g)
        return w

    def wake_all(self) -> int:
        """Readies every waiter's G; returns how many."""
        n = 0
        while self._q:
            w = self.dequeue()
            if w is None:
                break
            w.ok = True
            _park.ready(w.g)
            n += 1
        return n
