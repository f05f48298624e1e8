"""wait_readable / wait_writable, blocking(), stats(), dump()."""

from __future__ import annotations

import os
import socket
import time

import pytest

import preempt

pytestmark = pytest.mark.timeout(30)


def run(fn):
    return preempt.run(fn, slice=0)


def test_wait_readable_wakes_on_data_and_other_goroutines_run_meanwhile():
    def main():
        r, w = os.pipe()
        ticks = []

        def ticker():
            for _ in range(5):
                preempt.sleep(0.002)
                ticks.append(1)

        def writer():
            while len(ticks) < 5:
                preempt.sleep(0.001)
            os.write(w, b"x")

        preempt.go(ticker)
        preempt.go(writer)
        assert preempt.wait_readable(r) is True
        assert os.read(r, 1) == b"x"
        assert len(ticks) == 5
        os.close(r)
        os.close(w)

    run(main)


def test_wait_readable_timeout_and_socket_object():
    def main():
        a, b = socket.socketpair()
        with a, b:
            t0 = time.monotonic()
            assert preempt.wait_readable(a, timeout=0.02) is False
            assert time.monotonic() - t0 >= 0.02
            assert preempt.wait_writable(a, timeout=1) is True
            b.send(b"hi")
            assert preempt.wait_readable(a, timeout=1) is True
            assert preempt.wait_readable(a, timeout=0) is True
            assert preempt.stats()["io_pending"] == 0

    run(main)


def test_two_readers_on_one_fd_is_an_error():
    def main():
        r, w = os.pipe()
        g = preempt.go(preempt.wait_readable, r)
        preempt.gosched()
        with pytest.raises(preempt.PreemptError, match="already waits"):
            preempt.wait_readable(r)
        os.write(w, b"1")
        assert g.join() is True
        os.close(r)
        os.close(w)

    run(main)


def test_fd_wait_is_not_a_deadlock():
    def main():
        a, b = socket.socketpair()
        preempt.go(lambda: (time.sleep(0), preempt.sleep(0.01), b.send(b"z")))
        assert preempt.wait_readable(a)
        a.close()
        b.close()

    run(main)


def test_blocking_runs_off_thread_and_others_progress():
    def main():
        ticks = []

        def ticker():
            while not done:
                preempt.sleep(0.002)
                ticks.append(1)

        done = []
        preempt.go(ticker)
        t0 = time.monotonic()
        assert preempt.blocking(lambda d: (time.sleep(d), d)[1], 0.05) == 0.05
        done.append(1)
        assert time.monotonic() - t0 >= 0.05
        assert len(ticks) >= 5              # the M kept running goroutines meanwhile
        with pytest.raises(ZeroDivisionError):
            preempt.blocking(lambda: 1 / 0)

    run(main)


def test_blocking_concurrent_calls():
    def main():
        gs = [preempt.go(preempt.blocking, lambda i=i: (time.sleep(0.02), i)[1])
              for i in range(4)]
        t0 = time.monotonic()
        assert [g.join() for g in gs] == [0, 1, 2, 3]
        return time.monotonic() - t0

    assert run(main) < 1.0      # concurrent: 4 x 20 ms in parallel, not in series


def test_stats_counts():
    assert preempt.stats()["running"] is False

    def main():
        gs = [preempt.go(preempt.sleep, 0.01) for _ in range(3)]
        preempt.gosched()
        st = preempt.stats()
        for g in gs:
            g.join()
        return st

    st = run(main)
    assert st["running"] and st["goroutines"] == 4 and st["timers"] == 3
    assert st["spawned"] >= 4 and st["switches"] >= 3
    for path in ("sync", "async", "timer"):
        assert {"count", "p50_us", "p99_us"} <= set(st[path])


def test_dump_lists_every_goroutine_with_state_reason_and_stack():
    def parked_here(ch):
        ch.recv()

    def main():
        ch = preempt.Chan()
        preempt.go(parked_here, ch, name="sleepy")
        preempt.go(lambda: None, name="fresh")
        preempt.sleep(0)       # runs "sleepy" up to its recv, and "fresh" to its end
        preempt.go(lambda: None, name="unstarted")
        text = preempt.dump()
        ch.send(1)
        return text

    text = run(main)
    assert "'main' [running]" in text
    assert "'sleepy' [waiting: chan receive on Chan#" in text
    assert "parked_here" in text               # its stack
    assert "'unstarted' [runnable]" in text and "not started" in text
    assert "'fresh'" not in text                # dead Gs are not listed
    assert "not running" in preempt.dump()


def test_fd_closed_under_a_waiter_wakes_it_with_ebadf():
    """_netpoll invariant 5: closing an fd removes it from epoll silently; the hub's sweep wakes
    the waiter with OSError(EBADF) instead of letting it sleep out its timeout."""
    import errno
    import time

    r, w = os.pipe()
    got = []

    def waiter():
        t0 = time.monotonic()
        try:
            preempt.wait_readable(r, timeout=30)
            got.append("woke without error")
        except OSError as e:
            got.append((e.errno, time.monotonic() - t0 < 20))

    def main():
        g = preempt.go(waiter)
        preempt.sleep(0.02)
        os.close(r)                  # by another goroutine, without telling the runtime
        g.join()

    try:
        preempt.run(main)
    finally:
        os.close(w)
    assert got == [(errno.EBADF, True)], got


def test_notify_closing_wakes_waiters_at_once():
    import errno

    r, w = os.pipe()
    got = []

    def waiter():
        try:
            preempt.wait_readable(r)
        except OSError as e:
            got.append(e.errno)

    def main():
        g = preempt.go(waiter)
        preempt.sleep(0.01)
        assert preempt.notify_closing(r) == 1
        os.close(r)
        g.join()
        assert preempt.notify_closing(r) == 0      # nobody waits any more: nothing happens

    try:
        preempt.run(main)
    finally:
        os.close(w)
    assert got == [errno.EBADF], got
