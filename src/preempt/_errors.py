"""Exceptions. Every error preempt raises on purpose derives from PreemptError; the names say whose
fault it is (gevent's habit): Deadlock is the program's, ThreadExited the caller's, and so on."""

from __future__ import annotations

__all__ = ["PreemptError", "Deadlock", "ChanClosed", "ThreadExited", "SuspendTimeout", "Unavailable",
           "Cancelled", "Timeout"]


class PreemptError(Exception):
    """Base class of every error raised by preempt."""


class Unavailable(PreemptError):
    """Preemption is not available on this interpreter or platform; the message says why."""


class ThreadExited(PreemptError):
    """A ThreadHandle names an OS thread that has exited or unregistered."""


class SuspendTimeout(PreemptError, TimeoutError):
    """stop_the_world() could not park every registered thread in time."""


class Deadlock(PreemptError):
    """Every goroutine is blocked and nothing can wake any of them (Go's "all goroutines are asleep")."""


class ChanClosed(PreemptError):
    """Send on a closed channel, or receive from a closed and drained channel."""


class Timeout(PreemptError, TimeoutError):
    """A ``with preempt.timeout(seconds):`` block did not finish in time (raised out of it)."""


class Cancelled(BaseException):
    """Raised in a goroutine that was cancelled: ``Goroutine.cancel()``, or a cancel scope
    (``preempt.timeout``, ``preempt.Group``) cancelling the block it runs.

    A ``BaseException``, like asyncio's CancelledError and trio's Cancelled, so that ``except
    Exception`` handlers do not swallow it. Let it propagate (after cleaning up); a goroutine
    that returns normally after catching it is not counted as cancelled.
    """
