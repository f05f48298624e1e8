"""The C hand-off path (csrc/pe_hot.c) and the pure-Python runtime (PREEMPT_PURE=1) schedule
alike: the same seeded programs, run once each way in child processes, record the same order of
goroutine steps and the same switch count.

The programs exercise every rule the two paths share (``_park.next_or_hub``/``take_direct``,
``_rules.py``): hand-offs through ``runnext``; a ping-pong that goes past ``RUNNEXT_STREAK``
hand-offs while other goroutines wait in the run queue (they must get their turn, and at the
same step on both paths); a watched fd, which sends every ``POLL_EVERY``-th switch through the
hub; buffered channels; ``select`` (its random case order seeded); timers, spaced so far apart
that which one fires next does not depend on the machine's speed; goroutines that start while
others park (rule 4: new ones are started by the hub). Preemption is off (``slice=0``): a time
slice ends wherever the clock says, which no two runs share.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(300)

BUILT = importlib.util.find_spec("preempt._hot") is not None

PROGRAM = r'''
import json, os, random, sys
import preempt
from preempt._runtime import _rules

seed = int(sys.argv[1])
rnd = random.Random(seed)
random.seed(seed)                       # select's case order
trace = []


def step(what):
    trace.append(f"{preempt.current().name}:{what}")


def pingpong(a, b, n, name):
    def echo():
        for v in a:
            step(f"echo{v}")
            b.send(v)
    preempt.go(echo, name=name + "-echo")
    for i in range(n):
        a.send(i)
        step(f"got{b.recv()}")
    a.close()


def bystander(k):
    for i in range(3):
        step(f"by{k}.{i}")
        preempt.gosched()


def main():
    # 1. A ping-pong past RUNNEXT_STREAK hand-offs, with bystanders in the run queue.
    for k in range(rnd.randint(1, 3)):
        preempt.go(bystander, k, name=f"by{k}")
    pingpong(preempt.Chan(), preempt.Chan(), _rules.RUNNEXT_STREAK + rnd.randint(5, 40), "pp")

    # 2. The same while an fd is watched: every POLL_EVERY-th switch goes through the hub.
    r, w = os.pipe()
    got = preempt.Chan(1)

    def reader():
        preempt.wait_readable(r)
        step("readable")
        got.send(os.read(r, 1))
    preempt.go(reader, name="reader")
    preempt.gosched()                   # the reader parks on the fd
    for k in range(rnd.randint(1, 2)):
        preempt.go(bystander, 10 + k, name=f"fd-by{k}")
    pingpong(preempt.Chan(), preempt.Chan(), _rules.POLL_EVERY * 2 + rnd.randint(0, 30), "fd")
    os.write(w, b"x")
    step(f"read{got.recv()!r}")
    os.close(r)
    os.close(w)

    # 3. Buffered channels, a ring of goroutines, and select over several of them.
    n = rnd.randint(3, 9)
    chans = [preempt.Chan(rnd.randint(0, 2)) for _ in range(n)]
    done = preempt.Chan()

    def member(i):
        for token in chans[i]:
            step(f"ring{i}.{token}")
            if token == 0:
                done.send(i)
            else:
                chans[(i + 1) % n].send(token - 1)
    for i in range(n):
        preempt.go(member, i, name=f"ring{i}")
    chans[0].send(rnd.randint(20, 200))
    step(f"ring-done{done.recv()}")
    for c in chans:
        c.close()

    outs = [preempt.Chan(rnd.randint(0, 1)) for _ in range(3)]

    def producer(i):
        for v in range(rnd.randint(2, 6)):
            outs[i].send((i, v))
        outs[i].close()
    for i in range(3):
        preempt.go(producer, i, name=f"prod{i}")
    open_ = set(range(3))
    while open_:
        cases = [preempt.Recv(outs[i]) for i in sorted(open_)]
        k, v = preempt.select(*cases)
        if not cases[k].ok:
            open_.discard(sorted(open_)[k])
            step("closed")
        else:
            step(f"sel{v}")

    # 4. Timers: sleepers 30 ms apart; each wakes, hands off, and goes back to sleep.
    wg = preempt.WaitGroup()
    relay = preempt.Chan()

    def sleeper(k):
        preempt.sleep(0.030 * (k + 1))
        step("woke")
        relay.send(k)
        wg.done()
    order = list(range(rnd.randint(2, 4)))
    rnd.shuffle(order)
    for k in order:
        wg.add(1)
        preempt.go(sleeper, k, name=f"sleep{k}")
    for _ in order:
        step(f"relay{relay.recv()}")
    wg.wait()
    return preempt.stats()["switches"]


switches = preempt.run(main, slice=0)
print(json.dumps({"c_path": preempt.chan.HOT is not None, "trace": trace,
                  "switches": switches}))
'''


def _run(seed: int, pure: bool) -> dict:
    env = dict(os.environ, PREEMPT_PURE="1" if pure else "0", PYTHONFAULTHANDLER="1")
    p = subprocess.run([sys.executable, "-c", PROGRAM, str(seed)], capture_output=True,
                       text=True, timeout=120, env=env)
    assert p.returncode == 0, f"seed {seed}, pure={pure}: rc {p.returncode}\n{p.stderr}"
    return json.loads(p.stdout)


@pytest.mark.skipif(not BUILT, reason="preempt._hot is not built: there is only one path")
@pytest.mark.parametrize("seed", range(4))
def test_c_and_pure_python_paths_run_goroutines_in_the_same_order(seed):
    c = _run(seed, pure=False)
    py = _run(seed, pure=True)
    assert c["c_path"] and not py["c_path"]
    trace = c["trace"]
    # The programs did what they are for, so that a difference has somewhere to show:
    # bystanders ran in the middle of the long ping-pong (fairness rule 2), not only after it.
    pp = [i for i, t in enumerate(trace) if t.startswith("main:got")]
    by = [i for i, t in enumerate(trace) if t.startswith("by0:")]
    assert any(pp[0] < i < pp[-1] for i in by), "rule 2 did not let the bystander in"
    assert "reader:readable" in trace and trace.count("sleep0:woke") == 1
    if py["trace"] != trace:
        pairs = list(zip(trace, py["trace"]))
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs))
        pytest.fail(f"seed {seed}: the paths differ from step {first}: C "
                    f"{trace[max(0, first - 3):first + 3]} vs Python "
                    f"{py['trace'][max(0, first - 3):first + 3]} "
                    f"({len(trace)} vs {len(py['trace'])} steps)")
    assert c["switches"] == py["switches"]
