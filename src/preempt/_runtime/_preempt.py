"""Synchronous preemption: the hook that moves a G whose slice is over to the back of the queue.

The monitor (``_sysmon.py``) decides *when*: the running G has had the CPU for a whole slice, or
a timer is due. It numbers the request (``req_seq``) and gets the M to a Python safe-point, where
CPython runs a Python-level signal handler that calls :func:`_preempt_hook`. The hook decides
*whether*: it either yields the G through ``_park.yield_preempted`` (the G goes to the tail of the
run queue, as runnable) or DEFERS the request. Only a Python-level handler may switch greenlets;
the C side never does (docs/design.md §2: the scheduler is not signal-safe).

The hook defers (Go's "not at a safe point"; docs/design.md §2.2, §3 invariant 2) when:

1. The request is stale: its ``req_seq`` is not newer than ``consumed_seq``. A request is
   consumed (``consumed_seq = req_seq``, then ``monitor.ack(seq)``) when it yields or can never
   yield (rules 2-3), so it can never yield twice. A *deferred* request (rules 4-7) is left
   unconsumed on purpose: the monitor's re-send of the same request re-checks it.
2. The hook runs outside a G: in the hub, before or after ``run()``, or in a foreign greenlet.
3. The G was started with ``preemptible=False``.
4. The G is inside ``with preempt.no_preempt():`` (a counter on the G).
5. An import holds the global import lock (``_imp.lock_held()``).
6. A frame of the interrupted stack, walked outward to the G's bottom frame, belongs to a
   deny-listed module: ``preempt`` itself (the runtime is never preempted mid-update),
   ``importlib._bootstrap*`` (module code being imported runs under these frames; the module
   locks are per thread, so a second G would see a half-initialised module), ``logging`` and
   ``threading`` (their RLocks are per thread, so a second G would get in), ``queue`` and
   ``concurrent.futures`` (:data:`LOCK_MODULES`). The last two hold a real ``threading.Lock``
   in *their own* frames: ``Queue.put`` runs ``with self.not_full:`` and then ``self._put()``
   in module ``queue``, so denying ``threading`` alone let a G be preempted with the queue's
   mutex held; the next G's ``put`` then blocked the M on that mutex and the process hung
   (issue 24: a ``requests.Session`` shared by 50 Gs, urllib3's pool is a ``LifoQueue``).
   Nothing switches a G out of a blocked ``Lock.acquire``: the SIGURG escalation does not
   reach it (the handler is ``SA_RESTART``, so the kernel restarts the futex wait and CPython
   never runs the hook; strace shows ``ERESTARTSYS``), and the G waits inside a deny-listed
   ``threading`` frame anyway (``Condition.__enter__``). The walk goes outward, so a subclass's ``_put`` in user
   code is covered by the ``queue`` frame that called it. Extend the list with
   :func:`deny_preemption_in`. The bottom frame itself (the worker loop, ``_worker.worker_main``)
   is runtime code too when it is the interrupted frame *at a bytecode* (the synchronous
   path): its loop's back-edge runs between one G's end and the next G's start, outside the
   ``try`` that catches a G's exception, so an interrupt raised there (a ``Cancelled`` kept for
   the new G) would kill the worker and escape ``run()``. The soak benchmark found this. An
   asynchronous preemption (``native=True``, ``_asynchook.py``) interrupts a registered native
   call *made from* the frame instead: when the G's function is the library's function itself
   (``preempt.go(lib.fn, ...)``), that call is the worker loop's call of the G's function,
   inside the ``try``, and nothing is raised into the frame at the interrupted point (rule 8);
   the bottom frame does not defer it.
7. CPython 3.10 only: the interrupted frame is at the first instruction of an exception handler
   (:func:`at_handler_entry`). 3.10 checks the eval breaker after unwinding to a handler,
   before its first instruction; the handler's block is already popped there, so an exception
   raised at that point skips the handler: a ``with`` block's ``__exit__`` is never called (a
   Mutex stays locked, a timeout scope is never closed) and a ``finally`` clause never runs.
   3.11+ jump to a handler without that check. The cancellation model test and the soak found
   it (a cancellation landing while a Cancelled unwound to ``with mutex:``). Not for an
   asynchronous preemption: the frame is mid-call there, not at a handler's entry, and nothing
   is raised into it (rule 8).
8. (Not a deferral: what the asynchronous path does instead of raising.) An interrupt that
   reaches a G switched out inside a native call cannot be raised there: native frames cannot
   be unwound. ``_asynchook.py`` keeps it in ``g.pending_exc`` (or arms KeyboardInterrupt and
   GreenletExit with ``PyThreadState_SetAsyncExc``, which fire at the eval-breaker check of the
   CALL that made the native call, when it returns). Either way it lands in the frame that
   made the call: a G's own frame, or, for ``preempt.go(lib.fn)``, the worker loop's call of
   the G's function, inside its ``try``, which raises a kept ``pending_exc`` right after the
   call returns. So neither rule 6's bottom-frame clause nor rule 7 applies to that path.

How a deferred request is honoured:

- case 4: the G records ``preempt_pending``; leaving the outermost ``no_preempt`` block yields.
- cases 5, 6 and 7: ``preempt_pending`` is recorded too, and the request stays unconsumed (not
  acked), so the monitor re-sends it while the G keeps the CPU (the C monitor re-trips it every
  100 µs, ``PE_REPOKE_NS``; the fallback makes a new request at its next tick, one slice
  later). Choice: a re-check on the next trigger rather than a profile/trace hook on frame exit,
  which would slow every call of the deny-listed code.
  A G that parks or yields meanwhile clears the pending flag for free (its slice ends anyway).

The C monitor drives exactly this (``_csysmon.py``): ``_preempt_hook`` is the Python handler of
SLOT (it has the ``(signum, frame)`` signature), ``req_seq()`` is on the monitor object, and
sysmon trips SLOT.
"""

