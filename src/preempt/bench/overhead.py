"""Overhead of preemption itself (docs/design.md §7, benchmark 5), and memory per goroutine.

overhead: four goroutines share the CPU, each running the same pure-Python loop of ``n / 4``
rounds, and ``main`` joins them. The same work runs in four configurations, in alternation,
``runs`` times each:

1. ``off``: ``slice=0``, no monitor. The four goroutines run to completion one after another:
   the work with no preemption machinery at all, the baseline.
2. ``armed``: a slice (3,600 s) longer than the work. The monitor runs and the hook is armed,
   but no goroutine is ever preempted: the price of being preemptible.
3. ``10 ms``: the default slice. The goroutines are switched out every 10 ms and share the CPU
   round-robin, as they would in a program: the price of the preemptions themselves (the
   request, the hook, the switch, and the caches a switch costs).
4. ``1 ms``: ten times the preemptions, to show how the price grows with them.

Each configuration prints the preemptions it took (``preempt.stats()``: synchronous, at the eval
breaker, and asynchronous, by signal in registered native code — none here, the loop is Python)
and the switches; a ratio means nothing unless the preemptions it prices happened.

(An earlier version timed one goroutine alone with preemption on: sysmon never preempts a
goroutine that is the only one runnable, so that run took 0 preemptions and its 0.1 % measured
only the armed monitor, row 2 here.)

memory: RSS growth per goroutine with 100,000 goroutines parked on a channel (psutil), each
case in a fresh child process (a run's freed memory would be reused by the next): goroutines
whose function is the builtin ``Chan.recv_ok`` itself, and goroutines parked inside a Python
function (the common case: one more frame, which greenlet also gives a frame object on 3.12+);
Go's figure for the same program beside them (``go/memory.go``).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Tuple

HOGS = 4
# (name, slice in seconds): the configurations of the overhead benchmark, in the order printed
CONFIGS: Tuple[Tuple[str, float], ...] = (("off", 0.0), ("armed", 3600.0), ("10 ms", 0.010),
                                          ("1 ms", 0.001))


def _hog(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def run_shared(n: int, slice_s: float, hogs: int = HOGS) -> Dict[str, Any]:
    """``hogs`` goroutines of ``n // hogs`` rounds each under ``slice_s``: the wall time of the
    work, the process's CPU time over it (sysmon's thread included), and the preemptions and
    switches it took (``preempt.stats()``, read before run() ends)."""
    import preempt

    def main() -> Dict[str, Any]:
        before = preempt.stats()
        t0, c0 = time.perf_counter(), time.process_time()
        gs = [preempt.go(_hog, n // hogs, name=f"hog{i}") for i in range(hogs)]
        for g in gs:
            g.join()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        st = preempt.stats()
        return {"wall_s": wall, "cpu_s": cpu,
                "sync": st["sync"]["count"] - before["sync"]["count"],
                "async": st["async"]["count"] - before["async"]["count"],
                "switches": st["switches"] - before["switches"]}

    return preempt.run(main, slice=slice_s)


def measure_overhead(n: int = 20_000_000, runs: int = 5) -> Dict[str, Any]:
    """Every configuration of ``CONFIGS``, alternated, ``runs`` times: ``{"configs": {name:
    {"slice_s", "wall_s": [...], "cpu_s": [...], "sync": [...], "async": [...], "switches":
    [...]}}, "ratio": {name: median wall / off's}, "cpu_ratio": {name: median CPU / off's}}``."""
    run_shared(n // 10, 0.0)    # warm-up
    run_shared(n // 10, 0.010)
    out: Dict[str, Dict[str, Any]] = {
        name: {"slice_s": sl, "wall_s": [], "cpu_s": [], "sync": [], "async": [], "switches": []}
        for name, sl in CONFIGS}
    for _ in range(runs):
        for name, sl in CONFIGS:
            r = run_shared(n, sl)
            for k in ("wall_s", "cpu_s", "sync", "async", "switches"):
                out[name][k].append(r[k])
    base = statistics.median(out["off"]["wall_s"])
    cbase = statistics.median(out["off"]["cpu_s"])
    return {"n": n, "hogs": HOGS, "runs": runs, "configs": out,
            "ratio": {name: statistics.median(c["wall_s"]) / base for name, c in out.items()},
            "cpu_ratio": {name: statistics.median(c["cpu_s"]) / cbase for name, c in out.items()}}


def _waiter(ch: Any) -> Any:
    return ch.recv_ok()          # parks here: a Python frame over the worker's


def memory_once(count: int, kind: str) -> Dict[str, Any]:
    """RSS growth while ``count`` goroutines park in ``Chan.recv_ok``: ``kind`` "builtin" runs
    it as the goroutine's function, "python" calls it from a Python function. Call it in a
    fresh process: memory an earlier run freed would hide this one's growth."""
    import psutil

    import preempt

    if kind not in ("builtin", "python"):
        raise ValueError(f"kind must be 'builtin' or 'python', not {kind!r}")
    proc = psutil.Process()

    def main() -> Dict[str, Any]:
        ch = preempt.Chan()
        gc.collect()
        before = proc.memory_info().rss
        if kind == "builtin":
            gs = [preempt.go(ch.recv_ok) for _ in range(count)]
        else:
            gs = [preempt.go(_waiter, ch) for _ in range(count)]
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


