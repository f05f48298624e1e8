"""The soak's cancellations (6 of the package docstring): goroutines cancelled, timed out and
grouped at random while they wait and while they compute. Started like the rest of the
workload (``_State.go``: ``fn(st, c, rng, *args)``).

- ``_cancel_lane``: a supervisor and its victims. The victims run random operations on two
  channels (send, recv, a select with a send and a receive case), a Mutex and a WaitGroup,
  each under a random ``preempt.timeout`` or none; the supervisor cancels random victims at
  random moments and starts a new one for each that the cancellation ended. Bookkeeping runs in
  ``no_preempt()`` right after an operation returned (docs/guide.md "Interrupts never lose a value").
  Book: the values whose send returned are, as a multiset, the values whose receive returned
  plus what is left buffered; the Mutex is free at the end; every WaitGroup member counted.
- ``_grouper``: ``preempt.Group`` blocks whose members compute, block for ever, finish or fail,
  ended four ways: members fail (the block raises an ExceptionGroup of exactly the failures
  raised), an enclosing timeout, ``grp.cancel()`` from the body, the owner cancelled from
  outside. Book: every member has finished and its ``finally`` ran when the block is left.
- ``_timeouter``: nested ``preempt.timeout`` blocks around a CPU-bound loop or a wait. Book:
  the block that expired is the one that fired, never before its deadline; the lateness is
  reported.
- ``_spin_cancel``: cancels a goroutine that computes in a pure-Python loop. Book: it ends
  with ``Cancelled`` (join raises it), its ``finally`` ran; the cancel-to-finally time is
  reported.
"""

from __future__ import annotations

import collections
import random
import time
from typing import Any, List

from ._books import DRAIN_DEADLINE, EARLY_TOL, _State


class _Boom(Exception):
    """A group member's deliberate failure; ``args[0]`` is its number."""


# --- the cancellation lane ----------------------------------------------------------------------

class _Lane:
    """One supervisor's channels, Mutex and WaitGroup, and the ledger its victims keep."""

    def __init__(self, rng: random.Random, lane: int) -> None:
        import preempt

        self.lane = lane
        self.chans = [preempt.Chan(rng.choice((0, 1, 4))) for _ in range(2)]
        self.mu = preempt.Mutex()
        self.holder: Any = None                # the token of the Mutex's holder
        self.wg = preempt.WaitGroup()
        self.wg_spawned = 0
        self.wg_done = 0
        self.sent: List[tuple] = []
        self.received: List[tuple] = []
        self.stop = False


def _done_later(ln: _Lane) -> None:
    import preempt

    try:
        preempt.sleep(0.0002)
    finally:
        with preempt.no_preempt():
            ln.wg_done += 1
            ln.wg.done()


def _victim(st: _State, ln: _Lane, vid: tuple, rng: random.Random, c: collections.Counter) -> None:
    """Random operations until the lane stops; lets every other cancellation end it."""
    import preempt
    from preempt import Recv, Send

    k = 0
    try:
        while not ln.stop:
            k += 1
            kind = rng.random()
            try:
                with preempt.timeout(rng.choice((None, None, 5e-4, 2e-3))):
                    if kind < 0.3:
                        v = vid + (k,)
                        ch = rng.choice(ln.chans)
                        with preempt.no_preempt():
                            ch.send(v)
                            ln.sent.append(v)
                    elif kind < 0.6:
                        ch = rng.choice(ln.chans)
                        with preempt.no_preempt():
                            v = ch.recv()
                            ln.received.append(v)
                    elif kind < 0.8:
                        v = vid + (k,)
                        a, b = rng.sample(ln.chans, 2)
                        with preempt.no_preempt():
                            i, got = preempt.select(Recv(a), Send(b, v), timeout=rng.choice((None, 1e-3)))
                            if i == 0:
                                ln.received.append(got)
                            elif i == 1:
                                ln.sent.append(v)
                    elif kind < 0.93:
                        # "One holder at a time", checked so that no interrupt can fake a
                        # breach: the holder writes its token and, at the end of the section,
                        # finds it still there. (A busy flag cleared in a finally would stay
                        # set when the cancellation lands just before the clearing.)
                        tok = object()
                        with ln.mu:
                            ln.holder = tok
                            if rng.random() < 0.5:
                                preempt.sleep(1e-4)
                            else:
                                x = 0
                                for i in range(rng.randrange(2000)):
                                    x += i
                            if ln.holder is not tok:
                                st.fail(f"cancel lane {ln.lane}: the Mutex was held twice")
                    else:
                        with preempt.no_preempt():
                            ln.wg.add(1)
                            preempt.go(_done_later, ln)
                            ln.wg_spawned += 1
                        if rng.random() < 0.5:
                            ln.wg.wait()
                c["cancel lane ops"] += 1
                if rng.random() < 0.05:
                    x = 0
                    for i in range(rng.randrange(20000)):
                        x += i
            except preempt.Timeout:
                c["cancel lane timeouts"] += 1
            except preempt.Cancelled:
                c["cancel lane absorbed"] += 1
                if ln.stop or rng.random() < 0.5:
                    raise
    finally:
        with preempt.no_preempt():
            st.n.update(c)
            c.clear()


