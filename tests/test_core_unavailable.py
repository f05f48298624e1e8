"""Where preemption is unavailable (docs/guide.md "Where preemption is unavailable", the essay of
``src/preempt/_platform.py``): forced with ``PREEMPT_FORCE_UNAVAILABLE=<reason>``, in a child
interpreter, so that the path a PyPy or free-threaded user takes runs on this machine too.

The promise checked, call by call: ``import preempt`` works and never loads the C core;
``available()`` is ``(False, reason)`` with the given text; ``preempt.run()`` still runs
goroutines and preempts their Python code (the pure-Python monitor); ``preemptible()``,
``preempt.threads``, ``preempt.gevent.enable()`` and ``preempt.aio.run()`` raise
``preempt.Unavailable`` with the reason, leave nothing half set up, and say the same again when
called again. A crash or a hang fails the test (the child must print OK and exit 0).
"""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.timeout(120)

REASON = "issue 23 says so"

SCENARIO = r'''
import asyncio, ctypes, os, sys
os.environ["PREEMPT_FORCE_UNAVAILABLE"] = sys.argv[1]      # read once, when preempt is imported
HAVE_GEVENT = sys.argv[2] == "gevent"
import preempt

ok, reason = preempt.available()
assert ok is False, (ok, reason)
assert sys.argv[1] in reason and "PREEMPT_FORCE_UNAVAILABLE" in reason, reason
print("available:", reason, flush=True)


def expect_unavailable(what, fn, again=True):
    for attempt in range(2 if again else 1):           # the same clear error every time
        try:
            r = fn()
        except preempt.Unavailable as e:
            assert sys.argv[1] in str(e), (what, str(e))
        else:
            raise AssertionError(f"{what} returned {r!r} where preemption is unavailable")
    print(what, "raises Unavailable", flush=True)


# preempt.run(): goroutines run, and a goroutine that computes without ever blocking is
# preempted (Python code, by the pure-Python monitor): main's sleep returns, run() returns.
def main():
    stop = []

    def busy():
        x = 0
        while not stop:
            x += 1
        return x

    g = preempt.go(busy, name="busy")
    preempt.sleep(0.05)                      # main runs again only if busy was preempted
    stop.append(1)
    assert g.join() > 0
    assert preempt.blocking(lambda: "pool") == "pool"
    ch = preempt.Chan(1)
    preempt.go(ch.send, "hand-off")
    assert ch.recv() == "hand-off"
    assert preempt.stats()["sync"]["count"] >= 1, preempt.stats()["sync"]
    return "main returned"


assert preempt.run(main) == "main returned"
print("run: goroutines run and are preempted", flush=True)

expect_unavailable("preemptible()", lambda: preempt.preemptible(ctypes.CDLL(None)))
expect_unavailable("threads.current()", preempt.threads.current)
expect_unavailable("threads.registered()", preempt.threads.registered)


import preempt.aio as pa


async def aio_run():
    return await pa.run(lambda: "computed")


expect_unavailable("aio.run()", lambda: asyncio.run(aio_run()))
assert pa._runner is None, pa._runner          # nothing half set up

if HAVE_GEVENT:
    import greenlet
    import preempt.gevent as pg

    expect_unavailable("gevent.enable()", pg.enable)
    assert not pg.enabled() and greenlet.gettrace() is None, greenlet.gettrace()

assert "preempt._core" not in sys.modules, "the C core was loaded"
assert preempt.run(lambda: "again") == "again"
print("OK", flush=True)
'''


def test_forced_unavailable_imports_runs_goroutines_and_refuses_what_needs_the_core(child):
    gevent = "gevent" if importlib.util.find_spec("gevent") else "no-gevent"
    out = child(SCENARIO, REASON, gevent, timeout=90)
    for line in (f"available: preemption is turned off by PREEMPT_FORCE_UNAVAILABLE: {REASON}",
                 "run: goroutines run and are preempted", "preemptible() raises Unavailable",
                 "threads.current() raises Unavailable", "threads.registered() raises Unavailable",
                 "aio.run() raises Unavailable", "OK"):
        assert line in out, out
    assert ("gevent.enable() raises Unavailable" in out) == (gevent == "gevent"), out


def test_the_variable_is_read_when_preempt_is_imported(child):
    """Set after the import, it changes nothing: available() is what the platform says."""
    import preempt

    ok, why = preempt.available()
    if not ok:
        pytest.skip(f"preemption is unavailable here anyway: {why}")
    out = child("""
        import os, preempt
        os.environ["PREEMPT_FORCE_UNAVAILABLE"] = "too late"
        ok, why = preempt.available()
        assert ok is True and "too late" not in why, (ok, why)
        print("OK")
    """)
    assert out.strip() == "OK", out