from __future__ import annotations

import dis
import sys
from types import CodeType, FrameType
from typing import Any, Dict, FrozenSet, List, Optional

from greenlet import getcurrent

from . import _park

from ._rules import REASON_SLICE, REASON_TIMER

# The interpreter's own settrace/gettrace: _trace.py wraps the sys ones while run() runs.
_orig_settrace = sys.settrace
_orig_gettrace = sys.gettrace

try:
    from _imp import lock_held as _import_lock_held
except ImportError:  # pragma: no cover - every CPython has it
    def _import_lock_held() -> bool:
        return False

_NEUTRAL, _RUNTIME, _DENIED, _BOTTOM, _TRANSPARENT = 0, 1, 2, 3, 4

# Patterns: "name" matches the module and its submodules; "name*" matches any name starting so.
# The stdlib modules whose frames hold a real thread lock between their own bytecodes (rule 6).
# The gevent bridge lets greenlets be switched there when gevent made those locks its own.
LOCK_MODULES = ("logging", "threading", "queue", "concurrent.futures")
_deny: List[str] = ["preempt", "importlib._bootstrap*", "_frozen_importlib*", *LOCK_MODULES]
_kind: Dict[CodeType, int] = {}
# Modules inside the preempt package that run user-style workloads, not runtime code.
_USER_CODE_IN_PREEMPT = ("preempt.bench",)


def register_bottom_code(code: CodeType) -> None:
    """Marks the worker loop's code: the frame walk stops there (below it is not the G's code)."""
    _kind[code] = _BOTTOM


def register_transparent_code(code: CodeType) -> None:
    """Marks a runtime function that calls user code (``Once.do``): not itself a deny frame."""
    _kind[code] = _TRANSPARENT


def deny_preemption_in(module: str) -> None:
    """Never preempt a goroutine while a frame of ``module`` (or its submodules) is on its stack.

    Use it for libraries that hold a ``threading`` lock, an ``RLock`` or thread-local state
    across calls into code that may be preempted: all goroutines share one OS thread, so such
    locks do not keep a second goroutine out. A trailing ``*`` matches any module name with that
    prefix.

    Args:
        module: A module name such as ``"sqlalchemy.pool"``.

    Example::

        preempt.deny_preemption_in("mylib")
    """
    if module not in _deny:
        _deny.append(module)
    for code, k in list(_kind.items()):
        if k in (_NEUTRAL, _DENIED):
            del _kind[code]


