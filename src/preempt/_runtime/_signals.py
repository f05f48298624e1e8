"""Python signal handlers under the runtime: the program's (routed to main) and the runtime's own.

This module is the only place that installs Python-level signal handlers. The runtime's own —
the monitors' preemption slots, below under "the runtime's own handlers" — go through
:func:`take_over` and :func:`give_back`; the program's are routed as follows.

CPython runs a Python-level signal handler at the next bytecode safe-point of the main thread.
Inside ``run()`` that is whichever goroutine happens to be running — or the hub, or runtime code
half-way through a switch. An exception the handler raises (KeyboardInterrupt from the default
SIGINT handler, SystemExit from a SIGTERM handler that calls ``sys.exit``) would unwind that
random goroutine and leave the program running without it. Here every such exception is moved
to main, the goroutine that owns the program, as Go delivers a signal to the program and not
to whichever goroutine was on the CPU.

Rules:

1. While ``run()`` runs, every Python-level handler is *routed*: those installed when it
   starts, and those installed later through ``signal.signal``, which ``run()`` wraps for its
   duration (``signal.getsignal`` still returns exactly what the program installed). Python's
   default SIGINT handler is routed the same way. preempt's own signals are not, nor SIGURG
   (its C handler is the core's, which chains the program's).
2. A handler runs where CPython runs it; only its exception moves. Raised while main itself
   runs its own code, it propagates there at once, as it would without preempt. Raised
   anywhere else (another goroutine, the hub, runtime code in main): it is queued for main, the
   hub is woken (its eventfd, and sysmon's ``want_hub`` word so a goroutine computing in native
   code is preempted too), and the running goroutine yields at once if it may
   (``_preempt.may_yield``: not in runtime code, an import, a deny-listed module or
   ``no_preempt()``; else as soon as it may).
3. The hub hands queued exceptions to main one at a time through ``Scheduler.interrupt``: a
   wait of main's is interrupted, and a wait that had already completed finishes first (no value
   is lost; the README's rule). If main has finished — ``run()`` is shutting down — the
   exception ends the shutdown at once and ``run()`` raises it.
4. When ``run()`` ends, the original handlers are put back, unwrapped.

Code that bound ``signal.signal`` to a name before ``run()`` started (``from signal import
signal``) installs unrouted handlers; their exceptions land where CPython runs them.

(An alternative would be to recognise a handler's exception in a goroutine's traceback when
that goroutine dies and re-raise it in main. Rejected: by then the innocent goroutine has been
unwound and its work is lost.)

Where these run: ``install``/``uninstall`` on the M in ``run()``; the routed handlers wherever
CPython runs Python-level handlers (the M thread, any greenlet); ``take_over``/``give_back`` on
the main thread, where a monitor starts and stops.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any, Callable, Optional

from greenlet import getcurrent

from . import _park, _preempt

_orig_signal = signal.signal
_orig_getsignal = signal.getsignal


class Routed:
    """A Python-level signal handler whose exceptions are delivered to main (rules 2-3)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[int, Optional[FrameType]], Any]) -> None:
        self.fn = fn

    def __call__(self, signum: int, frame: Optional[FrameType]) -> Any:
        try:
            return self.fn(signum, frame)
        except BaseException as e:
            s = _park.sched
            if s is None or not s.routing or _raise_here(s, frame):
                if _preempt.raise_later(frame, e):     # CPython 3.11/3.12 back-edge bug
                    return None
                raise
            try:
                route_to_main(s, e, frame)
            except BaseException as e2:   # main's own exception, raised where it was switched out
                if _preempt.raise_later(frame, e2):
                    return None
                raise
            return None

    def __repr__(self) -> str:
        return f"<preempt routed handler {self.fn!r}>"


def _raise_here(s: Any, frame: Optional[FrameType]) -> bool:
    """Rule 2: main is running its own code, so the exception may propagate where it is."""
    m = s.main
    return (m is not None and s.cur is m and getcurrent() is m.glet
            and not _preempt.in_runtime(frame))


