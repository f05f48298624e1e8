"""asyncio and CPU-bound work: ``python -m preempt.bench --only aio``.

A 1 ms asyncio ticker (``await asyncio.sleep(0.001)`` in a loop) measures how late the loop is
while JOBS CPU-bound sync functions (a pure-Python loop of about JOB_MS each) run three ways:

- ``preempt.aio.run``: on the loop's own thread, preempted every slice (``aio.py``);
- ``asyncio.to_thread``: in the default thread pool, beside the loop under the GIL;
- inline: called from a coroutine, as code that forgot to offload does;

each on asyncio's default loop, and the first and last also on uvloop when it is installed.

Reported: the ticker's lateness p50/p99/max (ms), its ticks during the work, and the work's
wall time (the cost of keeping the loop free).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, List

from ._stats import percentiles, table
from .http import calibrate as _calibrate       # the same calibrated pure-Python loop
from .http._server import work as _work

JOBS = 4
JOB_MS = 100.0


async def _ticked(kind: str, iters: int) -> Dict[str, Any]:
    import preempt.aio

    ticks: List[tuple] = []              # (started, ended) of each 1 ms sleep
    stop = False

    async def ticker() -> None:
        while not stop:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            ticks.append((t, time.perf_counter()))

    tk = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    t0 = time.perf_counter()
    if kind == "preempt.aio.run":
        await asyncio.gather(*[preempt.aio.run(_work, iters) for _ in range(JOBS)])
    elif kind == "asyncio.to_thread":
        await asyncio.gather(*[asyncio.to_thread(_work, iters) for _ in range(JOBS)])
    else:
        for _ in range(JOBS):
            _work(iters)
    t1 = time.perf_counter()
    await asyncio.sleep(0.005)           # the tick that spans the end completes
    stop = True
    await tk
    late = [(b - a - 0.001) * 1e3 for a, b in ticks if b > t0 and a < t1]   # overlapping
    return {"ticks": sum(t0 < b < t1 for _, b in ticks), "wall_ms": round((t1 - t0) * 1e3, 1),
            **(percentiles(late) if late else {})}


def measure(reps: int = 3) -> Dict[str, Any]:
    iters = _calibrate(JOB_MS)
    res: Dict[str, Any] = {"jobs": JOBS, "job_ms": JOB_MS, "reps": reps, "kinds": {}}
    for kind in ("preempt.aio.run", "asyncio.to_thread", "inline"):
        res["kinds"][kind] = [asyncio.run(_ticked(kind, iters)) for _ in range(reps)]
    try:
        import uvloop
    except ImportError:
        return res
    for kind in ("preempt.aio.run", "inline"):
        res["kinds"][kind + " (uvloop)"] = [_run_uvloop(uvloop, _ticked(kind.split(" ")[0], iters))
                                            for _ in range(reps)]
    return res


def _run_uvloop(uvloop: Any, coro: Any) -> Any:
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def report(res: Dict[str, Any]) -> str:
    rows = []
    for kind, runs in res["kinds"].items():
        best = sorted(runs, key=lambda r: r.get("p99", 1e9))[len(runs) // 2]    # the median run
        rows.append([kind, best["ticks"], best.get("p50", "-"), best.get("p99", "-"),
                     best.get("max", "-"), best["wall_ms"]])
    return table(f"asyncio: a 1 ms ticker's lateness (ms) while {res['jobs']} CPU jobs of "
                 f"~{res['job_ms']:g} ms run (median of {res['reps']} runs)",
                 ["jobs run via", "ticks", "late p50", "late p99", "late max", "work wall ms"],
                 rows)