def _classify(frame: FrameType) -> int:
    code = frame.f_code
    k = _kind.get(code)
    if k is not None:
        return k
    name = frame.f_globals.get("__name__") or ""
    k = _NEUTRAL
    if name.startswith(_USER_CODE_IN_PREEMPT):
        _kind[code] = k                 # the benchmarks' workloads are user code
        return k
    for p in _deny:
        if p.endswith("*"):
            hit = name.startswith(p[:-1])
        else:
            hit = name == p or name.startswith(p + ".")
        if hit:
            k = _RUNTIME if p == "preempt" else _DENIED
            break
    _kind[code] = k
    return k


def in_denied(frame: Optional[FrameType], native: bool = False,
              allow: FrozenSet[str] = frozenset(),
              atomic: Optional[Dict[str, FrozenSet[str]]] = None) -> bool:
    """Whether a frame from ``frame`` outward to the G's bottom is deny-listed (rule 6), or
    ``frame`` is the bottom frame itself (the worker loop: runtime code, rule 6) interrupted at
    a bytecode. ``native``: the interrupted point is inside a native call made from ``frame``
    (the asynchronous path), where the bottom-frame clause does not apply. ``allow``: top-level
    modules whose deny-listed frames do not count (a bridge whose locks keep other greenlets
    out: gevent's patched ``threading``); ``atomic``: functions, by module, inside which
    nothing may be switched (a bridge's own critical sections). Any thread: reads frames only."""
    f = frame
    if not native and f is not None and _classify(f) == _BOTTOM:
        return True
    while f is not None:
        k = _classify(f)
        if k == _BOTTOM:
            return False
        if k == _RUNTIME or k == _DENIED:
            if not (allow and (f.f_globals.get("__name__") or "").split(".")[0] in allow):
                return True
        if atomic:
            names = atomic.get(f.f_globals.get("__name__"))
            if names is not None and f.f_code.co_name in names:
                return True
        f = f.f_back
    return False


def is_runtime_frame(frame: FrameType) -> bool:
    """Whether this one frame is the runtime's own code (for ``_trace.py``): preempt's modules,
    the worker loop and the runtime functions that call user code."""
    k = _classify(frame)
    return k == _RUNTIME or k == _BOTTOM or k == _TRANSPARENT


def in_runtime(frame: Optional[FrameType]) -> bool:
    """Whether a frame from ``frame`` outward belongs to preempt itself (not a user callback)."""
    f = frame
    while f is not None:
        k = _classify(f)
        if k == _BOTTOM:
            return False
        if k == _RUNTIME:
            return True
        f = f.f_back
    return False


_HANDLER_ENTRY_BUG = sys.version_info[:2] == (3, 10)


def at_handler_entry(frame: Optional[FrameType]) -> bool:
    """Whether ``frame`` has just unwound to an exception handler and not run its first
    instruction yet (rule 7). Python-level handler on the M.

    At that point the exception being unwound is the one handled (``sys.exc_info()``) and the
    head of its traceback is ``frame`` at the instruction that raised, which is still the
    frame's last instruction. Once the handler runs an instruction, ``f_lasti`` moves into
    the handler's code. (A false positive only defers a preemption to the monitor's re-send.)
    """
    if frame is None:
        return False
    e = sys.exc_info()[1]
    if e is None:
        return False
    tb = e.__traceback__
    return tb is not None and tb.tb_frame is frame and tb.tb_lasti == frame.f_lasti


def may_switch(frame: Optional[FrameType], *, native: bool = False, held: bool = False,
               allow: FrozenSet[str] = frozenset(),
               atomic: Optional[Dict[str, FrozenSet[str]]] = None) -> bool:
    """Whether the running code may be switched out with ``frame`` interrupted (rules 4-7).

    The one "may we switch here?" predicate: the runtime's hooks (through :func:`may_yield`),
    the routed signal handlers (``_signals.py``), and both bridges (``preempt.gevent``,
    ``preempt.aio``) ask it. ``held``: the caller's own no-preempt state says no (a G's
    ``no_preempt`` counter, a bridge's ``held()``: rule 4). ``native``: the code is stopped
    inside a native call made from ``frame`` (the async hook), not at a bytecode of ``frame``;
    rule 6's bottom-frame clause and rule 7 are about bytecodes and do not apply (rule 8).
    ``allow``/``atomic``: a bridge's amendments to rule 6 (see :func:`in_denied`). Main
    thread, Python-level handler or runtime code.
    """
    return (not held and not _import_lock_held()
            and not in_denied(frame, native, allow, atomic)
            and not (_HANDLER_ENTRY_BUG and not native and at_handler_entry(frame)))


