"""Loads the C core (``preempt._core``, built by cffi from csrc/) once, or records why it cannot.

Everything that needs the core goes through :func:`core` so that an interpreter or platform
without it still imports preempt and gets one clear reason (preempt.available()).
"""

from __future__ import annotations

import platform
import sys
import sysconfig
import threading
from typing import Any, Optional, Tuple

_ffi: Any = None
_lib: Any = None
_reason: Optional[str] = None
_loaded = False
# pe_py_check_layout's mask of private-layout checks that failed at load (0: none)
layout_failures = 0


def _platform_reason() -> Optional[str]:
    from ._platform import FORCED_REASON

    if FORCED_REASON:
        return f"preemption is turned off by PREEMPT_FORCE_UNAVAILABLE: {FORCED_REASON}"
    if not sys.platform.startswith("linux"):
        return f"preemption needs Linux; this is {sys.platform}"
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"preemption needs x86-64; this machine is {platform.machine()}"
    if sys.implementation.name != "cpython":
        return f"preemption needs CPython; this is {sys.implementation.name}"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "preemption needs a GIL-enabled CPython; this is a free-threaded build"
    return None


def _load() -> None:
    global _ffi, _lib, _reason, _loaded
    _loaded = True
    _reason = _platform_reason()
    if _reason:
        return
    try:
        from . import _core  # type: ignore[attr-defined]
    except ImportError as e:  # pragma: no cover - a broken install
        _reason = f"the C core preempt._core is not built or failed to load: {e}"
        return
    if _core.lib.pe_init() != _core.lib.PE_OK:
        _reason = "the C core failed to start: " + _string(_core.ffi, _core.lib.pe_unavailable_reason())
        return
    _ffi, _lib = _core.ffi, _core.lib
    global layout_failures
    # the private-layout fields must hold what they should, or sysmon does without them
    layout_failures = _lib.pe_py_check_layout(threading.main_thread().ident or 0)


def _string(ffi: Any, p: Any) -> str:
    return ffi.string(p).decode() if p != ffi.NULL else ""


def core() -> Tuple[Any, Any]:
    """Returns (ffi, lib) of the started core. Raises Unavailable with the reason otherwise."""
    if not _loaded:
        _load()
    if _lib is None:
        from ._errors import Unavailable

        raise Unavailable(_reason)
    return _ffi, _lib


def unavailable_reason() -> Optional[str]:
    """None when the core is loaded and async preemption works, else why not."""
    if not _loaded:
        _load()
    if _lib is None:
        return _reason
    p = _lib.pe_unavailable_reason()
    return _string(_ffi, p) or None if p != _ffi.NULL else None
