"""preempt.aio's preemption triggers (issue 26, ``src/preempt/_aio_loop.py``): a function run by
``preempt.aio.run`` is switched out when the loop's next timer falls due and when one of the
loop's fds becomes ready, not only when its slice ends. The slice is far longer than the test
(5 s), so a slice end cannot explain what is seen; each scenario asserts behaviour (the loop's
callback ran while the function was still inside its loop), never timing. Each runs in a child
process, on asyncio's default loop and on uvloop (skipped where uvloop has no wheel)."""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.timeout(120)


def _loop_params():
    yield "asyncio"
    has_uv = importlib.util.find_spec("uvloop") is not None
    yield pytest.param("uvloop", marks=pytest.mark.skipif(
        not has_uv, reason="uvloop is not installed (no wheel for this Python)"))


LOOPS = list(_loop_params())


PRELUDE = """
import asyncio, sys, time
import preempt.aio as pa
from _childlib import compute_until
flag = []
def compute():
    return compute_until(flag)       # pure Python, never yields by itself
def main(coro):
    if sys.argv[1] == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()
    return asyncio.run(coro)
"""

TIMER = PRELUDE + """
async def go():
    asyncio.get_running_loop().call_later(0.05, flag.append, 1)
    return await pa.run(compute, slice=5.0)
print(main(go()))
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_a_due_timer_switches_a_computing_function_out(child, loop):
    assert child(TIMER, loop).strip() == "flag"


SLEEPER = PRELUDE + """
async def sleeper():
    await asyncio.sleep(0.05)          # a task's wake-up: the timer only makes it ready
    flag.append(1)
async def go():
    t = asyncio.ensure_future(sleeper())
    out = await pa.run(compute, slice=5.0)
    await t
    return out
print(main(go()))
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_a_sleeping_task_wakes_while_a_function_computes(child, loop):
    assert child(SLEEPER, loop).strip() == "flag"


READY_FD = PRELUDE + """
import socket, threading
async def go():
    a, b = socket.socketpair()
    loop = asyncio.get_running_loop()
    loop.add_reader(a.fileno(), lambda: flag.append(a.recv(1)))
    threading.Timer(0.05, b.send, (b"x",)).start()   # an OS thread writes; the loop is busy
    out = await pa.run(compute, slice=5.0)
    loop.remove_reader(a.fileno())
    return out, flag
print(*main(go()))
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_a_ready_fd_switches_a_computing_function_out(child, loop):
    assert child(READY_FD, loop).strip() == "flag [b'x']"


FAIR = PRELUDE + """
# four functions beside a 1 ms ticker take turns: each advances before any has finished
progress = [0, 0, 0, 0]
def spin(i):
    while not flag:
        progress[i] += 1
async def go():
    async def ticker():
        while not flag:
            await asyncio.sleep(0.001)
    t = asyncio.ensure_future(ticker())
    jobs = [asyncio.ensure_future(pa.run(spin, i, slice=5.0)) for i in range(4)]
    await asyncio.sleep(0.3)
    seen = list(progress)
    flag.append(1)
    await asyncio.gather(t, *jobs)
    return all(p > 0 for p in seen)
print(main(go()))
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_functions_take_turns_beside_a_ticker(child, loop):
    assert child(FAIR, loop).strip() == "True"