def may_yield(g: Any, frame: Optional[FrameType], native: bool = False) -> bool:
    """:func:`may_switch` for the running G ``g`` (rules 3-7). The caller has checked rule 2
    (``g`` is the running G and this is its greenlet)."""
    return g.preemptible and may_switch(frame, native=native, held=bool(g.nopreempt))


def _preempt_hook(signum: int = 0, frame: Optional[FrameType] = None, *,
                  native: bool = False) -> None:
    """Takes one preemption request. Python-level signal handler on the M thread only (or the
    async hook, in the trampoline's call, on the M thread with the GIL).

    Args:
        signum: The signal (unused: the request number comes from the monitor).
        frame: The interrupted frame, as CPython passes it to handlers; None means the caller's.
        native: The G is stopped inside a native call made from ``frame`` (``_asynchook.py``),
            not at one of its bytecodes (rule 8).
    """
    s = _park.sched
    if s is None:
        return
    p = _park._errno_p         # the G's errno, kept from here, before any runtime code:
    saved = p[0]               # round() zeroes errno (ack's records; _errno.py rule 1)
    try:
        mon = s.monitor
        seq = mon.req_seq()
        if seq <= s.consumed_seq:                       # rule 1
            if s.hub_wanted:                            # no request, but a signal left hub work
                _yield_for_hub(s, frame, native)
            return
        g = s.cur
        if g is None or g.glet is not getcurrent() or not g.preemptible:   # rules 2, 3
            s.consumed_seq = seq
            mon.ack(seq)
            return
        if frame is None:
            frame = sys._getframe(1)
        if not may_yield(g, frame, native):             # rules 4-7
            g.preempt_pending = True                    # not consumed: a re-send re-checks
            s.ndeferred += 1
            return
        # netpoll invariant 6: an I/O-woken G cut short by a timer or I/O request keeps its
        # place ahead of the preempted Gs (read before the ack: after it, sysmon may make the
        # next request). That uses up its turn, unless a timer cut it short that it did not
        # have the whole of: the I/O slice timer fires at whatever runs, and only the first
        # G switched in after the poll that armed it had the slice.
        turns = g.io_turn
        reason = mon.req_reason()
        front = turns > 0 and reason != REASON_SLICE
        if not front:
            g.io_turn = 0
        elif reason != REASON_TIMER or s.mtick[0] == s.poller.io_tick + 1:
            g.io_turn = turns - 1
        s.consumed_seq = seq
        mon.ack(seq)
        g.preempt_pending = False
        try:
            _park.yield_preempted(s, g, front)
        except BaseException as e:       # an interrupt for the G (Cancelled, GreenletExit, ...)
            g = None                     # the traceback keeps this frame: no exc -> G cycle
            if not native and raise_later(frame, e):
                return
            raise                        # native: the async hook keeps it (rule 8)
    finally:
        p[0] = saved


def _yield_for_hub(s: Any, frame: Optional[FrameType], native: bool = False) -> None:
    """Switches the running G out so the hub can deliver what a signal handler queued for it
    (``_signals.py``); no request is consumed. Python-level handler on the M only (or the async
    hook, ``native``: rule 8)."""
    g = s.cur
    if g is None or g.glet is not getcurrent():
        return
    if frame is None:
        frame = sys._getframe(2)
    if may_yield(g, frame, native):
        try:
            _park.yield_preempted(s, g)
        except BaseException as e:
            g = None                 # the traceback keeps this frame: no exc -> G cycle
            if not native and raise_later(frame, e):
                return
            raise
    else:
        g.preempt_pending = True                    # honoured when no_preempt() is left