def _cancel_lane(st: _State, c: Any, rng: random.Random, lane: int) -> None:
    import preempt
    from preempt import Cancelled, JoinTimeout

    ln = _Lane(rng, lane)
    gen = [0]

    def spawn(i: int) -> Any:
        gen[0] += 1
        return preempt.go(_victim, st, ln, (lane, i, gen[0]), st.rand(), collections.Counter(),
                          name=f"cancel-victim-{lane}.{i}")

    victims = [spawn(i) for i in range(rng.randint(3, 5))]
    while not st.stop.is_set():
        st.stop.wait(rng.uniform(0, 1e-3) * rng.choice((1, 3, 10)))
        i = rng.randrange(len(victims))
        g = victims[i]
        if g.done():
            try:
                g.join()
            except Cancelled:
                c["cancel lane ended by cancel"] += 1
            victims[i] = spawn(i)
        elif g.cancel("soak: the cancel lane's supervisor"):
            c["cancels"] += 1
    ln.stop = True
    deadline = time.monotonic() + DRAIN_DEADLINE / 2
    for g in victims:                          # cancellation is also how the lane is drained
        while not g.done() and time.monotonic() < deadline:
            g.cancel("soak: the end")
            try:
                g.join(0.05)
            except (Cancelled, JoinTimeout):
                pass
        if not g.done():
            st.fail(f"cancel lane {lane}: {g.name} did not end though cancelled for "
                    f"{DRAIN_DEADLINE / 2:.0f} s")
            return
        try:
            g.join()
        except Cancelled:
            pass
    with preempt.timeout(5.0):
        ln.wg.wait()
    if ln.wg_done != ln.wg_spawned:
        st.fail(f"cancel lane {lane}: WaitGroup counted {ln.wg_done} of {ln.wg_spawned} done()")
    for ch in ln.chans:                        # what is still buffered was sent, not received
        while len(ch):
            ln.received.append(ch.recv())
    try:
        with preempt.timeout(5.0):
            ln.mu.lock()
        ln.mu.unlock()
    except preempt.Timeout:
        st.fail(f"cancel lane {lane}: the Mutex is still held after every victim ended")
    sent, got = collections.Counter(ln.sent), collections.Counter(ln.received)
    c["cancel lane values"] += len(ln.sent)
    if sent != got or len(sent) != len(ln.sent):
        st.fail(f"cancel lane {lane}: {len(ln.sent)} sent, {len(ln.received)} received: lost "
                f"{sum((sent - got).values())}, duplicated or invented {sum((got - sent).values())}")


# --- groups -------------------------------------------------------------------------------------

