"""The C hand-off path: where ``preempt._hot`` (``csrc/pe_hot.c``) is built, its twins take the
place of the Python functions and methods of the hand-off path. This is the one place that
installs them.

``csrc/pe_hot.c`` runs ``Chan.send``/``recv``/``recv_ok``/``__iter__``, the wait-queue operations
they use (``WaitQ.dequeue``/``park_cached``/``wake_all``), the park they end in
(``_park.park_checked``), ``_park.ready`` and ``exit_g``, a G's start (``Goroutine(...)``, as
``_g.new_g``), its end (``_worker.g_done``) and ``Goroutine.join``, with the rules stated in the
Python versions, on the same objects: it reads each ``__slots__`` member's offset from its
descriptor, and takes the states and constants of ``_rules.py`` from :func:`install`'s
``init()``. The Python definitions stay the reference: the C ones call them for every path
they do not handle (misuse, errors, a closed channel, a pending interrupt, a timeout, making a
new worker greenlet), and they run alone where the extension is not built or
``PREEMPT_PURE=1`` is set. The suites run both ways; ``tests/test_runtime_differential.py``
checks that both run the same goroutines in the same order.

:data:`HOT` is the installed module, or None. Installed once, when ``preempt._runtime`` is
first imported (its ``__init__``), before any goroutine can exist.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from greenlet import getcurrent, greenlet

from .._errors import Cancelled
from . import _chan, _g, _park, _rules, _sched, _waitq, _worker


def _load() -> Any:
    """The initialised ``preempt._hot`` module, or None (not built, or PREEMPT_PURE=1)."""
    if os.environ.get("PREEMPT_PURE", "") not in ("", "0"):
        return None
    try:
        from .. import _hot
    except ImportError:
        return None
    Chan, WaitQ = _chan.Chan, _waitq.WaitQ
    _hot.init({
        "Goroutine": _g.Goroutine, "Waiter": _waitq.Waiter, "WaitQ": WaitQ, "Chan": Chan,
        "Scheduler": _sched.Scheduler, "deque": deque,
        "RUNNABLE": _rules.RUNNABLE, "RUNNING": _rules.RUNNING, "WAITING": _rules.WAITING,
        "RUNNEXT_STREAK": _rules.RUNNEXT_STREAK, "POLL_EVERY": _rules.POLL_EVERY,
        "raise_pending": _park.raise_pending,
        "getcurrent": getcurrent, "switch": greenlet.switch,
        "send": Chan.send, "recv": Chan.recv, "recv_ok": Chan.recv_ok,
        "send_closed": Chan._send_closed, "recv_closed": Chan._recv_closed,
        "ready": _park.ready, "park_cached": WaitQ.park_cached, "wake_all": WaitQ.wake_all,
        "DEAD": _rules.DEAD, "Cancelled": Cancelled, "arm_reporter": _worker.arm_reporter,
        "join": _g.Goroutine.join,
        # which greenlet runs, read from the frame stack it runs on (csrc/pe_gstack.c), or None
        "gstack_owner": _worker.GSTACK_OWNER,
        # new_g copies the defaults of a G that Goroutine.__init__ made (not a second list of
        # them), and takes ids from the same counter; the sample's id is not used up
        "g_sample": _g.Goroutine(len, (), {}, "sample"), "g_ids": _g.reset_ids(),
    })
    return _hot


def install(hot: Any) -> None:
    """Puts every C twin of ``hot`` (the initialised ``preempt._hot``) in its Python twin's
    place. Once, at import."""
    Chan, WaitQ, Goroutine = _chan.Chan, _waitq.WaitQ, _g.Goroutine
    Chan.send, Chan.recv, Chan.recv_ok, Chan.__iter__ = hot.chan_methods(Chan)
    WaitQ.dequeue, WaitQ.park_cached, WaitQ.wake_all = hot.waitq_methods(WaitQ)
    (Goroutine.join,) = hot.g_methods(Goroutine)
    _g.new_g = hot.new_g                 # Goroutine(...) without the Python __init__
    _worker.g_done = hot.g_done
    _park.park_checked = hot.park
    _park.ready = hot.ready
    _park.exit_g = hot.exit_g
    _park.set_hot(hot)                   # set_sched() mirrors the running scheduler into it


HOT = _load()
if HOT is not None:
    install(HOT)
