"""Switch costs: channel ping-pong, the Benchmarks Game's thread-ring and chameneos-redux, the
concurrent prime sieve, and spawn+join, in µs per operation (median of runs), beside Go.

Run: python -m preempt.bench --only switch [--quick|--full], or python benchmarks/bench_pingpong.py
[--rounds N] [--repeat R]. docs/design.md §7 item 4. Targets: round trip <= 2 µs, spawn+join <= 5 µs.
Preemption is off (slice=0) so that the numbers measure the scheduler, not the monitor.

The programs, each checking its answer:

* thread-ring (the Benchmarks Game): 503 goroutines in a ring of unbuffered channels pass a
  token that each decrements, ``10 * rounds`` hops in all (10^6 by default); the member holding
  it at 0 is the answer. Every hop is one channel hand-off and one switch to a goroutine whose
  stack is not the last one used: the switch with many parked goroutines, where ping-pong
  measures it between two.
* chameneos-redux (the Benchmarks Game): creatures of three colours go to a meeting place, a
  one-slot channel holding its state (its lock); the first waits on its own channel, the second
  completes the meeting, and both take the complement of the two colours. ``rounds`` meetings
  with 3 creatures, then with 10; µs per meeting.
* prime sieve (Go's classic concurrent sieve, from its documentation and tour): a generator
  sends 2, 3, 4, … and each prime found starts a filter goroutine that drops its multiples, all
  chained by unbuffered channels; the first ``rounds // 100`` primes (1,000 by default). µs per channel hand-off
  (:func:`sieve_handoffs` counts them; the same count divides Go's time).

Fair to every side (the Go peer is ``go/switch.go``, GOMAXPROCS=1; gevent's are below):

1. Every program runs once untimed (the warm-up), then ``repeat`` times; the median is printed.
2. The thread-ring's members are started and parked before the clock starts, on every side.
3. The same algorithm, sizes and check on every side; only the channel type differs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable, List, Optional

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
# the rows' names, shared with go/switch.go's output; a gevent row adds GEVENT
RING_OP = "thread-ring hop (503 goroutines)"
CHAMENEOS_OP = "chameneos-redux meeting (3, then 10 creatures)"
SIEVE_OP = "prime sieve hand-off"
GEVENT = ", gevent"


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


BLUE, RED, YELLOW = 0, 1, 2
CHAMENEOS = ((BLUE, RED, YELLOW),
             (BLUE, RED, YELLOW, RED, YELLOW, BLUE, RED, YELLOW, RED, BLUE))  # the game's two runs


def _complement(a: int, b: int) -> int:
    """Two different colours complement to the third; a colour meets itself unchanged."""
    return a if a == b else 3 - a - b


def _creature(colour: int, name: int, meetings: int, mall: Any, ended: Any, mine: Any) -> None:
    """One chameneos. ``mall`` is the one-slot meeting place holding ``(n, mate, colour, name)``
    (it is the lock: whoever took the state puts it back), ``mine`` this creature's channel.
    Any channel with ``send`` and ``recv`` does: preempt's, or gevent's below."""
    met = same = 0
    while True:
        n, mate, mcolour, mname = mall.recv()
        if n >= meetings:
            mall.send((n, mate, mcolour, mname))
            ended.send((met, same))
            return
        if mate is None:                    # nobody waits: wait here to be met
            mall.send((n, mine, colour, name))
            ocolour, oname = mine.recv()
        else:                               # someone waits: this is a meeting
            mall.send((n + 1, None, 0, 0))
            mate.send((colour, name))
            ocolour, oname = mcolour, mname
        colour = _complement(colour, ocolour)
        same += oname == name
        met += 1


def _check_chameneos(tallies: List[tuple], meetings: int) -> None:
    if any(same for _, same in tallies) or sum(met for met, _ in tallies) != 2 * meetings:
        raise AssertionError(f"chameneos-redux: tallies {tallies} for {meetings} meetings")


def chameneos(meetings: int) -> float:
    """µs per meeting of preempt's chameneos-redux: ``meetings`` with 3 creatures, then 10."""
    def main() -> float:
        t0 = time.perf_counter()
        for colours in CHAMENEOS:
            mall, ended = preempt.Chan(1), preempt.Chan()
            mall.send((0, None, 0, 0))
            for name, c in enumerate(colours):
                preempt.go(_creature, c, name, meetings, mall, ended, preempt.Chan())
            _check_chameneos([ended.recv() for _ in colours], meetings)
        return (time.perf_counter() - t0) / (len(CHAMENEOS) * meetings) * 1e6

    return preempt.run(main, slice=0)


class _GeventChan:
    """gevent's channel (or a one-slot queue) under preempt.Chan's ``send``/``recv`` names."""

    def __init__(self, cap: int = 0) -> None:
        from gevent.queue import Channel, Queue

        q = Queue(cap) if cap else Channel()
        self.send, self.recv = q.put, q.get


def chameneos_gevent(meetings: int) -> float:
    """The same chameneos-redux on gevent."""
    import gevent

    t0 = time.perf_counter()
    for colours in CHAMENEOS:
        mall, ended = _GeventChan(1), _GeventChan()
        mall.send((0, None, 0, 0))
        gs = [gevent.spawn(_creature, c, name, meetings, mall, ended, _GeventChan())
              for name, c in enumerate(colours)]
        _check_chameneos([ended.recv() for _ in colours], meetings)
        gevent.joinall(gs)
    return (time.perf_counter() - t0) / (len(CHAMENEOS) * meetings) * 1e6


