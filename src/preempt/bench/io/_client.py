"""The fixed-work clients of the instruction count: C connections, R requests each.

    python -m preempt.bench.io._client PORT C R [in-turn|side-by-side]

Both open ``conns`` connections to a hello-world server (``_server.py``) and, on every
connection, send ``requests`` requests one after another: the next one only once the whole
answer to the last has arrived (no pipelining); then they close the connections. The server has
all ``conns`` connections open throughout, as under wrk. They differ in how many requests are in
flight (MODES):

1. ``in turn`` (:func:`drive_in_turn`): one at a time, round after round over the connections.
   Every request wakes an idle server: a trip through the poller, a switch into the
   connection's task, a read, a write, and back to sleep. The work is the same on every run,
   so the count is too, start-up aside: this is the load-independent figure.
2. ``side by side`` (:func:`drive_side_by_side`): every connection has its request in flight
   (``selectors``, one thread). One poll then returns several ready connections and its cost
   is shared, as under load; but how many it returns depends on timing, so the count moves
   from run to run (by up to ~20 %).

Why not wrk here: wrk runs for a duration, not a number of requests, and a server under
callgrind is ~50 times slower, so how many requests it answered would depend on the machine's
load. These clients run outside valgrind, in the measuring process.
"""

from __future__ import annotations

import selectors
import socket
import sys
import time
from typing import Dict

from ._server import RESPONSE

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def drive_in_turn(port: int, conns: int, requests: int, timeout: float = 120.0) -> Dict[str, int]:
    """Mode 1 (module docstring): round after round, each of the ``conns`` open connections
    sends one request and waits for its whole answer. Returns {'connections', 'requests'}.

    Raises:
        RuntimeError: A wrong answer or a connection closed early.
        OSError: socket.timeout after ``timeout`` seconds without an answer.
    """
    socks = []
    answered = 0
    try:
        for _ in range(conns):
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(s)
        for _ in range(requests):
            for s in socks:
                s.sendall(REQUEST)
                buf = b""
                while len(buf) < len(RESPONSE):
                    data = s.recv(65536)
                    if not data:
                        raise RuntimeError(f"the server closed a connection after {answered} "
                                           f"answers")
                    buf += data
                if buf != RESPONSE:
                    raise RuntimeError(f"unexpected answer {buf[:200]!r}")
                answered += 1
    finally:
        for s in socks:
            s.close()
    return {"connections": conns, "requests": answered}


def drive_side_by_side(port: int, conns: int, requests: int,
                       timeout: float = 120.0) -> Dict[str, int]:
    """Mode 2 (module docstring): every connection has a request in flight; each sends its
    next one when its answer is whole. Returns {'connections', 'requests'}.

    Raises:
        RuntimeError: A wrong answer, a connection closed early, or no progress in ``timeout``
            seconds.
    """
    sel = selectors.DefaultSelector()
    left: Dict[socket.socket, int] = {}
    got: Dict[socket.socket, bytes] = {}
    answered = 0
    try:
        for _ in range(conns):
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            left[s], got[s] = requests, b""
            sel.register(s, selectors.EVENT_READ)
            s.send(REQUEST)
        deadline = time.monotonic() + timeout
        while left:
            events = sel.select(max(0.0, deadline - time.monotonic()))
            if not events:
                raise RuntimeError(f"the server answered nothing for {timeout:g} s "
                                   f"({answered} of {conns * requests} requests answered)")
            deadline = time.monotonic() + timeout
            for key, _ in events:
                s = key.fileobj
                data = s.recv(65536)
                if not data:
                    raise RuntimeError(f"the server closed a connection after "
                                       f"{requests - left[s]} of {requests} answers")
                buf = got[s] + data
                if len(buf) < len(RESPONSE):
                    got[s] = buf
                    continue
                if buf != RESPONSE:
                    raise RuntimeError(f"unexpected answer {buf[:200]!r}")
                answered += 1
                got[s] = b""
                left[s] -= 1
                if left[s]:
                    s.send(REQUEST)
                else:
                    sel.unregister(s)
                    s.close()
                    del left[s]
    finally:
        for s in left:
            s.close()
        sel.close()
    return {"connections": conns, "requests": answered}


MODES = {"in turn": drive_in_turn, "side by side": drive_side_by_side}


if __name__ == "__main__":
    port, c, r = (int(x) for x in sys.argv[1:4])
    mode = sys.argv[4].replace("-", " ") if len(sys.argv) > 4 else "in turn"
    print(MODES[mode](port, c, r))
