"""WaitGroup, Mutex, Once, Event, and deadlock detection."""

from __future__ import annotations

import pytest

import preempt

pytestmark = pytest.mark.timeout(30)


def run(fn):
    return preempt.run(fn, slice=0)


def test_waitgroup_waits_and_rejects_negative():
    def main():
        wg = preempt.WaitGroup()
        done = []

        def work(i):
            preempt.sleep(0.001 * i)
            done.append(i)
            wg.done()

        for i in range(5):
            wg.add(1)
            preempt.go(work, i)
        wg.wait()
        assert sorted(done) == list(range(5))
        wg.wait()                 # zero: returns at once
        with pytest.raises(preempt.PreemptError, match="negative|more done"):
            wg.done()

    run(main)


def test_mutex_excludes_and_hands_off_fifo():
    def main():
        mu = preempt.Mutex()
        inside = []
        order = []

        def worker(i):
            with mu:
                inside.append(i)
                assert len(inside) == 1
                preempt.sleep(0.001)          # park while holding it
                inside.remove(i)
                order.append(i)

        gs = [preempt.go(worker, i) for i in range(5)]
        for g in gs:
            g.join()
        assert order == list(range(5))
        assert not mu.locked()

    run(main)


def test_mutex_unlock_unlocked_and_relock_raise():
    def main():
        mu = preempt.Mutex()
        with pytest.raises(preempt.PreemptError, match="unlocked"):
            mu.unlock()
        mu.lock()
        with pytest.raises(preempt.PreemptError, match="reentrant"):
            mu.lock()
        mu.unlock()

    run(main)


def test_once_runs_once_even_if_it_raises_and_others_wait():
    def main():
        calls = []
        once = preempt.Once()

        def init():
            calls.append(1)
            preempt.sleep(0.01)

        gs = [preempt.go(once.do, init) for _ in range(5)]
        for g in gs:
            g.join()
        assert calls == [1] and once.done()

        bad = preempt.Once()
        with pytest.raises(ZeroDivisionError):
            bad.do(lambda: 1 / 0)
        bad.do(lambda: calls.append(2))
        assert calls == [1]

    run(main)


def test_once_called_recursively_raises_and_other_goroutines_still_wait():
    """Rule 3: do() from inside its own fn is an error that says so (it used to blame an
    internal Mutex); another goroutine's do() still waits for the running fn."""
    def main():
        once = preempt.Once()
        seen = []

        def init():
            with pytest.raises(preempt.PreemptError,
                               match="Once.do was called recursively from its own function"):
                once.do(init)
            seen.append("inner raised")

        once.do(init)
        assert seen == ["inner raised"] and once.done()
        once.do(init)                        # done: returns at once
        assert seen == ["inner raised"]

        o2, log = preempt.Once(), []

        def slow():
            log.append("start")
            preempt.sleep(0.02)
            log.append("end")

        def other():
            o2.do(lambda: log.append("never"))
            log.append("other returned")

        g1 = preempt.go(o2.do, slow)
        preempt.gosched()                    # g1 is inside slow()
        g2 = preempt.go(other)
        g1.join()
        g2.join()
        assert log == ["start", "end", "other returned"]

    run(main)


def test_event_set_wait_clear_timeout():
    def main():
        ev = preempt.Event()
        assert not ev.is_set()
        assert ev.wait(timeout=0.01) is False
        gs = [preempt.go(ev.wait) for _ in range(3)]
        preempt.gosched()
        ev.set()
        assert [g.join() for g in gs] == [True] * 3
        assert ev.wait() is True
        ev.clear()
        assert not ev.is_set()
        assert len(ev._q) == 0

    run(main)


def test_deadlock_names_waiting_goroutines_and_reasons():
    def main():
        ch = preempt.Chan()
        mu = preempt.Mutex()
        mu.lock()
        preempt.go(mu.lock, name="locker")
        preempt.go(preempt.WaitGroup().wait, name="wgwaiter")   # counter 0: returns
        wg = preempt.WaitGroup()
        wg.add(1)
        preempt.go(wg.wait, name="grouper")
        ch.recv()

    with pytest.raises(preempt.Deadlock) as ei:
        run(main)
    msg = str(ei.value)
    assert "deadlock" in msg
    assert "'main'" in msg and "chan receive" in msg and "Chan#" in msg
    assert "'locker'" in msg and "Mutex.lock" in msg
    assert "'grouper'" in msg and "WaitGroup.wait" in msg
    assert "wgwaiter" not in msg


def test_deadlock_can_be_caught_by_main():
    def main():
        try:
            preempt.Chan().recv()
        except preempt.Deadlock:
            return "caught"

    assert run(main) == "caught"


def test_no_deadlock_while_timer_pending():
    def main():
        ch = preempt.Chan()
        preempt.go(lambda: (preempt.sleep(0.02), ch.send(1)))
        return ch.recv()

    assert run(main) == 1


def test_statistics():
    def main():
        mu = preempt.Mutex()
        mu.lock()
        preempt.go(mu.lock)
        preempt.gosched()
        st = mu.statistics()
        mu.unlock()
        return st["waiting"], st["locked"]

    assert run(main) == (1, True)


def test_mutex_handed_to_an_interrupted_waiter_is_kept_until_its_next_checkpoint():
    log = []

    def waiter(mu):
        mu.lock()
        log.append("locked")
        try:
            preempt.gosched()                 # the checkpoint where the interrupt arrives
            log.append("not interrupted")
        finally:
            mu.unlock()

    def main():
        mu = preempt.Mutex()
        mu.lock()
        g = preempt.go(waiter, mu, name="waiter")
        preempt.gosched()
        mu.unlock()                           # handed to "waiter", which is now runnable
        s = preempt._runtime._park.sched
        s.interrupt(g, RuntimeError("interrupted"))   # as KeyboardInterrupt/kill would
        with pytest.raises(RuntimeError):
            g.join()
        assert not mu.locked()

    run(main)
    assert log == ["locked"]                  # lock() completed; the interrupt came after
