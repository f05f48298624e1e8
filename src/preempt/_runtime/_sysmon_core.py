"""The one lifecycle of the C monitor (``csrc/pe_sysmon.c``), shared by ``preempt.run()`` and
the bridges (``preempt.gevent``, ``preempt.aio``).

sysmon is one C thread per process. Whoever drives it — the runtime's scheduler
(``_csysmon.CoreMonitor``) or a bridge (``_bridge.SlotMonitor``) — does the same things, and
they are done here once:

1. start: take over SLOT's Python-level handler, then start the thread for the calling thread
   (registered with ``preempt.threads``); if the thread cannot start, the handler is put back
   and :class:`PreemptError` says why. sysmon numbers requests from 1 after every start.
2. publish: the switch count (``tick_view``, a memoryview on ``schedtick``: one store, on the
   hot path), whether preemptible code runs (``running``; :meth:`MonitorCore.set_running` when
   it turns on, which wakes a sysmon asleep because nothing ran), the earliest timer deadline
   (:meth:`MonitorCore.set_next_deadline`: sysmon preempts the moment it is due) and the epoll
   fd whose readiness means "the loop has I/O to serve" (the runtime's poller, or a bridge's
   event loop: :meth:`MonitorCore.watch_epoll`).
3. stop: ``running`` off, the thread joined, the handler put back. Idempotent.
4. fork child: sysmon does not survive ``fork()``; :meth:`MonitorCore.restart` starts a new
   one for the same thread without touching the handler, and the caller publishes again.

Where these run: on the thread sysmon watches (the M, or the bridge's main thread), GIL held.
"""

from __future__ import annotations

import signal
from typing import Any, Callable, Optional

from .. import _corelib
from .._errors import PreemptError
from . import _signals
from ._rules import IO_SLICE_NS

SLOT = signal.SIGRTMAX
NO_DEADLINE = 2**63 - 1


class MonitorCore:
    """sysmon's start/stop, SLOT's handler and the shared words, for one user of sysmon."""

    def __init__(self, what: str) -> None:
        self.what = what
        try:
            ffi, self.lib = _corelib.core()
        except Exception as e:
            from .._errors import Unavailable

            raise Unavailable(f"{what}: preempt's C core is not available here ({e})") from e
        self.sh = self.lib.pe_sysmon_shared()
        self.tick_view = memoryview(ffi.buffer(ffi.addressof(self.sh, "schedtick"), 8)).cast("Q")
        self.active = False
        self.m: Any = None                 # the watched thread's registry handle
        self.slice = 0.0
        self._old_handler: Any = None
        self._published = NO_DEADLINE
        self.errno_p: Any = [0]            # the thread's errno cell (_errno.py), kept by kick()

    def start(self, on_slot: Callable[[int, Any], None], slice_seconds: float) -> None:
        """Rule 1. Raises PreemptError when sysmon cannot start (someone else holds it)."""
        from .. import threads
        from ._errno import cell

        self.errno_p = cell() or [0]
        self._old_handler = _signals.take_over(SLOT, on_slot)
        self.m = threads.current()
        self.slice = slice_seconds
        rc = self._start_thread()
        if rc != self.lib.PE_OK:
            _signals.give_back(SLOT, self._old_handler)
            raise PreemptError(f"{self.what}: could not start the monitor (core error {rc}; is "
                               "preempt.run(), preempt.gevent or preempt.aio already using it?)")
        self.active = True

    def _start_thread(self) -> int:
        self._published = NO_DEADLINE
        return self.lib.pe_sysmon_start(SLOT, max(1, int(self.slice * 1e9)), IO_SLICE_NS,
                                        self.m._slot, self.m._gen)

    def restart(self) -> int:
        """Rule 4: a new sysmon in the fork child, same thread and handler. The core's code."""
        return self._start_thread()

    def stop(self) -> None:
        """Rule 3."""
        if not self.active:
            return
        self.active = False
        self.sh.running = 0
        self.lib.pe_sysmon_stop()
        _signals.give_back(SLOT, self._old_handler)

    def stop_in_child(self) -> None:
        """Rule 4, when the watched thread did not survive the fork: the handler is put back,
        nothing else (there is no thread to stop). Fork child, GIL held."""
        if self.active:
            self.active = False
            self.sh.running = 0
            _signals.give_back(SLOT, self._old_handler)

    def set_running(self) -> None:
        """Rule 2: preemptible code runs from now on; an idle sysmon is woken (no system call
        otherwise), keeping the thread's errno."""
        p = self.errno_p
        e = p[0]
        self.lib.pe_sysmon_set_running(1)
        p[0] = e

    def kick(self) -> None:
        """Wakes sysmon, keeping the thread's errno (cffi restores its own saved copy around
        every call: ``_errno.py``)."""
        p = self.errno_p
        e = p[0]
        self.lib.pe_sysmon_kick()
        p[0] = e

    def set_next_deadline(self, t: Optional[float]) -> None:
        """Publishes the earliest timer deadline (``time.monotonic()`` seconds; None: none)
        and wakes sysmon when it moved earlier.

        What it stores is clamped to the word's range, [0, 2**63-1] ns, as a second line behind
        the validation of every timeout (``_timeouts.py``): NaN, inf or a deadline past the
        range means "no deadline", a negative one 0 (due now). An unclamped value used to
        overflow the int64 store on every round of the hub and freeze the runtime.
        """
        if t is None or not t < 9223372036.0:    # None, NaN, inf, past 2**63 ns
            ns = NO_DEADLINE
        elif t > 0.0:
            ns = int(t * 1e9)
        else:
            ns = 0
        if ns == self._published:
            return
        self.sh.next_deadline_ns = ns
        if ns < self._published:
            self.kick()
        self._published = ns

    def watch_epoll(self, fd: int) -> None:
        """Rule 2: sysmon preempts, after an I/O slice, when this epoll fd has an event ready
        (-1: none). For a bridge's event loop; the runtime uses ``pe_sysmon_watch_work``."""
        self.lib.pe_sysmon_watch_epoll(fd)
