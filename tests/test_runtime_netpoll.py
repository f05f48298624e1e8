"""The poller's two kinds of registration (``_runtime/_netpoll.py`` invariant 2): a socket's fd
stays registered, edge-triggered, for the socket's life, and no edge is lost; a bare fd is
registered only while waited on; a socket that dies unclosed never leaves a registration that
silences the next file with its fd number."""

from __future__ import annotations

import gc
import os
import select
import socket as stdsocket

import pytest

import preempt
from preempt import socket as psocket

pytestmark = pytest.mark.timeout(60)


def _poller():
    from preempt._runtime import _park

    return _park.sched.poller


def test_a_socket_stays_registered_between_waits_and_close_removes_it(in_run):
    def main():
        a, b = psocket.socketpair()
        p = _poller()
        reader = preempt.go(a.recv, 10)
        preempt.sleep(0.01)                      # parked: its fd is registered
        fd = a.fileno()
        assert fd in p.fds and p.fds[fd].r is not None
        b.send(b"one")
        assert reader.join() == b"one"
        kept = fd in p.fds and p.fds[fd].r is None    # woken, no waiter, still registered
        a.close()
        closed = fd not in p.fds
        b.close()
        return kept, closed

    assert in_run(main) == (True, True)


def test_an_edge_while_nobody_waits_is_kept_for_the_next_wait(in_run):
    # Edge-triggered: the kernel reports readiness once. An edge the hub sees while no G
    # waits must make the socket's next wait return (Go's pdReady), or data that arrived
    # then would never wake anyone.
    from preempt.socket import _wait
    from preempt._runtime._netpoll import READ

    def main():
        a, b = psocket.socketpair()
        p = _poller()
        reader = preempt.go(a.recv, 10)
        preempt.sleep(0.01)
        b.send(b"1")
        assert reader.join() == b"1"             # registered; nobody waits now
        b.send(b"2")                             # an edge with no waiter
        for _ in range(50):
            preempt.sleep(0.001)                 # the hub polls meanwhile
            if p.fds[a.fileno()].ready:
                break
        kept = p.fds[a.fileno()].ready
        waiter = preempt.go(_wait, a.fileno(), READ, None, a)   # must not park
        preempt.sleep(0.05)
        returned = waiter.done()
        data = a.recv(10)
        a.close()
        b.close()
        return kept, returned, data

    kept, returned, data = in_run(main)
    assert kept, "the edge that came while nobody waited was not kept"
    assert returned, "a wait after an edge nobody waited for parked: the edge was lost"
    assert data == b"2"


def test_a_wait_after_the_kept_edge_was_used_parks_until_new_data(in_run):
    def main():
        a, b = psocket.socketpair()
        a.settimeout(0.2)
        reader = preempt.go(a.recv, 10)
        preempt.sleep(0.01)
        b.send(b"1")
        assert reader.join() == b"1"
        b.send(b"2")
        preempt.sleep(0.02)                      # the edge arrives while nobody waits
        assert a.recv(10) == b"2"
        try:                                     # nothing left: the old edge must not
            a.recv(10)                           # pass for new data
            got = "returned"
        except stdsocket.timeout:
            got = "timed out"
        b.send(b"3")
        again = a.recv(10)
        a.close()
        b.close()
        return got, again

    assert in_run(main) == ("timed out", b"3")


def test_a_socket_dropped_unclosed_does_not_silence_the_next_file_with_its_fd(in_run):
    # The garbage collector closes a dropped socket's fd without telling the poller; the next
    # socket given that fd number must be registered for itself and wake its reader.
    def main():
        a, b = psocket.socketpair()
        reader = preempt.go(a.recv, 10)
        preempt.sleep(0.01)
        b.send(b"x")
        assert reader.join() == b"x"
        old = a.fileno()
        del reader
        a.detach()                               # the object forgets its fd ...
        os.close(old)                            # ... which is closed behind the poller
        del a
        gc.collect()
        c, d = psocket.socketpair()
        nums = {c.fileno(), d.fileno()}
        r2 = preempt.go(c.recv, 10) if c.fileno() == old else preempt.go(d.recv, 10)
        preempt.sleep(0.01)
        (d if c.fileno() == old else c).send(b"new")
        got = r2.join(timeout=5)
        for s in (b, c, d):
            s.close()
        return old in nums, got

    reused, got = in_run(main)
    assert got == b"new"
    assert reused, "the fd number was not reused: nothing was tested"


def test_an_orphaned_registration_only_wakes_spuriously(in_run):
    # The dropped socket's file stays open elsewhere (a dup): the kernel keeps its
    # registration, now unreachable, and reports its events under the old fd number, which a
    # new socket has. Its reader may be woken spuriously; it must not hang nor get wrong data.
    def main():
        a, b = psocket.socketpair()
        reader = preempt.go(a.recv, 10)
        preempt.sleep(0.01)
        b.send(b"x")
        assert reader.join() == b"x"
        old = a.fileno()
        keep = os.dup(old)                       # the file outlives the fd number
        a.detach()
        os.close(old)
        c, d = psocket.socketpair()
        mine, peer = (c, d) if c.fileno() == old else (d, c)
        r2 = preempt.go(mine.recv, 10)
        preempt.sleep(0.01)
        b.send(b"ghost")                         # the orphan's event, under fd `old`
        preempt.sleep(0.02)
        peer.send(b"real")
        got = r2.join(timeout=5)
        os.close(keep)
        for s in (b, c, d):
            s.close()
        return got

    assert in_run(main) == b"real"


def test_a_bare_wait_on_a_socket_fd_means_ready_not_maybe(in_run):
    # preempt.wait_readable(fd) promises readiness; an old edge kept for the socket must not
    # make it return while nothing is there.
    def main():
        a, b = psocket.socketpair()
        reader = preempt.go(a.recv, 10)
        preempt.sleep(0.01)
        b.send(b"1")
        assert reader.join() == b"1"
        b.send(b"2")
        preempt.sleep(0.02)                      # an edge nobody waited for: kept
        assert a.recv(10) == b"2"                # and its data taken
        r = preempt.wait_readable(a.fileno(), timeout=0.1)
        ready_now = bool(select.select([a], [], [], 0)[0])
        a.close()
        b.close()
        return r, ready_now

    assert in_run(main) == (False, False)


def test_a_bare_fd_is_registered_only_while_waited_on(in_run):
    def main():
        r, w = os.pipe()
        p = _poller()
        g = preempt.go(preempt.wait_readable, r)
        preempt.sleep(0.01)
        during = r in p.fds
        os.write(w, b"x")
        g.join()
        after = r in p.fds
        os.close(r)
        os.close(w)
        return during, after

    assert in_run(main) == (True, False)


def test_a_socket_closed_by_another_thread_wakes_its_waiter_with_ebadf(in_run):
    # close() on a thread other than the M cannot tell the poller; the sweep asks the socket
    # (invariant 5), so the waiter wakes with EBADF instead of sleeping out its timeout.
    import errno
    import threading
    import time

    def main():
        a, b = psocket.socketpair()
        a.settimeout(20)
        got = []

        def reader():
            t0 = time.monotonic()
            try:
                a.recv(10)
                got.append("returned")
            except OSError as e:
                got.append((e.errno, time.monotonic() - t0 < 10))

        g = preempt.go(reader)
        preempt.sleep(0.02)
        t = threading.Thread(target=a.close)
        t.start()
        g.join()
        t.join()
        b.close()
        return got

    assert in_run(main) == [(errno.EBADF, True)]
