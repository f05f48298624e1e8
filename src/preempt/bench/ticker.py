"""Ticker lateness under CPU-bound load (docs/design.md §7, benchmark 1).

One task sleeps 1 ms in a loop and records how late each wake-up is, while four CPU-bound tasks
each run a fixed pure-Python loop (``work="python"``), or the same time of native code with the
GIL released (``work="native"``: preempt._kernels.pek_spin, registered preemptible for preempt).
The same shape runs on every runtime available:

* ``preempt``   goroutines; the hogs are preempted at the end of their slice, or at once when
                the ticker's timer is due (timer-driven preemption);
* ``asyncio``   coroutines: the hogs never await, so the ticker starves until they finish;
* ``gevent``    greenlets: the same starvation (skipped when gevent is not installed);
* ``threading`` OS threads: the GIL's 5 ms switch interval decides;
* ``go``        Go 1.19 with GOMAXPROCS=1 (go/ticker.go), hogs of native code sized to the same
                duration; Go preempts after 10 ms (skipped when ``go`` is not installed).

The hogs last as long in every family, by measurement, not by a constant: the parent times a
short run of the Python hog at start (CPU time, best of three) and scales it to ``n`` rounds
(:func:`python_hog_seconds`); the native hog (``pek_spin``) and Go's hog each time short runs
of their own loop the same way in their process and size themselves to that duration. Every child reports the CPU time its hogs used
(the process's CPU time over the work, per hog), and the table prints it beside the target, so a
reader sees the families did the same amount of work. (The constant this replaced, 12e6 Python
rounds a second, made the native and Go hogs last a third as long as the Python ones on a
slower machine.)

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


def _best_time(fn, arg: int, tries: int = 3) -> float:
    """The shortest of ``tries`` timings of ``fn(arg)``, in this thread's CPU time: what the loop
    costs, whatever else the machine runs at the time (a wall-clock timing on a busy machine
    sized the hogs by the neighbours' load)."""
    best = float("inf")
    for _ in range(tries):
        t0 = time.thread_time()
        fn(arg)
        best = min(best, time.thread_time() - t0)
    return max(best, 1e-9)


def python_hog_seconds(n: int) -> float:
    """How long one Python hog of ``n`` rounds takes alone here: a short run, timed and scaled.
    Every family's hog is sized to this duration."""
    m = min(n, 1_000_000)
    return _best_time(_hog, m) * n / m


def _native_iters(seconds: float) -> int:
    """The pek_spin iterations (native code, GIL released) that take ``seconds`` here."""
    from ._kernels_lib import load_kernels
    _kernels = load_kernels()

    m = 2_000_000
    return max(1, int(m / _best_time(_kernels.lib.pek_spin, m) * seconds))


_WORK = "python"     # set by the child's argv: "python" or "native"
_HOG_S = 0.0         # set by the child's argv: the duration a hog is sized to (native work)


def _work_fn(n: int):
    """The hog each runtime runs: a pure-Python loop of n rounds, or the native kernel for as
    long (``_HOG_S``, which the parent measured for n Python rounds)."""
    if _WORK == "python":
        return _hog
    from ._kernels_lib import load_kernels
    _kernels = load_kernels()

    spin, iters = _kernels.lib.pek_spin, _native_iters(_HOG_S)
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
        from ._kernels_lib import load_kernels
        _kernels = load_kernels()

        kern = preempt.preemptible(_kernels.lib, reentrant=True)
        iters = _native_iters(_HOG_S)
        hog = lambda _n: kern.pek_spin(iters)  # noqa: E731

    def main():
        stop = preempt.Event()
        tk = preempt.go(ticker, stop, name="ticker")
        t0, c0 = time.perf_counter(), time.process_time()
        gs = [preempt.go(hog, n, name=f"hog{i}") for i in range(hogs)]
        for g in gs:
            g.join()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        st = preempt.stats()
        from .._runtime import _asynchook, _park

        mon = _park.sched.monitor
        lat = {"sync_us": list(getattr(mon, "latencies_us", [])), "async_us": list(_asynchook.latencies_us)}
        stop.set()
        tk.join()
        return wall, cpu, st, lat

    wall, cpu, st, lat = preempt.run(main, slice=slice_s)
    return {"late_us": late, "wall_s": wall, "cpu_per_hog_s": cpu / hogs, "stats": _jsonable(st),
            "path_latency": lat}


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
        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(hog() for _ in range(hogs)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        stop.set()
        await tk
        return wall, cpu

    wall, cpu = asyncio.run(main())
    return {"late_us": late, "wall_s": wall, "cpu_per_hog_s": cpu / hogs}


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
    hog_fn = _work_fn(n)
    t0, c0 = time.perf_counter(), time.process_time()
    gevent.joinall([gevent.spawn(hog_fn, n) for _ in range(hogs)])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stop.set()
    tk.join()
    return {"late_us": late, "wall_s": wall, "cpu_per_hog_s": cpu / hogs}


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
    hog_fn = _work_fn(n)
    t0, c0 = time.perf_counter(), time.process_time()
    ts = [threading.Thread(target=hog_fn, args=(n,)) for _ in range(hogs)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stop.set()
    tk.join()
    return {"late_us": late, "wall_s": wall, "cpu_per_hog_s": cpu / hogs}


def run_child(runtime: str, n: int, hogs: int = 4, slice_s: float = 0.010, work: str = "python",
              timeout: float = 300, hog_s: Optional[float] = None) -> Dict[str, object]:
    """Runs one runtime in a child interpreter. ``{"skipped": why}`` when it is unavailable.
    ``hog_s``: the seconds a native or Go hog is sized to (default: :func:`python_hog_seconds`)."""
    if hog_s is None:
        hog_s = python_hog_seconds(n)
    if runtime == "go":
        from . import _go

        try:
            return _go.run("ticker", ["-hogs", str(hogs), "-hogms", str(hog_s * 1e3)], timeout)
        except _go.GoUnavailable as e:
            return {"skipped": str(e)}
    p = subprocess.run([sys.executable, "-m", "preempt.bench.ticker", runtime, str(n), str(hogs),
                        str(slice_s), work, repr(hog_s)], capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode == 3:
        return {"skipped": p.stdout.strip() or p.stderr.strip()}
    if p.returncode != 0:
        raise RuntimeError(f"ticker benchmark for {runtime} failed:\n{p.stderr}")
    return json.loads(p.stdout)


def _child(argv: List[str]) -> int:
    global _WORK, _HOG_S
    runtime, n, hogs, slice_s = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    _WORK = argv[4] if len(argv) > 4 else "python"
    _HOG_S = float(argv[5]) if len(argv) > 5 else python_hog_seconds(n)
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
