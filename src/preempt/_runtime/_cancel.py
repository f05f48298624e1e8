"""Cancellation: ``Goroutine.cancel()``, timeout scopes, and which interrupt wins.

Cancelling is interrupting (``Scheduler.interrupt``, the mechanism KeyboardInterrupt and the end
of ``run()`` already use) with a :class:`~preempt.Cancelled`. Where the G is decides when it is
raised — its next *checkpoint*:

1. waiting (a channel, select, sleep, Mutex, Event, WaitGroup, join, an fd, ``blocking()``):
   its wait is undone and ``Cancelled`` is raised where it waits, at once. A ``blocking()``
   call's pool thread runs on; its late result is dropped (``offload.py`` rule 3).
2. switched out mid-computation (preempted, or it yielded): raised where it was switched out,
   the next time it runs, which is next (``runnext``).
3. its wait was completed (a value handed over, a mutex granted, a select case won) but it has
   not run yet: the operation finishes and the exception is kept for the next checkpoint
   (trio's rule, docs/guide.md "Interrupts never lose a value"); sysmon is asked for a preemption at
   once (a timer due now), so a G that goes on computing gets it at its next safe-point.
4. running — it cancelled itself, or a handler it runs did: kept the same way, and sysmon is
   asked at once.
5. parked inside a registered native call (async preemption): kept; it is raised when the
   call returns through the ``preemptible()`` proxy, or else at the G's next checkpoint.
   Native frames cannot be unwound, so the call itself runs to its end.

A G that never started is finished with ``Cancelled`` without running its function.

Once raised, a cancellation is gone: code in ``finally`` and ``except Cancelled`` may block
again (asyncio's rule, not trio's level-triggered one). ``no_preempt()`` holds back only the
time-slice switch: a cancellation kept for a G inside such a block is raised at the block's
end, or at the first blocking call inside it.

When two interrupts meet on one G before it runs, the stronger is kept (:func:`outranks`):
GreenletExit (``run()`` is ending) > any other BaseException the runtime delivers
(KeyboardInterrupt, Deadlock) > ``g.cancel()`` > a scope's cancellation, outer scopes over
inner ones. A timeout's exception lost that way is not needed: what replaced it ends the
block anyway.

Cancel scopes. ``with preempt.timeout(s):`` and ``with preempt.Group():`` are scopes of the G
that enters them: a scope cancels its block with a :class:`ScopeCancelled` naming the scope, and
the scope's ``__exit__`` turns its own into what it stands for (``preempt.Timeout``, or the
group's failures) and lets every other exception through. So nested timeouts are independent:
the one that expired is the one that fires. A scope's exception that is still kept when its
block ends (rule 3: the block's last wait completed first) is dropped at the exit: the block
finished, nothing is lost, nothing fires late outside it.

Where these run: on the M thread; ``cancel()`` in a G or the hub (timers), scopes in a G.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Optional

from greenlet import GreenletExit, getcurrent

from .._errors import Cancelled, PreemptError, Timeout
from . import _park
from ._rules import DEAD, RUNNING
from ._timeouts import TIMEOUT_MAX, check_timeout


class ScopeCancelled(Cancelled):
    """Raised inside a cancel scope's block; the scope's exit turns it into its own result.

    Attributes:
        scope: The ``preempt.timeout`` or ``preempt.Group`` that cancelled the block.
    """

    def __init__(self, scope: Any, msg: str) -> None:
        super().__init__(msg)
        self.scope = scope


def _rank(exc: BaseException) -> tuple:
    if isinstance(exc, GreenletExit):
        return (4, 0)
    if isinstance(exc, ScopeCancelled):
        return (1, -exc.scope.depth)      # outer scopes (smaller depth) rank higher
    if isinstance(exc, Cancelled):
        return (2, 0)
    return (3, 0)


def outranks(new: BaseException, old: BaseException) -> bool:
    """Whether interrupt ``new`` replaces ``old``, kept for the same G (module docstring)."""
    return _rank(new) > _rank(old)


def cancel(g: Any, msg: Optional[str]) -> bool:
    """``Goroutine.cancel()``: True when a cancellation was requested, False when g is done.

    Raises:
        PreemptError: Called outside ``run()``'s thread, or for a goroutine of another run().
        TypeError: ``msg`` is not None or a str.
    """
    if msg is not None and not isinstance(msg, str):
        raise TypeError(f"Goroutine.cancel(): msg must be None or a str, not {type(msg).__name__!r}")
    if g.state is DEAD:
        return False
    s = _park.sched
    if s is None or threading.get_ident() != s.ident:
        _park.check_sched("Goroutine.cancel()")
    if s.gs.get(g.id) is not g:
        raise PreemptError(f"Goroutine.cancel(): goroutine {g.id} {g.name!r} belongs to another "
                           "run() that has ended; it can no longer be cancelled")
    if msg is None:
        msg = f"goroutine {g.id} {g.name!r} was cancelled"
    s.interrupt(g, Cancelled(msg))
    return True


def drop_kept(g: Any, scope: Any) -> None:
    """At a scope's exit: forget its cancellation if the G has not raised it yet. Running G."""
    e = g.pending_exc
    if isinstance(e, ScopeCancelled) and e.scope is scope:
        g.pending_exc = None


def enter_scope(g: Any, scope: Any) -> int:
    """Pushes a scope on the G's stack; returns its depth. Running G."""
    st = g.scopes
    if st is None:
        st = g.scopes = []
    st.append(scope)
    return len(st) - 1


