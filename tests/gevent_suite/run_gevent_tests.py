#!/usr/bin/env python3
"""gevent's own test suite, plain and under ``preempt.gevent.enable()``: no new failure allowed.

    python tests/gevent_suite/run_gevent_tests.py [--python PY] [-j 2] [FILE ...]

For each gevent test file (``gevent.tests.test__*``), two fresh child processes of the same
interpreter (``_child.py``): a plain baseline, and the same file with ``preempt.gevent.enable()``
called on the main thread right after the file is imported (after its own ``monkey.patch_all()``).
Then per test:

1. A test that passes in the baseline and fails, errors, hangs or is not run under preempt is a
   NEW failure (a test that fails or is skipped in the baseline says nothing about preempt).
2. A new failure listed in ``expected_failures.txt`` (``file Class.test  # reason``) is
   expected; every entry says why (by design: the test asserts a greenlet is not switched out,
   or times something exactly; or ``BUG:`` and the bug).
3. A listed entry whose test passes now is STALE, unless its reason starts ``flaky:``.
4. The preemptions of all the preempt children are summed: zero fails the run (it proved
   nothing). Files that never run Python code for a whole slice count none, and that is fine.
5. A hang (no ``done`` within ``--file-timeout``) kills the child; the test it was in is
   recorded as ``hang`` and a new child runs the file's remaining tests.

A new failure not listed is run again once, alone in a fresh preempt child: if it passes there
it is reported as FLAKY (a warning) rather than a failure: gevent's tests time things, and on a
shared 2-core machine they fail now and then plainly too.

Only loopback networking: gevent's tests use localhost; the children get
``GEVENTTEST_USE_RESOURCES=-network`` so the few that would reach outside skip themselves.

Exit status: 0 when clean (rules 1-4), 1 otherwise. ``--json`` writes the comparison for the
pytest entry (tests/test_gevent_suite.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _suite_harness import (ModeRun, compare, keep_unless_flaky, print_findings,  # noqa: E402
                            print_table, read_expected, run_attempts, run_child, tail)
CHILD = HERE / "_child.py"
EXPECTED = HERE / "expected_failures.txt"
HOOK = HERE / "hook"
# gevent test files that are scripts (no unittest case; found when the plain child loads none):
# run as gevent's runner runs them, ``python FILE.py``; exit status 0 is the one outcome, test
# id ``<script>``; in the preempt run hook/sitecustomize.py enables preemption at patch_all().
# Also a file whose import fails in the plain child (it reads sys.argv, or does its work at
# import), and these two, which look for their own warning when run as __main__:
SLICE = 0.010                          # --slice
SCRIPTS = {"test__monkey_ssl_warning2", "test__monkey_ssl_warning3"}

# One or more files per area of the brief (FILES), and more of gevent's small files (MORE);
# both runs of all of them take about 2.5 minutes with -j 2 on 2 cores.
FILES = [
    "test__greenlet", "test__greenletset", "test__joinall", "test__api", "test__api_timeout",
    "test__event", "test__iwait", "test__queue", "test__pool", "test__lock", "test__semaphore",
    "test__timeout", "test__socket", "test__socket_close", "test__socketpair", "test__select",
    "test__server", "test__server_pywsgi", "test__pywsgi", "test__subprocess",
    "test__threading", "test__threading_2", "test__thread", "test__threadpool", "test__local",
    "test__hub", "test__hub_join", "test__sleep0", "test__monkey", "test__monkey_queue",
    "test__os", "test__core_fork", "test__monkey_fork_atomic", "test__fileobject",
    "test__signal", "test__order", "test__exc_info", "test__GreenletExit", "test__contextvars",
]
MORE = [
    "test__monkey_sigchld", "test__monkey_sigchld_2", "test__monkey_sigchld_3",
    "test__threading_vs_settrace", "test__socket_timeout", "test__socket_ex",
    "test__socket_errors", "test__socket_send_memoryview", "test__ssl", "test__makefile_ref",
    "test__monkey_hub_in_thread", "test__threading_patched_local", "test__monkey_logging",
    "test__monkey_select", "test__monkey_selectors", "test__monkey_futures_thread_fork",
    "test__threading_fork_from_dummy", "test__subprocess_poll", "test__subprocess_interrupted",
    "test__core_timer", "test__core_callback", "test__loop_callback",
    "test__threadpool_executor_patched", "test__greenness", "test__real_greenlet",
    "test__hub_join_timeout", "test__destroy", "test__selectors", "test__issue6",
    "test__issue112", "test__issue230", "test__issue330", "test__issue467", "test__issue600",
    "test__issue607", "test__issue639", "test__issues461_471",
    "test__import_blocking_in_greenlet", "test__import_wait", "test__threading_before_monkey",
    "test__threading_holding_lock_while_monkey", "test__threading_monkey_in_thread",
    "test__threading_native_before_monkey", "test__threading_no_monkey",
    "test__threading_shutdown_atexit", "test__monkey_builtins_future",
    "test__monkey_multiple_imports", "test__monkey_module_run", "test__monkey_ssl_warning",
    "test__monkey_ssl_warning2", "test__monkey_ssl_warning3", "test__backdoor",
    "test__nondefaultloop", "test__refcount", "test__compat", "test__events",
]
# Not here: test__environ wants the environment (GEVENT_BACKEND) gevent's own
# runner gives it; the test__example_* files start gevent's examples, not shipped in the wheel.

def child_env(mode: str, counts: Path) -> Dict[str, str]:
    """The preempt children, and every process they start, get hook/sitecustomize.py."""
    env = dict(os.environ)
    env["GEVENTTEST_USE_RESOURCES"] = "-network"     # loopback only
    env.pop("PREEMPT_GEVENT_SUITE", None)
    if mode == "preempt":
        env["PREEMPT_GEVENT_SUITE"] = "1"
        env["PREEMPT_GEVENT_SUITE_DIR"] = str(counts)
        env["PREEMPT_GEVENT_SUITE_SLICE"] = str(SLICE)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(HOOK)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def other_counts(counts: Path) -> int:
    """Preemptions written at exit by the processes the tests started (hook rule 3)."""
    n = 0
    for f in counts.glob("*.json"):
        try:
            n += json.loads(f.read_text()).get("preemptions", 0)
        except (OSError, ValueError):
            pass
    return n


def run_mode(py: str, module: str, mode: str, work: Path, *, file_timeout: float,
             only: Optional[List[str]] = None, tag: str = "") -> ModeRun:
    r = ModeRun()
    t0 = time.monotonic()
    counts = work / f"{module}.{mode}{tag}.counts"
    counts.mkdir(exist_ok=True)
    env = child_env(mode, counts)
    if module in SCRIPTS:
        tests_dir = subprocess.check_output(
            [py, "-c", "import gevent.tests as t, os; print(os.path.dirname(t.__file__))"],
            text=True).strip()
        log = work / f"{module}.{mode}{tag}.log"
        rc, timed_out = run_child([py, f"{module}.py"], log, file_timeout, env, cwd=tests_dir)
        r.outcomes["<script>"] = "hang" if timed_out else ("pass" if rc == 0 else "fail")
        if timed_out or rc != 0:
            r.details["<script>"] = f"exit {'hang' if timed_out else rc}; log {log}:\n{tail(log)}"
        r.preemptions = other_counts(counts)
        r.secs = time.monotonic() - t0
        return r

    def cmd(out: Path, skipf: Path) -> List[str]:
        return [py, str(CHILD), "--mode", mode, "--module", module, "--out", str(out),
                "--skip-file", str(skipf), "--slice", str(SLICE)]

    run_attempts(r, mode, work, f"{module}.{mode}{tag}", cmd, what="file", attempts=20,
                 timeout=lambda: file_timeout, only=only, env=env)
    r.preemptions += other_counts(counts)
    r.secs = time.monotonic() - t0
    return r


def run_file(py: str, module: str, work: Path, exp, args) -> dict:
    base = run_mode(py, module, "plain", work, file_timeout=args.file_timeout)
    if not base.outcomes and (not base.problems or "did not import" in base.problems[0]):
        SCRIPTS.add(module)
        base = run_mode(py, module, "plain", work, file_timeout=args.file_timeout, tag=".script")
    pre = run_mode(py, module, "preempt", work, file_timeout=args.file_timeout)
    cmp = compare(module, base, pre, exp, "flaky:")
    flaky = []
    if cmp["new"] and not args.no_rerun:
        flaky = keep_unless_flaky(cmp, run_mode(py, module, "preempt", work, tag=".rerun",
                                                only=[t for t, _ in cmp["new"]],
                                                file_timeout=args.file_timeout))
    return {"file": module, "tests": len(base.outcomes), "base": base.outcomes,
            "preempt": pre.outcomes, "new": cmp["new"], "listed": cmp["listed"],
            "stale": cmp["stale"], "flaky": flaky, "preemptions": pre.preemptions,
            "no_tests": not base.outcomes, "problems": base.problems + pre.problems,
            "secs": [base.secs, pre.secs],
            "baseline": base.summary(), "under_preempt": pre.summary(),
            "details": {t: pre.details.get(t, "") for t, _ in cmp["new"] + cmp["listed"]
                        + flaky}}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", default=FILES + MORE)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--expected", default=str(EXPECTED))
    ap.add_argument("--file-timeout", type=float, default=120.0)
    ap.add_argument("-j", "--jobs", type=int, default=2, help="files run side by side")
    ap.add_argument("--workdir", default=None, help="keep the children's logs here")
    ap.add_argument("--json", default=None, help="write the comparison here")
    ap.add_argument("--slice", type=float, default=0.010,
                    help="enable()'s slice in the preempt children (default 10 ms)")
    ap.add_argument("--no-rerun", action="store_true", help="no second try for new failures")
    args = ap.parse_args(argv)

    global SLICE
    SLICE = args.slice
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gevent-tests-"))
    work.mkdir(parents=True, exist_ok=True)
    exp = {(e.module, e.test): e for e in read_expected(Path(args.expected), "file")}
    ver = subprocess.check_output([args.python, "-c", "import sys, gevent; print('%d.%d' % "
                                   "sys.version_info[:2], gevent.__version__)"], text=True)
    print(f"CPython/gevent {ver.strip()} ({args.python}); logs in {work}", flush=True)
    t_all = time.monotonic()
    files = [f[:-3] if f.endswith(".py") else f for f in args.files]
    bad = False
    results = {}
    with ThreadPoolExecutor(max(1, args.jobs)) as ex:
        futs = {f: ex.submit(run_file, args.python, f, work, exp, args) for f in files}
        for f in files:
            m = futs[f].result()
            results[f] = m
            mod_bad = bool(m["new"] or m["stale"] or m["no_tests"])
            bad |= mod_bad
            print(f"--- {f}: {m['tests']} tests, baseline {m['baseline']}, preempt "
                  f"{m['under_preempt']} (pass/fail/skip), {m['preemptions']} preemptions, "
                  f"{m['secs'][0]:.0f}+{m['secs'][1]:.0f}s", flush=True)
            print_findings(f, m, m["flaky"], m["details"], exp)
            for p in m["problems"]:
                print("  " + p.splitlines()[0])
    total = time.monotonic() - t_all
    npre = sum(m["preemptions"] for m in results.values())
    if npre == 0:
        bad = True
        print("NO PREEMPTION: the preempt children counted none in all (rule 4)")
    print(f"\n{len(files)} files in {total:.0f} s, {npre} preemptions "
          f"(pass/fail/skip; new = not listed + L listed)")
    print_table(("file", "tests", "baseline", "preempt", "new", "preemptions", "time"),
                [(f, m["tests"], m["baseline"], m["under_preempt"],
                  f"{len(m['new'])}+{len(m['listed'])}L", m["preemptions"],
                  f"{m['secs'][0]:.0f}+{m['secs'][1]:.0f}s") for f, m in results.items()])
    report = {"files": results, "secs": total, "preemptions": npre, "ok": not bad}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print("OK: no new failure" if not bad else "FAILED: see NEW / STALE / NO PREEMPTION above")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
