"""park() and ready(): the only places a G gives up the CPU or is given it back.

Every blocking operation (channel, select, mutex, sleep, join, fd wait, offload) and every
preemption ends in :func:`park` or one of its siblings here (:func:`gosched`,
:func:`yield_preempted`, :func:`exit_g`); nothing else in preempt switches greenlets, except the
hub's loop in ``_sched.py`` that switches *into* Gs. trio's ``_traps.py`` is the model: one
choke point to reason about (docs/design.md §3, invariant 1).

Hand-off goes G to G. When a G gives up the CPU, :func:`next_or_hub` — the one statement of
that rule — picks the next runnable G itself and the G switches straight to its greenlet; the hub
is visited only when it has work: nothing runnable (it polls fds and sleeps until the next
timer), a timer is due, the fds have not been polled for ``POLL_EVERY`` switches while some are
watched, or a signal asked for it (``hub_wanted``). A channel ping-pong is then two greenlet
switches per round trip, no hub in between.

Fairness (Go's rules):

1. ``ready(g, next=True)`` puts g in ``runnext``: a G woken by the running G (channel hand-off,
   timer) runs next; the G it displaces goes to the tail of the run queue.
2. ``runnext`` inherits the time slice: after ``RUNNEXT_STREAK`` (64) consecutive ``runnext``
   picks the run queue's head goes first, so two Gs playing ping-pong cannot starve the rest.
   (``streak`` counts them and stops at ``RUNNEXT_STREAK``: only whether it got there matters.)
3. A G that was preempted or called gosched() goes to the tail.
4. A G that has never run and needs a new greenlet is started by the hub (see take_direct).

Each G has its own asyncio running loop (issue 24): asyncio keeps one per OS thread, and all Gs
share the M, so a second G's ``asyncio.run()`` saw the first's loop running and refused. A G
that gives up the CPU with a running loop clears it and sets it again when it runs on
(:func:`loop_away`/:func:`loop_back`, around every switch a G makes here and in the C twins), so
the next G — and the hub — see none. When asyncio was never imported, or the G has no running
loop, that is one dict look-up, or one call, per switch (the C twin looks in sys.modules only
after it changed, and primes asyncio's per-thread cache so the call is cheap: pe_hot.c). (An alternative would be to save and
restore it in the hub's ``run_g``, for the G switched in. Rejected: G-to-G hand-offs skip the
hub, and every switch would pay for a set.) ``run()`` clears a loop running around it and
puts it back when it returns: a goroutine outside any loop of its own sees none.

:func:`park_checked`, :func:`ready` and :func:`exit_g` have C twins in ``csrc/pe_hot.c``: where
that extension is built, ``_cpath.py`` puts them in this module in place of the Python
functions. They apply :func:`next_or_hub` and :func:`take_direct` with the constants of
``_rules.py``, which ``_cpath.py`` hands them; ``tests/test_runtime_differential.py`` runs the same programs on both paths and
checks that the goroutines run in the same order.

:func:`set_sched` is the one place that sets (and clears) the running scheduler, for both paths.

A G keeps its errno across every switch here: read before it gives up the CPU, written back
when it has it again (``_errno.py``, rule 1; the C path does the same in ``pe_switch_to``).

Where these run: on the M thread only, in a G (park, gosched, yield_preempted, exit_g) or in
any context (ready). A call from another OS thread raises PreemptError (:func:`check_sched`).
"""

from __future__ import annotations

from sys import modules as _modules
from sys import version_info as _version_info
from time import monotonic
from typing import TYPE_CHECKING, Any, Optional

from greenlet import getcurrent, greenlet

from .._errors import PreemptError
from ._rules import IO_TURNS, POLL_EVERY, RUNNABLE, RUNNEXT_STREAK, RUNNING, WAITING

if TYPE_CHECKING:
    from ._g import Goroutine
    from ._sched import Scheduler

# The running scheduler (``_sched.Scheduler``) or None. One per process in version 1. Only
# set_sched() assigns it.
sched: Optional[Scheduler] = None

