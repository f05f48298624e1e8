"""Trace functions set inside run() do not see the runtime's own frames.

A goroutine that calls ``sys.settrace`` (a debugger's ``set_trace()``, a tracing tool) sets the
trace function of the OS thread, which every goroutine and the hub share. Without help the
tracer then sees preempt's frames too: ``park()``, the hub's loop, the preemption hook, timer
callbacks — a debugger steps into the scheduler at every blocking call. The runtime is the
machine the goroutines run on, not part of the program (Go's debuggers hide ``runtime.*`` frames
the same way), so:

1. While ``run()`` runs, ``sys.settrace`` installs the trace function behind a filter, and
   ``sys.gettrace`` returns the function itself.
2. The filter forwards a frame's "call" event only when the frame is not runtime code (the
   classification of ``_preempt.in_runtime``: preempt's modules, but not the benchmarks'
   workloads or user callbacks run by the runtime). Returning None for a runtime frame turns
   off its local tracing: none of its line, return or exception events reach the tracer.
3. A trace function installed before ``run()`` (a coverage tool measuring preempt itself) is
   left alone, unfiltered. ``run()`` puts ``sys.settrace`` back when it ends.

(An alternative would be to clear ``f_trace`` on runtime frames at every switch. Rejected: it
costs on the hand-off path whether or not anyone traces, and misses the frames a switch does
not pass through.)

Where these run: ``install``/``uninstall`` on the M in ``run()``; the filter wherever the
interpreter calls trace functions (the M thread, any greenlet).
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any, Callable, Optional

from . import _preempt

_orig_settrace = sys.settrace
_orig_gettrace = sys.gettrace


class Filtered:
    """A trace function that never sees the runtime's frames (rule 2)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        if _preempt.is_runtime_frame(frame):
            return None
        return self.fn(frame, event, arg)


def _settrace(fn: Optional[Callable[..., Any]]) -> None:
    _orig_settrace(Filtered(fn) if fn is not None and not isinstance(fn, Filtered) else fn)


def _gettrace() -> Any:
    t = _orig_gettrace()
    return t.fn if isinstance(t, Filtered) else t


_settrace.__doc__ = sys.settrace.__doc__
_gettrace.__doc__ = sys.gettrace.__doc__


def install() -> None:
    """Rule 1. M thread, run() starting."""
    sys.settrace = _settrace
    sys.gettrace = _gettrace


def uninstall() -> None:
    """Rule 3. M thread, run() ending: a tracer still set keeps tracing, unfiltered."""
    sys.settrace = _orig_settrace
    sys.gettrace = _orig_gettrace
    t = _orig_gettrace()
    if isinstance(t, Filtered):
        _orig_settrace(t.fn)
