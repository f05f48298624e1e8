"""The C monitor (csrc/pe_sysmon.c) behind the scheduler's monitor interface (see _sysmon.py).

sysmon is a C thread that never takes the GIL. This side only writes plain words it reads
(``pe_sysmon_shared_t``), and installs the Python-level handler of SLOT that CPython runs at the
M's next eval-breaker check after sysmon trips it:

* ``tick_view`` is a memoryview on ``schedtick``: the scheduler stores its switch count there
  at every switch (sysmon's slice clock restarts). It is on the hot path of every hand-off, so
  it is one store, not a call (a cffi attribute store costs twice that). A request made before the switch is answered by the switch
  itself: ``req_seq`` sees that ``req_tick`` is not the current tick and drops it as stale;
* ``on_idle``/``on_wake`` bracket the hub's blocking poll: sysmon neither requests nor signals an
  idle M;
* ``set_next_deadline`` publishes the earliest timer and wakes sysmon when it moved earlier;
* the SLOT handler runs ``_preempt._preempt_hook``, which reads ``req_seq`` and acknowledges
  with ``ack`` (sysmon stops re-poking), recording request -> hook latency for ``stats()``;
  a request answered only after ``stuck_us`` (5 slices, at least 50 ms: C code holding the GIL,
  say) is recorded with the goroutine and where it was (``stats()["stuck"]``, invariant 7).

SLOT is ``SIGRTMAX``: CPython runs pending handlers in signal-number order, so ours comes last
and never delays another Python handler; the OS never raises it on its own. If user code
replaces the handler, the hook stops running: ``check()`` reports it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Any, Deque, List, Optional

from .. import _corelib
from . import _asynchook, _preempt, _signals
from ._sysmon import NullMonitor
from ._sysmon_core import SLOT, MonitorCore

_LAT_KEEP = 4096
_STUCK_KEEP = 20


class CoreMonitor(NullMonitor):
    """sysmon in C: slice and timer preemption for run() on the main thread."""

    def __init__(self, sched: Any) -> None:
        self.sched = sched
        self.core = MonitorCore("preempt.run()")    # the one lifecycle (_sysmon_core.py)
        self._lib = self.core.lib
        self.sh = self.core.sh
        self.latencies_us: Deque[float] = deque(maxlen=_LAT_KEEP)   # request -> hook (µs)
        self.stuck: List[dict] = []           # requests answered after stuck_us (invariant 7)
        self.stuck_us = 50_000.0
        self._tick = self.core.tick_view
        self.tick_view = self._tick  # the scheduler stores its switch count here (_park.py)

    @property
    def active(self) -> bool:
        return self.core.active

    def start(self, slice_seconds: float) -> None:
        self.stuck_us = max(50_000.0, 5 * slice_seconds * 1e6)
        self.core.start(self._on_slot, slice_seconds)
        self.m_slot, self.m_gen = self.core.m._slot, self.core.m._gen   # for _asynchook.py
        self.sh.running = 1
        self.watch_work()
        if _corelib.unavailable_reason() is None:
            _asynchook.install()

    def stop(self) -> None:
        if not self.active:
            return
        self.core.stop()
        _asynchook.uninstall()

    def after_fork_child(self, m_survived: bool) -> None:
        """fork() child: sysmon does not exist here (``pe_sysmon_atfork_child`` forgot it).

        ``m_survived``: the M forked and the runtime goes on (``_fork.py`` rule 1): start a new
        sysmon for the same M (``_sysmon_core.py`` rule 4). Its registry slot and generation
        survive the fork (pe_thread.c keeps the forking thread's slot and gives it its new tid);
        the poller's new epoll fd is published again. The restarted sysmon numbers requests from
        1 again (its shared words are reset), so the scheduler's ``consumed_seq`` is reset with
        it, and the earliest timer is published anew. Else (rule 4) the M does not exist here:
        put back the SLOT handler and the async hook, touch nothing of the parent's.
        Child after fork, on the forking thread, GIL held, before any goroutine runs; the
        poller has already been renewed.
        """
        if not self.active:
            return
        if not m_survived:
            self.core.stop_in_child()
            _asynchook.uninstall()
            return
        rc = self.core.restart()
        if rc != self._lib.PE_OK:
            raise RuntimeError(f"preempt: could not restart sysmon in the fork child (core "
                               f"error {rc})")
        self.sh.running = 1
        self.watch_work()
        self.sched.consumed_seq = 0
        t = self.sched.timers
        self.set_next_deadline(t[0][0] if t else None)

    def watch_work(self) -> None:
        """Tells sysmon where the run queue, runnext, the poller's epoll and the count of
        I/O-woken Gs are, so a slice ends without a request when nothing else could run and a
        G is preempted after an I/O slice when I/O has work (pe_sysmon.c). M thread, in run()."""
        s = self.sched
        ffi, lib = _corelib.core()
        descr = type(s).__dict__.get("runnext")
        try:
            epfd = s.poller.fileno()
        except Exception:
            epfd = -1
        # the bytearray under the memoryview: an exported memoryview cannot be cleared by
        # the garbage collector (a BufferError, then a crash, when a scheduler cycle is freed)
        self._iofront = ffi.from_buffer("uint64_t[]", s.iofront.obj)   # keeps the word alive
        rc = lib.pe_sysmon_watch_work(ffi.cast("void *", id(s.runq)), ffi.cast("void *", id(s)),
                                      ffi.cast("void *", id(descr)), ffi.cast("void *", id(None)),
                                      epfd, self._iofront)
        if rc != lib.PE_OK:   # not a slot: sysmon keeps making a request at every slice
            lib.pe_sysmon_watch_work(ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL, -1, ffi.NULL)

    def want_hub(self) -> None:
        self.sh.want_hub = 1
        self.core.kick()

    def hub_done(self) -> None:
        self.sh.want_hub = 0

    def on_idle(self) -> None:
        self.sh.running = 0

    def on_wake(self) -> None:
        self.core.set_running()

    def set_next_deadline(self, t: Optional[float]) -> None:
        """Publishes the earliest timer deadline (``_sysmon_core.MonitorCore``). M."""
        self.core.set_next_deadline(t)

    def req_seq(self) -> int:
        sh = self.sh
        seq = sh.req_seq
        if sh.req_tick != self._tick[0] and seq > self.sched.consumed_seq:
            # made before the running G was switched in: the switch answered it
            lat = (time.monotonic_ns() - sh.req_ns) / 1000
            self.sched.consumed_seq = seq
            sh.ack_seq = seq
            if lat >= self.stuck_us:       # an upper bound: the switch came at some point before
                self.stuck.append({"goroutine": None, "id": None, "ms": round(lat / 1000, 3),
                                   "where": "(it switched away before the hook could run)"})
                del self.stuck[:-_STUCK_KEEP]
        return seq

    def req_reason(self) -> int:
        return self.sh.req_reason

    def ack(self, seq: int) -> None:
        sh = self.sh
        # req_ns first: once ack_seq is stored, sysmon may make the next request at any moment
        lat = (time.monotonic_ns() - sh.req_ns) / 1000
        sh.ack_seq = seq
        self.latencies_us.append(lat)
        if lat >= self.stuck_us:
            self._record_stuck(lat)

    def _record_stuck(self, lat_us: float) -> None:
        """Invariant 7: a goroutine that stayed out of reach past the threshold is reported."""
        g = self.sched.cur
        f = sys._getframe(2)
        while f is not None:
            name = f.f_globals.get("__name__") or ""
            if not name.startswith("preempt") or name.startswith("preempt.bench"):
                break
            f = f.f_back
        where = f"{f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}" if f else "?"
        self.stuck.append({"goroutine": getattr(g, "name", None), "id": getattr(g, "id", None),
                           "ms": round(lat_us / 1000, 3), "where": where})
        del self.stuck[:-_STUCK_KEEP]

    def counters(self) -> dict:
        sh = self.sh
        return {"requests": sh.n_requests, "timer_requests": sh.n_timer_requests,
                "repokes": sh.n_repokes, "signals": sh.n_signals, "alone": sh.n_alone,
                "signal_kicks": sh.n_signal_kicks, "io_requests": sh.n_io_requests,
                "max_pending_us": sh.max_pending_ns / 1000,
                "poke": bool(self._lib.pe_sysmon_poke_mode())}

    def stats(self) -> dict:
        """Per-path counts and latencies for preempt.stats() (µs)."""
        from ._debug import _percentiles

        sh = self.sh
        return {"async": {"count": _asynchook.count, **_percentiles([x / 1e6 for x in _asynchook.latencies_us])},
                "timer": {"count": sh.n_timer_requests},
                "stuck": list(self.stuck)}

    def check(self) -> Optional[str]:
        """None while the SLOT handler is ours, else what went wrong."""
        if self.active and not _signals.is_ours(SLOT, self._on_slot):
            return (f"the handler of signal {SLOT} (preempt's preemption slot) was replaced: "
                    "Python-code preemption is off until it is restored")
        return None

    def _on_slot(self, signum: int, frame: Any) -> None:
        _preempt._preempt_hook(signum, frame)


def usable() -> bool:
    """True when the C monitor can drive this thread's scheduler."""
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        _corelib.core()
    except Exception:
        return False
    return True