def route_to_main(s: Any, exc: BaseException, frame: Optional[FrameType]) -> None:
    """Queues ``exc`` for main and gets the hub to deliver it soon (rules 2-3). M thread."""
    s.signal_excs.append(exc)
    s.hub_wanted = True
    s.monitor.want_hub()
    s.poller.wakeup()
    g = s.cur
    if g is not None and getcurrent() is g.glet:
        if _preempt.may_yield(g, frame):
            _park.yield_preempted(s, g)
        else:
            g.preempt_pending = True     # leaving no_preempt() yields; sysmon re-asks otherwise


def _routed_signal(signalnum: Any, handler: Any) -> Any:
    """``signal.signal`` while run() runs: installs ``handler`` routed (rule 1)."""
    if callable(handler) and not isinstance(handler, Routed) and _park.sched is not None \
            and signalnum not in _unrouted:
        handler = Routed(handler)
    old = _orig_signal(signalnum, handler)
    return old.fn if isinstance(old, Routed) else old


def _routed_getsignal(signalnum: Any) -> Any:
    """``signal.getsignal`` while run() runs: what the program installed, unwrapped."""
    h = _orig_getsignal(signalnum)
    return h.fn if isinstance(h, Routed) else h


_routed_signal.__doc__ = (signal.signal.__doc__ or "") + "\n\n(preempt: routed to main while run() runs.)"
_routed_getsignal.__doc__ = signal.getsignal.__doc__
# Never routed: the C monitor's preemption slot (SIGRTMAX) and the fallback's timer signal
# (SIGRTMAX - 1), whose handlers are the preemption hook; and SIGURG, whose C-level handler is
# the core's (it chains the program's): re-installing a Python handler for it would replace the
# core's with CPython's and end asynchronous preemption.
_unrouted = frozenset({signal.SIGRTMAX, signal.SIGRTMAX - 1, signal.SIGURG})


# -- the runtime's own handlers -----------------------------------------------------------
#
# The C monitor's slot (_csysmon.SLOT), the fallback monitor's timer signal (_sysmon) and a
# bridge's slot (preempt._bridge) run the preemption hook. They are installed with the
# interpreter's own signal.signal (never routed, whether run() runs or not) and put back the one
# way below.


def take_over(signum: int, handler: Callable[[int, Optional[FrameType]], Any]) -> Any:
    """Installs one of the runtime's own handlers on ``signum``; returns the handler it
    replaced, for :func:`give_back`. Main thread."""
    return _orig_signal(signum, handler)


def give_back(signum: int, old: Any) -> None:
    """Puts back the handler that :func:`take_over` replaced (SIG_DFL for None: it was not
    installed from Python). A trip the monitor made just before it stopped may still be pending:
    a no-op handler takes it first (the call below is a bytecode boundary, where CPython runs
    it), or CPython would later print "Signal N ignored due to race condition" from random
    code. Main thread."""
    _orig_signal(signum, _drained)
    _drained(0, None)
    _orig_signal(signum, old if old is not None else signal.SIG_DFL)


def is_ours(signum: int, handler: Any) -> bool:
    """Whether ``handler`` is still the one installed for ``signum`` (nobody replaced it)."""
    return _orig_getsignal(signum) == handler


def _drained(signum: int, frame: Optional[FrameType]) -> None:
    """The handler while :func:`give_back` puts the old one back: a pending trip is dropped."""


def install(s: Any) -> None:
    """Routes every installed Python handler and wraps ``signal.signal`` (rule 1). M thread."""
    if not s.is_main_thread:
        return                   # CPython runs handlers on the main thread only: nothing lands here
    for sig in signal.valid_signals():
        if sig in _unrouted:
            continue
        try:
            h = _orig_getsignal(sig)
        except (ValueError, OSError):
            continue
        if callable(h) and not isinstance(h, Routed):
            r = Routed(h)
            try:
                _orig_signal(sig, r)
            except (ValueError, OSError, RuntimeError):
                continue
    signal.signal = _routed_signal
    signal.getsignal = _routed_getsignal


def uninstall(s: Any) -> None:
    """Puts the handlers back unwrapped and restores ``signal.signal`` (rule 4). M thread."""
    if not s.is_main_thread:
        return
    signal.signal = _orig_signal
    signal.getsignal = _orig_getsignal
    for sig in signal.valid_signals():
        try:
            h = _orig_getsignal(sig)
        except (ValueError, OSError):
            continue
        if isinstance(h, Routed):
            try:
                _orig_signal(sig, h.fn)
            except (ValueError, OSError, RuntimeError):
                pass
