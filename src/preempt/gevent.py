"""Preemption for unmodified gevent programs: ``preempt.gevent.enable(slice=0.010)``.

A gevent greenlet that runs Python code for longer than a slice is switched out at its next
synchronous safe-point, as if it had called ``gevent.sleep()`` (of 1 us: ``sleep(0)`` would
not let the loop reach timers and I/O): the hub runs its timers, sockets and the other
greenlets, then the greenlet goes on where it stopped. gevent's own
maintainers declined to do this (gevent#1741, greenlet#143); the mechanism is preempt's:

1. sysmon (``csrc/pe_sysmon.c``) watches a switch counter. A ``greenlet.settrace`` callback
   bumps it at every greenlet switch and tells sysmon whether the hub is running (the hub is
   never preempted: it is the scheduler, and while it waits in libev nothing runs Python).
2. When the counter has not moved for a slice, sysmon trips preempt's SLOT signal slot;
   CPython runs the handler at the greenlet's next eval-breaker check (a loop's back-edge, a
   call). The handler calls ``gevent.sleep(0)`` unless the greenlet may not be switched there:
   - the hub itself, or a frame of gevent's own Python code on top (its internals);
   - an import in progress; a frame of ``logging`` or ``threading`` anywhere on the stack
     unless gevent patched ``threading`` (their locks are then real locks, which do not keep a
     second greenlet out), and the modules given to ``preempt.deny_preemption_in``;
   - inside ``with preempt.no_preempt():``;
   - on 3.10, an exception handler's first instruction (``_runtime/_preempt.py`` rule 7).
   A deferred request is not lost: sysmon re-sends it until the greenlet may be switched.
3. An exception gevent throws into the switched-out greenlet (``gevent.kill``, a
   ``gevent.Timeout``) comes out of the handler; on 3.11/3.12 it is re-raised at the next
   instruction, so ``try``/``finally`` around a loop still sees it (gh-108214, the same
   work-around as the runtime's).
4. Blocked-hub reports come free: when a request is taken only ``report_after`` seconds (0.1 s,
   gevent's own monitor threshold) or more after it was made, something held the GIL or stayed
   in C code that long. The greenlet, the delay and its stack are kept (:func:`reports`) and
   written to stderr, like gevent's monitor thread does.

What it cannot do: preempt C code that holds the GIL (a C extension's long call, a regex), or
greenlets on other threads (CPython runs signal handlers on the main thread only: ``enable()``
must be called there). It shares sysmon with ``preempt.run()``: one or the other per process.

Where these run: ``enable``/``disable`` on the main thread; the trace callback at every greenlet
switch; the handler on the main thread, in whichever greenlet CPython runs it.
"""

from __future__ import annotations

import math
import signal
import sys
import time
import traceback
from types import FrameType
from typing import Any, Dict, List, Optional
from weakref import WeakKeyDictionary

from greenlet import getcurrent, gettrace, settrace

from ._errors import PreemptError, Unavailable

REPORT_KEEP = 100       # blocked-hub reports kept
# The yield: a 1 us timer, not sleep(0). gevent.sleep(0) only queues a callback, and with
# several computing greenlets the hub then runs callbacks without its loop reaching timers and
# I/O (a heartbeat ticked twice in 0.3 s); a timer makes the switch go through the loop.
YIELD = 1e-6
_atexit_done = False


class _State:
    def __init__(self, slice_: float, report_after: float) -> None:
        import gevent
        import gevent.hub
        import gevent.monkey

        from . import _corelib
        from ._runtime._csysmon import SLOT

        self.gevent = gevent
        self.Hub = gevent.hub.Hub
        self.slice = slice_
        self.report_after_ns = int(report_after * 1e9)
        ffi, self.lib = _corelib.core()
        self.sh = self.lib.pe_sysmon_shared()
        self.tick_view = memoryview(ffi.buffer(ffi.addressof(self.sh, "schedtick"), 8)).cast("Q")
        self.tick = 0
        self.consumed = 0
        self.slot = SLOT
        self.old_handler: Any = None
        self.old_trace: Any = None
        self.nswitch = 0        # preemptions taken
        self.ndeferred = 0
        self.reports: List[Dict[str, Any]] = []


