"""preempt.blocking() under preempt.patch(), where the offload pool's own locks park goroutines
(``offload.py`` rule 6): a call that finishes while ``submit()`` is parked must neither hang
its goroutine nor end in a false Deadlock. Found by CPython's test_socket under patch()."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)

SCENARIO = r'''
import sys
import preempt
preempt.patch()
with_ticker = sys.argv[1] == "ticker"

def main():
    stop = []
    def ticker():
        while not stop:
            preempt.sleep(0.001)
    if with_ticker:
        preempt.go(ticker)
    total = 0
    for i in range(2000):
        total += preempt.blocking(int, "7")
    stop.append(1)
    return total

print("OK", preempt.run(main))
'''


@pytest.mark.parametrize("mode", ["ticker", "alone"])
def test_many_blocking_calls_under_patch_neither_hang_nor_deadlock(child, mode):
    # without rule 6: the ticker run hung (3 runs of 3), the lone one raised Deadlock (4 in 5)
    out = child(SCENARIO, mode, timeout=60)
    assert out.strip().splitlines()[-1] == "OK 14000", out
