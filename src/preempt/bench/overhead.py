"""Overhead of preemption itself (DESIGN.md §7, benchmark 5), and memory per goroutine.

overhead: the same CPU-bound pure-Python work, one goroutine, with preemption off
(``slice=0``: no monitor) and on (10 ms slices: sysmon requests a switch every slice, the hook
runs, the goroutine is the only one runnable and continues). Each case runs in alternation,
``runs`` times; the ratio of medians is the price of being preemptible.

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

    rows = [["CPU work, preemption off (slice=0)", statistics.median(over["off_s"]), min(over["off_s"]),
             max(over["off_s"]), "1.000"],
            ["CPU work, preemption on (10 ms)", statistics.median(over["on_s"]), min(over["on_s"]),
             max(over["on_s"]), f"{over['ratio']:.3f}"]]
    out = table("Overhead of preemption (s, one goroutine alone)",
                ["case", "median", "min", "max", "ratio"], rows)
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
