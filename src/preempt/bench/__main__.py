"""``python -m preempt.bench``: preempt's benchmarks, beside asyncio, gevent and threading.

Runs, in order (docs/design.md §7): ticker lateness under 4 CPU-bound Python tasks; the same under 4
native tasks (GIL released); preemption latency per path, from the runtime's own timestamps;
a hog's throughput beside 1,000 sleeping goroutines; the overhead of preemption on the same work
and the memory of 100,000 parked goroutines; thread suspension latency beside a bare signal;
switch costs (with Go peers where ``go`` is installed); cancellation latency beside asyncio's
(``cancel.py``). Prints one table per benchmark and
writes every sample and machine facts to ``<out>/results.json``.

    python -m preempt.bench            # default: ~1-2 minutes
    python -m preempt.bench --quick    # a fast smoke run (used by the tests)
    python -m preempt.bench --full     # more repetitions

Not in the default run (nor in --quick or --full): the soak (``soak/``), signals, fork, random
timeouts and cancellations for N seconds, checked for anything lost. Run it by name:

    python -m preempt.bench --only soak [--soak-seconds 60] [--seed S]
    python -m preempt.bench --only interrupt    # Ctrl-C latency per situation (interrupt.py)
    python -m preempt.bench --only http         # HTTP beside gevent/asyncio/threads (http/)
    python -m preempt.bench --only io           # hello-world HTTP under wrk: req/s, p50/p99 (io/)
    python -m preempt.bench --only aio          # asyncio ticker: preempt.aio vs to_thread (aio.py)
    python -m preempt.bench --only gevent       # gevent heartbeat: alone vs preempt.gevent.enable()
    python -m preempt.bench --only gunicorn     # gunicorn's workers vs preempt's (gunicorn/)

The io benchmark's load-independent half, instructions per request under callgrind, has its own
command: ``python -m preempt.bench.io --instructions`` (needs valgrind; about a minute).

The exit status is 1 when a soak found anything lost, duplicated, hung or failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Dict, List

from ._stats import percentiles, table
from .io._server import KINDS as IO_KINDS

BENCHES = ("ticker", "native", "latency", "sleepers", "overhead", "suspend", "switch", "cancel")
EXTRA = ("soak", "interrupt", "http", "io", "aio", "gevent", "gunicorn")   # run only when named in --only
SOAK_SECONDS = {"quick": 3.0, "default": 60.0, "full": 300.0}


def _machine() -> Dict[str, Any]:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = []
    return {"cpu": cpu, "cores": os.cpu_count(), "affinity": affinity, "kernel": platform.release(),
            "python": platform.python_version(), "implementation": platform.python_implementation(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def _header(facts: Dict[str, Any]) -> str:
    """The line above the tables: the command that printed them, when, on which CPython and
    machine. Copy it with any table you quote."""
    cores = f"{facts['cores']} cores"
    if facts["affinity"] and len(facts["affinity"]) != facts["cores"]:
        cores += f" ({len(facts['affinity'])} usable by this process)"
    return (f"Command: {facts['command']} | date: {facts['date']} | "
            f"{facts['implementation']} {facts['python']} | "
            f"machine: {facts['cpu'] or platform.machine()}, {cores}, Linux {facts['kernel']}")


class Progress:
    """One line per step: [k/N] what, then how long it took."""

    def __init__(self, total: int) -> None:
        self.total, self.k, self.t0 = total, 0, time.perf_counter()

    def step(self, what: str) -> None:
        self.k += 1
        width = 20
        done = int(width * (self.k - 1) / self.total)
        bar = "#" * done + "." * (width - done)
        print(f"[{bar}] {self.k}/{self.total} {what} ({time.perf_counter() - self.t0:.0f} s)",
              file=sys.stderr, flush=True)


def _ticker_table(title: str, res: Dict[str, Any], hog_s: float = 0.0) -> str:
    rows: List[List[object]] = []
    notes: List[str] = []
    walls = {rt: statistics.median(r["walls"]) for rt, r in res.items() if "walls" in r}

    def cpu(r: Dict[str, Any]) -> object:
        xs = r.get("cpu_per_hog", [])
        return f"{statistics.median(xs):.3f}" if xs else "-"

    base = walls.get("asyncio")
    for rt, r in res.items():
        if "skipped" in r:
            rows.append([rt, "skipped", "-", "-", "-", "-", "-", "-", "-"])
            notes.append(f"  {rt} skipped: {r['skipped']}")
            continue
        lat = r["late_us"]
        if lat:
            p = percentiles(lat)
            spread = f"{min(r['p99s']):.0f}-{max(r['p99s']):.0f}"
            rows.append([rt, p["n"], p["p50"], p["p99"], spread, p["max"], walls[rt],
                         f"{walls[rt] / base:.3f}" if base and rt != "go" else "-", cpu(r)])
        else:
            rows.append([rt, 0, "-", "-", "-", "-", walls[rt], "-", cpu(r)])
    runs = max((len(r.get("walls", [])) for r in res.values()), default=0)
    notes.append(f"  pooled over {runs} run(s); p99 spread = lowest-highest p99 of single runs; "
                 "asyncio and gevent never yield inside the hogs, so their ticker waits for all the work;")
    notes.append("  go: GOMAXPROCS=1, hogs of native code (work s is Go's own)")
    if hog_s:
        notes.append(f"  each hog is sized to {hog_s:.3f} s alone: a Python hog's CPU time measured at "
                     "start; native and Go hogs time their own loop at start and size themselves to it;")
        notes.append("  CPU s/hog = the process's CPU time over the work / 4 (median run): the work each "
                     "family really did")
    return table(title, ["runtime", "ticks", "p50 µs", "p99 µs", "p99 spread", "max µs", "work s",
                         "wall/asyncio", "CPU s/hog"], rows) + "\n" + "\n".join(notes)


def run_ticker(work: str, n: int, runs: int, prog: Progress, hog_s: float) -> Dict[str, Any]:
    """``hog_s``: the seconds every family's hog lasts alone (ticker.python_hog_seconds(n))."""
    from . import ticker

    out: Dict[str, Any] = {"hog_s": hog_s}
    for rt in ticker.RUNTIMES:
        prog.step(f"ticker ({work} hogs) on {rt}")
        r: Dict[str, Any] = {"late_us": [], "walls": [], "p99s": [], "cpu_per_hog": [],
                             "path_latency": {"sync_us": [], "async_us": []}}
        for i in range(runs):
            d = ticker.run_child(rt, n, work=work, hog_s=hog_s)
            if "skipped" in d:
                r = {"skipped": d["skipped"]}
                break
            r["late_us"] += d["late_us"]
            r["walls"].append(d["wall_s"])
            r["cpu_per_hog"].append(d["cpu_per_hog_s"])
            r["p99s"].append(percentiles(d["late_us"])["p99"] if d["late_us"] else float("nan"))
            for k, v in d.get("path_latency", {}).items():
                r["path_latency"][k] += v
        out[rt] = r
    return out


