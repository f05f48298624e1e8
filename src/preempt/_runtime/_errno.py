"""errno across switches: a goroutine switched out gets its errno back when it is switched in.

One OS thread has one errno, and every goroutine on the M shares it, as they share the thread.
C code that calls back into Python reads errno after the callback returns: ``_ssl.c``'s
``load_cert_chain`` zeroes errno, calls ``SSL_CTX_use_PrivateKey_file``, and when that fails
raises ``OSError`` if errno is non-zero, ``SSLError`` otherwise. A password callback preempted
meanwhile let other goroutines run, whose failing syscalls set errno: the program saw
``OSError(EINVAL)`` for a wrong password 199 times in 200 (issue 24). So:

1. Every switch a goroutine makes to give up the CPU reads errno before it and writes it back
   when the goroutine is switched in again: ``_park.park_checked`` and ``_park._yield`` (every
   park and gosched), their C twin (``pe_switch_to`` in ``csrc/pe_hot.c``, a plain C local),
   and the bridges' own switches (``preempt.gevent``'s preemption, ``preempt.aio``'s
   preemption and ``wait()``). A preemption keeps it from the first line of the runtime's
   hook to its return (``_preempt._preempt_hook``, sync and async; ``_bridge.SlotMonitor``'s
   handler): the hook's own code runs on the goroutine's errno before it switches, and some
   of it writes errno — ``round()`` of a float sets it to 0 (the stuck-request records), a
   late request's report reads source files. Seen: 1 preemption in ~300 under load lost it.
2. The async trampoline keeps the interrupted native code's errno in C (``csrc/pe_async.c``);
   rule 1 keeps the errno of the Python code around it.
3. A G that starts, or a worker greenlet given a new G, begins with whatever errno the M has:
   only a switch *back* restores anything.
4. Runtime code that a goroutine runs on its way to a switch keeps errno around every cffi call
   it makes (the monitor's kick, ``_csysmon.CoreMonitor._kick``): cffi puts its own saved copy
   of errno into errno before each call, which would clobber the goroutine's before rule 1
   saves it (seen: ``preempt.sleep`` publishing an earlier timer deadline).

errno is read and written at its address, not through a call: cffi puts its own saved copy of
errno into errno before every call it makes (and ``ctypes.get_errno`` is ctypes' copy), so a
getter called through either would read the copy. :func:`cell` asks the core once for the
calling thread's errno location (``pe_errno_location``) — libc's ``__errno_location`` through
ctypes where the core is not available — and returns a pointer whose ``[0]`` is errno, read and
written by one memory access. The location is per thread: call :func:`cell` on the thread whose
errno it keeps.

(An alternative would be to keep errno in greenlet's own switch, through a
``greenlet.settrace`` callback. Rejected: the callback runs on every switch of every greenlet in
the process, costs a Python call each time, and there is one trace slot, which gevent and
debuggers also want.)

Where these run: :func:`cell` on the thread it is for; the pointer it returns, on that thread.
"""

from __future__ import annotations

from typing import Any


def cell() -> Any:
    """The calling thread's errno as a pointer: ``p[0]`` reads it, ``p[0] = v`` writes it. None
    where neither the core nor libc gives its address (then errno is not kept)."""
    from .. import _corelib

    try:
        return _corelib.core()[1].pe_errno_location()
    except Exception:            # Unavailable (PREEMPT_FORCE_UNAVAILABLE, another platform)
        pass
    try:
        import ctypes

        loc = ctypes.CDLL(None).__errno_location
    except (OSError, AttributeError):
        return None
    loc.restype = ctypes.POINTER(ctypes.c_int)
    return loc()
