"""Runtime scenario for valgrind (scripts/valgrind-core): goroutines on small frame stacks
(csrc/pe_gstack.c), spilling past them and back, raising through them, killed while parked; and
the C hand-off path (csrc/pe_hot.c): ping-pong, buffered channels, select, close, misuse."""
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
    a, b = preempt.Chan(), preempt.Chan()

    def echo():
        for v in a:
            b.send(v)

    preempt.go(echo)
    for i in range(2000):
        a.send(i)
        assert b.recv() == i
    a.close()
    buf = preempt.Chan(3)
    preempt.go(lambda: [buf.send(i) for i in range(100)] and buf.close())
    assert list(buf) == list(range(100))
    c1, c2 = preempt.Chan(), preempt.Chan()
    preempt.go(lambda: c2.send("x"))
    assert preempt.select(preempt.Recv(c1), preempt.Recv(c2)) == (1, "x")
    closed = preempt.Chan()
    preempt.go(lambda: (preempt.sleep(0.001), closed.close()))
    assert closed.recv_ok() == (None, False)
    try:
        closed.send(1)
    except preempt.ChanClosed:
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
print("OK runtime")
