"""Synchronisation between goroutines: WaitGroup, Mutex, Once, Event.

Each is a little state plus one wait queue (``_runtime/_waitq.py``, trio's parking-lot habit),
and each has a ``statistics()`` method. They are for goroutines of one ``preempt.run()``:
``threading`` primitives would block the whole M (every goroutine) instead of one G, and their
per-thread ownership cannot tell two goroutines apart.

Rules:

1. Mutex hands ownership straight to the first waiter on unlock (no barging), so a waiter is
   never starved. It is not reentrant; any goroutine may unlock it (as in Go).
2. WaitGroup's counter never goes below zero: that raises PreemptError at the call that did it.
3. Once runs its function at most once, even if it raises (Go's rule); concurrent callers wait
   until it has finished. A call from inside the function itself (the same goroutine) raises
   PreemptError: Go deadlocks there; we say what happened.
4. Timeouts follow ``_runtime/_timeouts.py``: seconds >= 0, None or ``math.inf`` for ever,
   NaN, negative and non-numbers rejected.
"""

from __future__ import annotations

from typing import Any, Callable, Optional


from ._errors import PreemptError
from ._runtime import _park, _preempt
from ._runtime._timeouts import TIMEOUT_MAX, check_timeout
from ._runtime._waitq import Waiter, WaitQ


_sched = _park.running_sched


class Mutex:
    """A mutual-exclusion lock for goroutines.

    Example::

        mu = preempt.Mutex()
        with mu:
            counter += 1
    """

    __slots__ = ("_locked", "_owner", "_q", "__weakref__")

    def __init__(self) -> None:
        self._locked = False
        self._owner: Any = None
        self._q = WaitQ(self)

    def __repr__(self) -> str:
        who = f" by goroutine {self._owner.id}" if self._owner is not None else ""
        return f"<Mutex {'locked' + who if self._locked else 'unlocked'}>"

    def locked(self) -> bool:
        return self._locked

    def lock(self) -> None:
        """Takes the lock, waiting while another goroutine holds it."""
        s = _sched("Mutex.lock()")
        if not self._locked:
            self._locked = True
            self._owner = s.cur
            return
        if self._owner is s.cur:
            raise PreemptError(f"goroutine {s.cur.id} {s.cur.name!r} locked a Mutex it already "
                               "holds; Mutex is not reentrant — restructure to lock once")
        g = s.cur
        w = Waiter(g)
        self._q.enqueue(w)
        try:
            _park.park("Mutex.lock", w)     # on wake the lock is ours (rule 1)
        except BaseException:
            if self._owner is g:            # handed to us, then interrupted: pass it on
                self.unlock()
            raise

    def unlock(self) -> None:
        """Releases the lock, handing it to the first waiter.

        Raises:
            PreemptError: The mutex is not locked.
        """
        _sched("Mutex.unlock()")
        if not self._locked:
            raise PreemptError("unlock of an unlocked Mutex: every unlock() must follow a lock()")
        w = self._q.dequeue()
        if w is None:
            self._locked = False
            self._owner = None
        else:
            self._owner = w.g
            _park.ready(w.g)

    def __enter__(self) -> "Mutex":
        self.lock()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.unlock()

    def statistics(self) -> dict:
        return {"locked": self._locked, "owner": self._owner, "waiting": len(self._q.waiters())}


