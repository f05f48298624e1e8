"""Puts the C hand-off path (csrc/pe_hot.c, module ``preempt._hot``) in place of its Python twins.

``Chan.send``, ``Chan.recv``, ``Chan.recv_ok``, ``Chan.__iter__`` and ``_park.park_checked`` are
replaced by C functions that run the same logic on the same objects (slot offsets read from the
classes' member descriptors). The Python versions stay: the C ones call them for every path
they do not handle (misuse, errors, a send on a closed channel, a pending interrupt), and they
run alone where the extension is missing or ``PREEMPT_PURE=1`` is set (tests run the channel,
model, interrupt and sync suites both ways).

Where it runs: ``install()`` once at import; ``set_sched()`` on the M thread in ``run()``.
"""

from __future__ import annotations

import os
from typing import Any

_hot: Any = None


def install() -> None:
    """Swaps in the C path if the extension is there and PREEMPT_PURE is not set. Import time."""
    global _hot
    if os.environ.get("PREEMPT_PURE", "") not in ("", "0"):
        return
    try:
        from .. import _hot as hot
    except ImportError:
        return
    from greenlet import getcurrent, greenlet

    from .. import chan
    from . import _g, _park, _sched, _waitq

    C = chan.Chan
    hot.init({
        "Goroutine": _g.Goroutine, "Waiter": _waitq.Waiter, "WaitQ": _waitq.WaitQ, "Chan": C,
        "Scheduler": _sched.Scheduler,
        "RUNNABLE": _g.RUNNABLE, "RUNNING": _g.RUNNING, "WAITING": _g.WAITING,
        "raise_pending": _park.raise_pending,
        "getcurrent": getcurrent, "switch": greenlet.switch,
        "send": C.send, "recv": C.recv, "recv_ok": C.recv_ok,
        "send_closed": C._send_closed, "recv_closed": C._recv_closed,
    })
    C.send, C.recv, C.recv_ok, C.__iter__ = hot.chan_methods(C)
    _park.park_checked = hot.park
    _hot = hot


def set_sched(s: Any) -> None:
    """Mirrors ``_park.sched`` for the C side (None when run() ends). M thread."""
    if _hot is not None:
        _hot.set_sched(s)


def active() -> bool:
    """Whether the C hand-off path is in use."""
    return _hot is not None
