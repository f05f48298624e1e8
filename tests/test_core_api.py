"""The core's Python API in-process: registration, handles, regions, misuse errors.

Nothing here sends a preemption signal to a thread that could accept it; those tests are in
test_core_suspend.py and run in child processes.
"""

from __future__ import annotations

import ctypes
import threading
import time

import pytest

import preempt
from preempt import threads


def test_available_on_this_machine():
    ok, reason = preempt.available()
    assert ok, reason
    assert reason == ""


def test_current_is_idempotent_and_listed():
    h1 = threads.current()
    h2 = threads.current()
    assert h1 == h2 and hash(h1) == hash(h2)
    assert h1.native_id == threading.get_native_id()
    assert h1 in threads.registered()
    assert h1.alive and not h1.is_suspended


def test_suspending_yourself_is_an_error():
    h = threads.current()
    with pytest.raises(preempt.PreemptError, match="calling thread"):
        h.suspend(0.1)


def test_resume_and_registers_need_a_suspended_thread():
    h = threads.current()
    with pytest.raises(preempt.PreemptError, match="not suspended"):
        h.resume()
    with pytest.raises(preempt.PreemptError, match="not suspended"):
        h.registers()


def test_negative_timeout_is_rejected():
    with pytest.raises(ValueError, match="timeout"):
        threads.current().suspend(-1)


def test_handle_of_exited_thread_raises_thread_exited():
    box = []
    t = threading.Thread(target=lambda: box.append(threads.current()), name="short-lived")
    t.start()
    t.join()
    h = box[0]
    # join() returns when Python is done with the thread; the OS thread (and its TLS destructor,
    # which unregisters it) finishes a moment later.
    deadline = time.monotonic() + 10
    while h.alive and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not h.alive
    assert h not in threads.registered()
    for call in (lambda: h.suspend(0.1), h.resume, h.registers, lambda: h.is_suspended):
        with pytest.raises(preempt.ThreadExited, match="short-lived"):
            call()
    assert "exited" in repr(h)


def test_slots_are_reused_after_threads_exit():
    # More threads than the registry has slots, one after another: exits must free slots.
    seen = set()
    for _ in range(300):
        t = threading.Thread(target=lambda: seen.add(threads.current()._slot))
        t.start()
        t.join()
    assert len(seen) < 300


def test_unregister_makes_handle_stale():
    box = []

    def body():
        box.append(threads.current())
        threads.unregister()
        box.append(threads.current())  # registering again gives a new handle

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert box[0] != box[1]


def test_preemptible_accepts_path_cdll_and_soname(torture_lib):
    lib = ctypes.CDLL(torture_lib["path"])
    with preempt.preemptible(lib) as r:
        assert r.segments >= 1 and not r.closed
        r2 = preempt.preemptible(torture_lib["path"])  # same object again: reference-counted
        r2.close()
        r2.close()  # idempotent
    assert r.closed
    ctypes.CDLL("libm.so.6")
    preempt.preemptible("libm.so.6").close()


@pytest.mark.parametrize("bad,match", [
    ("libc.so.6", "C library"),
    ("/etc/hostname", "not loaded"),
    ("/no/such/lib.so", "does not exist"),
    ("libnot-a-real-library.so.7", "not loaded"),
])
def test_preemptible_refuses_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        preempt.preemptible(bad)


def test_preemptible_refuses_the_interpreter_and_itself():
    with pytest.raises(ValueError, match="main program|interpreter"):
        preempt.preemptible(ctypes.CDLL(None))
    from preempt import _core

    with pytest.raises(ValueError, match="preempt's own core"):
        preempt.preemptible(_core.lib)
    with pytest.raises(ValueError, match="takes a path"):
        preempt.preemptible(42)


def test_preemptible_accepts_cffi_abi_library(torture_lib):
    import cffi

    ffi = cffi.FFI()
    ffi.cdef("uint64_t pe_test_spin(uint64_t);")
    lib = ffi.dlopen(torture_lib["path"])
    with preempt.preemptible(lib) as r:
        assert r.segments >= 1