_st: Optional[_State] = None
_nopreempt: "WeakKeyDictionary[Any, int]" = WeakKeyDictionary()   # greenlet -> no_preempt depth


def enable(slice: float = 0.010, *, report_after: float = 0.1) -> None:
    """Turns preemption on for the gevent greenlets of the main thread.

    Calling it again changes the slice. Requires gevent and preempt's C core.

    Args:
        slice: Seconds of Python code a greenlet may run before it is switched out; a finite
            number > 0.
        report_after: A preemption taken this many seconds or more late (C code holding the
            GIL, a blocking call) is reported with the greenlet's stack; a finite number > 0.

    Raises:
        TypeError, ValueError: ``slice`` or ``report_after`` is not a finite number > 0.
        PreemptError: not on the main thread, or ``preempt.run()`` is running.
        Unavailable: preempt's C core cannot be loaded here.
        ImportError: gevent is not installed.
    """
    global _st
    slice_ = _positive(slice, "slice")
    after = _positive(report_after, "report_after")
    import threading

    if threading.current_thread() is not threading.main_thread():
        raise PreemptError("preempt.gevent.enable() must be called on the main thread: CPython "
                           "runs signal handlers, and so preemption, only there")
    from ._runtime import _park

    if _park.sched is not None:
        raise PreemptError("preempt.gevent.enable() cannot be used while preempt.run() runs: "
                           "they share the monitor thread (one or the other per process)")
    if _st is not None:
        disable()
    try:
        st = _State(slice_, after)
    except ImportError:
        raise
    except Exception as e:
        raise Unavailable(f"preempt.gevent: preempt's C core is not available here ({e})") from e
    from . import threads

    m = threads.current()
    st.old_handler = signal.signal(st.slot, _on_slot)
    st.old_trace = settrace(_trace)
    rc = st.lib.pe_sysmon_start(st.slot, max(1, int(slice_ * 1e9)), m._slot, m._gen)
    if rc != st.lib.PE_OK:
        settrace(st.old_trace)
        signal.signal(st.slot, st.old_handler if st.old_handler is not None else signal.SIG_DFL)
        raise PreemptError(f"preempt.gevent: could not start the monitor (core error {rc}; "
                           "another preempt.run() or enable() in this process?)")
    st.sh.running = 0 if isinstance(getcurrent(), st.Hub) else 1
    _st = st
    from ._runtime import _preempt

    _preempt._green = sys.modules[__name__]
    global _atexit_done
    if not _atexit_done:               # sysmon must not trip SLOT while the interpreter ends
        import atexit

        atexit.register(disable)
        _atexit_done = True


def disable() -> None:
    """Turns it off again; the trace callback and signal handler are put back. Idempotent."""
    global _st
    st = _st
    if st is None:
        return
    _st = None
    from ._runtime import _preempt

    _preempt._green = None
    st.sh.running = 0
    st.lib.pe_sysmon_stop()
    if gettrace() is _trace:
        settrace(st.old_trace)
    # A trip sysmon made before it stopped may still be pending: let it run a no-op here, or
    # CPython would later raise "Signal N ignored due to race condition" in random code.
    signal.signal(st.slot, _drained)
    _drained(0, None)
    signal.signal(st.slot, st.old_handler if st.old_handler is not None else signal.SIG_DFL)


def _drained(signum: int, frame: Any) -> None:
    """The SLOT handler while :func:`disable` restores the old one: a pending trip is dropped."""


def enabled() -> bool:
    """Whether :func:`enable` is in effect."""
    return _st is not None


def stats() -> Dict[str, int]:
    """``{"preemptions": n, "deferred": n, "reports": n}`` since :func:`enable`."""
    st = _st
    if st is None:
        return {"preemptions": 0, "deferred": 0, "reports": 0}
    return {"preemptions": st.nswitch, "deferred": st.ndeferred, "reports": len(st.reports)}