# CPython 3.11+: an exception raised by a signal handler at a loop's back-edge can skip the
# try block around the loop, because the back-edge is looked up in the exception table at an
# instruction the block's range does not cover:
# - 3.11 and 3.12 (gh-108214): JUMP_BACKWARD checks the eval breaker after it has jumped, and
#   the lookup is at the instruction *before* the loop's head. When that one is outside the try
#   block -- `try: while True: ...`, the shape of every cancellable computation -- the
#   exception skips the block's except and finally clauses.
# - 3.13 checks before the jump, but a `while cond:` loop that ends its try block (`try: i = 0;
#   while i < n: i += 1; finally: ...`) is compiled with its condition repeated at the bottom
#   and the JUMP_BACKWARD after it left out of the block's range (see `dis`: "L1 to L3", L3
#   being the jump). Every signal at that back-edge skips the finally.
# Seen here with a plain SIGALRM handler, no preempt involved: 3.11.7 and 3.12.1 with the
# first shape, 3.13.0 with the second (every time); 3.10 and 3.14.10 are right with both. So on
# 3.11-3.13 the runtime raises at the jump's target instead, one instruction later, inside the
# loop. (Under preempt it showed as preempt.gevent's test_timeout_reaches_a_computing_greenlet_
# and_its_finally losing its Timeout 2-6 runs in 40 on 3.13.0, and preempt.timeout's finally
# skipped 5 in 40.)
_BACKEDGE_BUG = (3, 11) <= sys.version_info[:2] <= (3, 13)
_BACKEDGE_OPS = frozenset(dis.opmap[n] for n in ("JUMP_BACKWARD", "INSTRUMENTED_JUMP_BACKWARD")
                          if n in dis.opmap)


def raise_later(frame: Optional[FrameType], exc: BaseException) -> bool:
    """Works around gh-108214 and its 3.13 twin (above): when the preemption hook must raise
    ``exc`` into ``frame`` at a back-edge on 3.11-3.13, raises it from a one-shot opcode trace
    of that frame instead, at its next instruction, where the exception table is looked up
    right. Returns True when it did
    (the caller returns normally), False when the caller must raise now: another CPython, not
    at a back-edge, or a trace function is set (a debugger: an exception from a trace function
    would turn its tracing off; the bug is left to bite instead). Python-level handler."""
    if not _BACKEDGE_BUG or frame is None:
        return False
    lasti = frame.f_lasti
    code = frame.f_code.co_code
    if not 0 <= lasti < len(code) or code[lasti] not in _BACKEDGE_OPS:
        return False
    if _orig_gettrace() is not None:
        return False

    box = [exc]                  # the closure holds the list, emptied before the raise: an

    def trace_once(f: FrameType, event: str, arg: Any) -> Any:   # exc -> traceback -> this
        f.f_trace = None                                         # frame -> cell -> exc cycle
        f.f_trace_opcodes = False                                # would need the collector
        _orig_settrace(None)
        e = box.pop()
        try:
            raise e
        finally:
            e = None

    frame.f_trace = trace_once
    frame.f_trace_opcodes = True
    _orig_settrace(_no_trace)
    return True


def _no_trace(frame: FrameType, event: str, arg: Any) -> None:
    """The global trace function while :func:`raise_later` waits: no other frame is traced."""
    return None


_green: Any = None      # preempt._bridge while a bridge runs: no_preempt() counts greenlets
_GREEN = object()       # no_preempt._g of a block counted by preempt._bridge


class no_preempt:
    """Context manager: the running goroutine is not preempted inside the block.

    Blocking operations still switch (a ``recv()`` inside the block parks as usual); only the
    time-slice preemption is held back, and taken when the outermost block exits. Outside a
    goroutine it does nothing, except under ``preempt.gevent.enable()`` and in a function
    ``preempt.aio.run()`` runs, where it holds back the preemption of the running greenlet
    the same way.

    Example::

        with preempt.no_preempt():
            shared.append(x)
            shared.sort()        # no other goroutine sees the list half-updated
    """

    __slots__ = ("_g",)

    def __enter__(self) -> "no_preempt":
        s = _park.sched
        g = s.cur if s is not None else None
        if g is not None and g.glet is not getcurrent():
            g = None
        if g is None:
            gm = _green
            self._g = _GREEN if gm is not None and gm.nopreempt_enter() else None
            return self
        self._g = g
        g.nopreempt += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        g = self._g
        if g is None:
            return
        if g is _GREEN:
            gm = _green
            if gm is not None:
                gm.nopreempt_exit()
            return
        g.nopreempt -= 1
        if g.nopreempt == 0 and g.preempt_pending and exc[0] is None:
            g.preempt_pending = False
            s = _park.sched
            if s is not None and s.cur is g:
                _park.yield_preempted(s, g)
