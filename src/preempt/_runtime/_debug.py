"""Looking inside the runtime: ``preempt.stats()`` and ``preempt.dump()``.

Both are safe to call from any goroutine, and outside ``run()`` (they then describe an idle
runtime). ``dump()`` is Go's goroutine dump (SIGQUIT): every G with its id, name, state, why it
waits, and its stack, read from the suspended greenlet's ``gr_frame``.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any, Dict

from . import _park
from ._rules import WAITING


def _percentiles(samples: Any) -> Dict[str, float]:
    xs = sorted(samples)
    if not xs:
        return {"p50_us": 0.0, "p99_us": 0.0, "max_us": 0.0}
    pick = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1e6  # noqa: E731
    return {"p50_us": pick(0.50), "p99_us": pick(0.99), "max_us": xs[-1] * 1e6}


def stats() -> Dict[str, Any]:
    """Counters of the running runtime.

    Returns:
        A dict: ``running`` (bool), ``goroutines`` (live), ``runnable``, ``spawned``,
        ``switches`` (G-to-G and hub-to-G), ``timers`` (active), ``io_pending``, and one dict per
        preemption path — ``sync``, ``async``, ``timer`` — with ``count``, ``deferred`` and
        latency percentiles in µs (``p50_us``, ``p99_us``, ``max_us``) where the monitor
        measures them (the Python fallback monitor measures none: zeros).
    """
    s = _park.sched
    empty = {"count": 0, "deferred": 0, **_percentiles(())}
    if s is None:
        return {"running": False, "goroutines": 0, "runnable": 0, "spawned": 0, "switches": 0,
                "timers": 0, "io_pending": 0, "sync": dict(empty), "async": dict(empty),
                "timer": dict(empty), "monitor": None}
    out: Dict[str, Any] = {
        "running": True,
        "goroutines": len(s.gs),
        "runnable": len(s.runq) + (s.runnext is not None),
        "spawned": s.spawned,
        "switches": s.tick,
        "timers": s.ntimers,
        "io_pending": s.npoll,
        "sync": {"count": s.npreempt, "deferred": s.ndeferred, **_percentiles(s.latencies)},
        "async": dict(empty),
        "timer": dict(empty),
        "monitor": type(s.monitor).__name__,
    }
    mon = s.monitor                 # the interface of _sysmon.py
    lat = mon.latencies_us          # the C monitor's: request -> hook, µs
    if lat:
        out["sync"].update(_percentiles([x / 1e6 for x in lat]))
    counters = mon.counters()
    if counters is not None:
        out["monitor_counters"] = counters
    for k, v in mon.stats().items():  # the C monitor adds its own paths and latencies
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    return out


def dump() -> str:
    """Every goroutine: id, name, state, what it waits on, and its stack (innermost last)."""
    s = _park.sched
    if s is None:
        return "preempt: the runtime is not running (no preempt.run() in progress)\n"
    parts = []
    for g in sorted(s.gs.values(), key=lambda g: g.id):
        head = f"goroutine {g.id} {g.name!r} [{g.state}"
        if g.state is WAITING:
            head += ": " + g.describe_wait()
        head += "]:"
        parts.append(head)
        if g is s.cur:
            frame: Any = sys._getframe(1)
        elif g.glet is not None:
            frame = g.glet.gr_frame
        else:
            parts.append(f"  (not started: {g.fn!r})")
            parts.append("")
            continue
        stack = traceback.format_stack(frame) if frame is not None else ["  (no frames)\n"]
        parts.append("".join(stack).rstrip("\n"))
        parts.append("")
    return "\n".join(parts) + "\n"
