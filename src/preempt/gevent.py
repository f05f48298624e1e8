"""Preemption for unmodified gevent programs: ``preempt.gevent.enable(slice=0.010)``.

A gevent greenlet that runs Python code for longer than a slice is switched out at its next
synchronous safe-point, as if it had called ``gevent.sleep()``: the hub runs its timers,
sockets and the other greenlets, then the greenlet goes on where it stopped. gevent's own
maintainers declined to do this (gevent#1741, greenlet#143); the mechanism is preempt's:

1. sysmon (``csrc/pe_sysmon.c``) watches a switch counter. A ``greenlet.settrace`` callback
   bumps it at every greenlet switch and tells sysmon whether the hub is running (the hub is
   never preempted: it is the scheduler, and while it waits in libev nothing runs Python).
2. When the counter has not moved for a slice, sysmon trips preempt's SLOT signal slot;
   CPython runs the handler at the greenlet's next eval-breaker check (a loop's back-edge, a
   call). The handler yields (``YIELD`` below: one preempted greenlet is released per loop
   iteration) unless the greenlet may not be switched there:
   - the hub itself, or a frame of gevent's own Python code on top (its internals);
   - anywhere inside gevent's ``fork``/``waitpid`` (``gevent.os``): between the fork and the
     child watcher's start the loop must not run, or it reaps a child that exits at once and
     that child's ``waitpid()`` waits for ever (gevent's own comment in ``waitpid``). They call
     ``warnings`` code, which is not gevent's: a request deferred inside the at-fork handlers
     was taken there, and 1 run in 5 of 20 forks hung;
   - anywhere inside ``gevent.subprocess``'s ``_execute_child``: its fork child runs Python
     (``traceback`` after a failed exec) with the parent's hub, whose epoll fd ``close_fds``
     has closed; switched out there, the child ran that hub and the parent got
     ``SystemError: (libev) epoll_wait: Bad file descriptor`` instead of
     ``FileNotFoundError`` (gevent's test__subprocess ``test_issue148``, found by running
     gevent's suite under ``enable()``);
   - an import in progress; a frame of ``logging``, ``threading``, ``queue`` or
     ``concurrent.futures`` anywhere on the stack, unless gevent patched ``threading``
     (unpatched, their locks are real thread locks: a greenlet switched out holding one makes
     the next one block the whole thread on it, ``_runtime/_preempt.py`` rule 6); the modules
     given to ``preempt.deny_preemption_in``;
   - inside ``with preempt.no_preempt():``;
   - on 3.10, an exception handler's first instruction (``_runtime/_preempt.py`` rule 7).
   A deferred request is not lost: sysmon re-sends it until the greenlet may be switched.
   Nor is a greenlet switched inside ``os.fork()``'s at-fork handlers (``_bridge.py`` fork
   rule 1: gevent promises that window is atomic).
   Before gevent's hub exists nothing else can run (every gevent greenlet is made with the
   hub): the request is answered without switching, and the hub is not made (gevent promises
   ``monkey.patch_all()`` and its locks never create it; ``get_hub()`` would).
3. An exception gevent throws into the switched-out greenlet (``gevent.kill``, a
   ``gevent.Timeout``) comes out of the handler; on 3.11-3.13 at a loop's back-edge it is re-raised
   at the next instruction, so ``try``/``finally`` around a loop still sees it (gh-108214 and
   its 3.13 twin, ``_runtime/_preempt.py``: the same work-around as the runtime's).
4. Blocked-hub reports come free: when a request is taken only ``report_after`` seconds (0.1 s,
   gevent's own monitor threshold) or more after it was made, something held the GIL or stayed
   in C code that long. The greenlet, the delay and its stack are kept (:func:`reports`) and
   written to stderr, like gevent's monitor thread does.
5. A preempted greenlet gets its errno back when it goes on (``_runtime/_errno.py``): C code
   that called it back (an OpenSSL password callback) reads errno after the callback returns.

6. A greenlet is also switched out before its slice ends, as goroutines are inside
   ``preempt.run()``: the moment the hub's earliest timer is due, and an I/O slice (0.5 ms)
   after one of the loop's watched fds became ready (``_gevent_loop.py``: libev, libuv). The
   switch is the same yield as at a slice end (rule 2's rules apply, the greenlet joins the
   same FIFO), so a 1 ms heartbeat beside computing greenlets wakes on time at the default
   slice, and the computing greenlets take turns of at most a slice each.

In a fork child the bridge goes on: sysmon is restarted there (``_bridge.py`` fork rule 2),
so the workers of a pre-fork server are preempted like the parent.

What it cannot do: preempt C code that holds the GIL (a C extension's long call, a regex), or
greenlets on other threads (CPython runs signal handlers on the main thread only: ``enable()``
must be called there). It shares sysmon with ``preempt.run()``: one or the other per process.

Where these run: ``enable``/``disable`` on the main thread; the trace callback at every greenlet
switch; the handler on the main thread, in whichever greenlet CPython runs it.
"""

