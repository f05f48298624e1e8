"""Goroutines that each run an asyncio event loop (``_runtime/_park.py``, the asyncio rule):
every goroutine has its own running loop, though asyncio keeps one per OS thread and all
goroutines share the M. Scenarios run in child processes, on the C and the pure-Python path."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)

LOOPS = """
import os, sys
os.environ["PREEMPT_PURE"] = sys.argv[1]          # before preempt is imported
import asyncio, time
import preempt
asyncio.get_event_loop_policy()   # made under asyncio.events._lock, a real lock: not in a race
log = []
def running():
    return asyncio.events._get_running_loop()
async def work(name):
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()                  # 3.14 keeps it per thread, like the loop
    total = 0
    for step in range(6):
        await asyncio.sleep(0.005)
        assert asyncio.get_running_loop() is loop, (name, step)
        assert asyncio.current_task() is me, (name, step)
        t_end = time.monotonic() + 0.01          # five slices: preempted in the middle
        while time.monotonic() < t_end:
            total += 1
        assert asyncio.get_running_loop() is loop, (name, step)
        assert asyncio.current_task() is me, (name, step)
        log.append(name)
    return name, id(loop), total > 0
def g(name, out):
    assert running() is None, f"goroutine {name} saw a loop before its own"
    out[name] = asyncio.run(work(name))
    assert running() is None, f"goroutine {name} saw a loop after its own"
def main():
    out = {}
    gs = [preempt.go(g, n, out) for n in range(3)]
    seen = 0
    while len(out) < 3:
        preempt.sleep(0.003)
        assert running() is None, "main saw another goroutine's loop"
        seen += 1
    for x in gs:
        x.join()
    assert sorted(out) == [0, 1, 2], out
    assert all(out[n][0] == n and out[n][2] for n in out), out
    assert len({out[n][1] for n in out}) == 3, "two goroutines shared a loop"
    first_done = min(log.index(n) + 5 for n in range(3))  # where one finished its six steps
    assert len(set(log[:first_done + 1])) > 1, f"the loops did not interleave: {log}"
    return seen
preempt.run(main, slice=0.002)
assert running() is None
print("OK")
"""


@pytest.mark.parametrize("pure", ["0", "1"], ids=["c", "pure"])
def test_each_goroutine_runs_its_own_asyncio_loop(child, pure):
    assert child(LOOPS, pure, timeout=60).strip() == "OK"


OUTER_LOOP = """
import os, sys
os.environ["PREEMPT_PURE"] = sys.argv[1]
import asyncio
import preempt
def inner():
    def g():
        return asyncio.events._get_running_loop()
    x = preempt.go(g)
    seen = [asyncio.events._get_running_loop(), x.join()]
    return seen
async def outer():
    loop = asyncio.get_running_loop()
    seen = preempt.run(inner)
    assert seen == [None, None], seen               # the loop around run() is not theirs
    assert asyncio.get_running_loop() is loop       # and it is back afterwards
asyncio.run(outer())
print("OK")
"""


@pytest.mark.parametrize("pure", ["0", "1"], ids=["c", "pure"])
def test_a_loop_around_run_is_not_the_goroutines_and_comes_back(child, pure):
    assert child(OUTER_LOOP, pure, timeout=60).strip() == "OK"


# The C path skips looking for asyncio while sys.modules has not changed (pe_hot.c): asyncio
# imported by a goroutine after many switches is still seen at its next switch.
LATE_IMPORT = """
import os, sys
os.environ["PREEMPT_PURE"] = sys.argv[1]
assert "asyncio" not in sys.modules
import preempt
def g(name, out):
    import asyncio
    async def work():
        loop = asyncio.get_running_loop()
        for _ in range(5):
            await asyncio.sleep(0.003)
            assert asyncio.get_running_loop() is loop
        return id(loop)
    out[name] = asyncio.run(work())
    assert asyncio.events._get_running_loop() is None
def main():
    for _ in range(20):
        preempt.sleep(0.001)                 # parks while asyncio is not imported
    with preempt.no_preempt():               # the policy is made under a real lock (see above)
        import asyncio
        asyncio.get_event_loop_policy()
    out = {}
    for x in [preempt.go(g, n, out) for n in range(2)]:
        x.join()
    assert len(set(out.values())) == 2, out
preempt.run(main, slice=0.002)
print("OK")
"""


@pytest.mark.parametrize("pure", ["0", "1"], ids=["c", "pure"])
def test_asyncio_imported_by_a_goroutine_later_is_seen(child, pure):
    assert child(LATE_IMPORT, pure, timeout=60).strip() == "OK"
