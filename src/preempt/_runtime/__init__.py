"""The goroutine runtime: one M (the thread that called ``preempt.run()``), in Python with
optional C fast paths (``csrc/pe_hot.c``, ``csrc/pe_gstack.c``) and the C monitor.

Layering (trio's ``_core`` habit): this package is self-contained and private. The public modules
(``preempt.chan``, ``preempt.sync``, ``preempt.time``, ``preempt.io``, ``preempt.offload``,
``preempt.group``) build
on it; ``preempt/__init__.py`` re-exports their names.

Files, one concept each:

- ``_g.py``       the G (``preempt.Goroutine``): a greenlet plus state, id, name, result.
- ``_park.py``    THE ONLY place a G gives up the CPU: ``park()``, ``ready()``, ``gosched()``,
                  the G-exit hand-off. Every blocking primitive ends up here.
- ``_sched.py``   the scheduler: run queue + ``runnext``, the hub greenlet, ``run()``/``go()``,
                  deadlock detection, killing (or abandoning) leftover Gs at the end.
- ``_signals.py`` Python signal handlers routed to main (KeyboardInterrupt, SystemExit...).
- ``_cancel.py``  cancellation: ``Goroutine.cancel()``, ``timeout()`` scopes, which interrupt
                  wins; ``preempt/group.py`` builds ``Group`` on it.
- ``_fork.py``    the at-fork handlers: the runtime goes on in a fork() child.
- ``_trace.py``   trace functions set inside run() skip the runtime's frames.
- ``_timeouts.py`` the one validation of every time-valued argument.
- ``_timers.py``  the timer heap and ``sleep``.
- ``_waitq.py``   the waiter (Go's sudog) and wait queue (trio's parking lot).
- ``_netpoll.py`` the hub's epoll: fd readiness, offload completions, the wake-up eventfd.
- ``_preempt.py`` the synchronous-preemption hook and its defer rules (``may_yield``).
- ``_asynchook.py`` the asynchronous-preemption hook the trampoline calls (native code).
- ``_sysmon.py``  the monitor interface and its pure-Python (POSIX timer) fallback.
- ``_csysmon.py`` the C monitor (csrc/pe_sysmon.c) behind that interface.
- ``_hotpath.py`` wires the C hand-off path (csrc/pe_hot.c) in.
- ``_local.py``   G-local storage.
- ``_debug.py``   ``stats()`` and ``dump()``.
"""
