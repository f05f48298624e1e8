"""Worker greenlets: the body every goroutine runs in, a goroutine's end, and the frame stacks
the workers start on.

Every G runs inside a *worker* greenlet whose parent is the hub: :func:`worker_main` calls the
G's function, records its result or exception (:func:`g_done`), and then, instead of dying,
offers itself to the next new G (the free list in ``_park.exit_g``). Its code object is the
bottom of every G's stack (``_preempt.register_bottom_code``).

On CPython 3.11+ a worker's Python frames start on a 1.5 KiB frame stack (``csrc/pe_gstack.c``)
instead of CPython's 16 KiB chunk, when the installed greenlet is a version the frame stacks
were tested with. That is decided once, when this module is imported: :data:`worker_run` is
what a new worker greenlet runs, and :data:`GSTACK_OFF` says why the frame stacks are off (a
RuntimeWarning says it too), or is None.

:func:`g_done` has a C twin (``csrc/hot/goroutine.c``), installed by ``_cpath.py``.

Where these run: on the M, in worker greenlets (and :func:`g_done` is runtime code there).
"""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING, Any, Callable, Optional

from greenlet import GreenletExit

from .._errors import Cancelled
from . import _park, _preempt

if TYPE_CHECKING:
    from ._g import Goroutine
    from ._sched import Scheduler


def worker_main() -> None:
    """The body of every worker greenlet: run G after G (reuse) until the free list is full.

    One function, not a loop calling a helper: every frame here is part of each parked G's
    stack (on 3.10 a heap frame and a C frame; on 3.11+ frame-stack bytes and saved C stack).
    The G comes from ``s.cur``, which whoever switched here set, not from an argument: the
    greenlet keeps its start arguments while it lives, and a dead G must not stay alive
    (``_g.py``: its unretrieved exception is reported when it is freed).
    """
    s = _park.sched
    g = s.cur
    while g is not None:
        try:
            exc = g.wake_exc
            if exc is not None:
                g.wake_exc = None
                raise exc
            fn, args, kwargs = g.fn, g.args, g.kwargs
            g.fn = g.args = g.kwargs = None      # a parked G keeps only what its frames hold
            if kwargs:
                g.result = fn(*args, **kwargs)
            elif not args:
                g.result = fn()                  # CALL, not CALL_FUNCTION_EX: on 3.11+ a Python
            elif len(args) == 1:                 # callee runs in this C frame, so a parked G's
                g.result = fn(args[0])           # saved C stack is one interpreter frame
            elif len(args) == 2:                 # (~450 bytes) smaller, and every switch
                g.result = fn(args[0], args[1])  # copies that much less
            elif len(args) == 3:
                g.result = fn(args[0], args[1], args[2])
            else:
                g.result = fn(*args)
            fn = args = kwargs = None
            exc = g.pending_exc                  # an interrupt came after its last checkpoint
            if exc is not None:
                g.pending_exc = None
                raise exc
        except GreenletExit:
            pass
        except BaseException as e:
            g.exc = e
        fn = args = kwargs = exc = None
        g_done(s, g)
        glet, is_main = g.glet, g is s.main
        g.glet = None
        g = None                                 # freed (and reported) while this worker waits
        g = _park.exit_g(s, glet, is_main)
        glet = None


def g_done(s: Scheduler, g: Goroutine) -> None:
    """Bookkeeping for a G whose function returned or raised. Its worker greenlet, runtime code.

    A G that raised gets a reporter (``_g.py`` invariant 6): its exception is printed when the G
    is freed without a ``join()`` having retrieved it, not merely because nobody was joining it
    at the moment it died. Gs that returned cost nothing more, and so do cancelled ones (a
    cancellation is asked for, not a failure: asyncio does not report cancelled tasks either).
    """
    del s.gs[g.id]
    g._finish()
    if g.exc is not None and g is not s.main and not isinstance(g.exc, Cancelled):
        arm_reporter(g)


def arm_reporter(g: Goroutine) -> None:
    """Gives a G that died of an exception its reporter (``_g.py`` invariant 6)."""
    from ._g import ExcReporter

    g.reporter = ExcReporter(g, _report_unjoined)


# The small frame stacks rely on how greenlet saves, restores and frees a greenlet's frame
# chunks (csrc/pe_gstack.c). Tested with greenlet 3.x; outside that range they are off.
GREENLET_TESTED = ((3, 0), (4, 0))      # [low, high)


def _gstack_off_reason() -> Optional[str]:
    """None when the frame stacks may be used with the installed greenlet, else why not.
    Also None where CPython has no frame data stack (3.10): there is nothing to turn off."""
    if sys.version_info < (3, 11):
        return None
    import greenlet as _greenlet

    v = getattr(_greenlet, "__version__", "0")
    try:
        key = tuple(int(x) for x in v.split(".")[:2])
    except ValueError:
        key = (0, 0)
    lo, hi = GREENLET_TESTED
    if not lo <= key < hi:
        return (f"greenlet {v} is outside the range preempt's small frame stacks were tested with "
                f"({lo[0]}.{lo[1]} to below {hi[0]}.{hi[1]}): they are off, and goroutines use "
                "CPython's own 16 KiB frame chunks (more memory per goroutine, same behaviour); "
                "install a tested greenlet to turn them back on")
    return None


worker_run: Callable = worker_main     # pure-Python install: CPython's own 16 KiB chunks
GSTACK_OWNER: Any = None               # the frame stacks' capsule for csrc/pe_hot.c, if on
GSTACK_OFF = _gstack_off_reason()
if GSTACK_OFF is not None:
    import warnings

    warnings.warn(GSTACK_OFF, RuntimeWarning, stacklevel=2)
else:
    try:   # small frame stacks: a worker greenlet's first call sets one up
        from .. import _gstack
    except ImportError:
        _gstack = None
    if _gstack is not None and _gstack.stats()["enabled"]:   # not on 3.10, not when set to 0:
        worker_run = _gstack.runner(worker_main)             # a wrapper would only add C frames
        GSTACK_OWNER = _gstack._owner_api   # the C hand-off path's "which greenlet runs?"

_preempt.register_bottom_code(worker_main.__code__)   # the G's own frames start above it


def _report_unjoined(g: Any, _tbe: Any = traceback.TracebackException, _sys: Any = sys) -> None:
    """Prints the exception of a dead G that no join() retrieved; ``g`` is the G's ExcReporter
    (id, name, exc). It runs when the G is freed: possibly inside a garbage collection anywhere,
    even inside ``compile()``, and at interpreter exit after this module's globals are gone.
    Hence the names bound as defaults, and no caret lines: computing them parses source with
    ``ast``, which must not run inside the compiler (it fails with "AST constructor recursion
    depth mismatch")."""
    try:
        exc = g.exc
        try:
            te = _tbe(type(exc), exc, exc.__traceback__)
            todo, seen = [te], set()
            while todo:                    # this one, its causes, contexts and group members
                t = todo.pop()
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                for fs in t.stack:
                    if getattr(fs, "colno", None) is not None:
                        fs.colno = None    # 3.11+: no caret line, no ast
                todo += [t.__cause__, t.__context__, *(getattr(t, "exceptions", None) or ())]
            msg = "".join(te.format())
        except Exception as e:             # a broken __str__, say: still say that it raised
            msg = f"{type(exc).__name__} (its traceback could not be formatted: {e!r})\n"
        _sys.stderr.write(f"preempt: goroutine {g.id} {g.name!r} raised and nobody was joining "
                          f"it: its exception was never retrieved with join():\n{msg}")
        _sys.stderr.flush()
    except Exception:
        pass
