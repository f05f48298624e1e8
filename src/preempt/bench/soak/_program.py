"""The soak's child program: the disturbances (signals from an OS thread, forks; 4-5 of the
package docstring), main's own loop of interruptible waits, and ``soak()``, which runs it all in
one ``preempt.run()`` and checks the books. Runs only in the child interpreter (``__main__.py``):
it fills the process with signal handlers and forks.
"""

from __future__ import annotations

import collections
import ctypes
import os
import random
import select as _select
import signal
import sys
import threading
import time
import traceback
from typing import Any, Dict, List, Optional

from ._books import (ACK_DEADLINE, DRAIN_DEADLINE, EARLY_TOL, FORK_DEADLINE, WATCHDOG_SLACK, _ACK,
                     SoakSignal, _check_books, _State)
from ._cancels import _cancel_lane, _grouper, _spin_cancel, _timeouter
from ._workload import (_batcher, _Box, _closer, _consumer, _cpu, _eventer, _forever, _joiner,
                        _locker, _member, _native, _producer, _relay, _sleeper)


# --- 4. signals ---------------------------------------------------------------------------------

def _sender(st: _State, rng: random.Random) -> None:
    """OS thread: one signal at a time, each acknowledged (or lost after ACK_DEADLINE). The
    first is sent only after main acknowledged number 0 from inside its ``try`` (see _main):
    before that a signal could land where no program would catch it."""
    acked: set = set()
    buf = [b""]

    def wait_ack(seq: int, deadline: float) -> bool:
        while seq not in acked:
            left = deadline - time.monotonic()
            if left <= 0 or (seq == 0 and st.sender_stop):
                return False
            if _select.select([st.ack_r], [], [], min(left, 0.1))[0]:
                b = buf[0] + os.read(st.ack_r, 4096)
                whole = len(b) - len(b) % 8
                acked.update(x for (x,) in _ACK.iter_unpack(b[:whole]))
                buf[0] = b[whole:]
        return True

    if not wait_ack(0, time.monotonic() + ACK_DEADLINE):
        if not st.sender_stop:
            st.fail("main did not reach its signal loop")
        return
    seq = 0
    while not st.sender_stop:
        time.sleep(rng.uniform(0.002, 0.05))
        if st.sender_stop:
            break
        seq += 1
        name = "SIGUSR1" if rng.random() < 0.75 else "SIGUSR2"
        st.pending_seq = seq
        st.sent_at[seq] = time.perf_counter()
        st.sig_sent[name].append(seq)
        os.kill(st.pid, getattr(signal, name))
        if not wait_ack(seq, time.monotonic() + ACK_DEADLINE):
            st.sig_lost.append(seq)


def _on_usr1(st: _State) -> Any:
    def handler(signum: int, frame: Any) -> None:
        raise SoakSignal(st.pending_seq)
    return handler


def _on_usr2(st: _State) -> Any:
    def handler(signum: int, frame: Any) -> None:
        st.usr2_handled.append(st.pending_seq)
        st.ack(st.pending_seq)
    return handler


def _caught(st: _State, e: SoakSignal, where: str, waits: collections.Counter) -> int:
    """Main caught the SIGUSR1 exception ``e`` during ``where``; returns its number, which main
    acknowledges once it is back inside its ``try`` (see _main)."""
    seq = e.args[0]
    if seq in st.caught:
        st.caught_dup.append(seq)
        st.fail(f"SIGUSR1 exception #{seq} reached main twice")
    st.caught[seq] = time.perf_counter()
    waits[where] += 1
    return seq


# --- 5. fork ------------------------------------------------------------------------------------

def _fork_child(st: _State) -> int:
    """In the fork child, in the forking goroutine: does the inherited runtime work?"""
    import preempt
    from preempt import Recv

    st.in_child = True
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)   # a signal caught mid-fork stays here
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG: die with the parent
    if os.getppid() != st.pid:
        return 97
    t0 = time.monotonic()
    preempt.sleep(0.02)
    if not 0.02 - EARLY_TOL <= time.monotonic() - t0 < 5.0:
        return 2
    ch, back = preempt.Chan(), preempt.Chan(1)
    g = preempt.go(lambda: back.send(ch.recv() + 1))
    ch.send(41)
    if back.recv() != 42 or g.join(5.0) is not None:
        return 3
    if preempt.select(Recv(preempt.Chan()), timeout=0.01)[0] != -1:
        return 4
    return 0


_CHILD_CODES = {2: "sleep() broken", 3: "channel round trip broken", 4: "select timeout broken",
                5: "raised", 97: "wrong parent"}


