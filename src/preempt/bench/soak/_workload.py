"""The soak's workload: the goroutines that keep channels, sync primitives, timed waits and the
preemption paths busy (1-3 of the package docstring). Each is started by ``_State.go`` as
``fn(st, c, rng, *args)``: ``c`` is its own Counter, merged into the books when it ends.
"""

from __future__ import annotations

import collections
import random
import time
from typing import Any, Dict, List, Optional

from ._books import EARLY_TOL, MAX_FOREVER, _State


def _timeout(rng: random.Random, c: collections.Counter, allow_none: bool = False) -> Optional[float]:
    """A random timeout: 0, tiny (< 0.1 ms), short (< 5 ms), longer (< 50 ms) or None."""
    r = rng.random()
    if r < 0.15:
        c["timeout 0"] += 1
        return 0.0
    if r < 0.40:
        c["timeout tiny"] += 1
        return rng.uniform(1e-7, 1e-4)
    if r < 0.80:
        return rng.uniform(1e-4, 5e-3)
    if allow_none and r < 0.90:
        return None
    return rng.uniform(5e-3, 0.05)


# --- 1. pipelines -------------------------------------------------------------------------------

def _producer(st: _State, c: Any, rng: random.Random, lane: int, p: int, a: Any) -> None:
    import preempt
    from preempt import Recv, Send

    seq = 0
    try:
        while not st.stop.is_set():
            v = (lane, p, seq)
            m = rng.random()
            if m < 0.3:
                a.send(v)
            elif m < 0.6:                      # beside the cancellation channel
                c["select"] += 1
                i, _ = preempt.select(Send(a, v), Recv(st.quit), timeout=_timeout(rng, c, True))
                if i == 1:
                    return                     # cancelled: v was not sent
                if i == -1:
                    c["select timed out"] += 1
                    continue                   # retry the same value
            elif m < 0.75:
                c["select"] += 1
                i, _ = preempt.select(Send(a, v), default=True)
                if i == -1:
                    c["select default"] += 1
                    preempt.gosched()
                    continue
            else:
                c["select"] += 1
                i, _ = preempt.select(Send(a, v), timeout=_timeout(rng, c))
                if i == -1:
                    c["select timed out"] += 1
                    continue
            seq += 1
            if rng.random() < 0.005:
                preempt.sleep(rng.uniform(0, 2e-3))
    finally:
        st.sent[(lane, p)] = seq


def _relay(st: _State, c: Any, rng: random.Random, a: Any, b: Any) -> None:
    """Moves values from A to B, up to 4 held, with one select on Recv(A) and Send(B, v)."""
    import preempt
    from preempt import Recv, Send

    buf: collections.deque = collections.deque()
    a_open = True
    while a_open or buf:
        cases: List[Any] = []
        if a_open and len(buf) < 4:
            cases.append(Recv(a))
        if buf:
            cases.append(Send(b, buf[0]))
        c["select"] += 1
        if rng.random() < 0.1:
            i, v = preempt.select(*cases, default=True)
            if i == -1:
                c["select default"] += 1
                preempt.gosched()
                continue
        else:
            i, v = preempt.select(*cases, timeout=_timeout(rng, c, True))
        if i == -1:
            c["select timed out"] += 1
            continue
        case = cases[i]
        if isinstance(case, Send):
            buf.popleft()
            c["relayed"] += 1
        elif case.ok:
            buf.append(v)
        else:
            a_open = False


def _consumer(st: _State, c: Any, rng: random.Random, chans: List[Any]) -> None:
    import preempt
    from preempt import ChanClosed, Recv

    ledger: Dict[tuple, bytearray] = {}
    st.ledgers.append(ledger)

    def got(v: tuple) -> None:
        key, seq = v[:2], v[2]
        b = ledger.get(key)
        if b is None:
            b = ledger[key] = bytearray()
        if seq >= len(b):
            b.extend(bytes(seq + 1 - len(b) + 1024))
        if b[seq] < 255:
            b[seq] += 1

    chans = list(chans)
    while chans:
        m = rng.random()
        if len(chans) > 1 or m < 0.4:
            cases = [Recv(ch) for ch in chans]
            c["select"] += 1
            i, v = preempt.select(*cases, timeout=_timeout(rng, c, True))
            if i == -1:
                c["select timed out"] += 1
            elif cases[i].ok:
                got(v)
            else:
                del chans[i]
        elif m < 0.6:
            try:
                got(chans[0].recv())
            except ChanClosed:
                chans = []
        elif m < 0.8:
            v, ok = chans[0].recv_ok()
            if ok:
                got(v)
            else:
                chans = []
        else:
            k = rng.randint(1, 64)
            for v in chans[0]:
                got(v)
                k -= 1
                if k == 0:
                    break
            else:
                chans = []


def _closer(st: _State, c: Any, rng: random.Random, wg: Any, ch: Any) -> None:
    wg.wait()
    ch.close()


def _member(st: _State, c: Any, rng: random.Random, wg: Any, body: Any, *args: Any) -> None:
    try:
        body(st, c, rng, *args)
    finally:
        wg.done()


# --- 2. sync, sleep and timeouts ----------------------------------------------------------------

class _Box:
    value = 0
    inside = 0


