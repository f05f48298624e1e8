"""Throughput with many sleeping goroutines: does timer-driven preemption become a storm?

A CPU-bound goroutine does a fixed pure-Python loop, alone and then beside 1,000 goroutines that
each sleep 10 ms in a loop (100,000 timer expiries per second in all). Each expiry is due while
the hog computes, so each could preempt it; sysmon coalesces timer-driven requests to one per
200 µs, and the hub runs every due timer per visit. Reported: the hog's wall time alone and
beside the sleepers, the share of the CPU the hog kept after the sleepers' own work, and how many
timer-driven preemptions there were.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List


def _hog(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def _one(n: int, sleepers: int, period: float) -> Dict[str, Any]:
    import preempt

    wakes = [0]

    def sleeper(stop: Any) -> None:
        while not stop.is_set():
            preempt.sleep(period)
            wakes[0] += 1

    def main() -> Dict[str, Any]:
        stop = preempt.Event()
        ss = [preempt.go(sleeper, stop) for _ in range(sleepers)]
        preempt.sleep(period)              # let them all reach their first sleep
        w0 = wakes[0]
        t0 = time.perf_counter()
        preempt.go(_hog, n).join()
        wall = time.perf_counter() - t0
        st = preempt.stats()
        stop.set()
        for g in ss:
            g.join()
        return {"wall_s": wall, "wakes": wakes[0] - w0, "timer_requests": st["timer"]["count"],
                "sync_preemptions": st["sync"]["count"]}

    return preempt.run(main)


def measure(n: int = 5_000_000, sleepers: int = 1000, period: float = 0.010, runs: int = 3) -> Dict[str, Any]:
    alone: List[float] = []
    beside: List[Dict[str, Any]] = []
    for _ in range(runs):
        alone.append(_one(n, 0, period)["wall_s"])
        beside.append(_one(n, sleepers, period))
    return {"sleepers": sleepers, "period_s": period, "alone_s": alone, "beside": beside}


def report(res: Dict[str, Any]) -> str:
    import statistics

    from ._stats import table

    a = statistics.median(res["alone_s"])
    b = statistics.median(r["wall_s"] for r in res["beside"])
    wakes = statistics.median(r["wakes"] / r["wall_s"] for r in res["beside"])
    treq = statistics.median(r["timer_requests"] / r["wall_s"] for r in res["beside"])
    rows = [["hog alone", a, "-", "-", "-"],
            [f"beside {res['sleepers']} sleepers ({res['period_s'] * 1e3:.0f} ms)", b,
             f"{b / a:.2f}", f"{wakes:.0f}", f"{treq:.0f}"]]
    return table("Many sleeping goroutines (median of runs)",
                 ["case", "hog wall s", "ratio", "wake-ups/s", "timer preemptions/s"], rows)
