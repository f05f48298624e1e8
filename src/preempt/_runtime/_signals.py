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
   is lost; docs/guide.md's rule). If main has finished — ``run()`` is shutting down — the
   exception ends the shutdown at once and ``run()`` raises it.
4. When ``run()`` ends, the original handlers are put back, unwrapped.
5. preempt's own signals never reach the program's wakeup fd (``signal.set_wakeup_fd``).
   CPython writes a byte there for every signal it trips, sysmon's ``PyErr_SetInterruptEx(SLOT)``
   included: a byte per preemption (50/s under ``run()``, 275/s under ``preempt.gevent``). While
   a monitor runs (``run()``, a bridge) and the program has a wakeup fd, CPython's wakeup fd is
   the C relay's pipe (``csrc/pe_wakeup.c``), which copies every other signal's byte to the
   program's fd, in order. ``signal.set_wakeup_fd`` is wrapped meanwhile: the program sets and
   gets its own fd, with the stdlib's checks and errors. When the monitor stops, the program's
   fd is put back (for an fd set before the monitor started, with ``warn_on_full_buffer``
   True: CPython offers no way to read the flag). Without the C core nothing is relayed.

Code that bound ``signal.signal`` to a name before ``run()`` started (``from signal import
signal``) installs unrouted handlers; their exceptions land where CPython runs them.

(An alternative would be to recognise a handler's exception in a goroutine's traceback when
that goroutine dies and re-raise it in main. Rejected: by then the innocent goroutine has been
unwound and its work is lost.)

Where these run: ``install``/``uninstall`` on the M in ``run()``; the routed handlers wherever
CPython runs Python-level handlers (the M thread, any greenlet); ``take_over``/``give_back``
and ``route_wakeup``/``unroute_wakeup`` on the main thread, where a monitor starts and stops.
"""

from __future__ import annotations

import os
import signal
import threading
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
                if _preempt.raise_later(frame, e):     # CPython 3.11-3.13 back-edge bugs
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


# -- the program's wakeup fd (rule 5) ---------------------------------------------------------

_orig_set_wakeup_fd = signal.set_wakeup_fd
_wake_routes = 0         # monitors relaying now (run() and the bridges: one at a time)
_wake_fd = -1            # the program's wakeup fd while relayed, or -1
_wake_warn = True        # its warn_on_full_buffer
_FLUSH_NS = 200_000_000  # how long unrouting waits for the relay to copy what it was given


def _relay() -> Any:
    """The C core's lib, for the relay; None without the core (nothing is relayed then)."""
    try:
        from .. import _corelib

        return _corelib.core()[1]
    except Exception:
        return None


def _relay_to(lib: Any, fd: int) -> None:
    """CPython's wakeup fd becomes the relay's pipe, copying to the program's ``fd``. Main."""
    w = lib.pe_wakeup_relay_start()
    if w < 0:
        raise OSError(-w, f"preempt: could not start the wakeup-fd relay ({os.strerror(-w)}); "
                      "signal.set_wakeup_fd() needs a free fd and a thread")
    lib.pe_wakeup_relay_flush(_FLUSH_NS)     # bytes for an earlier fd go there first
    lib.pe_wakeup_relay_target(fd)
    _orig_set_wakeup_fd(w, warn_on_full_buffer=False)
    lib.pe_wakeup_relay_close_stale()


def _accepts_wakeup_fd(fd: Any) -> bool:
    """Whether the stdlib's set_wakeup_fd would take ``fd``, by its own checks (the main thread,
    an int, -1 or an open non-blocking fd), asked without setting it. Main thread."""
    if threading.current_thread() is not threading.main_thread() or not isinstance(fd, int):
        return False
    if fd == -1:
        return True
    try:
        os.fstat(fd)
        return not os.get_blocking(fd)
    except (OSError, ValueError, OverflowError):
        return False


