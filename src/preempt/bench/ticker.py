"""Ticker lateness under CPU-bound load (DESIGN.md §7, benchmark 1).

One task sleeps 1 ms in a loop and records how late each wake-up is, while four CPU-bound tasks
each run a fixed pure-Python loop (``work="python"``), or the same time of native code with the
GIL released (``work="native"``: preempt._kernels.pek_spin, registered preemptible for preempt).
The same shape runs on every runtime available:

* ``preempt``   goroutines; the hogs are preempted at the end of their slice, or at once when
                the ticker's timer is due (timer-driven preemption);
* ``asyncio``   coroutines: the hogs never await, so the ticker starves until they finish;
* ``gevent``    greenlets: the same starvation (skipped when gevent is not installed);
* ``threading`` OS threads: the GIL's 5 ms switch interval decides;
* ``go``        Go 1.19 with GOMAXPROCS=1 (go/ticker.go), hogs sized to the same duration as the
                native hogs; Go preempts after 10 ms (skipped when ``go`` is not installed).

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

RUNTIMES = ("preempt", "asyncio", "gevent", "threading", "go")
TICK = 0.001


def _hog(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def _native_hog_fn():
    """(fn, iterations-per-second) for the native hog: preempt._kernels.pek_spin, GIL released."""
    from .. import _kernels  # type: ignore[attr-defined]

    lib = _kernels.lib
    t0 = time.perf_counter()
    lib.pek_spin(2_000_000)
    rate = 2_000_000 / max(time.perf_counter() - t0, 1e-6)
    return lib.pek_spin, rate


_WORK = "python"     # set by the child's argv: "python" or "native"


def _work_fn(n: int):
    """The hog each runtime runs: a pure-Python loop of n rounds, or the native kernel for as long."""
    if _WORK == "python":
        return _hog
    spin, rate = _native_hog_fn()
    # n Python rounds take about n / 12e6 s on this class of machine: keep the same duration
    iters = int(rate * n / 12e6)
    return lambda _n: spin(iters)


def _run_preempt(n: int, hogs: int, slice_s: float) -> Dict[str, object]:
    import preempt

    late: List[float] = []

    def ticker(stop):
        while not stop.is_set():
            t0 = time.perf_counter()
            preempt.sleep(TICK)
            late.append((time.perf_counter() - t0 - TICK) * 1e6)

    hog = _work_fn(n)
    if _WORK == "native":
        from .. import _kernels  # type: ignore[attr-defined]

        kern = preempt.preemptible(_kernels.lib, reentrant=True)
        spin, rate = _native_hog_fn()
        iters = int(rate * n / 12e6)
        hog = lambda _n: kern.pek_spin(iters)  # noqa: E731

    def main():
        stop = preempt.Event()
        tk = preempt.go(ticker, stop, name="ticker")
        t0 = time.perf_counter()
        gs = [preempt.go(hog, n, name=f"hog{i}") for i in range(hogs)]
        for g in gs:
            g.join()
        wall = time.perf_counter() - t0
        st = preempt.stats()
        from .._runtime import _asynchook, _park

        mon = _park.sched.monitor
        lat = {"sync_us": list(getattr(mon, "latencies_us", [])), "async_us": list(_asynchook.latencies_us)}
        stop.set()
        tk.join()
        return wall, st, lat

    wall, st, lat = preempt.run(main, slice=slice_s)
    return {"late_us": late, "wall_s": wall, "stats": _jsonable(st), "path_latency": lat}


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (int, float, str, bool)) or x is None:
        return x
    return repr(x)


def _run_asyncio(n: int, hogs: int, slice_s: float) -> Dict[str, object]:
    import asyncio

    late: List[float] = []

    async def ticker(stop):
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(TICK)
            late.append((time.perf_counter() - t0 - TICK) * 1e6)

    hog_fn = _work_fn(n)

    async def hog():
        return hog_fn(n)

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
    hog_fn = _work_fn(n)
    gevent.joinall([gevent.spawn(hog_fn, n) for _ in range(hogs)])
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
    hog_fn = _work_fn(n)
    ts = [threading.Thread(target=hog_fn, args=(n,)) for _ in range(hogs)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    stop.set()
    tk.join()
    return {"late_us": late, "wall_s": wall}


def run_child(runtime: str, n: int, hogs: int = 4, slice_s: float = 0.010, work: str = "python",
              timeout: float = 300) -> Dict[str, object]:
    """Runs one runtime in a child interpreter. ``{"skipped": why}`` when it is unavailable."""
    if runtime == "go":
        from . import _go

        try:
            return _go.run("ticker", ["-hogs", str(hogs), "-hogms", str(n / 12e6 * 1e3)], timeout)
        except _go.GoUnavailable as e:
            return {"skipped": str(e)}
    p = subprocess.run([sys.executable, "-m", "preempt.bench.ticker", runtime, str(n), str(hogs),
                        str(slice_s), work], capture_output=True, text=True, timeout=timeout)
    if p.returncode == 3:
        return {"skipped": p.stdout.strip() or p.stderr.strip()}
    if p.returncode != 0:
        raise RuntimeError(f"ticker benchmark for {runtime} failed:\n{p.stderr}")
    return json.loads(p.stdout)


def _child(argv: List[str]) -> int:
    global _WORK
    runtime, n, hogs, slice_s = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    _WORK = argv[4] if len(argv) > 4 else "python"
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
