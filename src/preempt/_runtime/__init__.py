"""The goroutine runtime: one M (the thread that called ``preempt.run()``), its scheduler, and
the hooks through which the C core preempts it.

It is written in Python, with C twins for its hottest paths, each installed where a reader of
the Python version sees it: the hand-off path — channels, wait queues, park, a G's start and
end (``csrc/pe_hot.c``, ``preempt._hot``; installed by ``_cpath.py`` when this package is
imported) —, small frame stacks for goroutines (``csrc/pe_gstack.c``; ``_worker.py``) and the
monitor thread
(``csrc/pe_sysmon.c``, in ``preempt._core``; ``_csysmon.py``).

Layering (trio's ``_core`` habit): this package is private and imports no public module of
preempt except ``preempt.threads`` (``_csysmon.py`` registers the M with it). The public modules
(``preempt.chan``, ``preempt.sync``, ``preempt.time``, ``preempt.io``, ``preempt.offload``,
``preempt.group``, ``preempt.net``...) build on it; ``preempt/__init__.py`` re-exports their
names.

Files, one concept each:

- ``_rules.py``   the goroutine states and the scheduling constants, defined once (C gets them
                  at init).
- ``_g.py``       the G (``preempt.Goroutine``): a greenlet plus state, id, name, result.
- ``_park.py``    THE ONLY place a G gives up the CPU: ``park()``, ``ready()``, ``gosched()``,
                  the G-exit hand-off, and ``next_or_hub()``, the hand-off rule; ``set_sched()``
                  sets the running scheduler for the Python and the C path.
- ``_sched.py``   the scheduler: run queue + ``runnext``, the hub greenlet, deadlock detection,
                  killing (or abandoning) leftover Gs, the choice of monitor.
- ``_run.py``     ``run()``, ``go()``, ``go_first()``, ``current()``: the entry points.
- ``_worker.py``  the worker greenlets every G runs in, a G's end, the frame stacks' choice.
- ``_chan.py``    channels and ``select`` (``preempt.chan`` is their public face).
- ``_cpath.py``   installs the C twins of the hand-off path (``preempt._hot``), in one place.
- ``_waitq.py``   the waiter (Go's sudog) and wait queue (trio's parking lot).
- ``_timers.py``  the timer heap and ``sleep``.
- ``_timeouts.py`` the one validation of every time-valued argument.
- ``_netpoll.py`` the hub's epoll: fd readiness, offload completions, the wake-up eventfd.
- ``_cancel.py``  cancellation: ``Goroutine.cancel()``, ``timeout()`` scopes, which interrupt
                  wins; ``preempt/group.py`` builds ``Group`` on it.
- ``_preempt.py`` the synchronous-preemption hook and its defer rules (``may_yield``).
- ``_asynchook.py`` the asynchronous-preemption hook the trampoline calls (native code).
- ``_sysmon.py``  the monitor interface and its pure-Python (POSIX timer) fallback.
- ``_csysmon.py`` the C monitor (csrc/pe_sysmon.c) behind that interface.
- ``_errno.py``   the M's errno, kept across every switch (C code reads it after a callback).
- ``_signals.py`` every Python-level signal handler: the program's, routed to main
                  (KeyboardInterrupt, SystemExit...), and the monitors' own (take_over/give_back).
- ``_fork.py``    the at-fork handlers: the runtime goes on in a fork() child.
- ``_trace.py``   trace functions set inside run() skip the runtime's frames.
- ``_local.py``   G-local storage.
- ``_debug.py``   ``stats()`` and ``dump()``.
"""

from . import _cpath  # noqa: E402,F401  (installs the C hand-off path before any G exists)
