"""Time-valued arguments: one validation for every sleep, timeout and slice of the public API.

``preempt.sleep(seconds)``, every ``timeout=`` (``select``, ``Event.wait``, ``Goroutine.join``,
``WaitQ.wait``, ``wait_readable``/``wait_writable``, ``ThreadHandle.suspend``,
``threads.stop_the_world``) and ``run(slice=)`` with its ``PREEMPT_SLICE_MS`` variable go through
the functions here. Each returns a clean value or raises an error that names the function and
the argument, so the rest of the runtime never sees a value it cannot represent.

Why one place: a timeout becomes a timer deadline, which lives twice — a float of monotonic
seconds in the timer heap (``_timers.py``) and an int64 count of nanoseconds in the word the C
monitor reads (``next_deadline_ns``, csrc/pe_sysmon.c). Unchecked values broke both. NaN
compares false with everything, so a NaN deadline corrupts the heap order, never fires, and the
hub spins; a deadline past 2**63 ns overflowed the monitor's word on every round of the hub,
which froze the runtime at 100 % CPU; ``sleep(inf)`` raised a bare OverflowError from inside the
runtime. A check per call site had each site get a different corner wrong.

Rules (tests and callers refer to them by number):

1. Types: ``int``, ``float`` and every other ``numbers.Real`` (``Fraction``, numpy scalars), and
   ``decimal.Decimal``, all converted with ``float()``. ``bool`` is refused (``sleep(True)`` is a
   bug, not one second), as is anything else — ``str``, ``complex``, ``object``, and ``None``
   where None has no meaning (sleep, slice): TypeError naming the function and the argument.
2. NaN is a ValueError. A negative value is a ValueError ("must be >= 0"), as for
   ``time.sleep`` and ``queue.Queue.get``; ``-0.0`` is 0.
3. ``math.inf`` and every finite value above :data:`TIMEOUT_MAX` (2**31 s, about 68 years) mean
   "for ever": a timeout becomes None (no timer), and a sleep parks with no timer at all, so
   when nothing else can wake anyone, ``run()`` raises ``preempt.Deadlock`` naming
   "sleep (for ever)" instead of hanging. Hence no timer deadline is ever NaN, inf, or past the
   monitor's int64 range: ``monotonic() + TIMEOUT_MAX`` stays below 2**63 ns for two centuries
   of uptime (``_timers.add_timer`` refuses anything else, and ``CoreMonitor.set_next_deadline``
   clamps what it stores, as a second line).
4. 0 keeps its meaning: ``sleep(0)`` yields, a timeout of 0 polls once and does not wait.
5. A slice is a finite number of seconds from 0 (preemption off) to :data:`SLICE_MAX` (one
   hour); NaN, negative, inf or a value above the cap is a ValueError — a slice of hours is a
   unit mistake, and inf would be a second, ambiguous spelling of "off". ``PREEMPT_SLICE_MS``
   follows the same rules in milliseconds; a bad value there raises PreemptError naming the
   variable (it is configuration, not an argument). The bridges' intervals
   (``preempt.gevent.enable(slice=, report_after=)``, ``preempt.aio.run(slice=)``) follow it
   too, except that 0 is refused there: they have no "off" (:func:`check_interval`).
6. The common case stays inline at the call site, where it costs one or two cheap checks and no
   call: ``timeout is None``, or a ``float`` already in range (``type(t) is float`` and one
   chained comparison, which a NaN fails). Everything else calls in here, where an ``int`` in
   range is the first, cheap test.

(An alternative would be clamping silently, as Go's ``time.Sleep`` treats a negative duration as
zero: NaN and negative values to 0, huge ones to the cap. Rejected: NaN and negative timeouts are
bugs in the caller's arithmetic, and polling instead hides them; Python's own ``time.sleep``
raises. Another would be keeping inf in the timer heap as a deadline that never comes. Rejected:
every reader of a deadline — the monitor's int64 word, the hub's epoll timeout, the deadlock
check that counts pending timers — would need its own special case, and the deadlock check could
then never see that a ``sleep(inf)`` has nothing left to wait for.)

Where these run: anywhere (pure functions, no runtime state).
"""

from __future__ import annotations

import sys
from numbers import Real
from typing import Any, Optional

from .._errors import PreemptError

__all__ = ["TIMEOUT_MAX", "SLICE_MAX", "check_timeout", "check_seconds", "check_slice",
           "check_interval", "slice_from_env"]

TIMEOUT_MAX: float = float(2**31)
"""Seconds (about 68 years). A timeout or sleep above this, or ``math.inf``, means for ever."""

SLICE_MAX: float = 3600.0
"""Seconds. The longest time slice ``run(slice=)`` accepts (rule 5)."""

_TIMEOUT_MAX_INT = 2**31
_NUMBER = "a number of seconds (int or float)"


def _is_decimal(value: Any) -> bool:
    dec = sys.modules.get("decimal")      # not imported: value cannot be a Decimal
    return dec is not None and isinstance(value, dec.Decimal)