def _runtimes(res: Dict[str, Any]) -> Dict[str, Any]:
    """A ticker result's per-runtime entries (without its ``hog_s``)."""
    return {k: v for k, v in res.items() if isinstance(v, dict)}


def _latency_table(res: Dict[str, Any]) -> str:
    rows = []
    for label, key, src in (("sync (Python hogs): request -> hook", "sync_us", "ticker"),
                            ("async (native hogs): signal -> hook", "async_us", "native"),
                            ("sync escalated (native hogs): request -> hook", "sync_us", "native")):
        xs = res.get(src, {}).get("preempt", {}).get("path_latency", {}).get(key, [])
        if xs:
            p = percentiles(xs)
            rows.append([label, p["n"], p["p50"], p["p99"], p["max"]])
    return table("Preemption latency per path (µs, preempt's own timestamps)",
                 ["path", "n", "p50", "p99", "max"], rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m preempt.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small fast run (smoke test)")
    mode.add_argument("--full", action="store_true", help="more repetitions")
    p.add_argument("--only", default=",".join(BENCHES),
                   help=f"comma-separated subset of {','.join(BENCHES + EXTRA)} (default: all "
                        f"but {','.join(EXTRA)})")
    p.add_argument("--out", default="results", help="folder for results (default ./results)")
    p.add_argument("--n", type=int, default=None, help="suspensions to measure (default 10000)")
    p.add_argument("--soak-seconds", type=float, default=None,
                   help="how long the soak runs (default 60; 3 with --quick, 300 with --full)")
    p.add_argument("--seed", type=int, default=None,
                   help="the soak's random seed (default: a fresh one, printed)")
    args = p.parse_args(argv)
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    bad = [b for b in only if b not in BENCHES + EXTRA]
    if bad:
        p.error(f"unknown benchmark(s) {', '.join(bad)}; choose from {', '.join(BENCHES + EXTRA)}")
    if args.n is not None and args.n < 1000:
        p.error("--n must be at least 1000 (percentiles need samples)")
    if args.soak_seconds is not None and not 0 < args.soak_seconds < 1e6:
        p.error(f"--soak-seconds must be a number of seconds above 0, got {args.soak_seconds}")
    hog_n, runs, nsusp, rounds, reps = (8_000_000, 3, 10_000, 100_000, 7)
    if args.quick:
        hog_n, runs, nsusp, rounds, reps = (300_000, 1, 1000, 5_000, 2)
    elif args.full:
        hog_n, runs, nsusp, rounds, reps = (8_000_000, 7, 50_000, 200_000, 15)
    if args.n:
        nsusp = args.n

    import preempt

    ok, why = preempt.available()
    facts = _machine()
    facts["command"] = " ".join(["python -m preempt.bench", *(sys.argv[1:] if argv is None else argv)])
    print(f"preempt {preempt.__version__} on {facts['implementation']} {facts['python']}, "
          f"{facts['cpu'] or platform.machine()}, {facts['cores']} cores, kernel {facts['kernel']}")
    if not ok:
        print(f"preemption unavailable: {why}")
        return 1
    steps = {"ticker": 5, "native": 5, "latency": 0, "sleepers": 1, "overhead": 2, "suspend": 1, "switch": 1,
             "soak": 1, "interrupt": 1, "cancel": 1, "http": 1, "io": len(IO_KINDS), "aio": 1,
             "gevent": 1, "gunicorn": 1}
    prog = Progress(sum(steps[b] for b in only) or 1)
    results: Dict[str, Any] = {"machine": facts, "mode": "quick" if args.quick else "full" if args.full else "default"}
    tables: List[str] = []
    if "ticker" in only or "native" in only:
        from . import ticker

        hog_s = ticker.python_hog_seconds(hog_n)    # measured once: both tables' hogs match
    if "ticker" in only:
        results["ticker"] = run_ticker("python", hog_n, runs, prog, hog_s)
        tables.append(_ticker_table("Ticker lateness, 1 ms sleeps under 4 CPU-bound Python tasks",
                                    _runtimes(results["ticker"]), results["ticker"]["hog_s"]))
    if "native" in only:
        results["native"] = run_ticker("native", hog_n, runs, prog, hog_s)
        tables.append(_ticker_table("Ticker lateness, 1 ms sleeps under 4 native tasks (GIL released)",
                                    _runtimes(results["native"]), results["native"]["hog_s"]))
    if "latency" in only and ("ticker" in results or "native" in results):
        tables.append(_latency_table(results))
    if "sleepers" in only:
        from . import sleepers

        prog.step("1,000 sleeping goroutines beside a hog")
        results["sleepers"] = sleepers.measure(hog_n // 2, runs=runs)
        tables.append(sleepers.report(results["sleepers"]))
    if "overhead" in only:
        from . import overhead

        prog.step("overhead: the same work with preemption off and on")
        # at least ~0.1 s of work, so that the 10 ms slice has something to preempt
        results["overhead"] = overhead.measure_overhead(max(hog_n * 2, 3_000_000), runs + 2)
        prog.step("memory of parked goroutines")
        results["memory"] = overhead.measure_memory(10_000 if args.quick else 100_000)
        tables.append(overhead.report(results["overhead"], results["memory"]))
    if "suspend" in only:
        from . import suspend

        prog.step("thread suspension latency")
        results["suspend"] = suspend.measure(nsusp, warmup=min(500, nsusp // 10))
        tables.append(suspend.report(results["suspend"]))
    if "switch" in only:
        from . import switch

        prog.step("switch costs")
        results["switch"] = switch.measure(rounds, reps)
        results["switch"]["go"] = switch.measure_go(rounds, reps)
        tables.append(switch.report(results["switch"]))
    if "cancel" in only:
        from . import cancel

        prog.step("cancellation latency")
        results["cancel"] = cancel.measure(200 if args.quick else 2000, 5 if args.quick else 20)
        tables.append(cancel.report(results["cancel"]))
    status = 0
    if "soak" in only:
        from . import soak

        seconds = args.soak_seconds or SOAK_SECONDS[results["mode"]]
        prog.step(f"soak: {seconds:g} s of signals, fork, timeouts and cancellations")
        results["soak"] = soak.measure(seconds, args.seed)
        tables.append(soak.report(results["soak"]))
        status = 0 if results["soak"]["ok"] else 1
    if "interrupt" in only:
        from . import interrupt

        prog.step("Ctrl-C: SIGINT -> run() raised, per situation")
        results["interrupt"] = interrupt.run(3 if args.quick else 30 if args.full else 10)
        tables.append(interrupt.table(results["interrupt"]))
    if "http" in only:
        from . import http

        prog.step("HTTP under CPU-heavy load (wrk)")
        results["http"] = http.measure(2.0 if args.quick else 10.0 if args.full else 5.0)
        tables.append(http.report(results["http"]))
    if "io" in only:
        from . import io

        results["io"] = io.measure(1 if args.quick else 10 if args.full else 5,
                                   progress=lambda kind: prog.step(f"plain I/O on {kind} (wrk)"))
        tables.append(io.report(results["io"]))
    if "aio" in only:
        from . import aio

        prog.step("asyncio: a 1 ms ticker while CPU jobs run")
        results["aio"] = aio.measure(1 if args.quick else 5 if args.full else 3)
        tables.append(aio.report(results["aio"]))
    if "gevent" in only:
        from . import gevent_bridge

        prog.step("gevent: a 1 ms heartbeat beside computing greenlets, with and without preemption")
        results["gevent"] = gevent_bridge.measure(1 if args.quick else 5 if args.full else 3,
                                                  50.0 if args.quick else gevent_bridge.JOB_MS)
        tables.append(gevent_bridge.report(results["gevent"]))
    if "gunicorn" in only:
        from . import gunicorn as gunicorn_bench

        prog.step("gunicorn: sync, gthread, gevent and preempt's worker under wrk")
        results["gunicorn"] = gunicorn_bench.measure(
            1.0 if args.quick else 10.0 if args.full else 5.0, (1,) if args.quick else (1, 2),
            logdir=os.path.abspath(args.out))
        tables.append(gunicorn_bench.report(results["gunicorn"]))
    print()
    print(_header(facts))
    print()
    print("\n\n".join(tables))
    out = os.path.join(args.out, time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    try:
        from . import _plots

        for path in _plots.write(results, out):
            print(f"Plot: {os.path.abspath(path)}")
    except ImportError:
        print("Plots skipped: matplotlib is not installed (pip install matplotlib)")
    print(f"\nAll samples and machine facts: {os.path.abspath(os.path.join(out, 'results.json'))}")
    return status


if __name__ == "__main__":
    sys.exit(main())