# The C hand-off module (``preempt._hot``) once ``_cpath.py`` installed it, else None.
_hot: Any = None

# The M's errno, ``_errno_p[0]`` (``_errno.py``): every switch below keeps the G's (rule 1 there).
# A plain list until set_sched() gets the M's errno cell: then nothing is kept, nothing breaks.
_errno_p: Any = [0]


def set_sched(s: Optional[Scheduler]) -> None:
    """Makes ``s`` (or None) the running scheduler, for the Python and the C path. M thread."""
    global sched, _errno_p
    sched = s
    if s is not None:
        from ._errno import cell

        p = cell()
        _errno_p = p if p is not None else [0]
    if _hot is not None:
        _hot.set_sched(s)


def set_hot(hot: Any) -> None:
    """The C path is installed (``_cpath.py``): :func:`set_sched` mirrors the running scheduler
    into ``hot``, starting with the current one. Once, at import."""
    global _hot
    _hot = hot
    hot.set_sched(sched)


# CPython 3.14 keeps the running *task* in the thread state too (``asyncio.current_task``),
# and refuses to enter a task while another is current: a G that gives up the CPU with a
# running loop also swaps its current task out (and back), which needs its loop still running.
_TASK_PER_THREAD = _version_info >= (3, 14)


def loop_away() -> Any:
    """The running G's asyncio running loop, cleared (the asyncio rule above), or None when it
    has none; on CPython 3.14+ a ``(loop, task)`` pair, the G's current task cleared too.
    Before the G switches out. M thread, in a G."""
    ev = _modules.get("asyncio.events")
    if ev is None:
        return None
    loop = ev._get_running_loop()
    if loop is None:
        return None
    if _TASK_PER_THREAD:
        tasks = _modules.get("asyncio.tasks")
        task = tasks._swap_current_task(loop, None) if tasks is not None else None
        ev._set_running_loop(None)
        return (loop, task)
    ev._set_running_loop(None)
    return loop


def loop_back(saved: Any) -> None:
    """Sets the G's running loop (and on 3.14+ task) that :func:`loop_away` cleared again,
    once it runs on."""
    ev = _modules["asyncio.events"]
    if _TASK_PER_THREAD:
        loop, task = saved
        ev._set_running_loop(loop)
        if task is not None:
            _modules["asyncio.tasks"]._swap_current_task(loop, task)
        return
    ev._set_running_loop(saved)


def running_sched(what: str) -> Scheduler:
    """The scheduler, when called from the running G on the M; else check_sched() raises."""
    s = sched
    if s is None or s.cur is None or s.cur.glet is not getcurrent():
        s = check_sched(what)
    return s


def check_sched(what: str) -> Scheduler:
    """Returns the running scheduler, or raises PreemptError saying why ``what`` cannot run."""
    s = sched
    if s is None:
        raise PreemptError(f"{what} needs the goroutine runtime: call it inside preempt.run(main)")
    if s.cur is None or s.cur.glet is not getcurrent():
        _raise_not_in_g(s, what)
    return s


def _raise_not_in_g(s: Scheduler, what: str) -> None:
    import threading

    if threading.get_ident() != s.ident:
        raise PreemptError(
            f"{what} was called from OS thread {threading.current_thread().name!r}, but the "
            f"goroutine runtime runs on thread {s.thread_name!r}; hand data to goroutines with "
            "preempt.blocking() or a queue polled by a goroutine instead")
    raise PreemptError(f"{what} must be called from a goroutine (inside preempt.run), not from "
                       "the hub, a signal handler outside a goroutine, or a foreign greenlet")