def leave_scope(g: Any, scope: Any) -> None:
    """Pops a scope (the innermost, unless the program left scopes out of order). Running G."""
    st = g.scopes
    if st:
        if st[-1] is scope:
            st.pop()
        else:
            try:
                st.remove(scope)
            except ValueError:
                pass
    drop_kept(g, scope)


class timeout:
    """Context manager: raises :class:`preempt.Timeout` out of the block when ``seconds`` pass.

    The block is cancelled at its next checkpoint after the deadline (module docstring): a
    blocking call, or — while it computes in Python — the next preemption safe-point, since the
    deadline is a timer and sysmon preempts the moment a timer is due. Inside the block the
    exception is a :class:`preempt.Cancelled` (a ``BaseException``: ``except Exception`` does
    not swallow it); the ``with`` statement turns it into ``Timeout``, raised from it.

    Args:
        seconds: A number of seconds >= 0 (0: cancelled at the first checkpoint), or None,
            ``math.inf`` or above 2**31 s: no limit.

    Attributes:
        deadline: The ``time.monotonic()`` deadline, or None (no limit); set on entry.
        expired: True once the deadline passed while the block ran (its exception was
            delivered, whether or not the block let it out).

    Raises (on entry):
        TypeError, ValueError: ``seconds`` is not None or a number >= 0 (``_timeouts.py``).
        PreemptError: Entered outside a goroutine (a limit needs ``run()``), or entered twice.

    Example::

        try:
            with preempt.timeout(0.5):
                best = search(problem)      # CPU-bound Python: stopped mid-loop at 0.5 s
        except preempt.Timeout:
            best = None
    """

    __slots__ = ("seconds", "deadline", "expired", "depth", "_g", "_timer", "_used")

    def __init__(self, seconds: Optional[float]) -> None:
        if seconds is not None and not (type(seconds) is float and 0.0 <= seconds <= TIMEOUT_MAX):
            seconds = check_timeout(seconds, "preempt.timeout()", "seconds")
        self.seconds = seconds
        self.deadline: Optional[float] = None
        self.expired = False
        self.depth = 0
        self._g: Any = None
        self._timer: Any = None
        self._used = False

    def __repr__(self) -> str:
        lim = "no limit" if self.seconds is None else f"{self.seconds:g} s"
        return f"<preempt.timeout {lim}{' expired' if self.expired else ''}>"

    def __enter__(self) -> "timeout":
        if self._used:
            raise PreemptError("a preempt.timeout() can be entered once; make a new one for "
                               "each block")
        self._used = True
        if self.seconds is None:
            return self                    # no limit: nothing to arm, works anywhere
        s = _park.running_sched("preempt.timeout()")
        g = s.cur
        self._g = g
        self.depth = enter_scope(g, self)
        from ._timers import add_timer

        self.deadline = _park.monotonic() + self.seconds
        self._timer = add_timer(s, self.deadline, _expire, self)
        return self

    def __exit__(self, et: Any, e: Any, tb: Any) -> bool:
        g = self._g
        if g is None:
            return False
        self._g = None
        t = self._timer
        if t is not None:
            self._timer = None
            t.cancel()
        leave_scope(g, self)
        if isinstance(e, ScopeCancelled) and e.scope is self:
            raise Timeout(f"the block did not finish within its timeout of {self.seconds:g} s "
                          "(preempt.timeout)") from e
        return False


def _expire(scope: timeout) -> None:
    """The deadline's timer. Hub."""
    g = scope._g
    scope._timer = None
    if g is None or g.state is DEAD:
        return
    scope.expired = True
    s = _park.sched
    s.interrupt(g, ScopeCancelled(scope, f"timeout of {scope.seconds:g} s expired"))


def check_cancelled_after_native() -> None:
    """Raises a cancellation kept while the running G was parked in a native call (rule 5).
    The ``preemptible()`` proxy calls it after the call returns. Running G (or no runtime)."""
    s = _park.sched
    if s is None:
        return
    g = s.cur
    if g is not None and g.pending_exc is not None and g.glet is getcurrent():
        _park.raise_pending(g)


# -- interrupts swallowed by finalizers and gc callbacks -------------------------------------
#
# A preemption can land in Python code that CPython runs from C and whose exceptions it only
# reports: a ``__del__``, a weakref or ``gc.callbacks`` callback. An interrupt raised there
# would be printed as "Exception ignored" and lost — a cancellation that never lands. While
# run() runs, sys.unraisablehook catches the runtime's own interrupts (Cancelled, GreenletExit)
# and keeps them for the running G's next checkpoint instead; everything else goes on to the
# hook that was installed before.

_prev_unraisable: Any = None


def _unraisable(u: Any) -> None:
    e = getattr(u, "exc_value", None)
    s = _park.sched
    if s is not None and isinstance(e, (Cancelled, GreenletExit)):
        g = s.cur
        if g is not None and g.glet is getcurrent() and g.state is RUNNING:
            s._keep(g, e)
            return
    (_prev_unraisable or sys.__unraisablehook__)(u)


def install() -> None:
    """run() starts: catch swallowed interrupts. M thread."""
    global _prev_unraisable
    if sys.unraisablehook is not _unraisable:
        _prev_unraisable = sys.unraisablehook
        sys.unraisablehook = _unraisable


def uninstall() -> None:
    """run() ends: put the previous hook back (unless someone replaced ours meanwhile)."""
    global _prev_unraisable
    if sys.unraisablehook is _unraisable:
        sys.unraisablehook = _prev_unraisable or sys.__unraisablehook__
    _prev_unraisable = None
