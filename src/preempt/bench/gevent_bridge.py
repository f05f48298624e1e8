"""gevent programs, preempted: ``python -m preempt.bench --only gevent``.

The README's table for ``preempt.gevent``: a 1 ms heartbeat greenlet (``gevent.sleep(0.001)``
in a loop) measures how late gevent's loop is while JOBS greenlets compute a pure-Python loop of
about JOB_MS each (never yielding on their own), in these cases (CASES):

- ``gevent alone``: the computing greenlets run to completion in turn; the heartbeat waits;
- ``enable()``: ``preempt.gevent.enable()`` at its defaults (a 10 ms slice; a greenlet is also
  switched out the moment a hub timer is due or shortly after a watched fd is ready);
- ``enable(slice=0.002)``: a small slice;
- the first two again after ``monkey.patch_all()``, and ``enable()`` on libuv
  (``GEVENT_LOOP=libuv``).

Reported per case: the heartbeat's wake-ups during the work, their lateness p50/p99/max (ms),
the work's wall time (the price of keeping the loop free) and the preemptions taken
(``preempt.gevent.stats()``). Each case runs in its own child interpreter
(``python -m preempt.bench.gevent_bridge CASE ITERS``): ``enable()`` installs a trace function, a
signal handler and the monitor thread, which must not leak from one case into the next.

The work is a fixed number of loop rounds (the same calibrated loop as ``aio.py``'s), not "compute
until a deadline": a deadline-bound greenlet that is switched out loses the time others run and
does less work, which made preempted runs look faster than the unpreempted one.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from ._stats import percentiles, table
from .http._server import work as _work

JOBS = 4
JOB_MS = 100.0
TICK = 0.001
# (case, slice in seconds, 0 for enable()'s default or None for gevent alone,
#  monkey.patch_all() first, GEVENT_LOOP or ""), in the order printed
CASES = (("gevent alone", None, False, ""), ("enable()", 0, False, ""),
         ("enable(slice=0.002)", 0.002, False, ""),
         ("gevent alone, patch_all()", None, True, ""), ("enable(), patch_all()", 0, True, ""),
         ("enable(), libuv", 0, False, "libuv"))


def run_case(slice_s: Optional[float], iters: int, patch: bool = False) -> Dict[str, Any]:
    """One case in this process: the heartbeat beside JOBS greenlets of ``iters`` rounds each."""
    if patch:
        from gevent import monkey

        monkey.patch_all()
    import gevent

    import preempt.gevent

    if slice_s == 0:
        preempt.gevent.enable()
    elif slice_s is not None:
        preempt.gevent.enable(slice=slice_s)
    ticks: List[tuple] = []               # (started, ended) of each 1 ms sleep
    stop = False

    def heartbeat() -> None:
        while not stop:
            t = time.perf_counter()
            gevent.sleep(TICK)
            ticks.append((t, time.perf_counter()))

    hb = gevent.spawn(heartbeat)
    gevent.sleep(0.02)                    # the heartbeat is ticking before the work starts
    t0 = time.perf_counter()
    gevent.joinall([gevent.spawn(_work, iters) for _ in range(JOBS)])
    t1 = time.perf_counter()
    gevent.sleep(0.005)                   # the tick that spans the end completes
    stop = True
    hb.join()
    st = preempt.gevent.stats()
    preempt.gevent.disable()
    late = [(b - a - TICK) * 1e3 for a, b in ticks if b > t0 and a < t1]    # overlapping the work
    return {"ticks": sum(t0 < b < t1 for _, b in ticks), "wall_ms": (t1 - t0) * 1e3,
            "late_ms": late, "preemptions": st["preemptions"]}


def measure(reps: int = 3, job_ms: float = JOB_MS) -> Dict[str, Any]:
    """Every case of CASES, ``reps`` times each in alternation, each in a child interpreter;
    ``{"skipped": why}`` when gevent is not installed."""
    try:
        import gevent  # noqa: F401
    except ImportError as e:
        return {"skipped": f"gevent is not installed ({e})"}
    from .http import calibrate

    iters = calibrate(job_ms)
    res: Dict[str, Any] = {"jobs": JOBS, "job_ms": job_ms, "iters": iters, "reps": reps,
                           "cases": {c[0]: [] for c in CASES}}
    for _ in range(reps):
        for name, sl, patch, loop in CASES:
            env = dict(os.environ)
            if loop:
                env["GEVENT_LOOP"] = loop
            p = subprocess.run([sys.executable, "-m", "preempt.bench.gevent_bridge", repr(sl),
                                str(iters), str(int(patch))], capture_output=True, text=True,
                               timeout=300, env=env)
            if p.returncode != 0:
                raise RuntimeError(f"gevent bridge benchmark ({name}) failed:\n{p.stderr[-2000:]}")
            res["cases"][name].append(json.loads(p.stdout.strip().splitlines()[-1]))
    return res


def report(res: Dict[str, Any]) -> str:
    if "skipped" in res:
        return f"gevent bridge skipped: {res['skipped']}"
    rows = []
    for name, runs in res["cases"].items():
        late = [x for r in runs for x in r["late_ms"]]
        p = percentiles(late) if late else {}
        rows.append([name, statistics.median(r["ticks"] for r in runs), p.get("p50", "-"),
                     p.get("p99", "-"), p.get("max", "-"),
                     statistics.median(r["wall_ms"] for r in runs),
                     statistics.median(r["preemptions"] for r in runs)])
    return (table(f"gevent: a 1 ms heartbeat's lateness (ms) beside {res['jobs']} greenlets "
                  f"computing ~{res['job_ms']:g} ms of pure Python each",
                  ["case", "heartbeat ticks", "late p50", "late p99", "late max",
                   "work wall ms", "preemptions"], rows)
            + f"\n  {res['reps']} run(s) per case, each in a fresh interpreter; lateness pooled "
              "over the runs, ticks, wall and preemptions their medians")


def _child(argv: List[str]) -> int:
    slice_s = None if argv[0] == "None" else float(argv[0])
    patch = len(argv) > 2 and argv[2] == "1"
    print(json.dumps(run_case(slice_s, int(argv[1]), patch)))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