def park(reason: str, blocker: Any = None) -> None:
    """Blocks the running G until someone calls ``ready()`` on it.

    Args:
        reason: Why it waits, for deadlock messages and dump() ("chan receive", "sleep", ...).
        blocker: What it waits on: an object with ``cancel()`` (undo the wait, so the runtime
            can interrupt the G) and optionally ``describe(reason)``.

    Raises:
        BaseException: Whatever the runtime delivered while the G waited: KeyboardInterrupt
            (main only), Deadlock (main only), GreenletExit (run() is ending).
    """
    s = sched
    if s is None or s.cur is None or s.cur.glet is not getcurrent():
        check_sched("a blocking operation")
    park_checked(s, s.cur, reason, blocker)


def park_checked(s: Scheduler, g: Goroutine, reason: str, blocker: Any) -> None:
    """park() for callers that already checked that g is the running G on the M (hot path).

    The C path replaces it (``_cpath.py``)."""
    if g.pending_exc is not None:
        raise_pending(g, blocker)
    loop = loop_away()
    g.state = WAITING
    g.wait_reason = reason
    g.blocker = blocker
    s.ticks[0] = tick = s.ticks[0] + 1
    e = _errno_p
    saved = e[0]
    try:
        # Nothing is passed: a parked G ignores the value, a new or reused worker reads s.cur.
        next_or_hub(s, None, tick).switch()
    finally:
        if loop is not None:
            loop_back(loop)
    e[0] = saved                        # the G's errno, whoever ran meanwhile (_errno.py)
    exc = g.wake_exc
    if exc is not None:
        g.wake_exc = None
        try:
            raise exc
        finally:
            exc = None          # no frame -> exception -> traceback -> frame cycle


def raise_pending(g: Goroutine, blocker: Any = None) -> None:
    """Raises the interrupt kept for g's next checkpoint (``_g.py``), undoing the wait about to
    start. Running G only."""
    exc = g.pending_exc
    g.pending_exc = None
    if blocker is not None:
        blocker.cancel()
    g = blocker = None      # the traceback keeps this frame: no exception -> G cycle
    try:
        raise exc
    finally:
        exc = None          # no frame -> exception -> traceback -> frame cycle


def ready(g: Goroutine, next: bool = False) -> None:
    """Makes a waiting G runnable. Any context on the M thread; never switches.

    Args:
        g: The G, which must be waiting.
        next: Put it in ``runnext`` (it runs before the run queue; fairness rule 1).
    """
    s = sched
    g.state = RUNNABLE
    g.blocker = None
    if next:
        old = s.runnext
        s.runnext = g
        if old is not None:
            s.runq.append(old)
    else:
        s.runq.append(g)


def renew_io_turn() -> None:
    """The running G starts a new piece of work that I/O brought: it gets the turn an I/O wake
    gives (``g.io_turn``, ``_netpoll.py`` invariant 6), as if it had parked for the work and
    been woken. For a server's connection goroutine at each request of a keep-alive connection
    (``preempt.gunicorn``): a light request cut short by the I/O preemption of another ready
    connection keeps its place ahead of the computing Gs instead of queueing behind their
    slices. Without it, a G whose turn went on the request before (or on parsing this one,
    whose bytes were already read) waited a whole round of slices: with 4 heavy requests
    computing, light requests' p99 was 41 ms against a p50 under 1 ms. A G that computes is
    not favoured for long: the turn is one I/O slice, after which it queues behind the others.

    (An alternative would be to park the G on its socket at every request, to be woken by the
    poll. Rejected: a keep-alive request is often read already, and a park and a poll per
    request cost more than the turn they would give.)

    A G; outside one, nothing happens."""
    s = sched
    if s is not None and s.cur is not None and s.cur.glet is getcurrent():
        s.cur.io_turn = IO_TURNS


def gosched() -> None:
    """Yields the CPU: the running G goes to the tail of the run queue (rule 3)."""
    s = sched
    if s is None or s.cur is None or s.cur.glet is not getcurrent():
        s = check_sched("preempt.gosched()")
    _yield(s, s.cur, False, False)


