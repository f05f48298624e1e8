"""preempt.available(): whether preemption works here, and if not, exactly why."""

from __future__ import annotations

from typing import Optional, Tuple

from . import _corelib


def available() -> Tuple[bool, str]:
    """Whether asynchronous preemption works on this interpreter and platform.

    Returns:
        ``(True, "")`` when the C core is loaded, its SIGURG handler is installed and the CPU
        state can be saved; otherwise ``(False, reason)``, the reason being one sentence a
        user can act on (wrong platform, PyPy, free-threaded build, CET shadow stacks, a user
        SIGURG handler that replaced ours, ...).

    Without it, preempt still imports and the goroutine runtime still works cooperatively.
    """
    reason = _reason()
    return (reason is None, reason or "")


def _reason() -> Optional[str]:
    reason = _corelib.unavailable_reason()
    if reason:
        return reason
    _, lib = _corelib.core()
    if not lib.pe_signal_handler_installed():
        return ("another SIGURG handler replaced preempt's (signal.signal(SIGURG, ...) after "
                "importing preempt?): restore it or install yours before importing preempt, "
                "which then chains to it")
    return None
