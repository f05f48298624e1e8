"""Cancellation latency: from ``g.cancel()`` (or a ``timeout()`` deadline) to the goroutine's
``finally`` running, beside asyncio's ``task.cancel()`` (``--only cancel``).

Cases:

- parked: the goroutine waits in ``Chan.recv()``; another cancels it and joins.
- python loop: the goroutine computes in a pure-Python loop (``x += 1``) and has been
  preempted; another cancels it and joins. asyncio cannot do this (a task that computes never
  reaches an ``await``, so nobody runs to call ``cancel()``).
- native call: the goroutine is inside a registered native call of ~100 ms
  (``pek_spin`` through ``preemptible()``), async-preempted; it is cancelled 10 ms in. The
  exception lands when the call returns: the figure is the rest of the call.
- timeout, loop: ``with preempt.timeout(d):`` around a pure-Python loop; from the deadline to
  the ``except`` inside the goroutine (sysmon preempts the moment the timer is due).
- asyncio parked: a task awaiting ``queue.get()``; ``task.cancel()``; ``await task``.

Each sample is one cancellation, timed with ``perf_counter_ns`` on both sides.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, List

from ._stats import percentiles, table

_ns = time.perf_counter_ns


def _sample(out: List[float], victim: Any, args: tuple, settle: Any) -> None:
    """One sample: starts ``victim(*args, box)``, lets it settle (``settle()``, again until the
    victim has started: it appends 0 to ``box`` first), cancels it, joins it and records µs
    from cancel() to its finally (which appends the time to ``box``).

    A goroutine cancelled before its first turn never runs its body, so it has no ``finally``
    to time: on a loaded machine a 0.5 ms settle can end before the victim started (seen: 12
    in 2,000 under a parallel build), which left ``box`` empty.
    """
    import preempt

    box: list = []
    g = preempt.go(victim, *args, box)
    settle()
    while not box:
        settle()
    t0 = _ns()
    g.cancel()
    try:
        g.join()
    except preempt.Cancelled:
        pass
    g = None      # the exception's traceback keeps this frame: no frame -> G -> exc cycle
    out.append((box[-1] - t0) / 1000)


def _parked(n: int) -> List[float]:
    import preempt

    out: List[float] = []

    def victim(ch: Any, box: list) -> None:
        box.append(0)
        try:
            ch.recv()
        finally:
            box.append(_ns())

    def main() -> None:
        for _ in range(n):               # gosched: it runs and parks in recv
            _sample(out, victim, (preempt.Chan(),), preempt.gosched)

    preempt.run(main)
    return out


def _loop(n: int) -> List[float]:
    import preempt

    out: List[float] = []

    def victim(box: list) -> None:
        box.append(0)
        x = 0
        try:
            while True:
                x += 1
        finally:
            box.append(_ns())

    def main() -> None:
        for _ in range(n):               # it computes; the timer preempts it to wake us
            _sample(out, victim, (), lambda: preempt.sleep(0.0005))

    preempt.run(main)
    return out


def _timeout_loop(n: int) -> List[float]:
    import preempt

    out: List[float] = []

    def main() -> None:
        for _ in range(n):
            x = 0
            try:
                with preempt.timeout(0.002) as t:
                    while True:
                        x += 1
            except preempt.Timeout:
                out.append((time.monotonic() - t.deadline) * 1e6)

    preempt.run(main)
    return out


def _native(n: int) -> List[float]:
    import preempt
    from ._kernels_lib import load_kernels
    _kernels = load_kernels()

    lib = _kernels.lib
    t = time.perf_counter()
    lib.pek_spin(2_000_000)
    iters = int(2_000_000 / max(time.perf_counter() - t, 1e-6) * 0.1)   # ~100 ms
    out: List[float] = []

    def main() -> None:
        kern = preempt.preemptible(lib, reentrant=True)

        def victim(box: list) -> None:
            box.append(0)
            try:
                kern.pek_spin(iters)
            finally:
                box.append(_ns())

        for _ in range(n):
            _sample(out, victim, (), lambda: preempt.sleep(0.010))
        kern.close()

    preempt.run(main)
    return out


def _asyncio_parked(n: int) -> List[float]:
    out: List[float] = []

    async def victim(q: asyncio.Queue, box: list) -> None:
        try:
            await q.get()
        finally:
            box.append(_ns())

    async def main() -> None:
        for _ in range(n):
            q: asyncio.Queue = asyncio.Queue()
            box: list = []
            task = asyncio.ensure_future(victim(q, box))
            await asyncio.sleep(0)
            t0 = _ns()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            out.append((box[-1] - t0) / 1000)

    asyncio.run(main())
    return out


def measure(n: int = 2000, n_native: int = 20) -> Dict[str, Any]:
    """Samples (µs) and their percentiles for every case."""
    res: Dict[str, Any] = {}
    for name, fn, k in (("parked on a channel", _parked, n), ("pure-Python loop", _loop, n),
                        ("registered native call (100 ms)", _native, n_native),
                        ("timeout() deadline, Python loop", _timeout_loop, max(50, n // 10)),
                        ("asyncio task.cancel(), parked", _asyncio_parked, n)):
        try:
            s = fn(k)
        except Exception as e:          # a case that cannot run here is reported, not fatal
            res[name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        res[name] = {"samples": s, **percentiles(s)}
    return res


def report(res: Dict[str, Any]) -> str:
    rows = []
    for name, r in res.items():
        if "error" in r:
            rows.append([name, "-", "-", "-", r["error"]])
        else:
            rows.append([name, r["p50"], r["p99"], r["max"], r["n"]])
    rows.append(["asyncio, computing task", "-", "-", "-", "cannot be cancelled"])
    return table("Cancellation: cancel() (or the deadline) -> the goroutine's finally (µs)",
                 ["case", "p50", "p99", "max", "n"], rows)
