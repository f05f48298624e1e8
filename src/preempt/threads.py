"""OS-thread suspension at asynchronous safe-points: ``preempt.threads``.

This is the core's mechanism exposed on its own, as Go's runtime uses suspendG/resumeG: a
registered thread that is running native code inside a registered preemptible region (see
:func:`preempt.preemptible`) can be *really* suspended — stopped mid-instruction-stream, its
complete register file saved by the trampoline — inspected, and resumed, bit-exact.

A thread is parked only at an asynchronous safe-point (docs/design.md invariant 3): inside a
registered region, not holding the GIL, with enough stack. A thread running Python code, blocked
in libc (read, nanosleep) or running unregistered native code is never touched: ``suspend()``
retries with exponential back-off and returns False at its timeout, and the thread carries on
unharmed.

Example::

    import ctypes, threading, preempt

    lib = ctypes.CDLL("./libspin.so")        # long-running, reentrant, lock-free C code
    reg = preempt.preemptible(lib)
    ready = threading.Event()
    handle = []

    def worker():
        handle.append(preempt.threads.current())
        ready.set()
        lib.spin(10**9)                      # GIL released by ctypes

    t = threading.Thread(target=worker); t.start(); ready.wait()
    h = handle[0]
    if h.suspend(timeout=1.0):
        print(hex(h.registers()["rip"]))     # where it stopped
        h.resume()
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import ContextManager, Dict, Iterator, List, Optional

from . import _corelib
from ._errors import PreemptError, SuspendTimeout, ThreadExited
from ._runtime._timeouts import check_timeout

__all__ = ["ThreadHandle", "current", "registered", "stop_the_world"]

_REGS = ("rip", "rsp", "rflags", "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp",
         "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
# Wait in slices so that Ctrl-C reaches a caller blocked in suspend(timeout=None).
_WAIT_SLICE = 0.05


class ThreadHandle:
    """A registered OS thread. Obtain one with :func:`current` on the thread itself.

    Handles are cheap and compare equal when they name the same registration. Every method
    raises :class:`preempt.ThreadExited` once the thread has exited or unregistered.
    """

    __slots__ = ("_slot", "_gen", "name", "ident", "_tid", "__weakref__")

    def __init__(self, slot: int, gen: int, name: str, ident: int, native_id: int) -> None:
        self._slot = slot
        self._gen = gen
        self.name = name
        self.ident = ident
        self._tid = native_id

    @property
    def native_id(self) -> int:
        """The kernel thread id (it changes for the forking thread in a fork() child)."""
        try:
            self._tid = int(self._info().tid)
        except ThreadExited:
            pass
        return self._tid

    def __repr__(self) -> str:
        state = "exited" if not self.alive else ("suspended" if self.is_suspended else "running")
        return f"<ThreadHandle {self.name!r} tid={self.native_id} {state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ThreadHandle) and (self._slot, self._gen) == (other._slot, other._gen)

    def __hash__(self) -> int:
        return hash((self._slot, self._gen))

    def _info(self):
        ffi, lib = _corelib.core()
        info = ffi.new("pe_thread_info_t *")
        if lib.pe_thread_info(self._slot, self._gen, info) != lib.PE_OK:
            raise ThreadExited(f"thread {self.name!r} (tid {self._tid}) has exited or unregistered")
        return info

    @property
    def alive(self) -> bool:
        """True while the thread is registered."""
        try:
            self._info()
        except ThreadExited:
            return False
        return True

    @property
    def is_suspended(self) -> bool:
        """True while the thread is parked by :meth:`suspend`."""
        return bool(self._info().suspended)

    def stats(self) -> Dict[str, int]:
        """Counters: signals sent to it, declined (not at a safe-point), accepted; last latency (ns)."""
        i = self._info()
        return {"signals_sent": i.signals_sent, "declined": i.declined, "accepted": i.accepted,
                "last_latency_ns": i.last_latency_ns}

    def suspend(self, timeout: Optional[float] = None) -> bool:
        """Parks the thread at its next asynchronous safe-point.

        Args:
            timeout: seconds to wait, an int or float (or another real number) >= 0; None,
                ``math.inf`` or any value above 2**31 s (about 68 years) waits until it parks
                (Ctrl-C still interrupts).

        Returns:
            True once the thread is parked; False if it reached no safe-point in time (the
            request is withdrawn and the thread runs on untouched).

        Raises:
            TypeError: ``timeout`` is not None or a number, or is a bool.
            ValueError: ``timeout`` is NaN or negative.
            ThreadExited: the thread has exited.
            PreemptError: the caller is the thread itself, or another caller holds it suspended.
            Unavailable: async preemption does not work here (see preempt.available()).
        """
        timeout = check_timeout(timeout, "ThreadHandle.suspend()")   # _runtime/_timeouts.py
        ffi, lib = _corelib.core()
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = ffi.new("int64_t *", 0)
        while True:
            chunk = _WAIT_SLICE if deadline is None else max(0.0, min(_WAIT_SLICE, deadline - time.monotonic()))
            rc = lib.pe_thread_suspend(self._slot, self._gen, int(chunk * 1e9), backoff)
            if rc == lib.PE_OK:
                return True
            if rc == lib.PE_TIMEOUT:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                continue  # next slice; lets KeyboardInterrupt in between
            _raise_for(rc, self, "suspend")

    def resume(self) -> None:
        """Lets a suspended thread continue exactly where it stopped.

        Raises:
            PreemptError: the thread is not suspended.
            ThreadExited: the thread has exited.
        """
        _, lib = _corelib.core()
        rc = lib.pe_thread_resume(self._slot, self._gen)
        if rc != lib.PE_OK:
            _raise_for(rc, self, "resume")

    def registers(self) -> Dict[str, int]:
        """The saved register file of the suspended thread.

        Returns:
            ``{"rip", "rsp", "rflags", "rax", ..., "r15", "mxcsr"}`` as unsigned ints; ``rsp``
            is the interrupted stack pointer (the trampoline's frame is not counted).

        Raises:
            PreemptError: the thread is not suspended.
        """
        ffi, lib = _corelib.core()
        regs = ffi.new("pe_gregs_t *")
        mxcsr = ffi.new("uint32_t *")
        rsp = ffi.new("uint64_t *")
        rc = lib.pe_thread_registers(self._slot, self._gen, regs, mxcsr, rsp)
        if rc != lib.PE_OK:
            _raise_for(rc, self, "read the registers of")
        out = {name: int(getattr(regs, name)) for name in _REGS if name != "rsp"}
        out["rsp"] = int(rsp[0])         # the core's: the spill frame is on the thread's stack
        out["mxcsr"] = int(mxcsr[0])
        return out

    def last_suspend_latency_ns(self) -> int:
        """Nanoseconds from the request to the thread being parked, for the last suspension."""
        _, lib = _corelib.core()
        return int(lib.pe_thread_last_latency_ns(self._slot, self._gen))


def _raise_for(rc: int, h: ThreadHandle, what: str) -> None:
    _, lib = _corelib.core()
    if rc == lib.PE_EXITED:
        raise ThreadExited(f"cannot {what} thread {h.name!r} (tid {h._tid}): it has exited or unregistered")
    if rc == lib.PE_SELF:
        raise PreemptError(f"cannot {what} the calling thread itself; call it from another thread")
    if rc == lib.PE_BUSY:
        raise PreemptError(f"cannot {what} thread {h.name!r}: it is already suspended or being "
                           "suspended by another caller")
    if rc == lib.PE_NOT_SUSPENDED:
        raise PreemptError(f"cannot {what} thread {h.name!r}: it is not suspended")
    if rc == lib.PE_UNAVAILABLE:
        from ._platform import available

        raise _corelib_unavailable(available()[1])
    raise PreemptError(f"cannot {what} thread {h.name!r}: core error {rc}")


def _corelib_unavailable(reason: str) -> PreemptError:
    from ._errors import Unavailable

    return Unavailable(reason)


_handles: "Dict[int, ThreadHandle]" = {}
_handles_lock = threading.Lock()


def current() -> ThreadHandle:
    """Registers the calling OS thread (idempotent) and returns its handle.

    Registration gives the thread an alternate signal stack and makes it a candidate for
    :meth:`ThreadHandle.suspend`; it is undone automatically when the thread exits.

    Raises:
        Unavailable: the core is not available here.
        PreemptError: too many registered threads (256).
    """
    ffi, lib = _corelib.core()
    slot = ffi.new("int32_t *")
    gen = ffi.new("uint32_t *")
    rc = lib.pe_thread_register(slot, gen)
    if rc == lib.PE_FULL:
        raise PreemptError("too many registered threads (256): unregister idle ones first")
    if rc != lib.PE_OK:
        raise PreemptError(f"could not register thread {threading.current_thread().name!r} (core error {rc})")
    t = threading.current_thread()
    h = ThreadHandle(int(slot[0]), int(gen[0]), t.name, threading.get_ident(), threading.get_native_id())
    with _handles_lock:
        _handles[h._slot] = h
    return h


def unregister() -> None:
    """Unregisters the calling thread (it is no longer suspendable). No-op if not registered."""
    _, lib = _corelib.core()
    lib.pe_thread_unregister()


def registered() -> List[ThreadHandle]:
    """Handles of every registered thread that is still alive."""
    ffi, lib = _corelib.core()
    slots = ffi.new("int32_t[]", lib.PE_MAX_THREADS)
    gens = ffi.new("uint32_t[]", lib.PE_MAX_THREADS)
    n = lib.pe_thread_list(slots, gens, lib.PE_MAX_THREADS)
    out = []
    with _handles_lock:
        for i in range(n):
            h = _handles.get(int(slots[i]))
            if h is not None and h._gen == int(gens[i]):
                out.append(h)
    return out


def stop_the_world(timeout: Optional[float] = None) -> ContextManager[List[ThreadHandle]]:
    """Parks every registered thread but the caller, and resumes them all on exit.

    Every registered thread must reach an asynchronous safe-point (native code in a registered
    region, GIL released). Threads that exit meanwhile are skipped; threads registered after the
    call starts are not stopped. Use it as ``with stop_the_world(timeout=1.0) as stopped:``.

    Args:
        timeout: seconds for the whole stop, an int or float (or another real number) >= 0;
            None, ``math.inf`` or any value above 2**31 s (about 68 years) waits as long as it
            takes.

    Returns:
        A context manager; entering it stops the threads and yields the handles of the threads
        that were stopped.

    Raises:
        TypeError: ``timeout`` is not None or a number, or is a bool (raised by the call).
        ValueError: ``timeout`` is NaN or negative (raised by the call).
        SuspendTimeout: some thread did not park in time (raised on entering); those already
            parked are resumed before this is raised, and the message names the first one
            that did not (threads are stopped one after another).
    """
    return _stop_the_world(check_timeout(timeout, "preempt.threads.stop_the_world()"))


@contextlib.contextmanager
def _stop_the_world(timeout: Optional[float]) -> Iterator[List[ThreadHandle]]:
    me = threading.get_native_id()
    deadline = None if timeout is None else time.monotonic() + timeout
    stopped: List[ThreadHandle] = []
    try:
        for h in registered():
            if h.native_id == me:
                continue
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                ok = h.suspend(left)
            except ThreadExited:
                continue
            if not ok:
                raise SuspendTimeout(
                    f"stop_the_world: thread {h.name!r} (tid {h.native_id}) reached no async "
                    f"safe-point within {timeout} s (is it running Python code, or native code "
                    "outside a registered region?)")
            stopped.append(h)
        yield list(stopped)
    finally:
        for h in stopped:
            try:
                h.resume()
            except ThreadExited:  # pragma: no cover - a parked thread cannot exit
                pass
