"""The study's budget estimate (`detbench.study.budget`): rounds that fit, the interval at best, the advice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detbench.study import budget

LOOKS = [150, 240, 384, 614, 983, 1573]


def warmups(median_ms: float, log_sd: float, workers: int = 2) -> list[list[float]]:
    """Warm-up forwards whose second half has exactly this median and log spread (the first half is slower)."""
    z = np.array([-1.0, 0.0, 1.0] * 7)
    tail = median_ms * np.exp(log_sd * z / np.std(z, ddof=1))
    return [[5 * median_ms] * len(tail) + list(tail) for _ in range(workers)]


def test_forward_noise_reads_the_second_half_of_the_warm_up():
    median, spread = budget.forward_noise(warmups(80.0, 0.1)[0])
    assert median == pytest.approx(80.0) and spread == pytest.approx(0.1)
    assert budget.forward_noise([10.0, 11.0, 12.0]) is None  # --warmup 3: too few to say anything


def test_rounds_and_interval_follow_the_turns_and_the_noise():
    found = budget.estimate({"baseline": warmups(80.0, 0.1), "ghost": warmups(60.0, 0.05)}, "baseline", 2, 1,
                            600.0, LOOKS, 0.05, 0.02)
    assert found.round_s == pytest.approx(2 * 2 * (80.0 + 60.0) / 1000)  # W workers x (turn warm-up + 1) forwards
    assert found.rounds == int(600.0 / found.round_s)
    assert found.noise_pct == pytest.approx(100 * math.expm1(0.1))  # the noisier model of the pair
    uncapped = [*LOOKS[:-1], 10**6]  # six looks (the same t), the last one beyond both budgets
    found = budget.estimate({"baseline": warmups(80.0, 0.1), "ghost": warmups(60.0, 0.05)}, "baseline", 2, 1,
                            600.0, uncapped, 0.05, 0.02)
    longer = budget.estimate({"baseline": warmups(80.0, 0.1), "ghost": warmups(60.0, 0.05)}, "baseline", 2, 1,
                             2400.0, uncapped, 0.05, 0.02)
    # four times the rounds: half the interval (on the log scale)
    assert math.log1p(longer.half_width_pct / 100) == pytest.approx(math.log1p(found.half_width_pct / 100) / 2,
                                                                     rel=0.01)


def test_the_time_it_names_for_equivalence_brings_the_interval_to_half_the_margin():
    models = {"baseline": warmups(80.0, 0.15), "eca": warmups(81.0, 0.15), "p2": warmups(150.0, 0.15)}
    found = budget.estimate(models, "baseline", 2, 1, 600.0, LOOKS, 0.05, 0.02)
    assert not found.can_show_equivalence and found.decidable_pct > 2
    enough = budget.estimate(models, "baseline", 2, 1, found.seconds_for_equivalence, [10**9], 0.05, 0.02)
    # the same t (one planned look there, against six here) changes the bound: compare on the batch-means scale
    assert found.rounds_for_equivalence == pytest.approx(found.rounds * (math.log1p(found.half_width_pct / 100)
                                                                         / (math.log1p(0.02) / 2)) ** 2)
    assert enough.rounds == pytest.approx(found.rounds_for_equivalence, rel=0.01)
    (said, advice) = found.lines(models=3)
    assert said.startswith(f"· budget: about {found.rounds} rounds in 600 s of turns")
    assert "no model can be shown equivalent within ±2 %" in said
    assert advice.startswith("  to decide ±2 %: about --max-time ")
    assert "smaller --imgsz" in advice and "fewer models" in advice
    assert "--iters" in advice  # more rounds than the last planned look (1573): --iters sets it


def test_a_budget_that_suffices_gives_no_advice():
    found = budget.estimate({"baseline": warmups(5.0, 0.02), "ghost": warmups(4.0, 0.02)}, "baseline", 2, 1, 600.0,
                            LOOKS, 0.05, 0.02)
    assert found.rounds == LOOKS[-1]  # the last planned look comes before --max-time
    assert found.can_show_equivalence and len(found.lines(models=2)) == 1


def test_no_estimate_without_enough_warm_up_or_without_the_baseline():
    assert budget.estimate({"baseline": [[10.0, 10.0]], "ghost": warmups(5.0, 0.1)}, "baseline", 2, 1, 600.0,
                           LOOKS, 0.05, 0.02) is None
    assert budget.estimate({"ghost": warmups(5.0, 0.1), "eca": warmups(5.0, 0.1)}, "baseline", 2, 1, 600.0,
                           LOOKS, 0.05, 0.02) is None
