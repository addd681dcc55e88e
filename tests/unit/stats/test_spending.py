"""The O'Brien–Fleming-type alpha spending over a study's looks (`detbench.stats.spending`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detbench.stats import paired, spending
from detbench.study.engine import planned_looks


def levels(alpha: float, looks: list[int]) -> list[float]:
    """Each look's level as the engine spends it when every planned look is reached."""
    used, found = 0.0, []
    for k, rounds in enumerate(looks):
        level = spending.look_alpha(alpha, spending.fraction_done(rounds, looks[-1], 0.0, math.inf), used,
                                    final=k == len(looks) - 1)
        found.append(level)
        used += level
    return found


def test_the_spending_function_is_obrien_flemings():
    assert spending.spent(0.05, 1.0) == 0.05 and spending.spent(0.05, 0.0) == 0.0
    assert spending.spent(0.05, 0.5) == pytest.approx(2 * (1 - 0.99721), abs=2e-5)  # z = 1.96 / sqrt(0.5) = 2.77
    fractions = np.linspace(0.05, 1.0, 20)
    assert all(np.diff([spending.spent(0.05, t) for t in fractions]) > 0)


def test_the_looks_levels_add_up_to_alpha_and_the_last_keeps_most_of_it():
    looks = planned_looks(150, until_decided=True)
    found = levels(0.05, looks)
    assert sum(found) == pytest.approx(0.05) and all(level >= 0 for level in found)
    assert found[0] < 1e-4 and found[-1] > 0.035  # splitting evenly gave each look 0.0083
    assert found == sorted(found)


def test_a_look_comes_at_the_further_of_its_rounds_and_its_time():
    assert spending.fraction_done(100, 400, 30.0, 60.0) == 0.5
    assert spending.fraction_done(300, 400, 30.0, 60.0) == 0.75
    assert spending.fraction_done(500, 400, 90.0, 60.0) == 1.0
    assert spending.look_alpha(0.05, 0.3, 0.04, final=True) == pytest.approx(0.01)  # the final look: what is left
    assert spending.look_alpha(0.05, 0.3, 0.04, final=False) == 0.0  # never below zero


def test_an_a_a_study_that_looks_six_times_keeps_its_error_rate():
    """Identical models, iid noise, six looks with the spending levels and a verdict final at its first look: false
    "faster"/"slower" in at most alpha of the studies (here well below: the margin is 2 %)."""
    rng = np.random.default_rng(4)
    looks = [40, 64, 102, 164, 262, 419]
    found = levels(0.05, looks)
    false = 0
    for _ in range(150):
        logs = rng.normal(0.0, 0.05, (2, looks[-1]))
        data = {name: [dict(enumerate(10.0 * np.exp(row)))] for name, row in zip("ab", logs, strict=True)}
        result = paired.replay(data, "a", 0.05, 0.0001, looks, len(looks), 1, found)[0]
        false += result.verdict in (paired.FASTER, paired.SLOWER)
    assert false <= 0.05 * 150 + 2 * math.sqrt(0.05 * 0.95 * 150), false
