"""Random programs against a reference model: every value sent is received exactly once,
nothing hangs, no goroutine is lost.

Hypothesis draws channels (random capacities), producers (each a list of sends, some through
select with a timeout, with sleeps, CPU bursts and nested spawns in between) and consumers
(recv_ok loops or select over every open channel with a timeout). The model is the multiset of
values sent; a producer-count WaitGroup per channel closes it when its producers finish.
"""

from __future__ import annotations

import collections

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import preempt

pytestmark = pytest.mark.timeout(120)

op = st.tuples(
    st.integers(0, 2),                                      # channel (mod number of channels)
    st.sampled_from(["send", "select", "select_default"]),  # how to send
    st.sampled_from(["none", "none", "sleep", "burst", "gosched", "spawn"]),
)
program = st.fixed_dictionaries({
    "caps": st.lists(st.integers(0, 3), min_size=1, max_size=3),
    "producers": st.lists(st.lists(op, max_size=8), min_size=1, max_size=4),
    # (kind, channel): recv/iter consumers drain one channel; select ones watch them all. One
    # select consumer always runs, so every channel has a reader (else the *program* deadlocks).
    "consumers": st.lists(st.tuples(st.sampled_from(["recv", "select", "iter"]),
                                    st.integers(0, 2)), max_size=3),
    "slice": st.sampled_from([0, 0.001]),
})


def run_program(p):
    sent = []
    received = []

    def main():
        chans = [preempt.Chan(c) for c in p["caps"]]
        wgs = [preempt.WaitGroup() for _ in chans]
        spawned = []

        def do_send(ch, how, v):
            if how == "send":
                ch.send(v)
                return
            while True:
                i, _ = preempt.select(preempt.Send(ch, v),
                                      timeout=None if how == "select_default" else 0.0005,
                                      default=how == "select_default")
                if i == 0:
                    return
                preempt.sleep(0.0001)

        def producer(pid, ops, held):
            try:
                for k, (ci, how, after) in enumerate(ops):
                    ci %= len(chans)
                    v = (pid, k)
                    sent.append(v)
                    do_send(chans[ci], how, v)
                    if after == "sleep":
                        preempt.sleep(0.0002)
                    elif after == "burst":
                        x = 0
                        for i in range(3000):
                            x += i
                    elif after == "gosched":
                        preempt.gosched()
                    elif after == "spawn":
                        sub = (pid, "sub", k)
                        for w in held:
                            w.add(1)
                        spawned.append(preempt.go(producer, sub, [(ci, "send", "none")], held))
            finally:
                for w in held:
                    w.done()

        def consumer(kind, ci):
            ch = chans[ci % len(chans)]
            if kind == "iter":
                for v in ch:
                    received.append(v)
                return
            if kind == "recv":
                while True:
                    v, ok = ch.recv_ok()
                    if not ok:
                        break
                    received.append(v)
                return
            open_ = list(chans)
            while open_:
                cases = [preempt.Recv(c) for c in open_]
                i, v = preempt.select(*cases, timeout=0.002)
                if i == -1:
                    continue
                if cases[i].ok:
                    received.append(v)
                else:
                    open_.pop(i)

        def closer(ci):
            wgs[ci].wait()
            chans[ci].close()

        for pid, ops in enumerate(p["producers"]):
            for w in wgs:
                w.add(1)
            spawned.append(preempt.go(producer, pid, ops, wgs))
        closers = [preempt.go(closer, i) for i in range(len(chans))]
        consumers = [preempt.go(consumer, k, ci) for k, ci in [("select", 0)] + p["consumers"]]
        for g in consumers + closers:
            g.join()
        for g in spawned:
            g.join()
        return preempt.stats()["goroutines"]

    live_at_end = preempt.run(main, slice=p["slice"])
    assert live_at_end == 1                         # only main: no goroutine lost or stuck
    assert collections.Counter(received) == collections.Counter(sent)
    assert len(received) == len(set(received))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program)
def test_random_programs_match_model(p):
    run_program(p)


def test_model_smoke_fixed_program():
    run_program({"caps": [0, 2], "consumers": [("recv", 1), ("iter", 0)], "slice": 0,
                 "producers": [[(0, "select", "spawn"), (1, "send", "burst")],
                               [(1, "select_default", "sleep"), (0, "send", "gosched")]]})
