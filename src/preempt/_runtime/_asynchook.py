"""Asynchronous preemption: the hook the trampoline runs when a goroutine is stopped in native code.

A goroutine that calls a library registered with :func:`preempt.preemptible` (GIL released)
reaches no bytecode safe-point, so the synchronous request sysmon makes at the end of its slice is
not taken. After a grace period sysmon sends the M SIGURG; the core's handler finds the M inside
a registered region without the GIL and redirects it into the trampoline, which saves every
register and calls :func:`pe_py_async_preempt` below (cffi takes the GIL around it). From here
on it is the synchronous path: ``_preempt._preempt_hook`` applies the same deferral rules (less
the two about the bytecode a frame is stopped at: the goroutine is stopped inside a native call
made from the frame, which may be the worker loop's own call of the goroutine's function, as in
``preempt.go(lib.fn)``; ``_preempt.py`` rule 8) and parks the goroutine as runnable; other
goroutines run on the M; when this one is picked again the hook returns, cffi releases the GIL,
and the trampoline restores the registers and resumes the native code exactly where it was.

Exceptions cannot cross the native frames below us. A goroutine parked here is listed in
``sched.native``: when run() ends it is abandoned at once instead of being killed (its call
cannot be unwound, and killing would wait for the call to finish), and so is main when a signal
handler's exception must reach it. An exception that does reach a goroutine here is caught and
reported to the trampoline as a ``PE_HOOK_*`` code; the core arms it with
``PyThreadState_SetAsyncExc`` so it fires at the goroutine's first bytecode after the native call
returns. The hook also yields when no request is outstanding but a signal handler left work for
the hub (sysmon signals the M for a tripped Python handler, see pe_sysmon.c).

Installed by the C monitor (``_csysmon.CoreMonitor``) for the duration of ``run()``.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import Any, Deque

from greenlet import GreenletExit

from .. import _corelib
from . import _park, _preempt

_installed = False
_KEEP = 4096
latencies_us: Deque[float] = deque(maxlen=_KEEP)   # signal -> hook running (µs), most recent
count = 0


def _on_error(exc_type: Any, exc: Any, tb: Any) -> int:
    """cffi calls this for an exception that escaped the hook; its result is the hook's.

    KeyboardInterrupt can arrive before the hook's first line (CPython runs signal handlers at a
    function's entry), so it is mapped here too. Anything else is a runtime bug: say so.
    """
    _, lib = _corelib.core()
    if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
        return lib.PE_HOOK_RAISE_INTERRUPT
    if exc_type is not None and issubclass(exc_type, GreenletExit):
        return lib.PE_HOOK_RAISE_EXIT
    s = _park.sched
    g = s.cur if s is not None else None
    if exc is not None and g is not None and g.pending_exc is None:
        # The hook's own body keeps what it raises for the G's next checkpoint; what escapes
        # to here came from a Python signal handler that is not routed (_signals.py), run at
        # the hook's first line. It is the goroutine's: raise it at its next checkpoint too.
        g.pending_exc = exc
        return lib.PE_HOOK_CONTINUE
    import traceback

    print("preempt: internal error in the async preemption hook:", file=sys.stderr)
    traceback.print_exception(exc_type, exc, tb)
    return lib.PE_HOOK_CONTINUE


def _define() -> None:
    ffi, lib = _corelib.core()

    @ffi.def_extern(onerror=_on_error)
    def pe_py_async_preempt(slot: int) -> int:
        global count
        s = _park.sched
        if s is None:
            return 0
        m = s.monitor
        lat_ns = lib.pe_thread_last_latency_ns(m.m_slot, m.m_gen) if hasattr(m, "m_slot") else -1
        count += 1
        if lat_ns >= 0:
            latencies_us.append(lat_ns / 1000)
        s.nasync = getattr(s, "nasync", 0) + 1
        g = s.cur
        native = s.native
        native.add(g)                # parked in native code: run() will not wait for it
        try:
            # the frame that made the native call; the G is stopped inside that call, not
            # at one of the frame's bytecodes (_preempt.py rule 8)
            _preempt._preempt_hook(0, sys._getframe(1), native=True)
        except KeyboardInterrupt:
            return lib.PE_HOOK_RAISE_INTERRUPT
        except GreenletExit:
            return lib.PE_HOOK_RAISE_EXIT
        except BaseException as e:
            # A pending interrupt of another type (an error the hub hands to main) cannot be
            # armed for native code: keep it for the G's next checkpoint instead of losing it.
            if g is None or g.pending_exc is not None:
                raise
            g.pending_exc = e
        finally:
            native.discard(g)
        return lib.PE_HOOK_CONTINUE


def install() -> None:
    """Lets sysmon preempt goroutines in registered native code. M thread, inside run()."""
    global _installed
    ffi, lib = _corelib.core()
    if not _installed:
        _define()
        _installed = True
    lib.pe_set_preempt_hook(lib.pe_py_async_preempt)


def uninstall() -> None:
    ffi, lib = _corelib.core()
    lib.pe_set_preempt_hook(ffi.NULL)