def reports() -> List[Dict[str, Any]]:
    """The blocked-hub reports since :func:`enable` (rule 4), oldest first: dicts with
    ``greenlet`` (its repr), ``ms`` (how late the preemption was taken) and ``stack``."""
    return list(_st.reports) if _st is not None else []


def _positive(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"preempt.gevent.enable(): {name} must be a number of seconds, "
                        f"got {type(v).__name__}")
    if math.isnan(v) or math.isinf(v) or v <= 0:
        raise ValueError(f"preempt.gevent.enable(): {name} must be a finite number of seconds "
                         f"> 0, got {v!r}")
    return float(v)


def _trace(event: str, args: Any) -> None:
    """greenlet's trace callback: every switch restarts sysmon's slice clock (rule 1)."""
    st = _st
    if st is None:
        return
    if event == "switch" or event == "throw":
        st.tick += 1
        st.tick_view[0] = st.tick
        st.sh.running = 0 if isinstance(args[1], st.Hub) else 1
    if st.old_trace is not None:
        st.old_trace(event, args)


def nopreempt_enter() -> bool:
    """``no_preempt()`` outside a goroutine: counts the depth for this greenlet when enabled."""
    if _st is None:
        return False
    g = getcurrent()
    _nopreempt[g] = _nopreempt.get(g, 0) + 1
    return True


def nopreempt_exit() -> None:
    g = getcurrent()
    d = _nopreempt.get(g, 0) - 1
    if d > 0:
        _nopreempt[g] = d
    else:
        _nopreempt.pop(g, None)


def _may_switch(st: _State, g: Any, frame: Optional[FrameType]) -> bool:
    """Rule 2. Handler on the main thread."""
    from ._runtime import _preempt

    if isinstance(g, st.Hub) or g in _nopreempt or _preempt._import_lock_held():
        return False
    if frame is None:
        return False
    top = frame.f_globals.get("__name__") or ""
    if top == "gevent" or top.startswith("gevent."):
        return False
    if _preempt._HANDLER_ENTRY_BUG and _preempt.at_handler_entry(frame):
        return False
    locks_green = st.gevent.monkey.is_module_patched("threading")
    f: Optional[FrameType] = frame
    while f is not None:
        k = _preempt._classify(f)
        if k == _preempt._DENIED or k == _preempt._RUNTIME:
            name = f.f_globals.get("__name__") or ""
            if not (locks_green and (name.startswith("threading") or name.startswith("logging"))):
                return False
        f = f.f_back
    return True


def _on_slot(signum: int, frame: Optional[FrameType]) -> None:
    """The SLOT handler (rule 2): takes one request. Main thread, any greenlet."""
    st = _st
    if st is None:
        return
    sh = st.sh
    seq = sh.req_seq
    if seq == st.consumed:
        return
    if sh.req_tick != st.tick_view[0]:          # made before the last switch: answered by it
        st.consumed = seq
        sh.ack_seq = seq
        return
    g = getcurrent()
    if not _may_switch(st, g, frame):
        st.ndeferred += 1                       # not acked: sysmon sends it again
        return
    late = time.monotonic_ns() - sh.req_ns
    st.consumed = seq
    sh.ack_seq = seq
    if late >= st.report_after_ns:
        _report(st, g, frame, late)
    st.nswitch += 1
    try:
        st.gevent.sleep(YIELD)
    except BaseException as e:                  # gevent.kill, gevent.Timeout: rule 3
        from ._runtime._preempt import raise_later

        g = None
        if raise_later(frame, e):
            return
        raise


def _report(st: _State, g: Any, frame: Optional[FrameType], late_ns: int) -> None:
    stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
    r = {"greenlet": repr(g), "ms": round(late_ns / 1e6, 1), "stack": stack}
    st.reports.append(r)
    del st.reports[:-REPORT_KEEP]
    try:
        sys.stderr.write(f"preempt.gevent: {r['greenlet']} kept the hub from running for "
                         f"{r['ms']} ms (C code holding the GIL, or a blocking call); it was "
                         f"here:\n{stack}")
    except Exception:
        pass