def _grouper(st: _State, c: Any, rng: random.Random) -> None:
    import preempt
    from preempt import Cancelled

    while not st.stop.is_set():
        how = rng.choice(("fail", "timeout", "cancel", "owner"))
        n = rng.randint(1, 6)
        entered: List[int] = []                # a member cancelled before it ran never enters
        unwound: List[int] = []
        raised: List[int] = []

        # The records are plain appends, first in their block: a C call completes before
        # CPython checks for a pending exception after it, so a cancellation can land before
        # or after one, never half-way. (A no_preempt() block would not do: its call is a
        # checkpoint of its own, where a kept cancellation may land first.)
        def member(i: int, kind: str) -> int:
            try:
                entered.append(i)
                if kind == "compute":
                    x = 0
                    while True:
                        x += 1
                elif kind == "block":
                    preempt.Chan().recv()
                elif kind == "fail":
                    preempt.sleep(rng.uniform(0, 2e-3))
                    with preempt.no_preempt():
                        raised.append(i)
                        raise _Boom(i)
                preempt.sleep(rng.uniform(0, 1e-3))
                return i
            finally:
                unwound.append(i)

        kinds = [rng.choice(("compute", "block", "finish")) for _ in range(n)]
        if how == "fail":
            kinds[rng.randrange(n)] = "fail"
            if rng.random() < 0.3:
                kinds[rng.randrange(n)] = "fail"
        else:                                  # one member that only a cancellation ends
            kinds[rng.randrange(n)] = rng.choice(("compute", "block"))
        started: List[int] = []                # a cancelled owner may not start them all

        holder: List[Any] = []

        def block() -> Any:
            with preempt.Group() as grp:
                holder.append(grp)
                for i, k in enumerate(kinds):
                    with preempt.no_preempt():
                        grp.go(member, i, k)
                        started.append(i)
                if how == "cancel":
                    preempt.sleep(rng.uniform(0, 2e-3))
                    grp.cancel()
            return grp

        grp = None
        t0 = time.monotonic()
        try:
            if how == "timeout":
                limit = rng.uniform(0, 3e-3)
                try:
                    with preempt.timeout(limit):
                        grp = block()
                    st.fail("Group under a timeout: the block ended without Timeout")
                except preempt.Timeout:
                    if time.monotonic() - t0 < limit - EARLY_TOL:
                        st.fail(f"Group under a timeout of {limit:.6f} s: Timeout early")
            elif how == "owner":
                owner = preempt.go(block, name="group-owner")
                preempt.sleep(rng.uniform(0, 2e-3))
                owner.cancel("soak: the group's owner")
                try:
                    grp = owner.join(DRAIN_DEADLINE)
                    st.fail("Group whose owner was cancelled: the block ended normally")
                except Cancelled:
                    pass
            else:
                grp = block()
                if how == "fail":
                    st.fail("Group with a failing member: the block ended normally")
        except preempt.JoinTimeout:
            st.fail("Group whose owner was cancelled: the owner did not end")
            continue
        except BaseException as e:
            if how != "fail" or not hasattr(e, "exceptions"):
                raise
            # A boom whose member was then cancelled in its finally (the second of two failures,
            # say) ends that member with Cancelled, the boom as its __context__: not a failure.
            got = sorted(x.args[0] for x in e.exceptions if isinstance(x, _Boom))
            gone = [i for i in raised if i not in got
                    and not isinstance(holder[0].members[i].exc, preempt.Cancelled)]
            if len(got) != len(e.exceptions) or not got or not set(got) <= set(raised) or gone:
                st.fail(f"Group: ExceptionGroup holds {e.exceptions!r}, but members raised {raised}")
            c["group failures"] += len(got)
        c["groups " + how] += 1
        if not set(entered) <= set(unwound) <= set(started) or len(unwound) != len(set(unwound)):
            st.fail(f"Group ({how}): left with members {sorted(set(entered) - set(unwound))} "
                    f"not unwound, of kinds {kinds}")
        if grp is not None and not all(m.done() for m in grp.members):
            st.fail(f"Group ({how}): left with a member still running")
        c["group members"] += n


# --- timeouts -----------------------------------------------------------------------------------

