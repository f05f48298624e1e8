"""Channel ping-pong round trip and spawn+join per goroutine (µs, median of repeated runs).

Run: python benchmarks/bench_pingpong.py [--rounds N] [--repeat R], or as part of
python -m preempt.bench. DESIGN.md §7 item 4. Targets: round trip <= 2 µs, spawn+join <= 5 µs.
Preemption is off (slice=0) so that the numbers measure the scheduler, not the monitor.
"""

from __future__ import annotations

import argparse
import statistics
import time

import preempt


def pingpong(rounds: int) -> float:
    def main() -> float:
        a, b = preempt.Chan(), preempt.Chan()

        def echo() -> None:
            for v in a:
                b.send(v)

        preempt.go(echo)
        t0 = time.perf_counter()
        for i in range(rounds):
            a.send(i)
            b.recv()
        dt = time.perf_counter() - t0
        a.close()
        return dt / rounds * 1e6

    return preempt.run(main, slice=0)


def spawn_join(n: int) -> float:
    def nothing() -> None:
        pass

    def main() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            preempt.go(nothing).join()
        return (time.perf_counter() - t0) / n * 1e6

    return preempt.run(main, slice=0)


def spawn_many_join(n: int) -> float:
    def nothing() -> None:
        pass

    def main() -> float:
        t0 = time.perf_counter()
        gs = [preempt.go(nothing) for _ in range(n)]
        for g in gs:
            g.join()
        return (time.perf_counter() - t0) / n * 1e6

    return preempt.run(main, slice=0)


def raw_greenlet(rounds: int) -> float:
    from greenlet import greenlet, getcurrent

    main = getcurrent()

    def other() -> None:
        while True:
            main.switch()

    g = greenlet(other)
    t0 = time.perf_counter()
    for _ in range(rounds):
        g.switch()
    return (time.perf_counter() - t0) / rounds * 1e6


def measure(rounds: int = 100_000, repeat: int = 7) -> dict:
    """{name: {"median", "min", "max", "runs"}} in µs per operation."""
    rows = [
        ("raw greenlet round trip", lambda: raw_greenlet(rounds)),
        ("chan ping-pong round trip", lambda: pingpong(rounds)),
        ("spawn+join (one at a time)", lambda: spawn_join(rounds // 2)),
        ("spawn+join (10k, then join all)", lambda: spawn_many_join(10_000)),
    ]
    out = {}
    for name, fn in rows:
        fn()  # warm-up
        xs = [fn() for _ in range(repeat)]
        out[name] = {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": repeat}
    return out


def measure_go(rounds: int = 100_000, repeat: int = 7) -> dict:
    """The Go peer's figures (GOMAXPROCS=1), or {"skipped": why}."""
    from . import _go

    try:
        return _go.run("switch", ["-rounds", str(rounds), "-repeat", str(repeat)])
    except _go.GoUnavailable as e:
        return {"skipped": str(e)}


def report(res: dict) -> str:
    from ._stats import table

    go = res.get("go", {})
    rows = [[k, v["median"], v["min"], v["max"], v["runs"],
             f"{go[k]:.2f}" if isinstance(go.get(k), float) else "-"]
            for k, v in res.items() if k != "go"]
    out = table("Switch costs (µs per operation, median of runs)",
                ["operation", "median", "min", "max", "runs", "Go (GOMAXPROCS=1)"], rows)
    if "skipped" in go:
        out += f"\n  Go skipped: {go['skipped']}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    print(report(measure(a.rounds, a.repeat)))


if __name__ == "__main__":
    main()
