"""G-local storage: ``preempt.local``, the goroutine counterpart of ``threading.local``.

All goroutines share one OS thread, so ``threading.local`` gives every goroutine the same
namespace (docs/design.md §2.2). A :class:`local` keeps one namespace per goroutine instead, in a
dict on the G (``g.locals``, keyed by the ``local`` object) that dies with the G. Outside a
goroutine (before or after ``run()``) it falls back to one namespace per OS thread.

(An alternative would be a ``WeakKeyDictionary`` of Gs on each ``local``. Rejected: a lookup
would hash the G through a weakref on every attribute access; a dict on the G is one lookup.)
"""

from __future__ import annotations

import threading
from typing import Any

from greenlet import getcurrent

from . import _park


class local:
    """Attributes set on an instance are seen only by the goroutine that set them.

    Example::

        ctx = preempt.local()

        def handler(req):
            ctx.request_id = req.id      # each goroutine has its own request_id
    """

    __slots__ = ("_fallback", "__weakref__")

    def __init__(self) -> None:
        object.__setattr__(self, "_fallback", threading.local())

    def _ns(self) -> dict:
        s = _park.sched
        g = s.cur if s is not None else None
        if g is None or g.glet is not getcurrent():
            return object.__getattribute__(self, "_fallback").__dict__
        d = g.locals
        if d is None:
            d = g.locals = {}
        ns = d.get(self)
        if ns is None:
            ns = d[self] = {}
        return ns

    def __getattr__(self, name: str) -> Any:
        try:
            return self._ns()[name]
        except KeyError:
            raise AttributeError(f"{name!r} is not set in this goroutine's preempt.local") \
                from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._ns()[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._ns()[name]
        except KeyError:
            raise AttributeError(name) from None
