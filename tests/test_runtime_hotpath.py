"""The C hand-off path (csrc/pe_hot.c) and its Python twin: the C one is really in use where it
was built, it keeps the Python version's errors, and the channel, model and interrupt suites pass
with the pure-Python path too (PREEMPT_PURE=1, in a child pytest)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading

import pytest

import preempt
from preempt import chan as _chan

pytestmark = pytest.mark.timeout(300)
HERE = os.path.dirname(os.path.abspath(__file__))
BUILT = importlib.util.find_spec("preempt._hot") is not None


def test_c_path_is_in_use_where_built():
    if os.environ.get("PREEMPT_PURE", "") not in ("", "0"):
        assert _chan.HOT is None
        return
    assert (_chan.HOT is not None) == BUILT
    if BUILT:
        assert type(preempt.Chan.send).__name__ == "method_descriptor"
    # help(Chan) reads the same either way: the C methods carry their Python twins' docstrings
    assert preempt.Chan.send.__doc__.startswith("Sends ``v``")
    assert preempt.Chan.recv.__doc__.startswith("Receives a value")


def test_wrong_arguments_are_type_errors():
    def main():
        ch = preempt.Chan(1)
        with pytest.raises(TypeError):
            ch.send()
        with pytest.raises(TypeError):
            ch.send(1, 2)
        with pytest.raises(TypeError):
            ch.recv(1)
        with pytest.raises(TypeError):
            ch.recv_ok(None)
        with pytest.raises((TypeError, AttributeError)):   # C: TypeError; Python: no _closed
            preempt.Chan.send(object(), 1)          # not a channel
        ch.send(7)
        return ch.recv()

    assert preempt.run(main, slice=0) == 7


def test_misuse_outside_run_and_from_another_thread_keeps_python_messages():
    ch = preempt.Chan()
    with pytest.raises(preempt.PreemptError, match="inside preempt.run"):
        ch.send(1)
    with pytest.raises(preempt.PreemptError, match="inside preempt.run"):
        ch.recv()
    errors = []

    def main():
        def other():
            for op in (lambda: ch.recv(), lambda: ch.recv_ok(), lambda: ch.send(1)):
                try:
                    op()
                except preempt.PreemptError as e:
                    errors.append(str(e))

        t = threading.Thread(target=other, name="intruder")
        t.start()
        while t.is_alive():
            preempt.sleep(0.001)

    preempt.run(main, slice=0)
    assert len(errors) == 3 and all("intruder" in e for e in errors), errors


def test_closed_channel_errors_through_the_c_path():
    def main():
        ch = preempt.Chan()
        out = []

        def sender():
            try:
                ch.send(1)                 # waits; the close wakes it
            except preempt.ChanClosed as e:
                out.append(str(e))

        preempt.go(sender)
        preempt.sleep(0.001)
        ch2 = preempt.Chan()
        preempt.go(lambda: (preempt.sleep(0.001), ch2.close()))
        try:
            ch2.recv()                     # waits; the close wakes it
        except preempt.ChanClosed as e:
            out.append(str(e))
        ch.close()
        preempt.sleep(0.001)
        return out

    out = preempt.run(main, slice=0)
    assert any("receive from closed and drained" in m for m in out), out
    assert any("was closed while a send waited" in m for m in out), out


@pytest.mark.skipif(not BUILT or os.environ.get("PREEMPT_PURE", "") not in ("", "0"),
                    reason="the C path is not in use: the suite already ran pure")
def test_runtime_suites_pass_on_the_pure_python_path():
    env = dict(os.environ, PREEMPT_PURE="1")
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "test_runtime_chan.py", "test_runtime_model.py", "test_runtime_interrupt.py",
         "test_runtime_sync.py", "test_runtime_hotpath.py"],
        cwd=HERE, env=env, capture_output=True, text=True, timeout=280)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert " passed" in p.stdout


def test_channel_subclass_that_skipped_init_raises_instead_of_crashing(child):
    out = child("""
        import preempt
        class Half(preempt.Chan):
            def __init__(self):
                pass                       # forgot Chan.__init__: no buffer, no queues
        def main():
            h = Half()
            seen = []
            for op in (lambda: h.send(1), h.recv, h.recv_ok, lambda: next(iter(h))):
                try:
                    op()
                except AttributeError as e:
                    seen.append(type(e).__name__)
            return seen
        print(preempt.run(main, slice=0))
    """)
    assert "['AttributeError', 'AttributeError', 'AttributeError', 'AttributeError']" in out, out


def test_switch_count_is_one_word_both_paths_bump_and_a_bad_word_is_an_error(child):
    """Scheduler.tick reads the ``ticks`` word: each hand-off of a ping-pong counts once on
    whichever path runs it. A word that is not a writable 8-byte memoryview makes the C path
    raise TypeError (a crash is what a blind store would give)."""
    out = child("""
        import preempt
        from preempt import chan
        from preempt._runtime import _park, _sched
        def main():
            s = _park.sched
            a, b = preempt.Chan(), preempt.Chan()
            def echo():
                for v in a:
                    b.send(v)
            preempt.go(echo)
            a.send(0); b.recv()                # echo started and parked in a.recv
            t0 = s.tick
            for i in range(100):
                a.send(i)                      # hands the CPU to echo ...
                assert b.recv() == i           # ... which hands it back
            moved = s.tick - t0
            assert s.tick == s.ticks[0]
            err = None
            if chan.HOT is not None:
                s.ticks = memoryview(bytearray(4))
                try:
                    a.send(1)
                except TypeError as e:
                    err = str(e)
                s.ticks = _sched.new_word()
                s.ticks[0] = t0 + moved + 1
            a.close()
            return moved, err
        print(preempt.run(main, slice=0))
    """)
    want_err = ("None" if os.environ.get("PREEMPT_PURE", "") not in ("", "0") or not BUILT
                else "'scheduler word: want a writable 8-byte memoryview, not a 4-byte one'")
    assert f"(200, {want_err})" in out, out


def test_a_foreign_greenlet_inside_a_goroutine_is_refused_and_the_goroutine_goes_on(child):
    """A greenlet the runtime did not start, switched to from inside a goroutine, is not that
    goroutine: every channel operation there is a PreemptError, whether the greenlet runs on
    CPython's frame chunks or on a small frame stack of its own (the C path reads the running
    greenlet from it), and the goroutine itself still sends and receives afterwards."""
    out = child("""
        import greenlet
        import preempt
        from preempt import _gstack
        def main():
            ch = preempt.Chan(1)
            def foreign():
                errs = []
                for op in (lambda: ch.send(1), ch.recv, ch.recv_ok, lambda: next(iter(ch))):
                    try:
                        op()
                        errs.append("no error")
                    except preempt.PreemptError as e:
                        errs.append("foreign greenlet" in str(e))
                return errs
            plain = greenlet.greenlet(foreign).switch()
            small = greenlet.greenlet(_gstack.runner(foreign)).switch()
            ch.send(5)                              # the goroutine itself: fine
            got = ch.recv()
            peer = preempt.go(lambda: ch.send(6))
            return plain, small, got, ch.recv(), peer.join()
        print(preempt.run(main, slice=0))
    """)
    assert "([True, True, True, True], [True, True, True, True], 5, 6, None)" in out, out


def test_channel_subclass_works_through_the_c_path():
    class Tagged(preempt.Chan):
        __slots__ = ("tag",)

        def __init__(self, tag):
            super().__init__(1)
            self.tag = tag

    def main():
        ch = Tagged("t")
        preempt.go(lambda: [ch.send(i) for i in range(50)] and ch.close())
        return list(ch), ch.tag

    assert preempt.run(main, slice=0) == (list(range(50)), "t")


@pytest.mark.skipif(_chan.HOT is None, reason="the C path is not in use")
def test_c_new_g_sets_every_field_as_goroutine_init_does():
    # go() makes Gs with the C twin of Goroutine.__init__ (pe_hot.c new_g), which copies the
    # defaults of a G that __init__ made: a field added to __init__ cannot be missed there
    from preempt._runtime import _g

    def work(a, k=None):
        return a

    class NoName:
        def __call__(self):
            pass

    for fn, name in ((work, None), (work, "named"), (lambda: 0, None), (NoName(), None)):
        a = _g.Goroutine(fn, (1,), {"k": 2}, name, False)
        b = _chan.HOT.new_g(fn, (1,), {"k": 2}, name, False)
        assert type(b) is _g.Goroutine and b.id == a.id + 1      # the same id counter
        for field in _g.Goroutine.__slots__:
            if field not in ("__weakref__", "id"):
                assert getattr(b, field) == getattr(a, field), field
    assert _chan.HOT.new_g(NoName(), (), {}, None, True).name.startswith("<")   # repr(fn)


@pytest.mark.skipif(_chan.HOT is None, reason="the C path is not in use")
def test_c_waitq_matches_waitq_init():
    # join() makes its wait queue with the C twin of WaitQ(owner) (pe_hot.c pe_new_waitq)
    from preempt._runtime import _g
    from preempt._runtime._waitq import WaitQ

    g = _g.Goroutine(len, (), {}, None)
    a, b = WaitQ(g), _chan.HOT.new_waitq(g)
    assert type(b) is WaitQ
    assert set(WaitQ.__slots__) == {"_q", "_owner"}, "a new WaitQ field: pe_new_waitq sets it?"
    assert type(b._q) is type(a._q) and len(b._q) == 0
    assert b.owner is a.owner is g
    del g
    assert b.owner is None                                       # a weak reference


def test_join_in_every_form_keeps_its_python_rules():
    # Goroutine.join has a C twin for join()/join(None) from a goroutine; every other form goes
    # to the Python one. Both paths, whichever is in use here.
    def boom():
        raise KeyError("x")

    def main():
        ch = preempt.Chan()
        slow = preempt.go(ch.recv)
        waiter = preempt.go(slow.join)               # parks in join
        preempt.sleep(0.001)
        assert waiter.cancel()                       # cancelled while it waits in join
        with pytest.raises(preempt.Cancelled):
            waiter.join()
        assert not slow.done()                       # the joined G is not touched
        ch.send(5)
        assert slow.join() == 5 and slow.join(None) == 5 and slow.join(timeout=None) == 5
        bad = preempt.go(boom)
        for join in (bad.join, lambda: bad.join(None), lambda: bad.join(timeout=1.0)):
            with pytest.raises(KeyError):
                join()
        with pytest.raises(preempt.PreemptError, match="join itself"):
            preempt.current().join()
        with pytest.raises(preempt.JoinTimeout):
            preempt.go(ch.recv).join(0)
        # every timeout value goes to the Python twin's checks; NaN and negative are refused
        # before any wait, inf and huge wait for ever (here: until the G finishes)
        c2 = preempt.Chan()
        parked = preempt.go(c2.recv)
        for bad in (float("nan"), -1, -0.5):
            with pytest.raises(ValueError):
                parked.join(bad)
        preempt.go(c2.send, 7)
        assert parked.join(float("inf")) == 7 and parked.join(1e300) == 7
        late = preempt.go(c2.recv)
        preempt.go(c2.send, 8)
        assert late.join(2.0 ** 40) == 8
        return slow

    g = preempt.run(main)
    assert g.join() == 5                             # a finished G, outside run()
