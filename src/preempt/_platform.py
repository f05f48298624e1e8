"""preempt.available(): whether preemption works here, and if not, exactly why.

preempt must import and run everywhere, and say why it cannot preempt where it cannot: other
platforms, PyPy, free-threaded builds, CET shadow stacks (``_corelib._platform_reason`` and the
C core's own checks). There the C core is never loaded: :func:`available` returns
``(False, reason)``, every call that needs the core raises ``preempt.Unavailable`` with that
reason (``preemptible()``, ``preempt.threads``, ``preempt.gevent.enable()``,
``preempt.aio.run()``), and ``preempt.run()`` still runs goroutines, with the pure-Python
monitor (``_runtime/_sysmon.py``): Python code is preempted, native code never is.

That path is not what a developer's machine takes, so it can be forced:
``PREEMPT_FORCE_UNAVAILABLE=<reason>`` in the environment (read once, when preempt is imported;
empty or unset: not forced) makes the core unavailable as if the platform said so, with
``<reason>`` in the reason. The tests use it to run the whole unavailable path on a machine
where preemption works (``tests/test_core_unavailable.py``).

(An alternative would be to patch ``_corelib`` from inside a test. Rejected: by then the core
is usually loaded and its SIGURG handler installed, which nothing can undo in that process; the
variable keeps the core from ever being loaded, as on a platform without it.)
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

from . import _corelib

# PREEMPT_FORCE_UNAVAILABLE, read once at import (see above): None when not forced.
FORCED_REASON: Optional[str] = os.environ.get("PREEMPT_FORCE_UNAVAILABLE") or None


def available() -> Tuple[bool, str]:
    """Whether asynchronous preemption works on this interpreter and platform.

    Returns:
        ``(True, "")`` when the C core is loaded, its SIGURG handler is installed and the CPU
        state can be saved — ``(True, note)`` when that holds but the core does without
        CPython's private layouts (a CPython newer than the newest tested one, whose internals
        it does not trust); otherwise ``(False, reason)``, the reason being one sentence a
        user can act on (wrong platform, PyPy, free-threaded build, CET shadow stacks, a user
        SIGURG handler that replaced ours, ``PREEMPT_FORCE_UNAVAILABLE``, ...).

    Without it, preempt still imports, ``preempt.run()`` still runs goroutines (Python code is
    preempted by the pure-Python monitor, native code never), and the calls that need the core
    raise ``preempt.Unavailable`` with the reason.
    """
    reason = _reason()
    if reason is None:
        return (True, _layout_note())
    return (False, reason)


# The newest CPython whose private layouts the core was tested with (csrc/pe_pyoffsets.c).
NEWEST_TESTED = (3, 14)


def _layout_note() -> str:
    """"" on a tested CPython; else a note that preemption runs without the private layouts."""
    _, lib = _corelib.core()
    state = lib.pe_py_private_layout()
    if state == 1:
        return ""
    import sys

    v = "%d.%d" % sys.version_info[:2]
    newer = sys.version_info[:2] > NEWEST_TESTED
    if state < 0:
        why = (f"CPython {v}'s private interpreter fields did not hold what they should at "
               f"import ({_failed_checks(lib, _corelib.layout_failures)}: a patched or "
               "differently configured build?)")
    elif newer:
        why = (f"CPython {v} is newer than the newest version preempt was tested with "
               f"({NEWEST_TESTED[0]}.{NEWEST_TESTED[1]})")
    else:
        why = "the C core was built without CPython's private layouts (PREEMPT_NO_PRIVATE_LAYOUT)"
    return (f"preemption works, but {why}: it does without CPython's private interpreter "
            "layout — sysmon does not poke the eval breaker or watch the GIL and tripped "
            "signals, and signals the M instead (higher preemption latency, Ctrl-C under long "
            "native calls waits for the call)")


def _failed_checks(lib: object, mask: int) -> str:
    """The names of the layout checks in mask (pe_py_check_layout)."""
    names = [("the GIL word", "PE_LAYOUT_GIL"), ("the tripped-signal word", "PE_LAYOUT_TRIPPED"),
             ("the eval-breaker word", "PE_LAYOUT_BREAKER"), ("the main thread's state",
                                                             "PE_LAYOUT_MAIN")]
    bad = [n for n, c in names if mask & getattr(lib, c)]
    return "check failed: " + ", ".join(bad) if bad else "check failed"


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