def sieve_primes(rounds: int) -> int:
    """How many primes the sieve finds in a run of ``rounds`` (go/switch.go's rule)."""
    return max(20, rounds // 100)


def sieve_handoffs(n: int) -> int:
    """The channel receives the sieve makes to find the first ``n`` primes: a prime p_m is
    received by the filters of p_1 .. p_(m-1) and by main, a composite by the filters up to
    that of its least prime factor, which drops it. (Values in flight when main stops, at most
    one per goroutine, are left out on every side.)"""
    primes: List[int] = []
    total, k = 0, 1
    while len(primes) < n:
        k += 1
        for j, p in enumerate(primes):
            if k % p == 0:
                total += j + 1
                break
        else:
            primes.append(k)
            total += len(primes)
    return total


def _generate(ch: Any) -> None:
    i = 2
    while True:
        ch.send(i)
        i += 1


def _filter(inp: Any, out: Any, prime: int) -> None:
    while True:
        i = inp.recv()
        if i % prime:
            out.send(i)


def _sieve(n: int, chan: Callable[[], Any], go: Callable[..., Any]) -> int:
    """The first ``n`` primes, each starting a filter; returns the last."""
    ch = chan()
    go(_generate, ch)
    prime = 0
    for _ in range(n):
        prime = ch.recv()
        nxt = chan()
        go(_filter, ch, nxt, prime)
        ch = nxt
    return prime


def _check_sieve(n: int, last: int) -> None:
    if n == 1000 and last != 7919:
        raise AssertionError(f"sieve: the 1000th prime is 7919, not {last}")


def sieve(n: int) -> float:
    """µs per hand-off of preempt's prime sieve for the first ``n`` primes (run() ends the
    goroutines left parked after the clock stopped)."""
    def main() -> float:
        t0 = time.perf_counter()
        last = _sieve(n, preempt.Chan, preempt.go)
        dt = time.perf_counter() - t0
        _check_sieve(n, last)
        return dt / sieve_handoffs(n) * 1e6

    return preempt.run(main, slice=0)


def sieve_gevent(n: int) -> float:
    """The same sieve on gevent; its greenlets are killed after the clock stopped."""
    import gevent

    gs: List[Any] = []
    t0 = time.perf_counter()
    last = _sieve(n, _GeventChan, lambda fn, *a: gs.append(gevent.spawn(fn, *a)))
    dt = time.perf_counter() - t0
    gevent.killall(gs)
    _check_sieve(n, last)
    return dt / sieve_handoffs(n) * 1e6


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
    """{name: {"median", "min", "max", "runs"}} in µs per operation; each program runs once
    untimed first (the warm-up, as go/switch.go does)."""
    primes = sieve_primes(rounds)
    rows = [
        ("raw greenlet round trip", lambda: raw_greenlet(rounds)),
        ("chan ping-pong round trip", lambda: pingpong(rounds)),
        (RING_OP, lambda: thread_ring(10 * rounds)),
        (CHAMENEOS_OP, lambda: chameneos(rounds)),
        (SIEVE_OP, lambda: sieve(primes)),
        ("spawn+join (one at a time)", lambda: spawn_join(rounds // 2)),
        ("spawn+join (10k, then join all)", lambda: spawn_many_join(10_000)),
    ]
    try:
        import gevent  # noqa: F401
        rows[3:3] = [(RING_OP + GEVENT, lambda: thread_ring_gevent(10 * rounds))]
        rows[5:5] = [(CHAMENEOS_OP + GEVENT, lambda: chameneos_gevent(rounds))]
        rows[7:7] = [(SIEVE_OP + GEVENT, lambda: sieve_gevent(primes))]
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


def go_peer(name: str, go: dict) -> Optional[float]:
    """Go's figure for a row (a gevent row is compared with the same Go program), or None."""
    v = go.get(name[:-len(GEVENT)] if name.endswith(GEVENT) else name)
    return v if isinstance(v, float) and v > 0 else None


def report(res: dict) -> str:
    from ._stats import table

    go = res.get("go", {})
    rows = []
    for k, v in res.items():
        if k == "go":
            continue
        g = go_peer(k, go)
        rows.append([k, v["median"], v["min"], v["max"], v["runs"],
                     f"{g:.3f}" if g else "-", f"{v['median'] / g:.2f}x" if g else "-"])
    out = table("Switch costs (µs per operation, median of runs after one warm-up run)",
                ["operation", "median", "min", "max", "runs", "Go (GOMAXPROCS=1)", "vs Go"], rows)
    if "skipped" in go:
        out += f"\n  Go skipped: {go['skipped']}"
    else:
        out += ("\n  Go: go/switch.go, the same programs, sizes, warm-up and pre-started ring, "
                "median of as many runs; gevent's rows are compared with the same Go program")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    res = measure(a.rounds, a.repeat)
    res["go"] = measure_go(a.rounds, a.repeat)
    print(report(res))


if __name__ == "__main__":
    main()
