"""run(), go(), join(), current(), gosched(), sleep(), local: the goroutine basics."""

from __future__ import annotations

import sys
import threading
import time

import pytest

import preempt

pytestmark = pytest.mark.timeout(30)


def test_run_returns_main_result_and_passes_args():
    assert preempt.run(lambda a, b=0: a + b, 2, b=3) == 5


def test_run_raises_main_exception():
    def main():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        preempt.run(main)


def test_join_returns_result_and_reraises_with_traceback():
    def bad():
        raise KeyError("inner")

    def main():
        assert preempt.go(lambda: 7).join() == 7
        g = preempt.go(bad, name="bad-one")
        with pytest.raises(KeyError) as ei:
            g.join()
        names = [f.name for f in __import__("traceback").extract_tb(ei.value.__traceback__)]
        assert "bad" in names                      # the G's own frame is in the traceback
        assert g.done() and g.name == "bad-one" and isinstance(g.id, int)

    preempt.run(main)


def test_join_timeout():
    def main():
        g = preempt.go(preempt.sleep, 0.5)
        with pytest.raises(TimeoutError):
            g.join(timeout=0.01)
        assert not g.done()
        g.join()
        assert g.done()

    preempt.run(main)


def test_join_self_raises():
    def main():
        with pytest.raises(preempt.PreemptError, match="join itself"):
            preempt.current().join()

    preempt.run(main)


def test_nested_run_and_go_outside_run_raise_clear_errors():
    with pytest.raises(preempt.PreemptError, match="inside preempt.run"):
        preempt.go(print)

    def main():
        with pytest.raises(preempt.PreemptError, match="already running"):
            preempt.run(lambda: None)

    preempt.run(main)


def test_primitive_from_another_thread_raises():
    errors = []

    def main():
        ch = preempt.Chan(1)

        def other():
            try:
                ch.send(1)
            except preempt.PreemptError as e:
                errors.append(str(e))

        t = threading.Thread(target=other, name="intruder")
        t.start()
        while t.is_alive():
            preempt.sleep(0.001)
        assert len(ch) == 0

    preempt.run(main)
    assert errors and "intruder" in errors[0]


def test_unjoined_exception_is_reported(capfd):
    def bad():
        raise RuntimeError("nobody listens")

    def main():
        preempt.go(bad, name="lonely")
        preempt.sleep(0.01)

    preempt.run(main)
    err = capfd.readouterr().err
    assert "lonely" in err and "nobody listens" in err and "Traceback" in err


def test_joined_exception_is_not_reported(capfd):
    def bad():
        preempt.sleep(0.01)
        raise RuntimeError("handled")

    def main():
        g = preempt.go(bad)
        with pytest.raises(RuntimeError):
            g.join()

    preempt.run(main)
    assert "handled" not in capfd.readouterr().err


def test_exception_retrieved_by_a_later_join_is_not_reported(capfd):
    """A G that dies while nobody is joining it, and is joined afterwards, is not reported
    (it used to be printed as "nobody was joining it" at once)."""
    def bad():
        raise RuntimeError("joined later")

    def bad_after_a_wait():
        preempt.sleep(0.02)
        raise KeyError("joined after a timeout")

    def main():
        g = preempt.go(bad)
        preempt.sleep(0.02)                  # it dies with nobody joining it
        assert g.done()
        for _ in range(2):                   # every join re-raises it
            with pytest.raises(RuntimeError, match="joined later"):
                g.join()
        g2 = preempt.go(bad_after_a_wait)
        with pytest.raises(preempt.JoinTimeout):
            g2.join(0.001)
        preempt.sleep(0.05)
        with pytest.raises(KeyError):
            g2.join()

    preempt.run(main)
    import gc

    gc.collect()                             # a report would come when the G is freed
    err = capfd.readouterr().err
    assert "joined later" not in err and "joined after a timeout" not in err, err
    assert "never retrieved" not in err, err


def test_unretrieved_exception_is_reported_when_the_goroutine_is_freed_or_at_exit(child):
    """The report comes once nobody can join the G any more: a dropped G by the end of run(),
    a G kept (never joined) until interpreter exit, even in a reference cycle, at exit."""
    out = child("""
        import os, sys
        os.dup2(1, 2)                        # stderr into the stdout the test reads
        import preempt
        keep = []
        def kept():
            raise RuntimeError("kept but never joined")
        def cycle():
            me = preempt.current()           # its own frame refers to the G: a cycle
            raise RuntimeError("kept in a cycle")
        def dropped():
            raise RuntimeError("dropped unjoined")
        def main():
            keep.append(preempt.go(kept, name="kept"))
            keep.append(preempt.go(cycle, name="cycle"))
            g = preempt.go(dropped, name="dropped")
            preempt.sleep(0.02)
            del g
            preempt.sleep(0.01)
            print("MAIN SLEPT", file=sys.stderr, flush=True)
        preempt.run(main)
        print("RUN RETURNED", file=sys.stderr, flush=True)
    """, timeout=60)
    end = out.index("RUN RETURNED")
    # dropped while main still runs: reported then (its worker keeps no reference to it)
    assert out.find("'dropped' raised") < out.index("MAIN SLEPT"), out
    for name, where in (("dropped", "before"), ("kept", "after"), ("cycle", "after")):
        i = out.find(f"'{name}' raised and nobody was joining it: its exception was never "
                     "retrieved with join():")
        assert i >= 0, (name, out)
        assert (i < end) == (where == "before"), (name, where, out)
    assert out.count("Traceback") == 3, out