def yield_preempted(s: Scheduler, g: Goroutine, front: bool = False) -> None:
    """The preemption hook's way out: gosched() for g, counted. Python-level handler only.

    The G goes to the tail of the run queue; with ``front`` (an I/O-woken G cut short in its
    first turn, ``_netpoll.py`` invariant 6) ahead of the preempted Gs instead, at the tail of
    the I/O-woken Gs that have not run yet (of which it is one again: Gs woken later queue
    behind it, never ahead), and through the hub, which runs the due timer.

    When fds are watched it goes through the hub, which polls them first: the Gs a ready fd
    wakes join the I/O-woken segment at the head of the run queue, behind those woken earlier
    (``_netpoll.py`` invariant 6), so they run before the G preempted here. A G preempted at the end of its slice has run for a
    whole slice, so this costs one ``epoll_wait(0)`` per slice, and it is what keeps CPU-bound
    goroutines from delaying an accept loop or a light request by up to ``POLL_EVERY`` slices
    (``net.py`` rule 6)."""
    try:
        if g.pending_exc is not None:
            raise_pending(g)            # before it is counted: no preemption happens
        s.npreempt += 1
        _yield(s, g, front, bool(s.npoll) or front)
    finally:
        g = None            # the traceback keeps this frame: no exception -> G cycle


def _yield(s: Scheduler, g: Goroutine, front: bool, via_hub: bool) -> None:
    """gosched() and yield_preempted(): g, the running G, stays runnable and gives up the CPU,
    to the next G (:func:`next_or_hub`) or, with ``via_hub``, to the hub."""
    if g.pending_exc is not None:
        raise_pending(g)
    loop = loop_away()
    g.state = RUNNABLE
    g.wait_reason = None
    if front:
        queue_io(s, (g,))           # the I/O segment's tail (_netpoll.py 6): not overtaken
    else:
        s.runq.append(g)
    s.ticks[0] = tick = s.ticks[0] + 1
    e = _errno_p
    saved = e[0]
    try:
        if via_hub:
            s.cur = None
            s.hub.switch()
        else:
            glet = next_or_hub(s, g, tick)
            if glet is not g.glet:          # g itself was next: it goes on, nothing to switch
                glet.switch()
    finally:
        if loop is not None:
            loop_back(loop)
    e[0] = saved                        # the G's errno, whoever ran meanwhile (_errno.py)
    exc = g.wake_exc
    if exc is not None:
        g.wake_exc = None
        g = None            # the traceback keeps this frame: no exception -> G cycle
        try:
            raise exc
        finally:
            exc = None          # no frame -> exception -> traceback -> frame cycle


def pick(s: Scheduler) -> Optional[Goroutine]:
    """Takes the next G to run (rules 1-2), or None. Runtime code on the M."""
    nxt = s.runnext
    if nxt is not None:
        s.runnext = None
        if s.streak < RUNNEXT_STREAK:
            s.streak += 1
            return nxt
        if not s.runq:
            return nxt
        s.runq.append(nxt)
    s.streak = 0
    q = s.runq
    if not q:
        return None
    f = s.iofront
    if f[0]:
        f[0] -= 1
    return q.popleft()


def unqueue(s: Scheduler, g: Goroutine) -> bool:
    """Takes g out of the run queue wherever it is (False: it was not there), keeping the
    I/O segment's count (:func:`queue_io`) right. Runtime code on the M."""
    q = s.runq
    try:
        i = q.index(g)
    except ValueError:
        return False
    del q[i]
    f = s.iofront
    if i < f[0]:
        f[0] -= 1
    return True


def queue_io(s: Scheduler, gs: Any) -> None:
    """Queues runnable Gs that I/O brought (``_netpoll.py`` invariant 6): in order, behind the
    I/O-brought Gs that have not run yet (the first ``s.iofront`` of the run queue), ahead of
    every G that was preempted or readied otherwise. Runtime code on the M."""
    q = s.runq
    f = s.iofront
    k = f[0]
    n = len(q)
    if k >= n:
        k = n
        q.extend(gs)
    elif k == 0:
        q.extendleft(reversed(gs))
    else:
        q.rotate(-k)
        q.extendleft(reversed(gs))
        q.rotate(k)
    f[0] = k + len(gs)


