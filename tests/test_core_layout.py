"""CPython's private layouts (csrc/pe_pyoffsets.c): used only where tested, checked at import,
and distrusted — with preemption still working — when a check fails.

The distrust scenarios run in child processes: a distrusted layout stays so for the process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import preempt
from preempt import _corelib, _platform

# Children import the preempt this process imported (installed, or src/ with in-place builds),
# never a bare src/ without the C core: that would quietly test the pure-Python path.
SRC = os.path.dirname(os.path.dirname(os.path.abspath(preempt.__file__)))
pytestmark = pytest.mark.timeout(120)


def _child(code: str) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PREEMPT_SLICE_MS", None)
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                       capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, f"child failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    assert "OK" in p.stdout, p.stdout + p.stderr
    return p.stdout


def test_layout_used_and_checked_on_a_tested_cpython():
    _, lib = _corelib.core()
    tested = sys.version_info[:2] <= _platform.NEWEST_TESTED
    assert _corelib.layout_failures == 0
    assert lib.pe_py_private_layout() == (1 if tested else 0)
    ok, note = preempt.available()
    assert ok and (note == "") == tested, note


def test_checks_fail_on_what_they_check():
    # The check compares _PyRuntime.main_thread with the ident it is given: a wrong ident is
    # what a shifted _PyRuntime layout would look like, and must be caught and distrusted.
    out = _child("""
        import threading
        import preempt
        from preempt import _corelib
        _, lib = _corelib.core()
        if lib.pe_py_private_layout() == 0:
            print("OK none compiled in")
            raise SystemExit
        assert lib.pe_py_check_layout(threading.main_thread().ident) == 0
        assert lib.pe_py_private_layout() == 1
        bad = lib.pe_py_check_layout(threading.main_thread().ident ^ 0x5A5A)
        assert bad == lib.PE_LAYOUT_MAIN, bad
        assert lib.pe_py_private_layout() == -1
        # distrust is for good: a later passing check does not bring the layouts back
        assert lib.pe_py_check_layout(threading.main_thread().ident) == 0
        assert lib.pe_py_private_layout() == -1
        print("OK")
    """)
    _skip_if_none_compiled_in(out)
    assert out.strip() == "OK", out


def _skip_if_none_compiled_in(out: str) -> None:
    """A core built without the private layouts has nothing to check: skip, do not pass."""
    if out.startswith("OK none"):
        pytest.skip("the C core was built without CPython's private layouts "
                    "(pe_py_private_layout() == 0)")


def test_distrusted_layout_still_preempts_and_says_why():
    # With the layouts distrusted sysmon gets no eval-breaker, GIL or tripped-signal word: the
    # fallback (PyErr_SetInterruptEx, then signals) must still take a Python hog off the CPU.
    out = _child("""
        import threading
        import preempt
        from preempt import _corelib
        _, lib = _corelib.core()
        if lib.pe_py_private_layout() == 0:
            print("OK none compiled in")
            raise SystemExit
        _corelib.layout_failures = lib.pe_py_check_layout(0)
        assert _corelib.layout_failures & lib.PE_LAYOUT_MAIN
        ok, note = preempt.available()
        assert ok and "did not hold what they should" in note and "main thread" in note, note
        def hog():
            while True:
                pass
        def ticker():
            for _ in range(10):
                preempt.sleep(0.005)
            return "ticked"
        def main():
            for _ in range(2):
                preempt.go(hog)
            assert preempt.go(ticker).join() == "ticked"
            print("OK", preempt.stats()["sync"]["count"])
        preempt.run(main)
    """)
    _skip_if_none_compiled_in(out)
    assert int(out.split()[1]) > 0
