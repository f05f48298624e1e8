"""The demo native loops the benchmarks register as preemptible (``preempt._kernels``,
``csrc/kernels/``). Our own builds carry them (``PREEMPT_KERNELS=1``, set by
``scripts/install-fresh``); a user's ``pip install`` does not."""

from __future__ import annotations

from typing import Any


def load_kernels() -> Any:
    """``preempt._kernels``, or SystemExit saying how to get it."""
    try:
        from .. import _kernels  # type: ignore[attr-defined]
    except ImportError:
        raise SystemExit("preempt.bench: this benchmark needs preempt._kernels, the demo native "
                         "loops, which only the project's own builds carry (PREEMPT_KERNELS=1): "
                         "run it with scripts/bench") from None
    return _kernels