def measure_memory(count: int = 100_000) -> Dict[str, Any]:
    """memory_once() for both kinds, each in a child process, and Go's figure (or why not).
    The top-level keys are the builtin case's."""
    import preempt

    # the child imports the preempt this process runs, wherever sys.path found it
    root = os.path.dirname(os.path.dirname(os.path.abspath(preempt.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        x for x in (root, os.environ.get("PYTHONPATH")) if x))
    out: Dict[str, Any] = {}
    for kind in ("builtin", "python"):
        code = ("import json; from preempt.bench.overhead import memory_once; "
                f"print(json.dumps(memory_once({count}, {kind!r})))")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=600, env=env)
        if p.returncode != 0:
            raise RuntimeError(f"memory_once({count}, {kind!r}) failed: {p.stderr[-500:]}")
        out[kind] = json.loads(p.stdout.strip().splitlines()[-1])
    out.update(out["builtin"])
    from . import _go

    try:
        out["go"] = _go.run("memory", ["-count", str(count)])
    except _go.GoUnavailable as e:
        out["go"] = {"skipped": str(e)}
    return out


def report(over: Dict[str, Any], mem: Dict[str, Any]) -> str:
    from ._stats import table

    labels = {"off": "off (slice=0): in turn, to completion",
              "armed": "armed, never preempted (slice 3600 s)",
              "10 ms": "preempted, 10 ms slice (default)",
              "1 ms": "preempted, 1 ms slice"}
    rows = []
    for name, c in over["configs"].items():
        xs = c["wall_s"]
        rows.append([labels.get(name, name), statistics.median(xs) * 1e3, min(xs) * 1e3, max(xs) * 1e3,
                     f"{over['ratio'][name]:.3f}", statistics.median(c["cpu_s"]) * 1e3,
                     f"{over['cpu_ratio'][name]:.3f}", int(statistics.median(c["sync"])),
                     int(statistics.median(c["async"])), int(statistics.median(c["switches"]))])
    out = table(f"Overhead of preemption ({over['hogs']} goroutines share the CPU, "
                f"{over['n']:,} Python loop rounds in all, {over['runs']} runs alternated)",
                ["case", "wall ms", "min", "max", "ratio", "CPU ms", "CPU ratio", "sync preempt",
                 "async preempt", "switches"], rows)
    out += ("\n  wall: median, min, max; CPU: the process's CPU time (sysmon's thread included), "
            "median; ratios: median / off's median;\n  preemptions and switches: medians of "
            "the runs (preempt.stats())")
    if mem:
        go = mem.get("go", {})
        go_txt = (f"{go['bytes_per_goroutine']:.0f} bytes each" if "bytes_per_goroutine" in go
                  else f"skipped: {go.get('skipped', 'not measured')}")
        out += (f"\n\nMemory: {mem['goroutines']:,} parked goroutines grow RSS by "
                f"{mem['rss_growth_mb']:.0f} MB ({mem['bytes_per_goroutine']:.0f} bytes each) when "
                "the goroutine's function is Chan.recv_ok itself")
        if "python" in mem:
            out += (f";\n  {mem['python']['bytes_per_goroutine']:.0f} bytes each parked inside a "
                    f"Python function; Go 1.19 (GOMAXPROCS=1): {go_txt}")
    return out