def _forker(st: _State, c: Any, rng: random.Random) -> None:
    import preempt

    st.stop.wait(rng.uniform(0.3, 0.8))
    while not st.stop.is_set():
        c["forks"] += 1
        with preempt.no_preempt():
            # The child marks itself before any other goroutine of its copy can run: main's
            # copy, holding a signal caught but not acknowledged, would acknowledge it into
            # the pipe the child shares with the parent, and the sender's next signal would
            # land in the parent's except clause.
            pid = os.fork()
            if pid == 0:
                st.in_child = True
        if pid == 0:
            code = 5
            try:
                code = _fork_child(st)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        st.children.add(pid)
        deadline = time.monotonic() + FORK_DEADLINE
        while True:
            p, status = os.waitpid(pid, os.WNOHANG)
            if p == pid:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                rc = None
                break
            preempt.sleep(0.005)
        st.children.discard(pid)
        st.fork_rcs.append(rc)
        if rc == 0:
            c["forks ok"] += 1
        elif rc is None:
            c["forks hung"] += 1
            st.fail(f"fork child {pid} hung: killed after {FORK_DEADLINE:.0f} s")
        else:
            c["forks failed"] += 1
            st.fail(f"fork child {pid} exited {rc} ({_CHILD_CODES.get(rc, 'crashed')})")
        st.stop.wait(rng.uniform(1.5, 3.5))


# --- main ---------------------------------------------------------------------------------------

def _main(st: _State, kern: Any, expect: Dict[int, int]) -> Dict[str, Any]:
    import preempt
    from preempt import JoinTimeout, Recv

    signal.signal(signal.SIGUSR1, _on_usr1(st))
    signal.signal(signal.SIGUSR2, _on_usr2(st))
    st.stop, st.quit = preempt.Event(), preempt.Chan()
    rng = st.rand()
    workers: List[Any] = []
    lanes = [(preempt.Chan(0), preempt.Chan(0))] + [
        (preempt.Chan(rng.choice((0, 1, 3, 64))), preempt.Chan(rng.choice((0, 1, 3, 64))))
        for _ in range(2)]
    st.caps = [[a.cap, b.cap] for a, b in lanes]
    for lane, (a, b) in enumerate(lanes):
        pw, rw = preempt.WaitGroup(), preempt.WaitGroup()
        np, nr = rng.randint(1, 3), rng.randint(1, 2)
        pw.add(np)
        rw.add(nr)
        for p in range(np):
            workers.append(st.go(f"producer-{lane}.{p}", _member, pw, _producer, lane, p, a))
        for r in range(nr):
            workers.append(st.go(f"relay-{lane}.{r}", _member, rw, _relay, a, b))
        workers.append(st.go(f"closer-A{lane}", _closer, pw, a))
        workers.append(st.go(f"closer-B{lane}", _closer, rw, b))
        workers.append(st.go(f"consumer-{lane}", _consumer, [b]))
        other = lanes[(lane + 1) % len(lanes)][1]
        workers.append(st.go(f"consumer-{lane}+", _consumer, [b, other]))
    mu, box = preempt.Mutex(), _Box()
    workers += [st.go(f"locker-{i}", _locker, mu, box) for i in range(3)]
    workers += [st.go("batcher", _batcher)]
    workers += [st.go(f"eventer-{i}", _eventer) for i in range(2)]
    workers += [st.go(f"joiner-{i}", _joiner) for i in range(2)]
    workers += [st.go(f"sleeper-{i}", _sleeper) for i in range(2)]
    workers += [st.go(f"cpu-{i}", _cpu) for i in range(2)]
    if kern is not None:
        workers.append(st.go("native", _native, kern, expect))
    workers += [st.go(f"cancel-lane-{i}", _cancel_lane, i) for i in range(2)]
    workers += [st.go("grouper", _grouper), st.go("timeouter", _timeouter),
                st.go("spin-cancel", _spin_cancel)]
    workers.append(st.go("forker", _forker))
    long_one = st.go("forever", _forever, 0)
    never, quiet = preempt.Event(), preempt.Chan()
    sender = threading.Thread(target=_sender, args=(st, st.rand()), name="soak-signals", daemon=True)
    sender.start()

    t0 = time.monotonic()
    end, beat = t0 + st.seconds, t0 + 10.0
    waits: collections.Counter = collections.Counter()     # main's waits interrupted, by kind
    tried: collections.Counter = collections.Counter()
    kinds = ("sleep", "Event.wait", "select", "join", "gosched", "own code")
    to_ack: Optional[int] = 0         # 0: "main is in its try", the sender's start
    done = False
    while not done:
        # Two loops: the inner one's back-edge is inside the try. A signal's exception may
        # land at any instruction (as in any Python program), and main may be switched out at
        # a back-edge and raise it there when it resumes; at the back-edge of a
        # `while True: try:` loop it would escape. The outer back-edge runs only after the
        # except clause, before main acknowledged the signal: none is in flight then.
        try:
            while True:
                kind = "own code"
                if to_ack is not None:
                    # Acknowledged only here, inside the try: the sender's next signal can
                    # then only land where main catches it. (Acknowledged in the except
                    # clause, it could land after it — main preempted there, say — and escape
                    # the loop, as it would in any Python program that catches a handler's
                    # exception in part of its loop.)
                    st.ack(to_ack)
                    to_ack = None
                if st.in_child:                # main's copy in a fork child: keep out of the way
                    preempt.sleep(3600)
                    continue
                now = time.monotonic()
                if now >= end:                 # every step idempotent: a signal may cut it short
                    st.sender_stop = True
                    if not st.stop.is_set():
                        st.stop.set()
                    if not st.quit.closed():
                        st.quit.close()        # the producers' cancellation
                    if not sender.is_alive():
                        done = True
                        break
                    if now > end + ACK_DEADLINE + 5.0:
                        st.fail("the signal sender thread did not stop")
                        done = True
                        break
                if beat <= now < end:
                    beat += 10.0
                    print(f"soak: {now - t0:.0f}/{st.seconds:g} s, {len(st.caught)} SIGUSR1 "
                          f"caught, {len(st.fork_rcs)} forks", file=sys.stderr, flush=True)
                kind = rng.choice(kinds[:-1])
                t = min(rng.uniform(0, 0.03), max(end - now, 0.001))
                tried[kind] += 1
                if kind == "sleep":
                    preempt.sleep(t)
                elif kind == "Event.wait":
                    never.wait(t)
                elif kind == "select":
                    preempt.select(Recv(quiet), timeout=t)
                elif kind == "join":
                    try:
                        long_one.join(t)
                    except JoinTimeout:
                        pass
                else:
                    preempt.gosched()
                kind = "own code"
        except SoakSignal as e:
            to_ack = _caught(st, e, kind, waits)
    # Signals are over; a lost one that turns up now is counted, not raised.
    signal.signal(signal.SIGUSR1, lambda *_: st.late_usr1.append(st.pending_seq))
    wall_soak = time.monotonic() - t0
    drain_by = time.monotonic() + DRAIN_DEADLINE
    hung = []
    for g in workers:
        try:
            g.join(max(drain_by - time.monotonic(), 0.0))
        except JoinTimeout:
            hung.append(g.name)
    if hung:
        st.fail(f"hung: {len(hung)} goroutine(s) did not finish within {DRAIN_DEADLINE:.0f} s "
                f"of the end: {', '.join(hung)}")
        sys.stderr.write(preempt.dump())
    stats = preempt.stats()
    for pid in list(st.children):
        st.fail(f"fork child {pid} was left behind: killed")
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return {"stats": stats, "wall_soak": wall_soak, "wall_drain": time.monotonic() - t0 - wall_soak,
            "main_waits": dict(tried), "main_interrupted": dict(waits), "mutex_value": box.value}


