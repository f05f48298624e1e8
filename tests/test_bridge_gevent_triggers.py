"""preempt.gevent's preemption triggers (issue 26, ``src/preempt/_gevent_loop.py``): a computing
greenlet is switched out when a hub timer falls due and when a watched fd becomes ready, not
only when its slice ends. Every scenario uses a slice far longer than the test (5 s), so a
slice end cannot explain what is seen; each asserts behaviour (the timer's or the reader's
callback ran while the computation was still inside its loop), never timing. Each runs in a
child process, on libev (gevent's default) and on libuv."""

from __future__ import annotations

import pytest
from conftest import need_module

need_module("gevent")
pytestmark = pytest.mark.timeout(120)

LOOPS = ["libev", "libuv"]

PRELUDE = """
import os, sys, time
if sys.argv[1] == "libuv":
    os.environ["GEVENT_LOOP"] = "libuv"
import warnings
warnings.simplefilter("ignore")       # libuv: "only millisecond timer resolution"
import gevent
import preempt.gevent as pg
pg.enable(slice=5.0)                  # a slice never ends within this test
from _childlib import compute_until
flag = []
def compute():
    return compute_until(flag)       # pure Python, never yields by itself
"""

TIMER = PRELUDE + """
gevent.spawn_later(0.05, flag.append, 1)
g = gevent.spawn(compute)
print(g.get(), pg.stats()["timer"])
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_a_due_timer_switches_a_computing_greenlet_out(child, loop):
    how, by_timer = child(TIMER, loop).split()
    assert how == "flag" and int(by_timer) >= 1, (how, by_timer)


OWN_TIMEOUT = PRELUDE + """
log = []
def guarded():
    try:
        with gevent.Timeout(0.05):        # made by the computing greenlet itself
            gevent.sleep(0)               # published once it has been through the hub
            compute()
        log.append("finished")
    except gevent.Timeout:
        log.append("timeout")
g = gevent.spawn(guarded)
g.join()
print(log, pg.stats()["timer"] >= 1)
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_a_timeout_made_by_the_computing_greenlet_reaches_it(child, loop):
    assert child(OWN_TIMEOUT, loop).split("\n")[0] == "['timeout'] True"


READY_FD = PRELUDE + """
import socket, threading
from gevent.socket import wait_read
a, b = socket.socketpair()
def reader():
    wait_read(a.fileno())
    flag.append(a.recv(1))
r = gevent.spawn(reader)
gevent.sleep(0.01)                     # the reader waits on its fd
threading.Timer(0.05, b.send, (b"x",)).start()    # an OS thread: the hub does not run
g = gevent.spawn(compute)
print(g.get(), flag, pg.stats()["io"] >= 1)
"""


SHORT_TIMEOUT_AT_THE_BLOCKING_CALL = PRELUDE + """
# gevent's test__event test_set: a Timeout(0) around a call that blocks is raised at the
# blocking call, not in the Python code before it (rule 2 of _gevent_loop.py)
from gevent.event import AsyncResult
out = []
for _ in range(200):
    ev = AsyncResult()
    try:
        with gevent.Timeout(0, ValueError("t")):
            x = sum(range(2000))          # Python code before the blocking call
            out.append("before")
            ev.get()
    except ValueError:
        out.append("at get")
print(out.count("before") == 200 and out.count("at get") == 200)
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_a_short_timeout_is_raised_at_the_blocking_call(child, loop):
    assert child(SHORT_TIMEOUT_AT_THE_BLOCKING_CALL, loop).split("\n")[0] == "True"


@pytest.mark.parametrize("loop", LOOPS)
def test_a_ready_fd_switches_a_computing_greenlet_out(child, loop):
    assert child(READY_FD, loop).split("\n")[0] == "flag [b'x'] True"


EXACT_RESUME = PRELUDE + """
# a timer-driven preemption resumes the computing greenlet exactly where it was: join() returns
# only once it has finished, and the heartbeat ran while it computed (issue 26's lost CI run:
# join() returned while the computation was still in its loop)
state = {"beats": 0, "done": False}
def heartbeat():
    while not state["done"]:
        state["beats"] += 1
        gevent.sleep(0.001)
def counted():
    n = 0
    t_end = time.monotonic() + 0.3
    while time.monotonic() < t_end:
        n += 1
    state["done"] = True
    return n
hb = gevent.spawn(heartbeat)
gevent.sleep(0.005)
before = state["beats"]
out = gevent.spawn(counted).get()
assert state["done"] and out > 0, state
print(state["beats"] - before > 5, pg.stats()["timer"] > 5)
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_a_timer_preemption_resumes_the_greenlet_exactly(child, loop):
    assert child(EXACT_RESUME, loop).split("\n")[0] == "True True"


FAIR = PRELUDE + """
# four greenlets computing beside a 1 ms heartbeat take turns: each advances while the others
# have not finished (the timer trigger switches them out every tick, round robin)
progress = [0, 0, 0, 0]
stop = []
def heartbeat():
    while not stop:
        gevent.sleep(0.001)
def spin(i):
    while not stop:
        progress[i] += 1
hb = gevent.spawn(heartbeat)
gs = [gevent.spawn(spin, i) for i in range(4)]
gevent.sleep(0.3)
stop.append(1)
gevent.joinall(gs + [hb])
print(all(p > 0 for p in progress), pg.stats()["timer"] > 4)
"""


@pytest.mark.parametrize("loop", LOOPS)
def test_computing_greenlets_take_turns_beside_a_heartbeat(child, loop):
    assert child(FAIR, loop).split("\n")[0] == "True True"
