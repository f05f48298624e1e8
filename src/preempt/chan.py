"""Channels and select, Go's way: ``Chan``, ``select``, ``Recv``, ``Send``.

The implementation and its rules (Go's semantics, numbered) are in ``_runtime/_chan.py``; the
C twins of the hand-off path are installed by ``_runtime/_cpath.py``. Example::

    def main():
        ch = preempt.Chan(1)
        preempt.go(ch.send, 42)
        i, v = preempt.select(preempt.Recv(ch), timeout=1.0)
        return v
"""

from __future__ import annotations

from ._runtime._chan import Chan, Recv, Send, select
from ._runtime._cpath import HOT  # noqa: F401  (the C hand-off path in use, or None)

__all__ = ["Chan", "Recv", "Send", "select"]