def test_leftover_goroutines_are_killed_and_finally_runs():
    log = []

    def forever(ch):
        try:
            ch.recv()
        finally:
            log.append("finally")

    def never_started():
        log.append("ran")

    def main():
        preempt.go(forever, preempt.Chan())
        preempt.gosched()
        preempt.go(never_started)

    preempt.run(main)
    assert log == ["finally"]


def test_gosched_round_robin():
    out = []

    def worker(tag):
        for i in range(3):
            out.append((tag, i))
            preempt.gosched()

    def main():
        gs = [preempt.go(worker, t) for t in "ab"]
        for g in gs:
            g.join()

    preempt.run(main)
    assert out == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_sleep_orders_wakeups_and_takes_time():
    out = []

    def sleeper(d):
        preempt.sleep(d)
        out.append(d)

    def main():
        t0 = time.monotonic()
        gs = [preempt.go(sleeper, d) for d in (0.05, 0.01, 0.03)]
        for g in gs:
            g.join()
        return time.monotonic() - t0

    took = preempt.run(main)
    assert out == [0.01, 0.03, 0.05]
    assert took >= 0.05


def test_current_and_goroutine_repr():
    def main():
        g = preempt.current()
        assert g.name == "main" and "main" in repr(g)
        return preempt.go(lambda: preempt.current().name, name="kid").join()

    assert preempt.run(main) == "kid"


def test_local_is_per_goroutine():
    loc = preempt.local()

    def worker(v):
        loc.x = v
        preempt.sleep(0.001)
        return loc.x

    def main():
        gs = [preempt.go(worker, i) for i in range(10)]
        assert [g.join() for g in gs] == list(range(10))
        with pytest.raises(AttributeError):
            loc.x

    preempt.run(main)


def test_many_goroutines_reuse_and_run_again():
    def main():
        total = 0
        for _ in range(3):
            gs = [preempt.go(lambda i=i: i) for i in range(2000)]
            total += sum(g.join() for g in gs)
        return total

    assert preempt.run(main) == 3 * sum(range(2000))
    assert preempt.run(main) == 3 * sum(range(2000))   # a second run() after the first


def test_exports():
    for name in ("run go Goroutine current gosched sleep Chan select Recv Send WaitGroup Mutex "
                 "Once Event local no_preempt wait_readable wait_writable blocking stats "
                 "dump").split():
        assert hasattr(preempt, name), name


def test_long_chain_of_new_goroutines_has_no_recursion_error():
    # Each new G parks right away, so the next one starts from a park(): _park.py rule 4.
    def main():
        ch = preempt.Chan()
        gs = [preempt.go(ch.recv_ok) for _ in range(20_000)]
        while preempt.stats()["runnable"]:
            preempt.sleep(0.001)
        ch.close()
        return sum(1 for g in gs if g.join() == (None, False))

    assert preempt.run(main, slice=0) == 20_000


def test_deny_preemption_in_extends_the_deny_list():
    import types

    from preempt._runtime import _preempt

    mod = types.ModuleType("mylib_for_deny_test")
    exec("import sys\nfrom preempt._runtime import _preempt\n"
         "def f(): return _preempt.in_denied(sys._getframe())\n", mod.__dict__)

    def main():
        before = mod.f()
        preempt.deny_preemption_in("mylib_for_deny_test")
        return before, mod.f()

    try:
        assert preempt.run(main, slice=0) == (False, True)
    finally:
        _preempt._deny.remove("mylib_for_deny_test")
        for code, kind in list(_preempt._kind.items()):     # drop cached verdicts only
            if kind in (_preempt._NEUTRAL, _preempt._DENIED):
                del _preempt._kind[code]


def test_the_worker_loop_itself_is_never_a_safe_point():
    # Its back-edge runs between one G's end and the next G's start, outside the try that
    # catches a G's exception: a Cancelled kept for the new G and raised there escaped run()
    # (found by the soak's cancellation section). The G's own frames stay preemptible. The rule
    # is the sync path's (_preempt.py rule 6): a G stopped inside a native call the worker loop
    # made (preempt.go(lib.fn), the async hook's native=True) may yield (rule 8).
    import sys

    from preempt._runtime import _park, _preempt, _worker

    def body():
        g = _park.sched.cur
        f = sys._getframe()
        bottom = f
        while bottom is not None and bottom.f_code is not _worker.worker_main.__code__:
            bottom = bottom.f_back
        assert bottom is not None, "no worker-loop frame under the goroutine"
        return (_preempt.may_yield(g, f), _preempt.may_yield(g, bottom),
                _preempt.may_yield(g, bottom, native=True))

    def main():
        return preempt.go(body).join()

    assert preempt.run(main) == (True, False, True)


@pytest.mark.skipif(sys.version_info >= (3, 11),
                    reason="3.11+ has frame stacks: test_runtime_gstack checks their warning")
def test_untested_greenlet_warns_of_no_frame_stacks_where_there_are_none(child):
    """CPython 3.10 has no frame data stack, so an untested greenlet turns nothing off: no
    RuntimeWarning about frame stacks, and goroutines run."""
    out = child("""
        import warnings
        import greenlet
        greenlet.__version__ = "4.2.0"
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import preempt
            from preempt._runtime import _worker
        msgs = [str(x.message) for x in w if issubclass(x.category, RuntimeWarning)]
        assert not any("frame stacks" in m for m in msgs), msgs
        assert _worker.GSTACK_OFF is None and _worker.worker_run is _worker.worker_main
        assert preempt.run(lambda: preempt.go(sum, [1, 2, 3]).join()) == 6
        print("OK")
    """)
    assert out.strip() == "OK", out
