"""Channel ping-pong round trip, thread-ring and spawn+join per goroutine (µs, median of runs).

Run: python benchmarks/bench_pingpong.py [--rounds N] [--repeat R], or as part of
python -m preempt.bench. DESIGN.md §7 item 4. Targets: round trip <= 2 µs, spawn+join <= 5 µs.
Preemption is off (slice=0) so that the numbers measure the scheduler, not the monitor.

thread-ring is the Benchmarks Game program: 503 goroutines in a ring of unbuffered channels pass
a token that each decrements, ``10 * rounds`` hops in all (10^6 by default); the member holding
it at 0 is the answer. Every hop is one channel hand-off and one switch to a goroutine whose
stack is not the last one used, so it measures the switch with many parked goroutines, where
ping-pong measures it between two. Go's version is in ``go/switch.go``; gevent's is below.
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


RING = 503           # the Benchmarks Game's ring size


def thread_ring(hops: int, members: int = RING) -> float:
    """µs per hop of preempt's thread-ring; checks the answer (which member holds 0)."""
    def main() -> float:
        chans = [preempt.Chan() for _ in range(members)]
        done = preempt.Chan()

        def member(ident: int, inp: preempt.Chan, out: preempt.Chan) -> None:
            for token in inp:
                if token == 0:
                    done.send(ident)
                else:
                    out.send(token - 1)

        for i in range(members):
            preempt.go(member, i + 1, chans[i], chans[(i + 1) % members])
        preempt.sleep(0)               # every member starts and parks on its channel
        t0 = time.perf_counter()
        chans[0].send(hops)
        who = done.recv()
        dt = time.perf_counter() - t0
        for c in chans:
            c.close()
        _check_ring(who, hops, members)
        return dt / hops * 1e6

    return preempt.run(main, slice=0)


def _check_ring(who: int, hops: int, members: int) -> None:
    if who != hops % members + 1:
        raise AssertionError(f"thread-ring: member {who} holds the token, not {hops % members + 1}")


def thread_ring_gevent(hops: int, members: int = RING) -> float:
    """µs per hop of the same program on gevent (``gevent.queue.Channel``)."""
    import gevent
    from gevent.queue import Channel

    chans = [Channel() for _ in range(members)]
    done = Channel()

    def member(ident: int, inp: Channel, out: Channel) -> None:
        while True:
            token = inp.get()
            if token == 0:
                done.put(ident)
                return
            out.put(token - 1)

    gs = [gevent.spawn(member, i + 1, chans[i], chans[(i + 1) % members]) for i in range(members)]
    gevent.sleep(0)
    t0 = time.perf_counter()
    chans[0].put(hops)
    who = done.get()
    dt = time.perf_counter() - t0
    gevent.killall(gs)
    _check_ring(who, hops, members)
    return dt / hops * 1e6


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
        ("thread-ring hop (503 goroutines)", lambda: thread_ring(10 * rounds)),
        ("spawn+join (one at a time)", lambda: spawn_join(rounds // 2)),
        ("spawn+join (10k, then join all)", lambda: spawn_many_join(10_000)),
    ]
    try:
        import gevent  # noqa: F401
        rows.insert(3, ("thread-ring hop, gevent", lambda: thread_ring_gevent(10 * rounds)))
    except ImportError:
        pass
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
             f"{go[k]:.2f}" if isinstance(go.get(k), float) else "-",
             f"{v['median'] / go[k]:.1f}x" if isinstance(go.get(k), float) and go[k] > 0 else "-"]
            for k, v in res.items() if k != "go"]
    out = table("Switch costs (µs per operation, median of runs)",
                ["operation", "median", "min", "max", "runs", "Go (GOMAXPROCS=1)", "vs Go"], rows)
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
