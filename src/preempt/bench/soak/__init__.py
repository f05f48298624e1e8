"""The soak benchmark (issue 9): everything at once for N seconds, and nothing may be lost.

The other benchmarks measure one mechanism each in a quiet process. This one runs a seeded random
workload inside one ``preempt.run()`` for ``seconds`` and mixes every way the runtime can be
interrupted, then checks the books. It runs in a child interpreter (``python -m
preempt.bench.soak``), like the ticker, so its signal handlers and forked processes never touch
the harness, and a hung soak is killed at a deadline instead of hanging the bench.

What runs, side by side:

1. **Pipelines**: lanes of producer -> channel A -> relay -> channel B -> consumer, over
   buffered and unbuffered ``Chan``s. Values are ``(lane, producer, seq)``. Producers send by
   ``send()``, by ``select`` on ``Send`` with random timeouts (0, < 0.1 ms, a few ms; a timed-out
   send is retried with the same value), with ``default=True``, and beside ``Recv(quit)``, the
   cancellation channel closed at the end. Relays ``select`` on ``Recv(A)`` and ``Send(B, …)`` at
   once; consumers use ``recv``, ``recv_ok``, iteration and ``select`` over several lanes.
   Every consumer keeps its own ledger; at the end every value sent is received exactly once.
2. **Sync**: Mutex-protected counters whose critical sections yield or compute (the count and
   the "one holder" rule must hold); WaitGroup batches of short goroutines; ``Event.wait`` and
   ``Goroutine.join`` with random timeouts (a wait that returns False must have waited its
   timeout); ``preempt.sleep`` of random short durations (never early). Joins that time out
   *abandon* their goroutine; some of those wait for ever, and must be unwound when ``run()``
   ends (section 6 has the explicit cancellations).
3. **Preemption**: pure-Python CPU-bound goroutines (synchronous preemption) and, where
   ``preempt.available()``, a registered native loop (``pek_spin``, asynchronous preemption),
   whose results must be bit-exact.
4. **Signals**: a plain OS thread sends SIGUSR1 and SIGUSR2 to the process at random intervals.
   The SIGUSR1 handler raises :class:`SoakSignal` wherever CPython runs it; the runtime routes it
   to main (``_runtime/_signals.py``), which catches and counts it. One signal is in flight at a
   time (the sender waits for main's acknowledgement on a pipe), because the kernel and CPython
   both merge a signal sent twice before its handler ran. The first is sent once main has
   entered the loop that catches them. Sent == caught; one caught by a worker
   is a failure. The SIGUSR2 handler only counts.
5. **fork**: every few seconds a goroutine calls ``os.fork()``. The child, a copy of the whole
   program, checks that ``sleep``, a channel round trip and a ``select`` timeout work in the
   inherited runtime (``_runtime/_fork.py``) and ends with ``os._exit``; the parent reaps it
   within ``FORK_DEADLINE`` or SIGKILLs it and counts a hang.
6. **Cancellation** (``_cancels.py``): victims doing channel, select, Mutex and WaitGroup
   operations under random ``preempt.timeout``s are cancelled at random and replaced; ``Group``
   blocks end by a member's failure, an enclosing timeout, ``grp.cancel()`` and the owner's
   cancellation; nested timeouts around loops and waits; spinning goroutines cancelled mid-loop.

The books, checked after ``run()`` returned (any breach is a failure; the verdict is FAIL and the
exit status 1 when there is one):

1. Every value sent (a send that returned) was received exactly once: none lost, none twice,
   none that was never sent (a timed-out select that delivered anyway shows as a duplicate).
2. The Mutex counter equals the increments made, and no two goroutines ever held the Mutex.
3. WaitGroup.wait() returned only when every member was done; a timed wait (sleep,
   Event.wait, join) never returned before its timeout; results (join's, the Python sums,
   pek_spin's) are exact.
4. Every SIGUSR1 exception reached main, once; none in a worker, none lost; every SIGUSR2
   handler ran.
5. Every fork child exited 0 within ``FORK_DEADLINE``; none was left behind.
6. Every goroutine finished within ``DRAIN_DEADLINE`` of the end; every abandoned one that waits
   for ever was unwound (its ``finally`` ran) when ``run()`` ended; no goroutine raised.
7. Cancellation: every value a cancel-lane send handed over was received exactly once, the
   Mutex is free and every WaitGroup member counted; every Group left its block with all its
   members finished and unwound, raising exactly the failures its members raised (or Timeout,
   or Cancelled, as it was ended); the timeout that fired had expired, never early; every
   cancelled spinner ended with Cancelled and ran its ``finally``.

Watchdogs: faulthandler ends the soak process ``seconds + WATCHDOG_SLACK`` after it started, and
the harness kills it a minute later still; either is reported as a FAIL.

(An alternative would be one deterministic schedule replayed from the seed. Rejected: signals,
fork and the monitor's slices are timed by the machine; the seed fixes the workload's shape and
its random choices, and the books are checked whatever the interleaving was.)

Layout (each private module opens by saying what it holds; they import only downwards):

- ``_books.py``: the limits, the state every goroutine records into, and the checks of the
  books (above) that turn it into the result and its verdict;
- ``_workload.py``: the goroutines of the pipelines, sync and preemption (1-3 above);
- ``_cancels.py``: the goroutines that cancel, time out and group (6 above);
- ``_program.py``: the child program: the signals and forks (4-5 above) and main, ``soak()``;
- ``__main__.py``: the child interpreter's entry point, ``python -m preempt.bench.soak SECONDS SEED``;
- here: the harness's side, ``measure()`` and ``report()``, which run in the bench process.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from typing import Any, Dict, Optional

from ._books import WATCHDOG_SLACK

__all__ = ["measure", "report"]


def measure(seconds: float = 60.0, seed: Optional[int] = None) -> Dict[str, Any]:
    """Runs the soak in a child interpreter; its result (a FAIL verdict if the child died)."""
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 32)
    print(f"soak: {seconds:g} s, seed {seed} (rerun with --seed {seed})", file=sys.stderr, flush=True)
    timeout = seconds + WATCHDOG_SLACK + 60
    cmd = [sys.executable, "-m", "preempt.bench.soak", str(seconds), str(seed)]
    why = None
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout)
        lines = p.stdout.strip().splitlines()
        if lines and lines[-1].startswith("{"):
            res = json.loads(lines[-1])
            if p.returncode != (0 if res["ok"] else 1):
                res["ok"], res["verdict"] = False, "FAIL"
                res["failures"].append(f"the soak process exited {p.returncode}")
            return res
        why = f"the soak process exited {p.returncode} without results"
    except subprocess.TimeoutExpired:
        why = f"the soak process hung: killed after {timeout:.0f} s"
    return {"seconds": seconds, "seed": seed, "ok": False, "verdict": "FAIL", "failures": [why]}


def _p(what: str, p: Dict[str, float]) -> str:
    return f"{what} p50 {p['p50']:.0f} / p99 {p['p99']:.0f} / max {p['max']:.0f} µs" if p else ""


def report(res: Dict[str, Any]) -> str:
    from .._stats import table

    title = f"Soak: {res['seconds']:g} s of everything at once, seed {res['seed']}"
    if "values" not in res:
        return f"{title}\nverdict: FAIL — {'; '.join(res['failures'])}"
    v, s, sig, j, f = res["values"], res["select"], res["signals"], res["join"], res["fork"]
    lat = sig["usr1_to_main_ms"]
    lat_s = f", to main p50 {lat['p50']:.2f} / p99 {lat['p99']:.2f} / max {lat['max']:.1f} ms" if lat else ""
    pre = res["preemptions"]
    cx = res["cancellation"]
    native = res["native"]
    rows = [
        ["values over channels (caps " + " ".join(f"{a}/{b}" for a, b in v["channels_caps"]) + ")",
         v["sent"], f"received {v['received']}: lost {v['lost']}, duplicated {v['duplicated']}, "
                    f"never sent {v['phantom']}; relayed {v['relayed']}"],
        ["select (Send/Recv, random timeouts)", s["calls"],
         f"timed out {s['timed_out']}, default taken {s['default_taken']}; timeouts of 0: "
         f"{res['timeouts']['zero']}, < 0.1 ms: {res['timeouts']['tiny_under_100us']}"],
        ["Mutex-protected increments", res["mutex"]["increments"], f"counter {res['mutex']['counter']}"],
        ["WaitGroup batches", res["waitgroup"]["batches"], f"{res['waitgroup']['goroutines']} goroutines"],
        ["Event.wait(timeout)", res["event_wait"]["calls"],
         f"set {res['event_wait']['set']}, timed out {res['event_wait']['timed_out']}, "
         f"early {res['event_wait']['early']}"],
        ["Goroutine.join(timeout)", j["calls"],
         f"joined {j['joined']}, timed out {j['timed_out']}, abandoned {j['abandoned']}; "
         f"{j['waiting_for_ever']} waiting for ever, unwound by run(): {j['unwound_at_end']}"],
        ["preempt.sleep(random)", res["sleep"]["calls"],
         f"early {res['sleep']['early']}, worst late {res['sleep']['worst_late_us'] / 1e3:.1f} ms"],
        ["CPU-bound Python chunks", res["cpu"]["chunks"], "results exact"],
        ["native pek_spin calls", native.get("calls", "-"),
         "results bit-exact" if "calls" in native else f"skipped: {native['skipped']}"],
        ["SIGUSR1 (handler raises)", sig["usr1_sent"],
         f"caught in main {sig['usr1_caught_in_main']}, in a worker {sig['usr1_in_worker']}, "
         f"lost {sig['usr1_lost']}{lat_s}"],
        ["SIGUSR2 (handler counts)", sig["usr2_sent"], f"handled {sig['usr2_handled']}"],
        ["fork() + check in the child", f["forks"], f"ok {f['ok']}, failed {f['failed']}, hung {f['hung']}"],
        ["g.cancel() of cancel-lane victims", cx["cancels"],
         f"{cx['lane_ops']} ops, {cx['lane_values']} values: {cx['lane_timeouts']} timed out, "
         f"{cx['lane_absorbed']} cancels caught, {cx['lane_ended_by_cancel']} ended a victim"],
        ["preempt.Group blocks", sum(cx["groups"].values()),
         ", ".join(f"{k} {v}" for k, v in cx["groups"].items()) + f"; {cx['group_members']} "
         f"members, {cx['group_failures']} failures grouped"],
        ["nested preempt.timeout blocks", cx["timeouts_fired"] + cx["timeouts_short"],
         f"fired {cx['timeouts_fired']}" + _p(" in a loop, deadline -> Timeout", cx["timeout_late_us"])],
        ["spinning goroutines cancelled", cx["spinners_cancelled"],
         "all unwound" + _p(", cancel -> finally", cx["spin_cancel_us"])],
        ["preemptions (stats())", pre["sync"] + pre["async"] + pre["timer"],
         f"sync {pre['sync']}, async {pre['async']}, timer {pre['timer']}"],
        ["goroutines spawned", res["goroutines_spawned"], f"{res['switches']} switches"],
        ["wall time s", round(res["wall_s"], 1), f"soak {res['soak_s']:.1f} + drain {res['drain_s']:.2f}"],
    ]
    width = max(len(r[2]) for r in rows)          # the table right-aligns: keep text flush left
    out = table(title, ["what", "tried", "outcome".ljust(width)], [r[:2] + [r[2].ljust(width)] for r in rows])
    if res["ok"]:
        verdict = "verdict: PASS — nothing lost, duplicated, early, wrong or hung; no failure"
    else:
        verdict = f"verdict: FAIL — {res.get('failures_total', len(res['failures']))} failure(s):\n" \
                  + "\n".join("  " + x.splitlines()[0] for x in res["failures"][:20])
    out = "\n".join(line.rstrip() for line in out.splitlines())
    return f"{out}\n{verdict}"
