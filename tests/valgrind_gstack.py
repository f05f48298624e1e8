"""Frame-stack scenario for valgrind (scripts/valgrind-core): goroutines on small frame stacks,
spilling past them and back, raising through them, and being killed while parked."""
import sys

import preempt


def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)


def worker(n, ch):
    total = 0
    for _ in range(20):
        total += depth(n)
        preempt.gosched()
    ch.send(total)


def boom(n):
    if n == 0:
        raise ValueError("deep")
    return boom(n - 1)


def main():
    ch = preempt.Chan()
    for n in (3, 60, 300):
        preempt.go(worker, n, ch)
    got = sorted(ch.recv() for _ in range(3))
    assert got == [60, 1200, 6000], got
    g = preempt.go(boom, 200)
    try:
        g.join()
    except ValueError:
        pass
    for _ in range(50):
        preempt.go(preempt.Chan().recv)    # left parked: killed when main returns
    preempt.sleep(0.01)
    return "done"


assert preempt.run(main, slice=0) == "done"   # valgrind keeps the RT signals sysmon uses
if sys.version_info >= (3, 11):
    from preempt import _gstack
    st = _gstack.stats()
    assert st["live"] == 0 and st["spills"] > 0, st
print("OK gstack")
