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
    Cancelled as Cancelled,
    Timeout as Timeout,
)
from ._platform import available as available
from .native import preemptible as preemptible
from . import threads as threads

# --- goroutine runtime exports (owned by the runtime work: src/preempt/_runtime and friends) ---
from ._runtime._run import run as run, go as go, current as current
from ._runtime._g import Goroutine as Goroutine, JoinTimeout as JoinTimeout
from ._runtime._park import gosched as gosched
from ._runtime._preempt import no_preempt as no_preempt, deny_preemption_in as deny_preemption_in
from ._runtime._local import local as local
from ._runtime._debug import stats as stats, dump as dump
from .time import sleep as sleep
from .chan import Chan as Chan, select as select, Recv as Recv, Send as Send  # + the C path
from .sync import WaitGroup as WaitGroup, Mutex as Mutex, Once as Once, Event as Event
from .io import notify_closing as notify_closing
from .io import wait_readable as wait_readable, wait_writable as wait_writable
from .offload import blocking as blocking
from ._runtime._cancel import timeout as timeout
from .group import Group as Group
from ._patch import patch as patch, unpatch as unpatch
# --- end of runtime exports ---



def __getattr__(name: str):
    # preempt.net, preempt.socket and preempt.ssl import ssl, preempt.aio asyncio: loaded on
    # first use, so that `import preempt` stays light (preempt.gevent imports gevent only in
    # enable())
    if name in ("net", "socket", "ssl", "aio", "gevent"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"
