"""Overhead of preemption itself (DESIGN.md §7, benchmark 5), and memory per goroutine.

overhead: the same CPU-bound pure-Python work, one goroutine, with preemption off
(``slice=0``: no monitor) and on (10 ms slices: sysmon requests a switch every slice, the hook
runs, the goroutine is the only one runnable and continues). Each case runs in alternation,
``runs`` times; the ratio of medians is the price of being preemptible.

memory: RSS growth per goroutine with 100,000 goroutines parked on a channel (psutil).
"""

from __future__ import annotations

import gc
import statistics
import time
from typing import Any, Dict, List


def _hog(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def _timed(n: int, slice_s: float) -> float:
    import preempt

    def main() -> float:
        t0 = time.perf_counter()
        preempt.go(_hog, n).join()
        return time.perf_counter() - t0

    return preempt.run(main, slice=slice_s)


def measure_overhead(n: int = 20_000_000, runs: int = 5) -> Dict[str, Any]:
    _timed(n // 10, 0.0)  # warm-up
    off: List[float] = []
    on: List[float] = []
    for _ in range(runs):
        off.append(_timed(n, 0.0))
        on.append(_timed(n, 0.010))
    return {"off_s": off, "on_s": on, "ratio": statistics.median(on) / statistics.median(off)}


def measure_memory(count: int = 100_000) -> Dict[str, Any]:
    import psutil

    import preempt

    proc = psutil.Process()

    def main() -> Dict[str, Any]:
        ch = preempt.Chan()
        gc.collect()
        before = proc.memory_info().rss
        gs = [preempt.go(ch.recv_ok) for _ in range(count)]
        preempt.sleep(0)               # let them all start and park
        while preempt.stats()["runnable"]:
            preempt.sleep(0.001)
        after = proc.memory_info().rss
        ch.close()
        for g in gs:
            g.join()
        return {"goroutines": count, "rss_growth_mb": (after - before) / 2**20,
                "bytes_per_goroutine": (after - before) / count}

    return preempt.run(main, slice=0)


def report(over: Dict[str, Any], mem: Dict[str, Any]) -> str:
    from ._stats import table

    rows = [["CPU work, preemption off (slice=0)", statistics.median(over["off_s"]), min(over["off_s"]),
             max(over["off_s"]), "1.000"],
            ["CPU work, preemption on (10 ms)", statistics.median(over["on_s"]), min(over["on_s"]),
             max(over["on_s"]), f"{over['ratio']:.3f}"]]
    out = table("Overhead of preemption (s, one goroutine alone)",
                ["case", "median", "min", "max", "ratio"], rows)
    if mem:
        out += (f"\n\nMemory: {mem['goroutines']:,} parked goroutines grow RSS by "
                f"{mem['rss_growth_mb']:.0f} MB ({mem['bytes_per_goroutine']:.0f} bytes each)")
    return out