from __future__ import annotations

from types import FrameType
from collections import deque
from typing import Any, Deque, Dict, List, Optional

from greenlet import getcurrent, gettrace, settrace

from . import _gevent_loop
from ._bridge import SlotMonitor, held
from ._runtime._timeouts import check_interval
from ._runtime._preempt import LOCK_MODULES
from ._runtime._rules import REASON_IO, REASON_TIMER

_LOCK_TOPS = frozenset(m.split(".")[0] for m in LOCK_MODULES)
# gevent functions inside which no greenlet may be switched out, by module (rule 2)
_GEVENT_ATOMIC = {
    "gevent.os": frozenset({"fork_gevent", "fork_and_watch", "forkpty_gevent",
                            "forkpty_and_watch", "fork", "forkpty", "waitpid"}),
    "gevent.subprocess": frozenset({"_execute_child"}),
}

# The yield: the preempted greenlet joins a FIFO, and one 1 us timer releases one greenlet of
# it per loop iteration. gevent.sleep(0) only queues a callback: with several computing
# greenlets the hub then runs callbacks without its loop reaching timers and I/O (a heartbeat
# ticked twice in 0.3 s). A 1 us sleep each goes through the loop, but every expired timer of
# an iteration fires in it, so all the preempted greenlets ran a slice each before the loop
# looked again (a 1 ms heartbeat was 4 slices late with 4 of them).
YIELD = 1e-6


class _State:
    def __init__(self, slice_: float, report_after: float) -> None:
        import gevent
        import gevent.hub
        import gevent.monkey

        self.gevent = gevent
        self.Hub = gevent.hub.Hub
        try:
            from gevent._hub_local import get_hub_if_exists
        except ImportError:                  # older gevent
            get_hub_if_exists = gevent.hub._get_hub
        self.hub_if_exists = get_hub_if_exists
        self.mon = SlotMonitor("preempt.gevent", slice_, _hook, report_after)
        self.tracker = _gevent_loop.Tracker(self.mon.set_next_deadline)   # rule 6
        self.uninstall: Any = None           # puts Hub.loop_class back
        self.fd_known = False                # the hub's loop fd is published (rule 6)
        self.queue: Deque[Any] = deque()     # Waiters of preempted greenlets, oldest first
        self.armed = False
        self.timer: Any = None               # the releasing timer, made on the hub's loop
        self.old_trace: Any = None
        self.nswitch = 0        # preemptions taken
        self.ndeferred = 0


_st: Optional[_State] = None
_atexit_done = False


def enable(slice: float = 0.010, *, report_after: float = 0.1) -> None:
    """Turns preemption on for the gevent greenlets of the main thread.

    Calling it again changes the slice. Requires gevent and preempt's C core.

    Args:
        slice: Seconds of Python code a greenlet may run before it is switched out; a finite
            number > 0.
        report_after: A preemption taken this many seconds or more late (C code holding the
            GIL, a blocking call) is reported with the greenlet's stack; a finite number > 0.

    Raises:
        TypeError, ValueError: ``slice`` or ``report_after`` is not a finite number > 0.
        PreemptError: not on the main thread, or ``preempt.run()`` or ``preempt.aio`` holds
            the monitor.
        Unavailable: preempt's C core cannot be loaded here.
        ImportError: gevent is not installed.
    """
    global _st, _atexit_done
    slice_ = check_interval(slice, "preempt.gevent.enable()", "slice")
    after = check_interval(report_after, "preempt.gevent.enable()", "report_after")
    if _st is not None:
        disable()
    st = _State(slice_, after)
    st.mon.start()
    st.uninstall = _gevent_loop.install(st.Hub)
    _gevent_loop.set_tracker(st.tracker, lambda: isinstance(getcurrent(), st.Hub))
    _watch_hub_fd(st)
    st.old_trace = settrace(_trace)
    st.mon.switched(not isinstance(getcurrent(), st.Hub))
    _st = st
    if not _atexit_done:               # sysmon must not trip SLOT while the interpreter ends
        import atexit

        atexit.register(disable)
        _atexit_done = True


def disable() -> None:
    """Turns it off again; the trace callback and signal handler are put back. Idempotent."""
    global _st
    st = _st
    if st is None:
        return
    _st = None
    if gettrace() is _trace:
        settrace(st.old_trace)
    _gevent_loop.set_tracker(None)
    if st.uninstall is not None:
        st.uninstall()
    st.mon.stop()


def enabled() -> bool:
    """Whether :func:`enable` is in effect."""
    return _st is not None