def _timeouter(st: _State, c: Any, rng: random.Random) -> None:
    import preempt

    while not st.stop.is_set():
        inner_s = rng.uniform(0, 3e-3)
        outer_s = inner_s + rng.choice((rng.uniform(0, 3e-3), 3600.0))
        work = rng.choice(("compute", "sleep", "recv", "short"))
        fired = None
        inner = None        # not the last round's: the outer may fire before the inner is entered
        t0 = time.monotonic()
        try:
            with preempt.timeout(outer_s) as outer:
                try:
                    with preempt.timeout(inner_s) as inner:
                        if work == "compute":
                            x = 0
                            while True:
                                x += 1
                        elif work == "sleep":
                            preempt.sleep(3600)
                        elif work == "recv":
                            preempt.Chan().recv()
                except preempt.Timeout:
                    fired = "inner"
                    now = time.monotonic()
                    late = now - inner.deadline
                    if late < -EARLY_TOL or not inner.expired or (outer.expired and now < outer.deadline):
                        st.fail(f"nested timeouts {inner_s:.6f}/{outer_s:.6f} s: the inner fired "
                                f"{late * 1e6:+.0f} µs from its deadline, inner.expired "
                                f"{inner.expired}, outer.expired {outer.expired}")
                    if work == "compute":
                        with preempt.no_preempt():
                            st.timeout_late.append(late)
                if outer_s < 60 and rng.random() < 0.5:
                    x = 0
                    while True:                # on to the outer deadline
                        x += 1
        except preempt.Timeout:
            # Both may have expired before the inner's exception was delivered: then the outer
            # one outranks it (the block it names is the larger). And the outer deadline is the
            # earlier one when this goroutine was preempted between the two entries for longer
            # than their difference, or when it was preempted past the outer deadline before
            # it entered the inner block (inner is None). Any other outer firing while the
            # inner had not expired is wrong.
            if fired is None and work != "short" and inner is not None and not inner.expired \
                    and (inner.deadline is not None and outer.deadline > inner.deadline):
                st.fail(f"nested timeouts {inner_s:.6f}/{outer_s:.6f} s around {work}: the outer "
                        f"fired first, {(time.monotonic() - outer.deadline) * 1e6:.0f} µs after "
                        f"its deadline, {(outer.deadline - inner.deadline) * 1e6:.0f} µs after "
                        f"the inner's, which has not expired")
            fired = "outer"
            if not outer.expired or time.monotonic() - t0 < outer_s - EARLY_TOL:
                st.fail(f"timeout({outer_s:.6f}) fired early")
        if work == "short":
            c["timeouts not needed" if fired is None else "timeouts short fired"] += 1
        elif fired is None:
            st.fail(f"timeout({inner_s:.6f}) around {work} never fired")
        else:
            c["timeouts fired"] += 1


def _spin_cancel(st: _State, c: Any, rng: random.Random) -> None:
    import preempt
    from preempt import Cancelled

    while not st.stop.is_set():
        at: List[float] = []
        began: List[int] = []

        def spin() -> None:
            try:
                began.append(1)
                x = 0
                while True:
                    x += 1
            finally:
                at.append(time.perf_counter())

        g = preempt.go(spin, name="spinner")
        if rng.random() < 0.9:                 # mostly mid-loop; sometimes before it ran
            while not began and not st.stop.is_set():
                preempt.sleep(1e-4)
        preempt.sleep(rng.uniform(0, 2e-3))
        t0 = time.perf_counter()
        g.cancel("soak: spinner")
        try:
            g.join(DRAIN_DEADLINE)
            st.fail("a cancelled spinner ended normally")
        except Cancelled:
            if at:
                with preempt.no_preempt():
                    st.spin_cancel_s.append(at[0] - t0)
        except preempt.JoinTimeout:
            st.fail(f"a cancelled spinner did not end within {DRAIN_DEADLINE:.0f} s")
            return
        if began and not at:
            st.fail("a cancelled spinner's finally did not run")
        c["spinners cancelled before they ran" if not began else "spinners cancelled"] += 1
        preempt.sleep(rng.uniform(0, 5e-3))
