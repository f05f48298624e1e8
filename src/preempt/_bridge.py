"""sysmon outside ``preempt.run()``: what ``preempt.gevent`` and ``preempt.aio`` share.

Both drive the C monitor (``csrc/pe_sysmon.c``) for greenlets the runtime does not schedule:
the bridge stores its switch count in sysmon's ``schedtick`` word at every switch it knows of
and says whether preemptible code runs (``running``); sysmon trips preempt's SLOT when that
code has run a whole slice, and CPython runs :meth:`SlotMonitor._on_slot` at its next
eval-breaker check, which hands a fresh request to the bridge's hook. The rules are the ones
of the runtime's hook (``_runtime/_preempt.py``): a request made before the last switch was
answered by it; a request the hook does not take (``ack``) is sent again by sysmon.

There is one sysmon per process: a bridge cannot start while ``preempt.run()`` or the other
bridge holds it, and says so.

``os.fork()`` (issue 24; gevent promises both, its ``test__monkey_fork_atomic``):

1. No switch between the at-fork handlers: from the first ``before`` handler to the last
   ``after_in_parent``/``after_in_child`` one, :func:`held` is true for every greenlet, so a
   request is deferred (sysmon sends it again) until the fork is over. Without it another
   greenlet ran inside the handlers and forked in turn: forks nested 12-15 times in 20. The
   window is opened by handlers registered when the first bridge starts (``before`` handlers
   run last-registered first, ``after`` ones first-registered first), so it encloses every
   handler registered before that — the standard library's, gevent's, the program's imports'.
2. The bridge goes on in the child: sysmon is a thread and does not survive the fork, so the
   runtime's at-fork child handler (``_runtime/_fork.py``, the same one that restarts it for
   ``preempt.run()``) calls :meth:`SlotMonitor.after_fork_child`, which starts a new sysmon for
   the same thread (pe_thread.c keeps the forking thread's registry slot) and publishes the
   switch count and running flag again. A fork from a thread other than the one that started
   the bridge leaves a child without that thread: the bridge is dropped there (its handler put
   back). Without this a pre-fork gevent server's workers (gunicorn's gevent worker) were never
   preempted: 0-1 heartbeat ticks where the parent had 15-48.

Where these run: ``start``/``stop`` on the main thread; ``switched`` wherever the bridge
switches; the handler on the main thread, in whichever greenlet CPython runs it.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from types import FrameType
from typing import Any, Callable, Dict, List, Optional
from weakref import WeakKeyDictionary

from greenlet import getcurrent

from ._errors import PreemptError
from ._runtime import _signals
from ._runtime._sysmon_core import MonitorCore

REPORT_KEEP = 100       # late-request reports kept
_nopreempt: "WeakKeyDictionary[Any, int]" = WeakKeyDictionary()   # greenlet -> no_preempt depth
_active = 0             # bridges whose monitor runs
_monitors: "List[SlotMonitor]" = []   # the running ones, for the fork child (fork rule 2)
_fork_hold = 0          # inside os.fork()'s at-fork handlers (fork rule 1)
_fork_registered = False


def nopreempt_enter() -> bool:
    """``no_preempt()`` outside a goroutine: counts its depth for this greenlet while a bridge
    runs (``_runtime/_preempt.py`` calls it). Any greenlet on the main thread."""
    if not _active:
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


def held(g: Any) -> bool:
    """Whether greenlet ``g`` is inside ``with preempt.no_preempt():``, or a fork is under way
    (fork rule 1)."""
    return _fork_hold > 0 or g in _nopreempt


def _fork_before() -> None:
    """Parent, forking thread, GIL held: the first before-fork handler to run (fork rule 1)."""
    global _fork_hold
    _fork_hold += 1


def _fork_after() -> None:
    """Parent or child, forking thread: the last after-fork handler to run (fork rule 1)."""
    global _fork_hold
    if _fork_hold > 0:
        _fork_hold -= 1


def _hold_across_fork() -> None:
    """Registers fork rule 1's handlers, once per process, as late as possible: when the first
    bridge starts. Main thread."""
    global _fork_registered
    if not _fork_registered:
        import os

        os.register_at_fork(before=_fork_before, after_in_parent=_fork_after,
                            after_in_child=_fork_after)
        _fork_registered = True


def after_fork_child() -> None:
    """Fork rule 2, for every running bridge. Child, on the forking thread, GIL held (called by
    ``_runtime/_fork.py`` when ``preempt.run()`` is not running)."""
    for mon in list(_monitors):
        mon.after_fork_child()


class SlotMonitor:
    """sysmon plus the SLOT handler, for one bridge. ``hook(seq, frame)`` gets each fresh
    request and calls :meth:`ack` when it switches the running code out."""

    def __init__(self, what: str, slice_: float, hook: Callable[[int, Optional[FrameType]], None],
                 report_after: float) -> None:
        self.what = what
        self.slice = slice_
        self.hook = hook
        self.report_after_ns = int(report_after * 1e9)
        self.core = MonitorCore(what)        # the one lifecycle (_runtime/_sysmon_core.py)
        self.lib = self.core.lib
        self.sh = self.core.sh
        self.tick_view = self.core.tick_view
        self.tick = 0
        self.consumed = 0
        self.active = False
        self.running = False                 # what switched() last published
        self.ident = 0                       # the thread that started it
        self.reports: List[Dict[str, Any]] = []
        self.epfd = -1                       # what watch_epoll() last published
        self.deadline: Optional[float] = None   # what set_next_deadline() last published
        self.by_reason = [0, 0, 0, 0]        # preemptions taken per REASON_* (1 slice, 2 timer, 3 I/O)

    @property
    def errno_p(self) -> Any:
        """The main thread's errno (``_runtime/_errno.py``): the bridge's switches keep it."""
        return self.core.errno_p

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise PreemptError(f"{self.what} must be used on the main thread: CPython runs "
                               "signal handlers, and so preemption, only there")
        from ._runtime import _park

        if _park.sched is not None:
            raise PreemptError(f"{self.what} cannot be used while preempt.run() runs: they "
                               "share the monitor thread (one or the other per process)")
        self.core.start(self._on_slot, self.slice)
        _signals.route_wakeup()              # SLOT's bytes never reach the program's wakeup fd
        self.consumed = 0                    # a started sysmon numbers requests from 1
        self.active = True
        self.ident = threading.get_ident()
        global _active
        _active += 1
        _monitors.append(self)
        _hold_across_fork()
        from ._runtime import _preempt

        _preempt._green = sys.modules[__name__]

    def stop(self) -> None:
        if not self.active:
            return
        self._forget()
        self.core.stop()
        _signals.unroute_wakeup()

    def _forget(self) -> None:
        self.active = False
        global _active
        _active -= 1
        if self in _monitors:
            _monitors.remove(self)
        if not _active:
            from ._runtime import _preempt

            _preempt._green = None

    def after_fork_child(self) -> None:
        """Fork rule 2: a new sysmon for the same thread, or the bridge dropped if that thread
        is not the forking one. Child, on its only thread, GIL held; sysmon does not exist
        (``pe_sysmon_atfork_child`` forgot it)."""
        if not self.active:
            return
        if threading.get_ident() != self.ident:
            self._forget()
            self.core.stop_in_child()
            _signals.unroute_wakeup()
            return
        rc = self.core.restart()
        if rc != self.lib.PE_OK:
            self._forget()
            self.core.stop_in_child()
            _signals.unroute_wakeup()
            raise PreemptError(f"{self.what}: could not restart the monitor in the fork child "
                               f"(core error {rc}); the child's greenlets are not preempted: "
                               "please report it")
        self.consumed = 0                    # the new sysmon numbers requests from 1 again
        self.tick_view[0] = self.tick        # its shared words were reset: publish them again
        self.sh.running = 1 if self.running else 0
        self.core.set_next_deadline(self.deadline)
        self.core.watch_epoll(self.epfd)     # the loop's epoll fd is the parent's copy here

    def watch_epoll(self, fd: int) -> None:
        """sysmon preempts the running code when this epoll fd (the bridge's event loop) has
        an event ready, after an I/O slice (``_sysmon_core.py`` rule 2); -1: none."""
        if fd != self.epfd:
            self.epfd = fd
            self.core.watch_epoll(fd)

    def set_next_deadline(self, t: Optional[float]) -> None:
        """sysmon preempts the running code the moment ``t`` (``time.monotonic()`` seconds,
        the bridge's loop's earliest timer; None: none) has come."""
        self.deadline = t
        self.core.set_next_deadline(t)

    def switched(self, running: bool, kick: bool = False) -> None:
        """A switch happened: sysmon's slice clock restarts; ``running``: preemptible code runs
        now (else sysmon leaves the thread alone). ``kick``: wake sysmon so that it sees the
        switch now and the slice is one slice long, not one to two (a futex wake: for bridges
        that switch every slice, not every few microseconds)."""
        self.tick += 1
        self.tick_view[0] = self.tick
        if running != self.running:
            self.running = running
            if running:
                self.core.set_running()      # wakes an idle sysmon (pe_sysmon_set_running)
            else:
                self.sh.running = 0
        if kick:
            self.core.kick()

    def ack(self, seq: int, g: Any, frame: Optional[FrameType]) -> None:
        """The hook takes request ``seq``; a late one is reported with ``frame``'s stack."""
        late = time.monotonic_ns() - self.sh.req_ns
        reason = self.sh.req_reason
        if 0 < reason < len(self.by_reason):
            self.by_reason[reason] += 1
        self.consumed = seq
        self.sh.ack_seq = seq
        if late >= self.report_after_ns:
            self._report(g, frame, late)

    def decline(self, seq: int) -> None:
        """The hook answers request ``seq`` without switching (nothing to switch to): sysmon
        asks again a slice later, not every 100 us as for a request left unanswered."""
        self.consumed = seq
        self.sh.ack_seq = seq

    def _on_slot(self, signum: int, frame: Optional[FrameType]) -> None:
        sh = self.sh
        seq = sh.req_seq
        if seq == self.consumed or not self.active:
            return
        if sh.req_tick != self.tick_view[0]:     # made before the last switch: answered by it
            self.consumed = seq
            sh.ack_seq = seq
            return
        p = self.errno_p         # the greenlet's errno, kept from before the hook's code (a
        saved = p[0]             # late ack's report reads source files): _errno.py rule 1
        try:
            self.hook(seq, frame)
        finally:
            p[0] = saved

    def _report(self, g: Any, frame: Optional[FrameType], late_ns: int) -> None:
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        r = {"greenlet": repr(g), "ms": round(late_ns / 1e6, 1), "stack": stack}
        self.reports.append(r)
        del self.reports[:-REPORT_KEEP]
        try:
            sys.stderr.write(f"{self.what}: {r['greenlet']} kept the loop from running for "
                             f"{r['ms']} ms (C code holding the GIL, or a blocking call); it "
                             f"was here:\n{stack}")
        except Exception:
            pass

