"""preempt.aio (``src/preempt/aio.py``): CPU-bound sync functions preempted on an asyncio
loop's own thread. Each scenario runs in a child process (signals, the shared monitor)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)

COMMON = """
import asyncio, sys, threading, time
import preempt, preempt.aio as pa

def cpu(seconds):
    t_end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < t_end:      # pure Python, never yields by itself
        n += 1
    return n

async def ticking(coro):
    ticks = []
    stop = False
    async def ticker():
        while not stop:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.001)
    tk = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    t0 = time.monotonic()
    out = await coro
    t1 = time.monotonic()
    stop = True
    await tk
    return out, sum(t0 < t < t1 for t in ticks), ticks
"""

LOOP_SERVED = COMMON + """
async def main():
    out, ticks, _ = await ticking(asyncio.gather(*[pa.run(cpu, 0.3) for _ in range(4)]))
    assert all(n > 0 for n in out), out
    assert ticks >= 10, f"the loop ran {ticks} ticker callbacks while 4 functions computed"
    async def inline():
        return [cpu(0.1) for _ in range(2)]
    _, ticks, _ = await ticking(inline())
    assert ticks <= 1, ticks               # the same work inline freezes the loop
    assert pa._runner is None              # the monitor stopped with the last function
    return "OK"
print(asyncio.run(main()))
print(preempt.run(lambda: "run ok"))       # the monitor is free again
"""


def test_the_loop_keeps_serving_while_functions_compute(child):
    assert child(LOOP_SERVED).split() == ["OK", "run", "ok"]


RESULTS = COMMON + """
async def main():
    def boom():
        raise KeyError("inside")
    try:
        await pa.run(boom)
    except KeyError as e:
        assert e.args == ("inside",)
    else:
        raise AssertionError("no exception")
    assert await pa.run(lambda a, b=0: a * b, 6, b=7) == 42
    def via_wait():
        v = pa.wait(asyncio.sleep(0.01, result=20))
        try:
            pa.wait(asyncio.sleep(-1, result=None)) or pa.wait(_fails())
        except ValueError as e:
            return v + len(str(e))
    async def _fails():
        raise ValueError("abc")
    assert await pa.run(via_wait) == 23
    try:
        pa.wait(asyncio.sleep(0))
    except preempt.PreemptError as e:
        assert "preempt.aio.run()" in str(e)
    for bad, exc in ((0, ValueError), (-1, ValueError), (float("nan"), ValueError),
                     (float("inf"), ValueError), ("1", TypeError)):
        try:
            await pa.run(cpu, 0, slice=bad)
        except exc as e:
            assert "slice" in str(e)
        else:
            raise AssertionError(f"slice={bad!r} accepted")
    async def coro():
        pass
    try:
        await pa.run(coro)
    except TypeError as e:
        assert "await the coroutine" in str(e)
    return "OK"
print(asyncio.run(main()))
"""


def test_results_exceptions_wait_and_misuse(child):
    assert child(RESULTS).strip() == "OK"


CANCEL = COMMON + """
async def main():
    log = []
    def spin():
        try:
            while True:                    # cancelled mid-loop, at a safe-point
                pass
        finally:
            log.append("finally")
    t = asyncio.create_task(pa.run(spin))
    await asyncio.sleep(0.05)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        log.append("task cancelled")
    assert log == ["finally", "task cancelled"], log

    ran = []
    first = asyncio.create_task(pa.run(cpu, 0.1))
    t = asyncio.create_task(pa.run(ran.append, 1))
    await asyncio.sleep(0)                 # both queued behind the runner: none started
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass
    await first
    assert ran == [], ran

    def swallow():
        try:
            cpu(5.0)
        except preempt.Cancelled:
            return "swallowed"
    t = asyncio.create_task(pa.run(swallow))
    await asyncio.sleep(0.05)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("a cancelled task returned")

    inner = []
    async def slow():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            inner.append("awaitable cancelled")
            raise
    t = asyncio.create_task(pa.run(lambda: pa.wait(slow())))
    await asyncio.sleep(0.05)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass
    await asyncio.sleep(0.01)
    assert inner == ["awaitable cancelled"], inner
    return "OK"
print(asyncio.run(main()))
"""


def test_task_cancel_reaches_the_function_also_mid_loop(child):
    assert child(CANCEL).strip() == "OK"


NO_PREEMPT_AND_THREADS = COMMON + """
async def main():
    def guarded():
        with preempt.no_preempt():
            t0 = time.monotonic()
            cpu(0.2)
            return t0, time.monotonic()
    (t0, t1), _, ticks = await ticking(pa.run(guarded))
    assert not [t for t in ticks if t0 < t < t1], "preempted inside no_preempt()"
    assert pa._runner is None
    return "OK"
print(asyncio.run(main()))
errs = []
def off_main():
    try:
        asyncio.run(pa.run(cpu, 0))
    except preempt.PreemptError as e:
        errs.append(str(e))
t = threading.Thread(target=off_main); t.start(); t.join()
assert errs and "main thread" in errs[0], errs
print("threads OK")
"""


def test_no_preempt_holds_and_the_loop_must_be_on_the_main_thread(child):
    assert child(NO_PREEMPT_AND_THREADS).split() == ["OK", "threads", "OK"]