def stats() -> Dict[str, int]:
    """``{"preemptions": n, "deferred": n, "reports": n, "timer": n, "io": n}`` since
    :func:`enable`; ``timer`` and ``io`` count the preemptions taken because a hub timer was
    due or a watched fd was ready (rule 6), the rest ended a slice."""
    st = _st
    if st is None:
        return {"preemptions": 0, "deferred": 0, "reports": 0, "timer": 0, "io": 0}
    by = st.mon.by_reason
    return {"preemptions": st.nswitch, "deferred": st.ndeferred,
            "reports": len(st.mon.reports), "timer": by[REASON_TIMER], "io": by[REASON_IO]}


def reports() -> List[Dict[str, Any]]:
    """The blocked-hub reports since :func:`enable` (rule 4), oldest first: dicts with
    ``greenlet`` (its repr), ``ms`` (how late the preemption was taken) and ``stack``."""
    return list(_st.mon.reports) if _st is not None else []


def _trace(event: str, args: Any) -> None:
    """greenlet's trace callback: every switch restarts sysmon's slice clock (rule 1)."""
    st = _st
    if st is None:
        return
    if event == "switch" or event == "throw":
        origin, target = args
        to_code = not isinstance(target, st.Hub)
        if to_code and isinstance(origin, st.Hub):    # the loop ran: what is due next (rule 6)
            if not st.fd_known:
                _watch_hub_fd(st)
            st.tracker.next_deadline()
        st.mon.switched(to_code)
    if st.old_trace is not None:
        st.old_trace(event, args)


def _may_switch(g: Any, frame: Optional[FrameType], locks_green: bool) -> bool:
    """Rule 2 for greenlet ``g`` interrupted at ``frame``: the runtime's one predicate
    (``_preempt.may_switch``) with gevent's amendments — never in gevent's own code on top or
    in its atomic functions; the lock modules' frames allowed when ``threading`` is gevent's
    (``locks_green``: its locks keep other greenlets out). Handler on the main thread."""
    from ._runtime import _preempt

    if frame is None:
        return False
    top = frame.f_globals.get("__name__") or ""
    if top == "gevent" or top.startswith("gevent."):
        return False
    return _preempt.may_switch(frame, held=held(g), atomic=_GEVENT_ATOMIC,
                               allow=_LOCK_TOPS if locks_green else frozenset())


def _hook(seq: int, frame: Optional[FrameType]) -> None:
    """A fresh request (rule 2). Main thread, any greenlet."""
    st = _st
    if st is None:
        return
    g = getcurrent()
    if st.hub_if_exists() is None:              # no hub: nothing else can run (rule 2)
        st.mon.decline(seq)
        return
    if isinstance(g, st.Hub) or not _may_switch(
            g, frame, st.gevent.monkey.is_module_patched("threading")):
        st.ndeferred += 1                       # not acked: sysmon sends it again
        return
    st.mon.ack(seq, g, frame)
    st.nswitch += 1
    w = st.gevent.hub.Waiter()
    st.queue.append(w)
    _arm(st)
    e_p = st.mon.errno_p
    saved = e_p[0]
    try:
        w.get()
        e_p[0] = saved              # the greenlet's errno, whoever ran meanwhile (rule 5)
    except BaseException as e:                  # gevent.kill, gevent.Timeout: rule 3
        try:
            st.queue.remove(w)
        except ValueError:
            pass
        from ._runtime._preempt import raise_later

        g = w = None
        if raise_later(frame, e):
            return
        raise


def _watch_hub_fd(st: _State) -> None:
    """Publishes the hub's loop's epoll fd once the hub exists (rule 6). Main thread."""
    hub = st.hub_if_exists()
    if hub is not None:
        st.mon.watch_epoll(_gevent_loop.hub_loop_fd(hub))
        st.fd_known = True


def _arm(st: _State) -> None:
    if st.armed:
        return
    hub = st.gevent.get_hub()
    if st.timer is None or st.timer.loop is not hub.loop:
        st.timer = _gevent_loop.timer_untracked(hub.loop, YIELD)
    st.armed = True
    st.timer.start(_release, st)


def _release(st: _State) -> None:
    """The releasing timer: resumes the oldest preempted greenlet, one per loop iteration
    (re-armed here, it fires in the next one). In the hub.

    The resume is a loop callback, not a switch from here: libev runs the watchers that fell
    due together last-fed first, so a switch from here ran the greenlet before the heartbeat
    whose timer fell due with this one, and the heartbeat waited a whole slice (rule 6). As a
    callback it runs once every watcher of this round has run."""
    st.armed = False
    if not st.queue:
        return
    w = st.queue.popleft()
    if st.queue:
        _arm(st)
    st.gevent.get_hub().loop.run_callback(w.switch, None)