def _routed_set_wakeup_fd(fd: int, /, *, warn_on_full_buffer: bool = True) -> int:
    """``signal.set_wakeup_fd`` while a monitor runs: the program's fd gets its signals' bytes
    through the relay (rule 5). Returns the program's previous fd, as the stdlib's does."""
    global _wake_fd, _wake_warn
    if not _accepts_wakeup_fd(fd):
        # the stdlib's own error. Not called with a good fd: CPython would write it at once,
        # and a trip of sysmon's before the relay took over would put a byte in it
        _orig_set_wakeup_fd(fd, warn_on_full_buffer=warn_on_full_buffer)
    old = _wake_fd
    lib = _relay()
    if lib is None:
        _orig_set_wakeup_fd(fd, warn_on_full_buffer=warn_on_full_buffer)
    elif fd == -1:
        _orig_set_wakeup_fd(-1)
        lib.pe_wakeup_relay_flush(_FLUSH_NS)
        lib.pe_wakeup_relay_target(-1)
    else:
        _relay_to(lib, fd)
    _wake_fd, _wake_warn = fd, bool(warn_on_full_buffer)
    return old


_routed_set_wakeup_fd.__doc__ = ((signal.set_wakeup_fd.__doc__ or "")
                                 + "\n\n(preempt: relayed without preempt's own signals while a "
                                 "monitor runs.)")


def route_wakeup() -> None:
    """Rule 5, when a monitor starts: the program's wakeup fd, set now or later, gets no byte of
    preempt's signals. Main thread (elsewhere there is no wakeup fd to keep)."""
    global _wake_routes, _wake_fd, _wake_warn
    if threading.current_thread() is not threading.main_thread():
        return
    lib = _relay()
    if lib is None:
        return
    _wake_routes += 1
    if _wake_routes > 1:
        return
    for sig in _unrouted:
        if sig != signal.SIGURG:             # a SIGURG byte is the program's (pe_signal.c)
            lib.pe_wakeup_relay_skip(int(sig), 1)
    # to learn it, as CPython has no getter; sysmon does not run yet, so until the relay takes
    # over below no trip of preempt's writes to it
    prev = _orig_set_wakeup_fd(-1)
    _orig_set_wakeup_fd(prev)
    if prev != -1:
        try:
            _relay_to(lib, prev)
        except OSError:          # no fd or thread for the relay: run as before, bytes and all
            _wake_routes -= 1
            return
    _wake_fd, _wake_warn = prev, True
    signal.set_wakeup_fd = _routed_set_wakeup_fd


def unroute_wakeup() -> None:
    """Rule 5, when the monitor has stopped: the program's fd is CPython's again, after the relay
    copied what it had been given. Main thread."""
    global _wake_routes, _wake_fd
    if _wake_routes == 0 or threading.current_thread() is not threading.main_thread():
        return
    _wake_routes -= 1
    if _wake_routes:
        return
    if signal.set_wakeup_fd is _routed_set_wakeup_fd:
        signal.set_wakeup_fd = _orig_set_wakeup_fd
    lib = _relay()
    if _wake_fd != -1 and lib is not None:
        _orig_set_wakeup_fd(_wake_fd, warn_on_full_buffer=_wake_warn)
        lib.pe_wakeup_relay_flush(_FLUSH_NS)
        lib.pe_wakeup_relay_target(-1)
    _wake_fd = -1


def wakeup_after_fork_child() -> None:
    """fork() child: the relay's thread is gone and its pipe is the parent's; while relaying, a
    new pipe and thread take over (pe_wakeup.c, rule 4). Child, main thread."""
    lib = _relay()
    if lib is not None and _wake_routes and _wake_fd != -1:
        _relay_to(lib, _wake_fd)


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
    route_wakeup()


def uninstall(s: Any) -> None:
    """Puts the handlers back unwrapped and restores ``signal.signal`` (rule 4). M thread."""
    if not s.is_main_thread:
        return
    unroute_wakeup()
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