def _locker(st: _State, c: Any, rng: random.Random, mu: Any, box: _Box) -> None:
    import preempt

    while not st.stop.is_set():
        explicit = rng.random() < 0.3
        if explicit:
            mu.lock()
        else:
            mu.__enter__()
        try:
            box.inside += 1
            if box.inside != 1:
                st.fail(f"Mutex held by {box.inside} goroutines at once")
            x = box.value
            r = rng.random()
            if r < 0.2:
                preempt.gosched()
            elif r < 0.3:
                preempt.sleep(0)
            elif r < 0.5:
                for _ in range(rng.randint(1000, 20000)):
                    pass                       # long enough to be preempted holding the lock
            box.value = x + 1
            box.inside -= 1
        finally:
            mu.unlock() if explicit else mu.__exit__(None, None, None)
        c["mutex increments"] += 1


def _batcher(st: _State, c: Any, rng: random.Random) -> None:
    import preempt

    def member(st: _State, c: Any, rng: random.Random, flags: bytearray, i: int) -> None:
        r = rng.random()
        if r < 0.3:
            preempt.sleep(rng.uniform(0, 1e-3))
        elif r < 0.6:
            preempt.gosched()
        elif r < 0.8:
            sum(range(rng.randint(100, 5000)))
        flags[i] = 1

    while not st.stop.is_set():
        k = rng.randint(1, 16)
        wg, flags = preempt.WaitGroup(), bytearray(k)
        wg.add(k)
        for i in range(k):
            st.go(f"wg-member-{i}", _member, wg, member, flags, i)
        wg.wait()
        c["waitgroup batches"] += 1
        c["waitgroup goroutines"] += k
        if sum(flags) != k:
            st.fail(f"WaitGroup.wait() returned with {k - sum(flags)} of {k} members unfinished")


def _eventer(st: _State, c: Any, rng: random.Random) -> None:
    import preempt

    def setter(st: _State, c: Any, rng: random.Random, ev: Any, delay: float) -> None:
        preempt.sleep(delay)
        ev.set()

    while not st.stop.is_set():
        ev = preempt.Event()
        delay = rng.choice((0.0, rng.uniform(0, 1e-3), rng.uniform(0, 0.02)))
        g = st.go("setter", setter, ev, delay)
        t = _timeout(rng, c, allow_none=True)
        t0 = time.monotonic()
        r = ev.wait(t)
        dt = time.monotonic() - t0
        c["event waits"] += 1
        if r:
            c["event set"] += 1
            if not ev.is_set():
                st.fail("Event.wait() returned True for an event that is not set")
        else:
            c["event timed out"] += 1
            if t is None:
                st.fail("Event.wait(None) returned False")
            elif dt < t - EARLY_TOL:
                c["event early"] += 1
                st.fail(f"Event.wait({t:.6f}) returned False after {dt:.6f} s: early")
        g.join(30.0)


def _forever(st: _State, c: Any, rng: random.Random, how: int) -> None:
    import preempt

    st.forever.append(1)
    try:
        if how == 0:
            preempt.sleep(3600)
        elif how == 1:
            preempt.Chan().recv()
        else:
            preempt.Event().wait()
    finally:
        st.unwound.append(1)


def _finite(st: _State, c: Any, rng: random.Random, d: float, compute: bool) -> float:
    import preempt

    if compute:
        t0 = time.monotonic()
        while time.monotonic() - t0 < d:
            pass
    else:
        preempt.sleep(d)
    return d


def _joiner(st: _State, c: Any, rng: random.Random) -> None:
    from preempt import JoinTimeout

    while not st.stop.is_set():
        forever = len(st.forever) - len(st.unwound) < MAX_FOREVER and rng.random() < 0.1
        d = rng.uniform(0, 0.02)
        g = (st.go("forever", _forever, rng.randrange(3)) if forever
             else st.go("finite", _finite, d, rng.random() < 0.3))
        c["joins"] += 1
        try:
            r = g.join(_timeout(rng, c, allow_none=not forever))
            c["joined"] += 1
        except JoinTimeout:
            c["join timed out"] += 1
            if forever or rng.random() < 0.5:
                c["abandoned"] += 1
                continue
            r = g.join(30.0)                   # JoinTimeout now would be a hang
        if forever:
            st.fail("join() returned for a goroutine that waits for ever")
        elif r != d:
            st.fail(f"join() returned {r!r}, expected {d!r}")


def _sleeper(st: _State, c: Any, rng: random.Random) -> None:
    import preempt

    worst = 0.0
    try:
        while not st.stop.is_set():
            d = rng.choice((0.0, rng.uniform(0, 1e-4), rng.uniform(0, 2e-3), rng.uniform(0, 0.02)))
            t0 = time.monotonic()
            preempt.sleep(d)
            dt = time.monotonic() - t0
            c["sleeps"] += 1
            if dt < d - EARLY_TOL:
                c["sleep early"] += 1
                st.fail(f"sleep({d:.6f}) returned after {dt:.6f} s: early")
            worst = max(worst, dt - d)
    finally:
        st.worst_late.append(worst)


# --- 3. preemption ------------------------------------------------------------------------------

def _cpu(st: _State, c: Any, rng: random.Random) -> None:
    while not st.stop.is_set():
        n = rng.randint(50_000, 300_000)
        x = 0
        for i in range(n):
            x += i
        c["cpu chunks"] += 1
        if x != n * (n - 1) // 2:
            st.fail(f"a pure-Python sum of range({n}) gave {x}: wrong under preemption")


def _native(st: _State, c: Any, rng: random.Random, kern: Any, expect: Dict[int, int]) -> None:
    while not st.stop.is_set():
        iters = rng.choice(list(expect))
        r = kern.pek_spin(iters)
        c["native calls"] += 1
        if r != expect[iters]:
            st.fail(f"pek_spin({iters}) returned {r:#x}, expected {expect[iters]:#x}")
