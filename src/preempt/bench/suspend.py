"""Suspension latency: request -> thread parked at an async safe-point, beside a bare signal.

A worker thread spins in preempt._kernels (registered preemptible, GIL released); the main
thread suspends and resumes it ``n`` times. For each suspension the core records, on the
monotonic clock, when the first signal was sent and when the trampoline's C entry had the thread
parked (one-way latency); the caller also times the whole ``suspend()`` call (round trip: until it
observes the park). In the same run, to the same thread, ``pe_bench_signal_rtt`` measures a bare
tgkill whose handler only stamps the time and wakes the sender: the part of a suspension that is
the kernel's signal delivery, not ours.

After each resume the requester waits 200 µs so that the next request finds the worker back in
its loop; the worker's declined-signal count is reported so that retries cannot hide.
"""

from __future__ import annotations

import threading
import time
from typing import Dict, List

from .. import _corelib, preemptible, threads


def _spinner():
    from ._kernels_lib import load_kernels
    _kernels = load_kernels()

    return _kernels


def measure(n: int = 10_000, warmup: int = 500) -> Dict[str, Dict[str, float]]:
    """Runs the benchmark; returns {series: percentiles in µs}."""
    from ._stats import percentiles

    ffi, lib = _corelib.core()
    kern = _spinner()
    reg = preemptible(kern.lib)
    stop = kern.ffi.new("int32_t *", 0)
    box: Dict[str, object] = {}
    ready = threading.Event()

    def body() -> None:
        box["h"] = threads.current()
        ready.set()
        kern.lib.pek_spin_until(stop)

    t = threading.Thread(target=body, name="bench-spinner", daemon=True)
    t.start()
    ready.wait(10)
    h = box["h"]
    one_way: List[float] = []
    round_trip: List[float] = []
    try:
        for i in range(n + warmup):
            t0 = time.perf_counter_ns()
            if not h.suspend(timeout=5):
                raise RuntimeError("the spinner was not suspended within 5 s")
            t1 = time.perf_counter_ns()
            lat = h.last_suspend_latency_ns()
            h.resume()
            # Let it get back into the loop: a request that lands while it is still leaving
            # the park is declined and retried, which would measure our back-off, not latency.
            until = time.perf_counter_ns() + 200_000
            while time.perf_counter_ns() < until:
                pass
            if i >= warmup:
                one_way.append(lat / 1000)
                round_trip.append((t1 - t0) / 1000)
        raw = ffi.new("int64_t[]", 2 * n)
        rc = lib.pe_bench_signal_rtt(h._slot, h._gen, n, raw)
        if rc != lib.PE_OK:
            raise RuntimeError(f"signal round-trip benchmark failed: {rc}")
        declined = h.stats()["declined"]
    finally:
        stop[0] = 1
        t.join(10)
        reg.close()
    sig_one = [raw[2 * i] / 1000 for i in range(n)]
    sig_rt = [raw[2 * i + 1] / 1000 for i in range(n)]
    return {
        "_declined": {"n": declined},
        "suspend: request -> parked (one-way)": percentiles(one_way),
        "suspend: suspend() call (round trip)": percentiles(round_trip),
        "bare signal: tgkill -> handler (one-way)": percentiles(sig_one),
        "bare signal: tgkill -> ack seen (round trip)": percentiles(sig_rt),
    }


def report(results: Dict[str, Dict[str, float]]) -> str:
    from ._stats import table

    rows = [[k, v["n"], v["p50"], v["p90"], v["p99"], v["max"]] for k, v in results.items() if not k.startswith("_")]
    declined = results.get("_declined", {}).get("n", 0)
    return (table("Suspension latency (µs)", ["series", "n", "p50", "p90", "p99", "max"], rows)
            + f"\n(signals declined and retried during the suspend series: {declined})")
