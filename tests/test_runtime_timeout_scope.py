"""``with preempt.timeout(seconds):`` — Timeout out of the block, also mid-computation; nested
scopes independent; a block that finished is never timed out late."""

from __future__ import annotations

import math
import sys

import pytest

import preempt

pytestmark = pytest.mark.timeout(60)


def test_timeout_stops_a_cpu_bound_loop(in_run):
    def body():
        x = 0
        with pytest.raises(preempt.Timeout) as ei:
            with preempt.timeout(0.02) as t:
                while True:
                    x += 1
        assert t.expired and x > 0
        e = ei.value
        assert isinstance(e, TimeoutError) and isinstance(e, preempt.PreemptError)
        assert isinstance(e.__cause__, preempt.Cancelled)
        assert "0.02 s" in str(e)
        return True

    assert in_run(body)


def test_timeout_interrupts_a_wait_and_a_block_that_finishes_is_untouched(in_run):
    def body():
        with pytest.raises(preempt.Timeout):
            with preempt.timeout(0.01):
                preempt.Chan().recv()
        with preempt.timeout(1) as t:
            preempt.sleep(0.001)
        assert not t.expired
        preempt.sleep(0.01)          # its timer is gone: nothing fires later
        return "ok"

    assert in_run(body) == "ok"


def test_nested_timeouts_the_one_that_expired_fires(in_run):
    def body():
        log = []
        with preempt.timeout(5) as outer:
            with pytest.raises(preempt.Timeout):
                with preempt.timeout(0.01) as inner:
                    preempt.sleep(1)
            log.append((inner.expired, outer.expired))
            preempt.sleep(0.02)      # the outer scope still runs fine
        with pytest.raises(preempt.Timeout) as ei:
            with preempt.timeout(0.01) as outer2:
                try:
                    with preempt.timeout(5) as inner2:
                        preempt.sleep(1)
                except preempt.Timeout:
                    log.append("inner raised Timeout: wrong")
                    raise
        assert outer2.expired and not inner2.expired
        assert ei.value.__cause__.scope is outer2
        return log

    assert in_run(body) == [(True, False)]


def test_timeout_none_zero_and_argument_errors(in_run):
    with preempt.timeout(None) as t:         # no limit: works even outside run()
        pass
    assert t.deadline is None
    with preempt.timeout(math.inf) as t:
        pass
    assert t.seconds is None
    with pytest.raises(TypeError, match="preempt.timeout"):
        preempt.timeout("1")
    with pytest.raises(TypeError):
        preempt.timeout(True)
    with pytest.raises(ValueError, match="NaN"):
        preempt.timeout(math.nan)
    with pytest.raises(ValueError, match=">= 0"):
        preempt.timeout(-1)
    with pytest.raises(preempt.PreemptError, match="inside preempt.run"):
        with preempt.timeout(1):
            pass

    def body():
        with pytest.raises(preempt.Timeout):
            with preempt.timeout(0):
                preempt.sleep(0.5)
        t = preempt.timeout(1)
        with t:
            pass
        with pytest.raises(preempt.PreemptError, match="entered once"):
            with t:
                pass
        return True

    assert in_run(body)


def test_completed_wait_at_the_deadline_is_kept_and_nothing_fires_after_the_block():
    # The receiver's recv is completed by main's send; main then computes past the deadline, so
    # the timer fires while the receiver is runnable with the value in hand. The block finishes
    # with the value and no Timeout may escape later.
    log = []

    def receiver(ch):
        try:
            with preempt.timeout(0.1) as t:   # ample: main sends at once, a loaded CI may lag
                with preempt.no_preempt():    # the value is recorded before any safe-point
                    log.append(ch.recv())
        except preempt.Timeout:
            # allowed: the kept exception may meet a safe-point before the block's end (3.13
            # checks the eval breaker at the very next call); the value is not lost either way
            log.append("timeout inside the block")
        log.append(("expired", t.expired))
        preempt.sleep(0.01)          # a later checkpoint: no stray exception
        log.append("after")

    def main():
        ch = preempt.Chan()
        g = preempt.go(receiver, ch)
        preempt.gosched()
        ch.send(7)
        t0 = preempt_time()
        while preempt_time() - t0 < 0.3:     # past the deadline, without blocking
            pass
        g.join()

    import time as _t
    preempt_time = _t.monotonic
    preempt.run(main, slice=1.0)    # slice preemption would let the receiver run first
    assert log[0] == 7 and log[-2:] == [("expired", True), "after"], log


def test_cancel_of_the_goroutine_beats_its_timeout(in_run):
    def body():
        def victim():
            with preempt.timeout(0.01):
                preempt.sleep(1)

        g = preempt.go(victim)
        preempt.sleep(0.001)
        g.cancel("explicit")
        with pytest.raises(preempt.Cancelled, match="explicit") as ei:
            g.join()
        assert not isinstance(ei.value, preempt.Timeout)
        return True

    assert in_run(body)


def test_huge_timeout_is_no_limit_and_a_close_under_it_wins(in_run):
    def body():
        with preempt.timeout(2**40) as t:         # above 2**31 s: no limit, no timer
            preempt.sleep(0.001)
        assert t.seconds is None and t.deadline is None
        ch = preempt.Chan()

        def closer():
            preempt.sleep(0.002)
            ch.close()

        preempt.go(closer)
        with preempt.timeout(5) as t2:            # the channel is closed under the wait
            v, ok = ch.recv_ok()
        assert (v, ok) == (None, False) and not t2.expired
        return True

    assert in_run(body)
