"""Helpers imported by the child-process scenarios of the core tests (never by pytest itself)."""

from __future__ import annotations

import ctypes
import random
import threading
import time

import preempt
from preempt import threads

U64 = ctypes.c_uint64


def scramble_on_park() -> None:
    """Make every park destroy the extended register state (only what was saved comes back)."""
    from preempt import _core

    _core.lib.pe_debug_scramble_on_park(1)


def load(path: str) -> ctypes.CDLL:
    scramble_on_park()
    lib = ctypes.CDLL(path)
    lib.pe_test_gpr_kernel.argtypes = [ctypes.c_void_p, U64]
    lib.pe_test_zmm_kernel.argtypes = [ctypes.c_void_p, U64, ctypes.c_void_p]
    lib.pe_test_ymm_kernel.argtypes = [ctypes.c_void_p, U64, ctypes.c_void_p]
    lib.pe_test_redzone.argtypes = [U64]
    lib.pe_test_redzone.restype = U64
    lib.pe_test_spin.argtypes = [U64]
    lib.pe_test_spin.restype = U64
    lib.pe_test_read_all.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_long, ctypes.POINTER(ctypes.c_int)]
    lib.pe_test_read_all.restype = ctypes.c_long
    lib.pe_test_sleep_ns.argtypes = [ctypes.c_long, ctypes.POINTER(ctypes.c_int)]
    lib.pe_test_spin_at.argtypes = [U64, ctypes.POINTER(U64)]
    lib.pe_test_spin_at.restype = U64
    lib.pe_test_stack_bounds.argtypes = [ctypes.POINTER(U64), ctypes.POINTER(U64)]
    lib.pe_test_enter_spin.argtypes = [U64]
    lib.pe_test_enter_spin.restype = U64
    lib.pe_test_inside_max_reset.restype = U64
    return lib


def gpr(lib, iters: int) -> tuple:
    out = (U64 * 16)()
    lib.pe_test_gpr_kernel(out, iters)
    return tuple(out)


def _init_bytes(n: int) -> bytes:
    rnd = random.Random(1234)
    return bytes(rnd.getrandbits(8) for _ in range(n))


ZMM_INIT = (ctypes.c_uint8 * 2048).from_buffer_copy(_init_bytes(2048))
YMM_INIT = (ctypes.c_uint8 * 512).from_buffer_copy(_init_bytes(512))


def zmm(lib, iters: int) -> bytes:
    out = (ctypes.c_uint8 * 2120)()
    lib.pe_test_zmm_kernel(out, iters, ZMM_INIT)
    return bytes(out)


def ymm(lib, iters: int) -> bytes:
    out = (ctypes.c_uint8 * 516)()
    lib.pe_test_ymm_kernel(out, iters, YMM_INIT)
    return bytes(out)


def spin_iters(lib, seconds: float) -> int:
    """Iterations of pe_test_spin that take about ``seconds`` on this machine now."""
    n = 1_000_000
    t0 = time.perf_counter()
    lib.pe_test_spin(n)
    dt = max(time.perf_counter() - t0, 1e-6)
    return max(1000, int(n * seconds / dt))


class Worker:
    """A registered thread that runs ``fn()`` in a loop until stopped, keeping every result."""

    def __init__(self, fn, name: str = "worker", runs: int = 0) -> None:
        self.fn = fn
        self.runs = runs  # 0: until stop()
        self.results = []
        self.error = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.handle = None
        self.thread = threading.Thread(target=self._body, name=name, daemon=True)
        self.thread.start()
        assert self._ready.wait(10), "worker did not start"

    def _body(self) -> None:
        try:
            self.handle = threads.current()
            self._ready.set()
            while not self._stop.is_set():
                self.results.append(self.fn())
                if self.runs and len(self.results) >= self.runs:
                    break
        except BaseException as e:  # reported by the scenario
            self.error = e
            self._ready.set()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "worker did not finish"
        if self.error:
            raise self.error


def hammer(h, cycles: int, on_regs=None, jitter_us: int = 200, timeout: float = 10.0) -> int:
    """Suspends and resumes h ``cycles`` times with random pauses between; returns the count."""
    rnd = random.Random(42)
    done = 0
    while done < cycles:
        if not h.suspend(timeout):
            raise AssertionError(f"thread not suspended within {timeout}s after {done} cycles: {h.stats()}")
        try:
            if on_regs:
                on_regs(h.registers())
        finally:
            h.resume()
        done += 1
        end = time.perf_counter() + rnd.randrange(jitter_us + 1) / 1e6
        while time.perf_counter() < end:
            pass
    return done


def region_of(path: str):
    """(start, end) pairs of the executable mappings of ``path`` from /proc/self/maps."""
    import os

    real = os.path.realpath(path)
    spans = []
    for line in open("/proc/self/maps"):
        parts = line.split()
        if len(parts) >= 6 and parts[5] == real and "x" in parts[1]:
            a, b = parts[0].split("-")
            spans.append((int(a, 16), int(b, 16)))
    return spans


__all__ = ["U64", "ZMM_INIT", "ctypes", "spin_iters", "load", "gpr", "zmm", "ymm", "Worker", "hammer", "region_of", "preempt", "threads"]


def compute_until(flag: list, limit: float = 20.0) -> str:
    """Pure Python that never yields by itself, until ``flag`` is non-empty or ``limit`` seconds
    have passed: "flag" when something else ran (and set it) while this computed, else
    "deadline". The bridges' trigger tests (tests/test_bridge_*_triggers.py)."""
    t_end = time.monotonic() + limit
    while not flag and time.monotonic() < t_end:
        pass
    return "flag" if flag else "deadline"
