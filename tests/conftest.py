"""Shared fixtures: the native test kernels, and a child-process runner for dangerous tests.

Dangerous tests (signals, trampoline, fork) run their scenario in a child interpreter: a crash or
hang fails that one test (the child is killed at its timeout), never the pytest process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _cpu_flags() -> set:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


CPU_FLAGS = _cpu_flags()


@pytest.fixture(scope="session")
def torture_lib(tmp_path_factory) -> dict:
    """Builds tests/native/torture.c into a shared object (plus an identical copy under another
    name, used as an *unregistered* library). Returns their paths."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "a C compiler (gcc) is needed to build the test kernels"
    d = tmp_path_factory.mktemp("native")
    so = d / "libtorture.so"
    subprocess.run([gcc, "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-o", str(so),
                    str(HERE / "native" / "torture.c")], check=True)
    unreg = d / "libtorture_unreg.so"
    shutil.copy(so, unreg)
    return {"path": str(so), "unreg": str(unreg)}


def run_child(code: str, *args: str, timeout: float = 120, expect_rc: int = 0) -> str:
    """Runs dedented ``code`` in a fresh interpreter with ``args`` as sys.argv[1:].

    Fails the test with the child's output if it exits with another code than ``expect_rc``
    (a crash gives a negative signal number) or outlives ``timeout`` seconds.
    """
    env = dict(os.environ)
    env.setdefault("PYTHONFAULTHANDLER", "1")
    # Children import tests/_childlib.py; keep whatever finds preempt (installed, or PYTHONPATH=src).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    try:
        p = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                           text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"child timed out after {timeout}s\nstdout:\n{e.stdout}\nstderr:\n{e.stderr}")
    if p.returncode != expect_rc:
        pytest.fail(f"child exited with {p.returncode} (expected {expect_rc})\n"
                    f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p.stdout


@pytest.fixture
def child():
    return run_child


@pytest.fixture
def in_run():
    """``in_run(fn)``: runs ``fn()`` as the main goroutine of a fresh ``preempt.run()`` and
    returns what it returned."""
    import preempt

    def run(fn):
        box = {}

        def main():
            box["r"] = fn()

        preempt.run(main)
        return box.get("r")

    return run
