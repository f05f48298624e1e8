"""Runtime scenario for valgrind (scripts/valgrind-core): goroutines on small frame stacks
(csrc/pe_gstack.c), spilling past them and back, raising through them, killed while parked; and
the C hand-off path (csrc/pe_hot.c): ping-pong, buffered channels, select, close, misuse; the
wakeup-fd relay (csrc/pe_wakeup.c) and errno across a switch."""
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


def wakeup_relay_and_errno():
    """The wakeup-fd relay (csrc/pe_wakeup.c) copies a real signal's byte; a goroutine's errno
    survives a park in pe_hot.c (pe_switch_to) while another goroutine writes errno."""
    import os
    import signal
    import time

    from preempt._runtime._errno import cell

    r, w = os.pipe()
    for fd in (r, w):
        os.set_blocking(fd, False)
    got = []
    signal.signal(signal.SIGUSR1, lambda n, f: got.append(n))
    assert signal.set_wakeup_fd(w) == -1
    os.kill(os.getpid(), signal.SIGUSR1)
    data, t_end = b"", time.monotonic() + 20
    while not (got and data) and time.monotonic() < t_end:
        preempt.sleep(0.001)
        try:
            data += os.read(r, 16)
        except BlockingIOError:
            pass
    assert got == [signal.SIGUSR1] and data == bytes([signal.SIGUSR1]), (got, data)
    assert signal.set_wakeup_fd(-1) == w
    os.close(r)
    os.close(w)
    e, ch = cell(), preempt.Chan()

    def clobber():
        e[0] = 22
        ch.send(None)

    preempt.go(clobber)
    e[0] = 25
    ch.recv()
    assert e[0] == 25, e[0]


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
    wakeup_relay_and_errno()
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
