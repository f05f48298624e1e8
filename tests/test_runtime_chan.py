"""Chan and select semantics (chan.py rules 1-4)."""

from __future__ import annotations

import collections
import time

import pytest

import preempt

pytestmark = pytest.mark.timeout(30)


def run(fn):
    return preempt.run(fn, slice=0)


def test_unbuffered_handoff_and_order():
    def main():
        ch = preempt.Chan()
        g = preempt.go(lambda: [ch.send(i) for i in range(100)])
        got = [ch.recv() for _ in range(100)]
        g.join()
        return got

    assert run(main) == list(range(100))


def test_buffered_len_cap_and_blocking_when_full():
    def main():
        ch = preempt.Chan(cap=2)
        assert ch.cap == 2 and len(ch) == 0
        ch.send(1)
        ch.send(2)
        assert len(ch) == 2
        state = []
        g = preempt.go(lambda: (ch.send(3), state.append("sent")))
        preempt.gosched()
        assert state == []                       # blocked: buffer full
        assert ch.recv() == 1
        preempt.gosched()
        assert state == ["sent"]
        assert [ch.recv(), ch.recv()] == [2, 3]
        g.join()

    run(main)


def test_close_drain_then_closed():
    def main():
        ch = preempt.Chan(cap=3)
        for i in range(3):
            ch.send(i)
        ch.close()
        assert ch.recv() == 0
        assert ch.recv_ok() == (1, True)
        assert list(ch) == [2]
        assert ch.recv_ok() == (None, False)
        with pytest.raises(preempt.ChanClosed):
            ch.recv()
        with pytest.raises(preempt.ChanClosed):
            ch.send(9)
        with pytest.raises(preempt.ChanClosed):
            ch.close()

    run(main)


def test_close_wakes_blocked_receivers_and_senders():
    def main():
        r, s = preempt.Chan(), preempt.Chan()
        out = []

        def receiver():
            out.append(r.recv_ok())

        def sender():
            try:
                s.send(1)
            except preempt.ChanClosed:
                out.append("send-closed")

        gs = [preempt.go(receiver), preempt.go(receiver), preempt.go(sender)]
        preempt.gosched()
        r.close()
        s.close()
        for g in gs:
            g.join()
        return sorted(map(str, out))

    assert run(main) == sorted(["(None, False)", "(None, False)", "send-closed"])


def test_iteration_until_closed():
    def main():
        ch = preempt.Chan()

        def producer():
            for i in range(10):
                ch.send(i)
            ch.close()

        preempt.go(producer)
        return list(ch)

    assert run(main) == list(range(10))


def test_select_recv_send_default_and_timeout():
    def main():
        a, b = preempt.Chan(1), preempt.Chan(1)
        assert preempt.select(preempt.Recv(a), default=True) == (-1, None)
        assert preempt.select(preempt.Send(a, "x"), preempt.Recv(b)) == (0, None)
        assert preempt.select(preempt.Recv(b), preempt.Recv(a)) == (1, "x")
        t0 = time.monotonic()
        assert preempt.select(preempt.Recv(a), timeout=0.02) == (-1, None)
        assert time.monotonic() - t0 >= 0.02
        assert preempt.select(preempt.Recv(a), timeout=0) == (-1, None)

    run(main)


def test_select_blocks_until_one_case_and_leaves_no_stale_waiters():
    def main():
        a, b = preempt.Chan(), preempt.Chan()
        g = preempt.go(lambda: (preempt.sleep(0.01), b.send("hi")))
        assert preempt.select(preempt.Recv(a), preempt.Recv(b)) == (1, "hi")
        g.join()
        assert len(a._recvq) == 0 and len(b._recvq) == 0
        for _ in range(100):                    # select with timeout in a loop: no leak
            preempt.select(preempt.Recv(a), timeout=0.0001)
        assert len(a._recvq) == 0

    run(main)


def test_select_send_case_to_waiting_receiver():
    def main():
        ch = preempt.Chan()
        g = preempt.go(ch.recv)
        preempt.gosched()
        assert preempt.select(preempt.Send(ch, 5)) == (0, None)
        assert g.join() == 5

    run(main)


def test_select_blocked_send_case_is_taken_by_receiver():
    def main():
        ch, other = preempt.Chan(), preempt.Chan()
        g = preempt.go(lambda: preempt.select(preempt.Send(ch, 7), preempt.Recv(other)))
        preempt.gosched()
        assert ch.recv() == 7
        assert g.join() == (0, None)

    run(main)


def test_select_recv_on_closed_reports_ok_false():
    def main():
        ch = preempt.Chan()
        ch.close()
        case = preempt.Recv(ch)
        assert preempt.select(case) == (0, None)
        assert case.ok is False

    run(main)


def test_select_send_on_closed_raises():
    def main():
        ch = preempt.Chan()
        ch.close()
        with pytest.raises(preempt.ChanClosed):
            preempt.select(preempt.Send(ch, 1))

    run(main)


def test_select_fairness_no_ready_case_starved():
    def main():
        chans = [preempt.Chan(cap=1000) for _ in range(3)]
        for ch in chans:
            for i in range(1000):
                ch.send(i)
        counts = collections.Counter()
        for _ in range(1500):
            i, _ = preempt.select(*[preempt.Recv(c) for c in chans])
            counts[i] += 1
        return counts

    counts = run(main)
    assert set(counts) == {0, 1, 2}
    for i in range(3):      # expected 500 each; 300 is > 10 sigma away
        assert counts[i] > 300, counts


def test_one_select_waiter_wins_only_once():
    def main():
        a, b = preempt.Chan(1), preempt.Chan(1)
        g = preempt.go(lambda: preempt.select(preempt.Recv(a), preempt.Recv(b)))
        preempt.gosched()
        a.send(1)       # claims g's select
        b.send(2)       # must stay in b's buffer, not go to g
        r = g.join()
        assert r == (0, 1)
        assert b.recv() == 2

    run(main)


def test_bad_arguments():
    with pytest.raises(preempt.PreemptError):
        preempt.Chan(-1)
    with pytest.raises(preempt.PreemptError):
        preempt.Recv("not a chan")

    def main():
        with pytest.raises(preempt.PreemptError):
            preempt.select(preempt.Chan())

    run(main)