class WaitGroup:
    """Waits for a collection of goroutines to finish.

    Example::

        wg = preempt.WaitGroup()
        for job in jobs:
            wg.add(1)
            preempt.go(work, job, wg)      # work() calls wg.done()
        wg.wait()
    """

    __slots__ = ("_n", "_q", "__weakref__")

    def __init__(self) -> None:
        self._n = 0
        self._q = WaitQ(self)

    def __repr__(self) -> str:
        return f"<WaitGroup counter={self._n}>"

    def add(self, delta: int = 1) -> None:
        """Adds ``delta`` (may be negative) to the counter; at zero, wakes every waiter.

        Raises:
            PreemptError: The counter would go negative (rule 2).
        """
        n = self._n + delta
        if n < 0:
            raise PreemptError(f"WaitGroup counter would become {n}: more done() than add(); "
                               "call add() before starting each goroutine")
        self._n = n
        if n == 0 and len(self._q):
            self._q.wake_all()

    def done(self) -> None:
        """``add(-1)``."""
        self.add(-1)

    def wait(self) -> None:
        """Waits until the counter is zero."""
        _sched("WaitGroup.wait()")
        if self._n == 0:
            return
        self._q.wait("WaitGroup.wait")

    def statistics(self) -> dict:
        return {"counter": self._n, "waiting": len(self._q.waiters())}


class Event:
    """A flag goroutines can wait for (like ``threading.Event``)."""

    __slots__ = ("_flag", "_q", "__weakref__")

    def __init__(self) -> None:
        self._flag = False
        self._q = WaitQ(self)

    def __repr__(self) -> str:
        return f"<Event {'set' if self._flag else 'unset'}>"

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        """Sets the flag and wakes every waiter."""
        self._flag = True
        if len(self._q):
            self._q.wake_all()

    def clear(self) -> None:
        self._flag = False

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits until the flag is set.

        Args:
            timeout: Seconds to wait at most: an int or float (or another real number) >= 0;
                0 only checks the flag. None, ``math.inf`` or any value above 2**31 s (about 68
                years) waits for ever.

        Returns:
            True if the flag is set, False if the timeout passed first.

        Raises:
            TypeError: ``timeout`` is not None or a number, or is a bool.
            ValueError: ``timeout`` is NaN or negative.
        """
        if timeout is not None and not (type(timeout) is float and 0.0 <= timeout <= TIMEOUT_MAX):
            timeout = check_timeout(timeout, "Event.wait()")   # rules in _timeouts.py
        if self._flag:
            return True
        _sched("Event.wait()")
        self._q.wait("Event.wait", timeout)
        return self._flag

    def statistics(self) -> dict:
        return {"set": self._flag, "waiting": len(self._q.waiters())}


class Once:
    """Runs a function once, however many goroutines ask (rule 3).

    Example::

        init = preempt.Once()
        init.do(load_config)      # the first caller runs it; the others wait for it
    """

    __slots__ = ("_done", "_mu", "_runner")

    def __init__(self) -> None:
        self._done = False
        self._mu = Mutex()
        self._runner: Any = None      # the goroutine running fn, while it runs

    def __repr__(self) -> str:
        return f"<Once {'done' if self._done else 'pending'}>"

    def done(self) -> bool:
        return self._done

    def do(self, fn: Callable[[], Any]) -> None:
        """Calls ``fn()`` if no call to ``do`` has done so yet; waits while one is running.

        Args:
            fn: Called with no arguments, at most once per Once (even if it raises).

        Raises:
            PreemptError: ``fn`` (or something it calls) called ``do`` on this same Once from the
                same goroutine, which would wait for itself for ever (rule 3).
            BaseException: Whatever ``fn`` raised (the Once is done all the same).
        """
        if self._done:
            return
        g = _sched("Once.do()").cur
        if self._runner is g:
            raise PreemptError(f"Once.do was called recursively from its own function (goroutine "
                               f"{g.id} {g.name!r}): the inner call would wait for the outer one "
                               "for ever; do the work directly instead of through the same Once")
        self._mu.lock()
        try:
            if not self._done:
                self._runner = g
                try:
                    fn()
                finally:
                    self._runner = None
                    self._done = True
        finally:
            self._mu.unlock()

    def statistics(self) -> dict:
        return {"done": self._done, **{k: v for k, v in self._mu.statistics().items()
                                       if k != "locked"}}


_preempt.register_transparent_code(Once.do.__code__)
