"""Small per-goroutine frame stacks (csrc/pe_gstack.c, CPython 3.11+): goroutines run on them,
frames that do not fit spill to CPython's own chunks and come back, and every block is returned.
Each scenario runs in a child process: a broken frame stack corrupts memory, it must not take
pytest down with it.
"""

from __future__ import annotations

import sys

import pytest

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.version_info < (3, 11), reason="CPython 3.10 has no frame data stack"),
]

PRE = """
import gc, sys, preempt
from preempt import _gstack

def live():
    return _gstack.stats()["live"]
"""


def test_goroutines_run_on_small_frame_stacks_and_give_them_back(child):
    out = child(PRE + """
assert _gstack.stats()["enabled"] == 1, _gstack.stats()
def main():
    seen = []
    ch = preempt.Chan()
    def g(i):
        seen.append(_gstack.small())
        ch.recv()
    gs = [preempt.go(g, i) for i in range(50)]
    preempt.sleep(0.01)
    in_use = live()
    for _ in gs:
        ch.send(None)
    for x in gs:
        x.join()
    return seen, in_use
seen, in_use = preempt.run(main)
assert seen == [True] * 50, seen
assert in_use >= 50, in_use                 # one block per parked goroutine (and main)
assert live() == 0, _gstack.stats()         # run() ended: every block is back
print("OK")
""")
    assert "OK" in out


def test_deep_recursion_spills_and_comes_back(child):
    out = child(PRE + """
def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)

def worker(n, ch):
    total = 0
    for _ in range(200):                    # cross the small chunk's end again and again
        total += depth(n)
        preempt.gosched()                   # parked while spilled
    assert _gstack.small()
    ch.send(total)

def main():
    ch = preempt.Chan()
    for n in (5, 50, 400):
        preempt.go(worker, n, ch)
    return sorted(ch.recv() for _ in range(3))

before = _gstack.stats()["spills"]
assert preempt.run(main) == [5 * 200, 50 * 200, 400 * 200]
st = _gstack.stats()
assert st["spills"] > before, st            # frames really went past the small chunk
assert st["live"] == 0, st
print("OK")
""")
    assert "OK" in out


def test_exception_unwinds_through_a_spilled_stack(child):
    out = child(PRE + """
def boom(n):
    if n == 0:
        preempt.gosched()
        raise ValueError("deep")
    return boom(n - 1)

def main():
    gs = [preempt.go(boom, n) for n in (3, 300)]
    msgs = []
    for g in gs:
        try:
            g.join()
        except ValueError as e:
            msgs.append((str(e), len(_tb_frames(e.__traceback__))))
    return msgs

def _tb_frames(tb):
    out = []
    while tb is not None:
        out.append(tb.tb_frame.f_code.co_name)  # frames outlive their stack: copied out
        tb = tb.tb_next
    return out

msgs = preempt.run(main)
assert [m[0] for m in msgs] == ["deep", "deep"], msgs
assert msgs[1][1] > 300, msgs
assert live() == 0
print("OK")
""")
    assert "OK" in out


def test_generators_move_between_goroutines_and_frames_survive(child):
    out = child(PRE + """
def gen():
    x = 1
    while True:
        x = yield x * 2

def main():
    g = gen()
    next(g)
    frames = []
    def a():
        frames.append(sys._getframe())
        return g.send(10)
    def b():
        preempt.gosched()
        return g.send(21)
    ga, gb = preempt.go(a), preempt.go(b)
    r = (ga.join(), gb.join())
    return r, frames[0].f_code.co_name, frames[0].f_locals

r, name, loc = preempt.run(main)
assert r == (20, 42) and name == "a", (r, name)
print("OK")
""")
    assert "OK" in out


def test_tracing_inside_goroutines_on_small_stacks(child):
    out = child(PRE + """
calls = []
def tracer(frame, event, arg):
    if event == "call":
        calls.append(frame.f_code.co_name)
    return None

def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)

def main():
    sys.settrace(tracer)
    try:
        gs = [preempt.go(depth, n) for n in (10, 200)]
        return [g.join() for g in gs]
    finally:
        sys.settrace(None)

assert preempt.run(main) == [10, 200]
print("OK", len(calls))
""")
    assert "OK" in out