def _to_seconds(value: Any, what: str, arg: str, expected: str) -> float:
    """Rules 1-2: ``value`` as a float >= 0 (possibly inf), or TypeError/ValueError."""
    if isinstance(value, bool) or not (isinstance(value, Real) or _is_decimal(value)):
        raise TypeError(f"{what}: {arg} must be {expected}, not {type(value).__name__!r}")
    try:
        x = float(value)
    except OverflowError:                 # an int or Fraction beyond the float range
        x = float("inf") if value > 0 else float("-inf")
    except ValueError:                    # Decimal("sNaN")
        x = float("nan")
    if x != x:
        raise ValueError(f"{what}: {arg} is NaN; pass {_NUMBER} >= 0")
    if x < 0:
        raise ValueError(f"{what}: {arg} must be >= 0, got {value!r}")
    return x + 0.0                        # -0.0 -> 0.0


def check_timeout(value: Any, what: str, arg: str = "timeout") -> Optional[float]:
    """Validates a timeout (rules 1-4).

    Args:
        value: What the caller passed.
        what: The public function, named in errors: ``"Event.wait()"``.
        arg: The argument's name, named in errors.

    Returns:
        None to wait for ever (None, ``math.inf``, or above :data:`TIMEOUT_MAX`); else a float
        of seconds in ``[0, TIMEOUT_MAX]``.

    Raises:
        TypeError: ``value`` is not None or a real number, or is a bool.
        ValueError: ``value`` is NaN or negative.
    """
    if value is None:
        return None
    if type(value) is int and 0 <= value <= _TIMEOUT_MAX_INT:     # rule 6: ints are common
        return float(value)
    x = _to_seconds(value, what, arg, f"None (wait for ever) or {_NUMBER}")
    return None if x > TIMEOUT_MAX else x


def check_seconds(value: Any, what: str, arg: str = "seconds") -> Optional[float]:
    """Validates a duration that has no None (``sleep``): rules 1-4.

    Returns:
        None for ever (``math.inf`` or above :data:`TIMEOUT_MAX`); else a float of seconds in
        ``[0, TIMEOUT_MAX]``.

    Raises:
        TypeError: ``value`` is not a real number (None included), or is a bool.
        ValueError: ``value`` is NaN or negative.
    """
    if type(value) is int and 0 <= value <= _TIMEOUT_MAX_INT:
        return float(value)
    x = _to_seconds(value, what, arg, _NUMBER)
    return None if x > TIMEOUT_MAX else x


def check_slice(value: Any, what: str = "preempt.run()", arg: str = "slice") -> float:
    """Validates a time slice in seconds (rules 1, 2 and 5).

    Returns:
        A float of seconds in ``[0, SLICE_MAX]``; 0 turns preemption off.

    Raises:
        TypeError: ``value`` is not a real number, or is a bool.
        ValueError: ``value`` is NaN, negative, infinite or above :data:`SLICE_MAX`.
    """
    return check_interval(value, what, arg, zero_means="0 turns preemption off")


def check_interval(value: Any, what: str, arg: str, zero_means: Optional[str] = None) -> float:
    """Validates an interval in seconds: a slice, a report threshold (rules 1, 2 and 5).

    Args:
        zero_means: What 0 means for this argument (then 0 is accepted), or None: 0 is refused.

    Returns:
        A float of seconds in ``(0, SLICE_MAX]`` (``[0, SLICE_MAX]`` with ``zero_means``).

    Raises:
        TypeError: ``value`` is not a real number, or is a bool.
        ValueError: ``value`` is NaN, negative, infinite, above :data:`SLICE_MAX`, or 0
        without ``zero_means``.
    """
    expected = f"{_NUMBER}, or None for the default" if zero_means else _NUMBER
    x = _to_seconds(value, what, arg, expected)
    if x > SLICE_MAX or (x == 0.0 and zero_means is None):
        if zero_means:
            rule = f"finite and at most {SLICE_MAX:g} s ({zero_means})"
        else:
            rule = f"a finite number of seconds > 0 and at most {SLICE_MAX:g} s"
        raise ValueError(f"{what}: {arg} must be {rule}, got {value!r}")
    return x


def slice_from_env(env: str, name: str = "PREEMPT_SLICE_MS") -> float:
    """The slice in seconds from the environment variable ``name``, which holds milliseconds.

    Raises:
        PreemptError: The value is not a number, or breaks rule 5.
    """
    try:
        ms = float(env)
    except ValueError:
        raise PreemptError(f"{name}={env!r} is not a number of milliseconds; set it to e.g. 10, "
                           "or unset it") from None
    if not 0.0 <= ms <= SLICE_MAX * 1000.0:          # NaN fails too
        raise PreemptError(f"{name}={env!r} must be a finite number of milliseconds from 0 "
                           f"(preemption off) to {SLICE_MAX * 1000.0:g}; set it to e.g. 10, "
                           "or unset it")
    return ms / 1000.0 + 0.0
