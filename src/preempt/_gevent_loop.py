"""What ``preempt.gevent`` tells sysmon about the hub's loop: when its earliest timer is due and
which epoll fd holds its watchers, so a computing greenlet is switched out the moment a timer
is due, and an I/O slice after a watched fd is ready — as goroutines are inside
``preempt.run()`` — not only at the end of its slice (issue 26).

Rules:

1. Timers. libev and libuv keep their timers in C, out of sight, and the libev loop and timer
   types are immutable extension types. So the hub's loop class is subclassed: while the bridge
   is on, ``Hub.loop_class`` gives :func:`tracked` of whatever gevent is configured to use
   (libev's C loop by default, libuv with ``GEVENT_LOOP=libuv``, libev-cffi), whose ``timer()``
   makes a timer subclass whose ``start()``/``again()`` record the deadline. Every timer gevent
   makes (``gevent.sleep``, ``Timeout``, ``spawn_later``, socket timeouts) goes through
   ``loop.timer()``. Only loops made on the main thread are tracked (the bridge preempts
   there only).
2. The deadlines form a heap with lazy deletion: a timer that is no longer ``active`` (stopped,
   closed, or fired once) is dropped when it reaches the head; a repeating one moves on by its
   interval. The head is published to sysmon when the hub switches to a greenlet, and when the
   hub (a callback) starts a timer earlier than what was published. A timer a greenlet starts
   for itself is published at the next switch from the hub, not at once: gevent code puts
   short timeouts around calls that may block (``with Timeout(0): event.get()``, gevent's
   ``test__event`` ``test_set``) and expects the ``Timeout`` at the blocking call, not in the
   Python code just before it, where an immediate preemption delivered it. A greenlet that
   computes inside its own ``Timeout`` gets it at the end of its slice, or as soon as it has
   been through the hub once (``gevent.sleep(0)``).
3. A deadline is ``time.monotonic()`` at start plus the timer's interval; the loop's own clock
   (its cached "now") is never later than that, so the loop fires the timer no later than the
   published deadline, and a preemption finds it due.
4. I/O: the loop's ``fileno()`` is its epoll fd (libev's backend, libuv's ``uv_backend_fd``).
   sysmon ``poll()``s it (never ``epoll_wait``: it takes nothing the loop would see). A fd libev
   stopped watching lazily stays in the set until the loop next sees it; that costs at most one
   early switch to the hub, which removes it.
5. A hub made before ``enable()`` runs on an untracked loop when its type is libev's C loop:
   its timers are not seen (the greenlets are preempted at slice ends, as before), its fd still
   is. The libuv and libev-cffi loops are Python classes: their ``timer`` is wrapped on the class
   instead, so a loop made before ``enable()`` is tracked too.
6. The bridge's own releasing timer (``gevent.YIELD``) is made untracked (:func:`timer_untracked`):
   tracked, it would be due at once whenever a preempted greenlet waits, and every released
   greenlet would be switched out again at once.

Where these run: on the main thread: ``timer()``/``start()`` in whichever greenlet makes the
timer, :meth:`Tracker.next_deadline` in the trace callback as the hub switches to a greenlet.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any, Callable, Dict, List, Optional

_classes: Dict[type, type] = {}          # loop class -> its tracked subclass (rule 1)


class Tracker:
    """The heap of the main thread's loop timers (rule 2) and whom to tell (``publish``)."""

    def __init__(self, publish: Callable[[Optional[float]], None]) -> None:
        self.publish = publish
        self.heap: List[Any] = []        # [deadline, seq, timer, repeat]
        self.count = itertools.count()
        self.published: Optional[float] = None

    def started(self, t: Any, after: float, repeat: float, by_hub: bool) -> None:
        """Timer ``t`` was started (or restarted) to fire ``after`` seconds from now; ``by_hub``:
        by a callback in the hub (published at once if earlier), else by a greenlet for itself
        (published at the next switch from the hub: rule 2)."""
        d = time.monotonic() + max(after, 0.0)
        heapq.heappush(self.heap, (d, next(self.count), t, repeat))
        if by_hub and (self.published is None or d < self.published):
            self.published = d
            self.publish(d)

    def next_deadline(self) -> Optional[float]:
        """The earliest active timer's deadline, published (rule 2). Trace callback."""
        heap = self.heap
        while heap:
            d, _, t, repeat = heap[0]
            if not t.active:
                heapq.heappop(heap)
                continue
            if repeat > 0 and d < time.monotonic() - repeat:  # fired: its next time
                now = time.monotonic()
                heapq.heapreplace(heap, (d + repeat * (1 + int((now - d) // repeat)),
                                         next(self.count), t, repeat))
                continue
            break
        d = heap[0][0] if heap else None
        if d != self.published:
            self.published = d
            self.publish(d)
        return d


_tracker: Optional[Tracker] = None


_is_hub: Callable[[], bool] = lambda: False


def set_tracker(t: Optional[Tracker], in_hub: Callable[[], bool] = lambda: False) -> None:
    """Who hears of started timers: the enabled bridge's tracker, or None; ``in_hub``: whether
    the hub is the running greenlet. Main thread."""
    global _tracker, _is_hub
    _tracker = t
    _is_hub = in_hub


def _note(timer: Any) -> None:
    tr = _tracker
    if tr is not None and getattr(timer, "_pe_main", False):
        tr.started(timer, timer._pe_after, timer._pe_repeat, _is_hub())


def _timer_class(base: type) -> type:
    class TrackedTimer(base):   # type: ignore[misc, valid-type]
        """A timer whose start records its deadline (rule 1)."""

        _watcher_skip_ffi = True     # gevent's cffi watchers: the base's C glue, not a new one

        def start(self, callback: Any, *args: Any, **kw: Any) -> Any:
            r = super().start(callback, *args, **kw)
            _note(self)
            return r

        def again(self, callback: Any, *args: Any, **kw: Any) -> Any:
            r = super().again(callback, *args, **kw)
            _note(self)
            return r

    TrackedTimer.__name__ = TrackedTimer.__qualname__ = f"Tracked{base.__name__}"
    return TrackedTimer


def _make_timer(loop: Any, make: Callable[..., Any], after: float, repeat: float, ref: bool,
                priority: Any) -> Any:
    t = make(loop, after, repeat, ref, priority)
    main = getattr(loop, "_pe_main", None)
    if main is None:                  # a wrapped Python loop class: no __init__ of ours
        main = threading.current_thread() is threading.main_thread()
    try:
        t._pe_after, t._pe_repeat = float(after), float(repeat)
        t._pe_main = main
    except AttributeError:         # a base timer type without a __dict__: not tracked
        pass
    return t


def tracked(base: type) -> type:
    """The tracked subclass of loop class ``base`` (rules 1, 5). Main thread."""
    cls = _classes.get(base)
    if cls is not None:
        return cls
    if getattr(base, "_pe_wrapped", False):          # a Python loop class wrapped in place
        return base
    import sys

    watchers = getattr(sys.modules.get(base.__module__), "_watchers", None)
    if watchers is not None:                          # libuv, libev-cffi: Python classes
        ttype = _timer_class(watchers.timer)

        def timer(self: Any, after: float, repeat: float = 0.0, ref: bool = True,
                  priority: Any = None) -> Any:
            return _make_timer(self, ttype, after, repeat, ref, priority)

        base.timer = timer                            # loops made before enable() too
        base._pe_wrapped = True
        _classes[base] = base
        return base
    ttype = _timer_class(getattr(sys.modules[base.__module__], "timer"))

    class TrackedLoop(base):   # type: ignore[misc, valid-type]
        """libev's C loop, whose timers record their deadlines (rule 1)."""

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self._pe_main = threading.current_thread() is threading.main_thread()

        def timer(self, after: float = 0.0, repeat: float = 0.0, ref: bool = True,
                  priority: Any = None) -> Any:
            return _make_timer(self, ttype, after, repeat, ref, priority)

    TrackedLoop.__name__ = TrackedLoop.__qualname__ = f"Tracked{base.__name__}"
    TrackedLoop.__module__ = base.__module__
    _classes[base] = TrackedLoop
    return TrackedLoop


def timer_untracked(loop: Any, after: float) -> Any:
    """A timer on ``loop`` that sysmon never hears of (rule 6). Main thread."""
    t = loop.timer(after)
    try:
        t._pe_main = False
    except AttributeError:
        pass
    return t


def install(hub_class: type) -> Callable[[], None]:
    """Makes ``hub_class`` build tracked loops (rule 1); returns what puts it back."""
    import gevent

    old = hub_class.__dict__.get("loop_class")

    def loop_class(self: Any) -> type:
        return tracked(gevent.config.loop)

    hub_class.loop_class = property(loop_class)

    def uninstall() -> None:
        if old is not None:
            hub_class.loop_class = old
        else:
            del hub_class.loop_class
    return uninstall


def hub_loop_fd(hub: Any) -> int:
    """The epoll fd of the hub's loop (rule 4), or -1."""
    try:
        fd = int(hub.loop.fileno())
    except Exception:
        return -1
    return fd if fd >= 0 else -1