def test_abandoned_goroutines_return_their_blocks_when_collected(child):
    out = child(PRE + """
def stubborn():
    try:
        preempt.Chan().recv()
    finally:
        preempt.Chan().recv()               # blocks in its finally: run() abandons it

def main():
    for _ in range(20):
        preempt.go(stubborn)
    preempt.sleep(0.01)

preempt.run(main)
gc.collect()                                # no crash; abandoned Gs keep their blocks

# A greenlet dropped while suspended is killed in its thread: call() unwinds and gives back.
import functools, greenlet, threading
base = live()
def parks():
    greenlet.getcurrent().parent.switch()
g = greenlet.greenlet(functools.partial(_gstack.call, parks))
g.switch()
assert live() == base + 1, _gstack.stats()
del g
gc.collect()
assert live() == base, _gstack.stats()

# One suspended in a thread that then exits cannot be unwound: greenlet frees its frame chunks
# through the arena allocator, whose wrapper takes our block back.
def in_thread():
    t = greenlet.greenlet(functools.partial(_gstack.call, parks))
    t.switch()
    keep.append(t)
keep = []
th = threading.Thread(target=in_thread)
th.start(); th.join()
del keep[:]
import time
deadline = time.monotonic() + 5       # greenlet cleans up a dead thread's greenlets lazily
while live() != base and time.monotonic() < deadline:
    gc.collect()
    greenlet.getcurrent().switch()     # greenlet runs its deferred cleanups on a switch
    time.sleep(0.01)
print("live", live(), "base", base)
assert live() == base, _gstack.stats()
print("OK")
""")
    assert "OK" in out


def test_runner_is_the_worker_run_and_behaves_as_call(child):
    """runner(fn) is what worker greenlets run (fewer C frames under every parked G than
    partial(call, fn)): fn runs on a small chunk, its result and exceptions come through, the
    block comes back, and a non-callable is refused by name."""
    out = child(PRE + """
import greenlet
from preempt._runtime import _worker
assert _worker.worker_run.__self__ is _worker.worker_main, _worker.worker_run
base = live()

def small_and(v):
    def f():
        assert _gstack.small() and live() == base + 1, _gstack.stats()
        if isinstance(v, BaseException):
            raise v
        return v
    return f

assert greenlet.greenlet(_gstack.runner(small_and(42))).switch() == 42
assert live() == base, _gstack.stats()
try:
    greenlet.greenlet(_gstack.runner(small_and(KeyError("k")))).switch()
except KeyError as e:
    assert e.args == ("k",), e
else:
    raise AssertionError("no KeyError")
assert live() == base, _gstack.stats()
r = _gstack.runner(lambda: _gstack.small())
assert r() is False                        # not first in a new greenlet: a plain call
try:
    _gstack.runner(3)
except TypeError as e:
    assert str(e) == "runner() needs a callable, not int", e
else:
    raise AssertionError("no TypeError")
print("OK")
""")
    assert "OK" in out


def test_gstack_size_from_environment(child, monkeypatch):
    monkeypatch.setenv("PREEMPT_GSTACK_BYTES", "4000")
    out = child(PRE + """
assert _gstack.stats()["block"] == 4032, _gstack.stats()
print("OK")
""")
    assert "OK" in out
    monkeypatch.setenv("PREEMPT_GSTACK_BYTES", "0")
    out = child(PRE + """
assert _gstack.stats()["enabled"] == 0
from preempt._runtime import _worker
assert _worker.worker_run is _worker.worker_main    # off: no wrapper frame under every G
assert preempt.run(lambda: preempt.go(_gstack.small).join()) is False
print("OK")
""")
    assert "OK" in out


def test_bad_gstack_size_is_a_clear_error(child, monkeypatch):
    monkeypatch.setenv("PREEMPT_GSTACK_BYTES", "12")
    out = child("""
try:
    import preempt
except ValueError as e:
    print("error:", e)
""")
    assert "PREEMPT_GSTACK_BYTES=12: want 0 (off) or 512..65536 bytes" in out, out


def test_untested_greenlet_turns_the_frame_stacks_off_with_a_clear_warning(child):
    """The frame stacks rely on greenlet internals: outside the tested range they are off, a
    RuntimeWarning says why, and goroutines still run (on CPython's own frame chunks)."""
    out = child("""
        import warnings
        import greenlet
        greenlet.__version__ = "4.2.0"          # a greenlet preempt was not tested with
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import preempt
            from preempt._runtime import _worker
        msgs = [str(x.message) for x in w if issubclass(x.category, RuntimeWarning)]
        assert any("greenlet 4.2.0" in m and "frame stacks" in m for m in msgs), msgs
        assert _worker.worker_run is _worker.worker_main
        assert preempt.run(lambda: preempt.go(sum, [1, 2, 3]).join()) == 6
        print("OK")
    """)
    assert out.strip() == "OK", out


def test_installed_greenlet_is_in_the_tested_range():
    from preempt._runtime import _worker

    assert _worker.GSTACK_OFF is None, _worker.GSTACK_OFF
