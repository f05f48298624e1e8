"""The pytest plugin (``src/preempt/pytest_plugin.py``): each case runs pytest on a small test
file in a child process, with only this plugin (and pytest-timeout where named) loaded; the
last one loads it as a user's pytest does, through the installed ``pytest11`` entry point."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

HEADER = """
import time
import pytest
import preempt
"""


def _pytest(tmp_path, body, *args, plugins=("preempt.pytest_plugin",)):
    (tmp_path / "test_it.py").write_text(HEADER + textwrap.dedent(body))
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"]
    for p in plugins:
        cmd += ["-p", p]
    p = subprocess.run(cmd + list(args) + [str(tmp_path / "test_it.py")], cwd=tmp_path,
                       capture_output=True, text=True, timeout=100, env=env)
    return p.returncode, p.stdout + p.stderr


def _counts(out):
    return {k.rstrip("s") if k.startswith("error") else k: int(n)
            for n, k in re.findall(r"(\d+) (passed|failed|errors?|skipped)", out)}


def test_a_marked_test_and_its_fixtures_run_in_one_run(tmp_path):
    rc, out = _pytest(tmp_path, """
        @pytest.fixture
        def numbers():
            ch = preempt.Chan()
            def produce():
                for i in range(5):
                    ch.send(i)
                ch.close()
            g = preempt.go(produce, name="producer")
            yield ch
            g.join()                           # the fixture's goroutine, stopped at teardown

        @pytest.mark.preempt
        def test_sum(numbers):
            assert preempt.current().name == "main"
            assert sum(numbers) == 10

        def test_unmarked_is_untouched():
            with pytest.raises(preempt.PreemptError):
                preempt.current()
    """)
    assert rc == 0 and _counts(out) == {"passed": 2}, out


def test_goroutines_of_a_marked_test_are_preempted(tmp_path):
    rc, out = _pytest(tmp_path, """
        @pytest.mark.preempt(slice=0.002)
        def test_two_spinners_interleave():
            flag = []
            def spin():                        # never blocks: only preemption lets main on
                t_end = time.monotonic() + 5.0
                while not flag and time.monotonic() < t_end:
                    pass
                return bool(flag)
            g = preempt.go(spin)
            preempt.gosched()                  # spin runs; main gets the CPU back only by
            flag.append(1)                     # preempting it
            assert g.join() is True, "main ran only after spin gave up"
            assert preempt.stats()["sync"]["count"] >= 1
    """)
    assert rc == 0 and _counts(out) == {"passed": 1}, out


def test_a_leaked_goroutine_fails_the_test_at_teardown_with_its_name(tmp_path):
    rc, out = _pytest(tmp_path, """
        @pytest.mark.preempt
        def test_leaks():
            preempt.go(preempt.Chan().recv, name="forgotten")

        @pytest.mark.preempt(check_leaks=False)
        def test_leaks_allowed():
            preempt.go(preempt.Chan().recv, name="allowed")

        @pytest.mark.preempt
        def test_readied_at_the_end_is_not_a_leak():
            ch = preempt.Chan(1)
            preempt.go(ch.recv, name="late")
            ch.send(1)                         # "late" is runnable, not yet finished
    """)
    assert rc == 1, out
    assert _counts(out) == {"passed": 3, "error": 1}, out
    assert "ERROR at teardown of test_leaks" in out, out
    assert re.search(r"1 goroutine\(s\) still alive when the test ended", out), out
    assert "'forgotten': waiting" in out and "'allowed'" not in out, out


def test_a_deadlocked_marked_test_fails_and_says_who_waits(tmp_path):
    rc, out = _pytest(tmp_path, """
        @pytest.mark.preempt
        def test_deadlock():
            preempt.Chan().recv()
    """)
    assert rc == 1 and _counts(out) == {"failed": 1}, out
    assert "Deadlock" in out and "deadlock" in out, out


def test_the_preempt_run_fixture_runs_and_checks_leaks(tmp_path):
    rc, out = _pytest(tmp_path, """
        def test_value(preempt_run):
            def main(a, b=0):
                return preempt.go(lambda: a + b).join()
            assert preempt_run(main, 2, b=3) == 5

        def test_slice(preempt_run):
            from preempt._runtime import _park
            assert preempt_run(lambda: _park.sched.slice, slice=0.004) == 0.004

        def test_leak(preempt_run):
            preempt_run(lambda: preempt.go(preempt.Chan().recv, name="stuck"))

        @pytest.mark.preempt
        def test_not_in_a_marked_test(preempt_run):
            pass
    """)
    assert rc == 1 and _counts(out) == {"passed": 2, "failed": 1, "error": 1}, out
    assert "still alive when <lambda>() ended" in out and "'stuck'" in out, out
    assert "cannot be used by a test marked preempt" in out, out


def test_preempt_slice_option(tmp_path):
    body = """
        @pytest.mark.preempt
        def test_default_slice():
            from preempt._runtime import _park
            assert _park.sched.slice == 0.003

        @pytest.mark.preempt(slice=0)
        def test_marker_wins():
            from preempt._runtime import _park
            assert _park.sched.slice == 0
    """
    rc, out = _pytest(tmp_path, body, "--preempt-slice=0.003")
    assert rc == 0 and _counts(out) == {"passed": 2}, out
    for bad in ("-1", "nan", "inf", "soon"):
        rc, out = _pytest(tmp_path, body, f"--preempt-slice={bad}")
        assert rc == 4 and "--preempt-slice" in out, (bad, out)


def test_misuse_of_the_marker_is_a_clear_failure(tmp_path):
    rc, out = _pytest(tmp_path, """
        @pytest.mark.preempt
        async def test_async():
            pass

        @pytest.mark.preempt(0.01)
        def test_positional():
            pass

        @pytest.mark.preempt(slise=0.01)
        def test_typo():
            pass

        @pytest.mark.preempt(slice=-1)
        def test_negative():
            pass
    """)
    assert _counts(out).get("error") == 4, out
    assert "async def" in out, out
    assert "keyword arguments only" in out, out
    assert "unknown argument(s) ['slise']" in out, out
    assert "slice=-1" in out and "finite number of seconds" in out, out


def test_pytest_timeout_ends_a_marked_test_that_waits(tmp_path):
    pytest.importorskip("pytest_timeout")
    rc, out = _pytest(tmp_path, """
        @pytest.mark.timeout(1, method="signal")
        @pytest.mark.preempt
        def test_waits():
            preempt.sleep(100)
    """, plugins=("preempt.pytest_plugin", "pytest_timeout"))
    assert rc == 1 and _counts(out) == {"failed": 1}, out
    assert "Timeout" in out, out


def test_the_plugin_is_declared_as_a_pytest11_entry_point():
    text = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    m = re.search(r"\[project\.entry-points\.pytest11\]\s*\n\s*preempt\s*=\s*\"([\w.]+)\"", text)
    assert m and m.group(1) == "preempt.pytest_plugin", text
    import preempt.pytest_plugin as plugin

    assert hasattr(plugin, "pytest_runtest_protocol")


ENTRY_POINT_TESTS = """
import pytest
import preempt
from preempt._runtime import _park


