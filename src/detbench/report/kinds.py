"""What a report's field may hold (`Kind`): the test `validate_report` applies and the words its message uses.

The report's sections (`detbench.report.model`) name each checked field's kind where they declare the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detbench.limits import MAX_PATH_CHARS, MAX_STUDY_LOOKS, MAX_STUDY_MODELS, MAX_STUDY_ROUNDS

MAX_MEASURE = 1e12  # ms, MB, parameters, GFLOPs: far above any real value, far below overflow when summed
MIN_LATENCY_MS = 1e-6  # 1 ns, the timer's resolution: ratios of latencies stay within 1e18


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _measure(low: float, strict: bool = False, nullable: bool = True) -> Callable[[Any], bool]:
    """A test for a finite number from `low` (excluded if `strict`) to MAX_MEASURE, or None if `nullable`."""
    def test(value: Any) -> bool:
        if value is None:
            return nullable
        if not is_number(value) or abs(value) > MAX_MEASURE:
            return False
        return math.isfinite(value) and (value > low if strict else value >= low)
    return test


@dataclass(frozen=True)
class Kind:
    """What a field must hold: `what` for the message, `test` the check."""

    what: str
    test: Callable[[Any], bool]
    numeric: bool = False


TEXT = Kind(f"text of at most {MAX_PATH_CHARS} characters or null",
            lambda v: v is None or (isinstance(v, str) and len(v) <= MAX_PATH_CHARS))
ANY_TEXT = Kind("text or null", lambda v: v is None or isinstance(v, str))
COUNT = Kind("an integer >= 1 or null", lambda v: v is None or (type(v) is int and v >= 1))
COUNT0 = Kind("an integer >= 0 or null", lambda v: v is None or (type(v) is int and v >= 0))
POSITIVE = Kind(f"a number > 0 and <= {MAX_MEASURE:g}, or null", _measure(0.0, strict=True), numeric=True)
NONNEGATIVE = Kind(f"a number >= 0 and <= {MAX_MEASURE:g}, or null", _measure(0.0), numeric=True)
LATENCY = Kind(f"a number of ms from {MIN_LATENCY_MS:g} to {MAX_MEASURE:g}, or null", _measure(MIN_LATENCY_MS),
               numeric=True)
SAMPLE = Kind(f"a number of ms from {MIN_LATENCY_MS:g} to {MAX_MEASURE:g}", _measure(MIN_LATENCY_MS, nullable=False),
              numeric=True)
OBJECT = Kind("an object", lambda v: isinstance(v, dict))
OBJECT_OR_NULL = Kind("an object or null", lambda v: v is None or isinstance(v, dict))
OBJECTS = Kind("a list of objects", lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v))
TEXTS = Kind("a list of text", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
SAMPLES = Kind("a list of numbers", lambda v: isinstance(v, list))
LOOKS = Kind(f"a list of at most {MAX_STUDY_LOOKS} round counts",
             lambda v: isinstance(v, list) and len(v) <= MAX_STUDY_LOOKS
             and all(type(x) is int and 0 < x <= MAX_STUDY_ROUNDS for x in v))
FRACTION = Kind("a number between 0 and 1", lambda v: is_number(v) and 0 < v < 1, numeric=True)
NAMES = Kind(f"a list of at most {MAX_STUDY_MODELS:,} names",
             lambda v: isinstance(v, list) and len(v) <= MAX_STUDY_MODELS
             and all(isinstance(x, str) and len(x) <= MAX_PATH_CHARS for x in v))
