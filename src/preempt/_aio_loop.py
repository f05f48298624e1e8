"""What ``preempt.aio`` tells sysmon about the event loop: when its next timer is due and which
epoll fd holds its sockets, so a function computing on the loop's thread is switched out the
moment a timer is due, and an I/O slice after one of the loop's fds is ready — as goroutines
are inside ``preempt.run()`` — not only at the end of its slice (issue 26).

Rules:

1. The deadline is read when the runner resumes a function (``_Runner.step``). While the
   function computes, the loop does not run: only the function itself could add a timer, and
   it cannot without going back to the loop (``preempt.aio.wait``). So the deadline read then
   is the loop's earliest timer for the whole turn.
2. asyncio's own loops (``BaseEventLoop``): the head of ``loop._scheduled`` (a heap of
   ``TimerHandle``; cancelled handles are removed lazily, so they are skipped here). The fd is
   the selector's (``EpollSelector.fileno()``).
3. uvloop: its timers live in libuv, out of sight. The loop object has a ``__dict__``, so the
   first ``preempt.aio.run()`` on it wraps ``call_at``/``call_later`` on the instance: every
   handle made through them (``asyncio.sleep``, ``wait_for``, timeouts) is kept in a heap;
   cancelled handles and those whose time has passed (libuv ran them in its timer phase before
   this callback) are dropped when the heap is read, and the heap is rebuilt without them
   whenever it has doubled since the last rebuild (amortised O(1) a timer: a loop that makes
   millions of ``wait_for`` timeouts, cancelled early, does not grow it). The wrappers stay for the loop's life: a
   handle made between two ``run()`` calls is then not missed. The fd is libuv's backend
   (``loop._get_backend_id()``).
4. Deadlines are converted from ``loop.time()`` to ``time.monotonic()`` (sysmon's clock) by
   the offset between the two read together: uvloop's clock is libuv's cached millisecond
   clock, asyncio's is ``time.monotonic`` itself.
5. A loop of another kind: no deadline and no fd; functions are preempted at slice ends only.

Where these run: on the loop's thread, in loop callbacks (the runner) and in the coroutines
that create timers.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Any, List, Optional

_TRACKED = "_preempt_aio_timers"     # the loop instance's heap of uvloop handles (rule 3)
_PRUNE_AT = 1024                      # the heap is first rebuilt at this size (rule 3)


def watch(loop: Any) -> None:
    """Prepares ``loop`` for :func:`next_deadline` (rule 3). Loop thread, once per run()."""
    if hasattr(loop, "_scheduled") or _TRACKED in getattr(loop, "__dict__", {}):
        return
    if not hasattr(loop, "__dict__") or not hasattr(loop, "call_at"):
        return                                   # rule 5
    heap: List[Any] = []
    count = itertools.count()
    call_at, call_later = loop.call_at, loop.call_later
    limit = [_PRUNE_AT]
    last: List[Any] = [None]

    def keep(h: Any) -> Any:
        # uvloop's call_at calls call_later (the wrapped one): keep the handle once; a delay
        # <= 0 gives a plain Handle (a call_soon), which has no time
        if h is last[0] or not hasattr(h, "when"):
            return h
        last[0] = h
        heapq.heappush(heap, (h.when(), next(count), h))
        if len(heap) > limit[0]:
            now = loop.time()
            heap[:] = [e for e in heap if e[0] > now and not e[2].cancelled()]
            heapq.heapify(heap)
            limit[0] = max(_PRUNE_AT, 2 * len(heap))
        return h

    def tracked_call_at(when: float, callback: Any, *args: Any, **kw: Any) -> Any:
        return keep(call_at(when, callback, *args, **kw))

    def tracked_call_later(delay: float, callback: Any, *args: Any, **kw: Any) -> Any:
        return keep(call_later(delay, callback, *args, **kw))

    loop.call_at = tracked_call_at
    loop.call_later = tracked_call_later
    setattr(loop, _TRACKED, heap)


def next_deadline(loop: Any) -> Optional[float]:
    """The loop's earliest pending timer in ``time.monotonic()`` seconds, or None (rules 1-5).
    Loop thread, in the runner."""
    sched = getattr(loop, "_scheduled", None)
    if sched is not None:                        # rule 2
        when = None
        if sched:
            h = sched[0]
            if not h._cancelled:
                when = h._when
            else:
                live = [x._when for x in sched if not x._cancelled]
                when = min(live) if live else None
    else:
        heap = getattr(loop, "__dict__", {}).get(_TRACKED)
        if not heap:
            return None
        now = loop.time()
        while heap and (heap[0][2].cancelled() or heap[0][0] <= now):   # rule 3
            heapq.heappop(heap)
        when = heap[0][0] if heap else None
    if when is None:
        return None
    return when - loop.time() + time.monotonic()     # rule 4


def epoll_fd(loop: Any) -> int:
    """The epoll fd holding the loop's sockets, or -1 (rules 2, 3, 5). Loop thread."""
    try:
        sel = getattr(loop, "_selector", None)
        if sel is not None:
            return int(sel.fileno()) if type(sel).__name__ == "EpollSelector" else -1
        get = getattr(loop, "_get_backend_id", None)     # uvloop: libuv's epoll fd
        return int(get()) if get is not None else -1
    except Exception:
        return -1
