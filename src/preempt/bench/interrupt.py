"""Ctrl-C latency: from SIGINT to ``preempt.run()`` raising KeyboardInterrupt, per situation.

Issue 9 asks that KeyboardInterrupt end the program within 50 ms however long the native calls
of its goroutines are. Each trial is a fresh interpreter (abandoned goroutines and their
greenlets must not pile up between trials) that starts ``run()`` in one of the situations below;
after 200 ms a thread sends the process SIGINT, stamping the time just before ``os.kill``; the
child stamps the time when ``run()`` has raised and prints the difference.

- native, 2 goroutines: both loop in 30 s calls of a registered library (``pek_spin``),
  main waits in ``join()``: they are abandoned, not waited for;
- native, main: main itself is in a 30 s registered call (it is abandoned with the exception);
- Python, 4 hogs: four pure-Python loops, main parked on a channel;
- Python, main computes: main is the one in a pure-Python loop;
- idle: every goroutine sleeps, the hub waits in epoll.

    python -m preempt.bench --only interrupt      # or: python benchmarks/bench_interrupt.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any, Dict, List

from ._stats import percentiles
from ._stats import table as _table

_HEAD = """
import os, signal, sys, threading, time
import preempt
from ._kernels_lib import load_kernels
_kernels = load_kernels()
lib = _kernels.lib
def spin_for(sec):
    t = time.perf_counter(); lib.pek_spin(10**7); dt = time.perf_counter() - t
    return int(10**7 * sec / max(dt, 1e-6))
stamp = []
def sigint_later():
    time.sleep(0.2)
    stamp.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGINT)
def hog():
    x = 0
    while True:
        x += 1
sys.stderr = open(os.devnull, "w")          # the abandoned-goroutine report is expected
"""

_TAIL = """
threading.Thread(target=sigint_later, daemon=True).start()
try:
    preempt.run(main)
    print("NOKI")
except KeyboardInterrupt:
    print("%.6f" % ((time.monotonic() - stamp[0]) * 1e3))
"""

SCENARIOS: Dict[str, str] = {
    "native, 2 goroutines in 30 s calls": """
kern = preempt.preemptible(lib, reentrant=True)
n = spin_for(30.0)
def hog():
    while True:
        kern.pek_spin(n)
def main():
    gs = [preempt.go(hog) for _ in range(2)]
    for g in gs:
        g.join()
""",
    "native, main in a 30 s call": """
kern = preempt.preemptible(lib, reentrant=True)
n = spin_for(30.0)
def main():
    preempt.go(preempt.sleep, 60)
    kern.pek_spin(n)
""",
    "Python, 4 hogs, main parked": """
def main():
    for _ in range(4):
        preempt.go(hog)
    preempt.Chan().recv()
""",
    "Python, main computes": """
def main():
    preempt.go(hog)
    hog()
""",
    "idle: all asleep": """
def main():
    preempt.go(preempt.sleep, 60)
    preempt.sleep(60)
""",
}


def _trial(body: str, timeout: float = 20.0) -> float:
    code = textwrap.dedent(_HEAD) + textwrap.dedent(body) + textwrap.dedent(_TAIL)
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=timeout, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return float("inf")                  # run() never raised: the bug this measures
    try:
        return float(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return float("nan")


def run(trials: int = 10) -> Dict[str, Any]:
    """Milliseconds from SIGINT to run() raising, ``trials`` fresh processes per situation."""
    import preempt

    out: Dict[str, Any] = {}
    for name, body in SCENARIOS.items():
        if name.startswith("native") and not preempt.available()[0]:
            out[name] = {"skipped": preempt.available()[1]}
            continue
        ms: List[float] = [_trial(body) for _ in range(trials)]
        ok = [x for x in ms if x == x and x != float("inf")]
        out[name] = {"ms": ms, "failed": len(ms) - len(ok), **(percentiles(ok) if ok else {})}
    return out



def table(res: Dict[str, Any]) -> str:
    rows = []
    for name, r in res.items():
        if "skipped" in r:
            rows.append([name, "skipped", "-", "-", "-", "-"])
        elif "p50" not in r:
            rows.append([name, len(r["ms"]), "-", "-", "-", r["failed"]])
        else:
            rows.append([name, r["n"], r["p50"], r["p99"], r["max"], r["failed"]])
    return _table("Ctrl-C: SIGINT -> run() raised KeyboardInterrupt (ms; a fresh process per "
                  "trial; failed = run() never raised within 20 s)",
                  ["situation", "n", "p50", "p99", "max", "failed"], rows)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--trials", type=int, default=10)
    a = ap.parse_args()
    print(table(run(a.trials)))


if __name__ == "__main__":
    main()