def soak(seconds: float, seed: int) -> Dict[str, Any]:
    """Runs the soak in this process (which it fills with handlers and forks). Main thread."""
    import faulthandler
    import warnings

    import preempt

    warnings.filterwarnings("ignore", message=r".*multi-threaded.*fork", category=DeprecationWarning)
    faulthandler.dump_traceback_later(seconds + WATCHDOG_SLACK, exit=True)
    st = _State(seconds, seed)
    ok, why = preempt.available()
    kern, expect = None, {}
    if ok:
        from .._kernels_lib import load_kernels
        _kernels = load_kernels()

        lib = _kernels.lib
        t0 = time.perf_counter()
        lib.pek_spin(1_000_000)
        rate = 1_000_000 / max(time.perf_counter() - t0, 1e-6)
        for ms in (1, 5, 20):
            iters = int(rate * ms / 1e3) | 1
            expect[iters] = lib.pek_spin(iters)
        kern = preempt.preemptible(lib, reentrant=True)
    t0 = time.perf_counter()
    try:
        m = preempt.run(_main, st, kern, expect)
    except BaseException as e:
        if os.getpid() != st.pid:
            os._exit(5)
        st.fail(f"run() raised {type(e).__name__}: {e}\n"
                + "".join(traceback.format_exception(type(e), e, e.__traceback__)[-12:]))
        m = {"stats": {}, "wall_soak": 0.0, "wall_drain": 0.0, "main_waits": {},
             "main_interrupted": {}, "mutex_value": None}
    if os.getpid() != st.pid:                  # never: a fork child always ends in os._exit
        os._exit(5)
    wall = time.perf_counter() - t0
    faulthandler.cancel_dump_traceback_later()
    return _check_books(st, m, wall, None if ok else why)

