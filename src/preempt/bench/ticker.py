"""Ticker lateness under CPU-bound load (DESIGN.md §7, benchmark 1).

One task sleeps 1 ms in a loop and records how late each wake-up is, while four CPU-bound tasks
each run a fixed pure-Python loop. The same shape runs on every runtime available:

* ``preempt``   goroutines; the hogs are preempted at the end of their slice, or at once when
                the ticker's timer is due (timer-driven preemption);
* ``asyncio``   coroutines: the hogs never await, so the ticker starves until they finish;
* ``gevent``    greenlets: the same starvation (skipped when gevent is not installed);
* ``threading`` OS threads: the GIL's 5 ms switch interval decides.

Each runtime runs in its own child interpreter (``python -m preempt.bench.ticker RUNTIME``), so
that signal handlers, monkey-patching and thread pools never leak from one into another. The
child prints one JSON object: lateness samples (µs) and the wall time of the work.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Dict, List, Optional

RUNTIMES = ("preempt", "asyncio", "gevent", "threading")
TICK = 0.001


def _hog(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def _run_preempt(n: int, hogs: int, slice_s: float) -> Dict[str, object]:
    import preempt

    late: List[float] = []

    def ticker(stop):
        while not stop.is_set():
            t0 = time.perf_counter()
            preempt.sleep(TICK)
            late.append((time.perf_counter() - t0 - TICK) * 1e6)

    def main():
        stop = preempt.Event()
        tk = preempt.go(ticker, stop, name="ticker")
        t0 = time.perf_counter()
        gs = [preempt.go(_hog, n, name=f"hog{i}") for i in range(hogs)]
        for g in gs:
            g.join()
        wall = time.perf_counter() - t0
        stop.set()
        tk.join()
        return wall

    wall = preempt.run(main, slice=slice_s)
    return {"late_us": late, "wall_s": wall}


def _run_asyncio(n: int, hogs: int, slice_s: float) -> Dict[str, object]:
    import asyncio

    late: List[float] = []

    async def ticker(stop):
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(TICK)
            late.append((time.perf_counter() - t0 - TICK) * 1e6)

    async def hog():
        return _hog(n)

    async def main():
        stop = asyncio.Event()
        tk = asyncio.ensure_future(ticker(stop))
        await asyncio.sleep(0)
        t0 = time.perf_counter()
        await asyncio.gather(*(hog() for _ in range(hogs)))
        wall = time.perf_counter() - t0
        stop.set()
        await tk
        return wall

    return {"late_us": late, "wall_s": asyncio.run(main())}


def _run_gevent(n: int, hogs: int, slice_s: float) -> Dict[str, object]:
    import gevent
    import gevent.event

    late: List[float] = []

    def ticker(stop):
        while not stop.is_set():
            t0 = time.perf_counter()
            gevent.sleep(TICK)
            late.append((time.perf_counter() - t0 - TICK) * 1e6)

    stop = gevent.event.Event()
    tk = gevent.spawn(ticker, stop)
    gevent.sleep(0)
    t0 = time.perf_counter()
    gevent.joinall([gevent.spawn(_hog, n) for _ in range(hogs)])
    wall = time.perf_counter() - t0
    stop.set()
    tk.join()
    return {"late_us": late, "wall_s": wall}


def _run_threading(n: int, hogs: int, slice_s: float) -> Dict[str, object]:
    import threading

    late: List[float] = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            t0 = time.perf_counter()
            time.sleep(TICK)
            late.append((time.perf_counter() - t0 - TICK) * 1e6)

    tk = threading.Thread(target=ticker)
    tk.start()
    t0 = time.perf_counter()
    ts = [threading.Thread(target=_hog, args=(n,)) for _ in range(hogs)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    stop.set()
    tk.join()
    return {"late_us": late, "wall_s": wall}


def run_child(runtime: str, n: int, hogs: int = 4, slice_s: float = 0.010,
              timeout: float = 300) -> Optional[Dict[str, object]]:
    """Runs one runtime in a child interpreter; None (with a reason) when it is unavailable."""
    p = subprocess.run([sys.executable, "-m", "preempt.bench.ticker", runtime, str(n), str(hogs), str(slice_s)],
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode == 3:
        return {"skipped": p.stdout.strip() or p.stderr.strip()}
    if p.returncode != 0:
        raise RuntimeError(f"ticker benchmark for {runtime} failed:\n{p.stderr}")
    return json.loads(p.stdout)


def _child(argv: List[str]) -> int:
    runtime, n, hogs, slice_s = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    if runtime not in RUNTIMES:
        print(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}", file=sys.stderr)
        return 2
    try:
        fn = globals()[f"_run_{runtime}"]
        if runtime == "gevent":
            import gevent  # noqa: F401
    except ImportError as e:
        print(f"{runtime} is not installed ({e})")
        return 3
    print(json.dumps(fn(n, hogs, slice_s)))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
