"""preempt — Go-style preemptive green threads for CPython on Linux x86-64.

Layering (trio's habit): ``_runtime/`` is the self-contained core of the goroutine runtime
(goroutines, scheduler/hub, park, timers, the preemption hook); ``_core`` is the C extension
(signals, trampoline, monitor thread, thread registry) built with cffi from ``csrc/``. The public
modules build on both, and this file only re-exports their public names.

Quick start::

    import preempt

    def worker(n, out):
        total = 0
        for i in range(n):          # a pure-Python hot loop: it is preempted, not starved
            total += i
        out.send(total)

    def main():
        ch = preempt.Chan()
        for n in (10**6, 10**7):
            preempt.go(worker, n, ch)
        return sorted([ch.recv(), ch.recv()])

    print(preempt.run(main))
"""

from ._errors import (
    ChanClosed as ChanClosed,
    Deadlock as Deadlock,
    PreemptError as PreemptError,
    SuspendTimeout as SuspendTimeout,
    ThreadExited as ThreadExited,
    Unavailable as Unavailable,
)
from ._platform import available as available
from .native import preemptible as preemptible
from . import threads as threads

# --- goroutine runtime exports (owned by the runtime work: src/preempt/_runtime and friends) ---
# --- end of runtime exports ---

__version__ = "0.1.0"
