"""The pytest plugin (entry point ``pytest11``: loaded whenever preempt is installed).

- ``@pytest.mark.preempt`` runs the whole test — its function-scoped fixtures' setup, the test
  function and their teardown — as the main goroutine of one ``preempt.run()``. A fixture can
  therefore start goroutines (a server, a producer) that the test uses and the fixture stops.
  ``@pytest.mark.preempt(slice=0.001, check_leaks=False)`` sets the time slice of that run and
  turns the leak check off.
- The leak check: when the test's fixtures have been torn down, no goroutine but main may be
  left. Leftovers get 0.1 s to finish (a goroutine readied by the test's last step); the rest
  fail the test at teardown with each one's name and what it waits on, as goleak does for Go
  tests. ``run()`` then kills them (their ``finally`` blocks run).
- A deadlock (every goroutine blocked for good) raises ``preempt.Deadlock`` where main waits:
  the test fails with the list of who waits on what, it does not hang.
- ``preempt_run``: a fixture for a test that is not marked: ``preempt_run(fn, *args,
  slice=None, **kwargs)`` is ``preempt.run()`` with the same leak check.
- ``--preempt-slice=SECONDS``: the default slice of both (0: cooperative scheduling only);
  a marker's ``slice=`` wins.

Rules and limits:

1. Fixtures of a wider scope (class, module, session) are set up by whichever test needs them
   first, inside that test's ``run()`` if it is marked. Goroutines they start die when that
   ``run()`` ends: start goroutines in function-scoped fixtures only.
2. A marked test must be a plain function (``async def`` is another runtime's) and cannot use
   ``preempt_run`` or call ``preempt.run()``: it already runs inside one. Both are usage errors
   with a message that says so.
3. pytest-timeout's signal method works inside the run: its SIGALRM handler's exception is
   routed to main (``_runtime/_signals.py``), so the test fails where it waited.

(An alternative would be to run only the test function inside ``run()``, from
``pytest_pyfunc_call``. Rejected: a fixture could then not own goroutines, the most common
need in a concurrent test suite.)

Where these run: pytest's hooks on the main thread; the leak check inside the test's run().
"""

from __future__ import annotations

import argparse
import inspect
import math
from typing import Any, Callable, List, Optional

import pytest

LEAK_GRACE = 0.1        # seconds leftovers get to finish before they count as leaked


def _slice_arg(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if math.isnan(v) or v < 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text}")
    return v


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("preempt")
    group.addoption("--preempt-slice", type=_slice_arg, default=None, metavar="SECONDS",
                    help="time slice of the preempt.run() around tests marked preempt and of "
                         "the preempt_run fixture (default: preempt's, 10 ms; 0: cooperative)")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "preempt(slice=None, check_leaks=True): run the test and its function-scoped "
                   "fixtures as the main goroutine of preempt.run()")


def _options(item: Any, marker: Any) -> tuple:
    """(slice, check_leaks, error): error is the message of a misuse, or None."""
    fn = getattr(item, "obj", None)
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return None, False, ("@pytest.mark.preempt needs a plain function; this one is async "
                             "def, which belongs to another event loop (rule 2)")
    if marker.args:
        return None, False, ("@pytest.mark.preempt takes keyword arguments only (slice=..., "
                             f"check_leaks=...), got {marker.args!r}")
    unknown = set(marker.kwargs) - {"slice", "check_leaks"}
    if unknown:
        return None, False, (f"@pytest.mark.preempt got unknown argument(s) {sorted(unknown)}; "
                             "it takes slice= and check_leaks=")
    slice_ = marker.kwargs.get("slice", item.config.getoption("preempt_slice"))
    if slice_ is not None:
        try:
            slice_ = _slice_arg(str(float(slice_)))
        except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
            return None, False, f"@pytest.mark.preempt(slice={slice_!r}): {e}"
    return slice_, bool(marker.kwargs.get("check_leaks", True)), None


def leftovers() -> List[Any]:
    """The goroutines alive besides main, after a grace of LEAK_GRACE. In a goroutine."""
    import preempt
    from preempt._runtime import _park

    s = _park.sched
    deadline = _park.monotonic() + LEAK_GRACE
    while True:
        left = [g for g in list(s.gs.values()) if g is not s.main and not g.done()]
        if not left or _park.monotonic() >= deadline:
            return left
        preempt.sleep(0.005)


def leak_message(left: List[Any], what: str) -> str:
    from preempt._runtime._rules import WAITING

    lines = [f"preempt: {len(left)} goroutine(s) still alive when {what} ended (leaked: join "
             "them, cancel them, or start them in a preempt.Group):"]
    for g in left[:20]:
        wait = g.describe_wait() if g.state == WAITING else ""
        lines.append(f"  goroutine {g.id} {g.name!r}: {g.state}" + (f", {wait}" if wait else ""))
    if len(left) > 20:
        lines.append(f"  ... and {len(left) - 20} more")
    return "\n".join(lines)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Optional[bool]:
    marker = item.get_closest_marker("preempt")
    if marker is None:
        return None
    slice_, _, error = _options(item, marker)
    if error is not None:
        return None                  # not wrapped: the leak-check fixture fails it at setup
    from _pytest.runner import runtestprotocol

    import preempt

    def main() -> None:
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        runtestprotocol(item, nextitem=nextitem)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)

    preempt.run(main, slice=slice_)
    return True


@pytest.fixture(autouse=True)
def _preempt_leak_check(request: Any) -> Any:
    """Torn down after the test's other function-scoped fixtures (autouse ones are set up
    first): the leak check of marked tests."""
    item = request.node
    marker = item.get_closest_marker("preempt")
    if marker is None:
        yield
        return
    _, check, error = _options(item, marker)
    if error is not None:
        pytest.fail(error, pytrace=False)
    yield
    if check:
        left = leftovers()
        if left:
            pytest.fail(leak_message(left, "the test"), pytrace=False)


@pytest.fixture
def preempt_run(request: Any) -> Callable[..., Any]:
    """``preempt_run(fn, *args, slice=None, **kwargs)``: ``preempt.run()`` with the leak check
    (and ``--preempt-slice`` as its default slice)."""
    import preempt

    if request.node.get_closest_marker("preempt") is not None:
        pytest.fail("the preempt_run fixture cannot be used by a test marked preempt: the test "
                    "already runs inside preempt.run() (rule 2)", pytrace=False)
    default = request.config.getoption("preempt_slice")

    def runner(fn: Callable[..., Any], *args: Any, slice: Optional[float] = None,
               **kwargs: Any) -> Any:
        def main() -> Any:
            result = fn(*args, **kwargs)
            left = leftovers()
            if left:
                pytest.fail(leak_message(left, f"{getattr(fn, '__name__', fn)!s}()"),
                            pytrace=False)
            return result

        return preempt.run(main, slice=default if slice is None else slice)

    return runner