def take_direct(s: Scheduler) -> Optional[Goroutine]:
    """pick() for a G-to-G switch: None when the hub must choose instead.

    Rule 4: a G that needs a *fresh* greenlet is started from the hub. A new greenlet begins with
    the recursion depth of whoever switches into it first; started from another G's park(), a
    chain of new Gs would add up their depths until RecursionError (seen at ~1,000 Gs). The hub's
    depth is constant; reused greenlets keep their own.
    """
    nxt = s.runnext
    if nxt is not None:
        streak = s.streak
        if streak >= RUNNEXT_STREAK and s.runq:
            return None
        if nxt.glet is None and not s.free:
            return None
        s.runnext = None
        if streak < RUNNEXT_STREAK:
            s.streak = streak + 1
        return nxt
    q = s.runq
    if not q:
        return None
    nxt = q[0]
    if nxt.glet is None and not s.free:
        return None
    s.streak = 0
    f = s.iofront
    if f[0]:
        f[0] -= 1
    return q.popleft()


def run_g(s: Scheduler, nxt: Goroutine) -> None:
    """Switches from the current greenlet into G ``nxt``; returns when control comes back."""
    s.cur = nxt
    nxt.state = RUNNING
    s.ticks[0] = tick = s.ticks[0] + 1
    s.mtick[0] = tick
    glet = nxt.glet
    if glet is None:
        glet = s.bind(nxt)
    glet.switch()           # nothing passed: a parked G ignores it, a worker reads s.cur


def next_or_hub(s: Scheduler, g: Optional[Goroutine], tick: int) -> greenlet:
    """The hand-off rule: the greenlet that a G giving up the CPU switches to.

    The next G, if the hub has no work (see the module's docstring) and :func:`take_direct`
    finds one: it becomes ``s.cur``, ``running``, and sysmon sees the switch (``mtick``); a G
    that starts now gets a worker greenlet here (``s.bind``). Else the hub, with ``s.cur``
    None. ``g`` is the G giving up the CPU when it stays runnable (a yield): if it is picked
    again, its own greenlet is returned and its slice goes on. ``tick`` is the switch count
    after this switch. Runtime code on the M; the caller switches.
    """
    if not s.hub_wanted:
        t = s.timers
        if not (t and t[0][0] <= monotonic()) and not (s.npoll and tick % POLL_EVERY == 0):
            nxt = take_direct(s)
            if nxt is not None:
                s.cur = nxt
                nxt.state = RUNNING
                if nxt is g:
                    return g.glet
                s.mtick[0] = tick
                glet = nxt.glet
                return glet if glet is not None else s.bind(nxt)
    s.cur = None
    return s.hub


def exit_g(s: Scheduler, glet: greenlet, is_main: bool) -> Optional[Goroutine]:
    """Called by a worker greenlet ``glet`` whose G has finished: hands the CPU on.

    The greenlet goes to the free list; the return value is the next G bound to it (reuse), which
    the worker loop then runs, or None when the free list is full and the greenlet must end.
    Main's exit always goes to the hub, which ends ``run()``. The finished G is not an argument:
    nothing on a parked worker's stack may keep a dead G alive (its unretrieved exception is
    reported when it is freed, ``_g.py``). Whoever resumes a worker has set ``s.cur`` to the G
    it is bound to, so that is what a resumed worker returns.
    """
    if len(s.free) >= s.free_max:
        s.cur = None
        return None          # the worker returns; its greenlet dies; its parent, the hub, resumes
    s.free.append(glet)
    s.ticks[0] = tick = s.ticks[0] + 1
    if is_main:
        s.cur = None
        other = s.hub
    else:
        other = next_or_hub(s, None, tick)
    if other is not glet:      # glet: a new G was bound to this very greenlet (s.bind took it
        other.switch()         # back from the free list): it runs on our own stack, no switch
    return s.cur
