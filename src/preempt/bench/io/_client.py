"""The deterministic client of the instruction count: C connections, R requests each.

    python -m preempt.bench.io._client PORT C R

``drive(port, conns, requests)`` opens ``conns`` connections to a hello-world server
(``_server.py``) and, on every connection, sends ``requests`` requests one after another: the
next one only once the whole answer to the last has arrived (no pipelining), then closes the
connection. The connections run side by side on one thread (``selectors``), so the server
always has up to ``conns`` connections open, as under wrk, but the work it does is fixed: the
same requests, each in one segment, and nothing sent before the answer it waits for.

Why not wrk here: wrk runs for a duration, not a number of requests, and a server under
callgrind is ~50 times slower, so how many requests it answered would depend on the machine's
load. This client is the figure's other fixed half; it runs outside valgrind, in the measuring
process.
"""

from __future__ import annotations

import selectors
import socket
import sys
import time
from typing import Dict

from ._server import RESPONSE

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def drive(port: int, conns: int, requests: int, timeout: float = 120.0) -> Dict[str, int]:
    """Runs the conversation (module docstring); returns {'connections', 'requests'} answered.

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


if __name__ == "__main__":
    port, c, r = (int(x) for x in sys.argv[1:4])
    print(drive(port, c, r))
