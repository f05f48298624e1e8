"""Exceptions. Every error preempt raises on purpose derives from PreemptError; the names say whose
fault it is (gevent's habit): Deadlock is the program's, ThreadExited the caller's, and so on."""

from __future__ import annotations

__all__ = ["PreemptError", "Deadlock", "ChanClosed", "ThreadExited", "SuspendTimeout", "Unavailable"]


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
