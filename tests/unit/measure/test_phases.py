"""The phase clock of a run (`detbench.measure.phases`): consecutive phases, parts, the process's age."""

from __future__ import annotations

import time

from detbench.measure.phases import PhaseClock, process_age_s


def test_phases_are_consecutive_and_parts_leave_the_rest_to_the_named_phase():
    clock = PhaseClock()
    time.sleep(0.02)
    first = clock.mark("load")
    clock.add("warmup", 0.5)
    clock.add("warmup", 0.25)
    time.sleep(0.02)
    clock.mark_parts({"decode": 0.001}, rest="other")
    phases = clock.report()
    assert first >= 0.02 and phases["load"] == round(first, 4)
    assert phases["warmup"] == 0.75 and phases["decode"] == 0.001
    assert 0.015 <= phases["other"] < 5
    assert list(phases) == ["load", "warmup", "decode", "other"]


def test_the_first_phase_may_count_from_the_process_start():
    age = process_age_s()
    assert age is not None and age > 0  # Linux: /proc is there
    assert PhaseClock().mark("import", since_process_start=True) >= age
