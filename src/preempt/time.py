"""Time for goroutines: ``preempt.sleep``.

``time.sleep`` would block the whole M (every goroutine); :func:`sleep` parks only the caller on
a timer (``_runtime/_timers.py``) and lets the others run.
"""

from __future__ import annotations

from ._runtime._timers import sleep as sleep

__all__ = ["sleep"]