@pytest.mark.preempt
def test_marked_runs_as_main_goroutine():
    assert preempt.current().name == "main"        # raises outside preempt.run()
    assert _park.sched.slice == 0.004              # --preempt-slice reached the run
    ch = preempt.Chan()
    preempt.go(ch.send, "hi")
    assert ch.recv() == "hi"


def test_loaded_through_the_entry_point(pytestconfig):
    plugin = pytestconfig.pluginmanager.get_plugin("preempt")   # the entry point's name
    assert plugin is not None and plugin.__name__ == "preempt.pytest_plugin", plugin
"""


def test_the_installed_plugin_is_autoloaded_through_its_entry_point(tmp_path):
    """What a user gets after ``pip install preempt``: plain ``pytest``, no ``-p``, autoload on.
    A broken or missing ``pytest11`` entry point fails this test (an unknown option, a marked
    test run outside ``preempt.run()``, or no plugin registered under the name "preempt")."""
    import importlib.metadata

    try:
        importlib.metadata.distribution("preempt")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("preempt is not installed (run from src/): there is no entry point to load")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")          # this directory is the rootdir
    (tmp_path / "test_ep.py").write_text(ENTRY_POINT_TESTS)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS", "PYTEST_ADDOPTS")}
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA",
                        "-W", "error::pytest.PytestUnknownMarkWarning", "--preempt-slice=0.004",
                        "test_ep.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=100, env=env)
    out = p.stdout + p.stderr
    assert p.returncode == 0 and _counts(out) == {"passed": 2}, out
