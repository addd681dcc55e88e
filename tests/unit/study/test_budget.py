"""The study's budget estimate (`detbench.study.budget`): rounds that fit, the interval at best, the advice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detbench.stats import paired, spending
from detbench.study import budget

LOOKS = [150, 240, 384, 614, 983, 1573]
UNCAPPED = [rounds * 1000 for rounds in LOOKS]  # the same six looks' proportions (so the same alpha spent at
# each), the last one beyond any budget here


def warmups(median_ms: float, log_sd: float, workers: int = 2) -> list[list[float]]:
    """Warm-up forwards whose second half has exactly this median and robust log spread (1.4826 MAD); the first
    half is slower."""
    z = np.array([-2.0, -1.0, -1.0, 0.0, 1.0, 1.0, 2.0] * 3)  # median |z| is 1
    tail = median_ms * np.exp(log_sd * z / 1.4826)
    return [[5 * median_ms] * len(tail) + list(tail) for _ in range(workers)]


def estimate(models, max_time=600.0, looks=LOOKS, comparisons=None):
    return budget.estimate(models, "baseline", 2, 1, max_time, looks, 0.05, 0.02,
                           comparisons=len(models) - 1 if comparisons is None else comparisons, first_look=40)


def test_forward_noise_reads_the_second_half_of_the_warm_up():
    median, spread = budget.forward_noise(warmups(80.0, 0.1)[0])
    assert median == pytest.approx(80.0) and spread == pytest.approx(0.1)
    assert budget.forward_noise([10.0, 11.0, 12.0]) is None  # --warmup 3: too few to say anything
    # a burst during the warm-up (forwards 20 times slower) does not make the spread absurd
    burst = warmups(80.0, 0.1)[0]
    burst[-3:] = [1600.0] * 3
    assert budget.forward_noise(burst)[1] == pytest.approx(0.1, rel=0.6)


def test_rounds_and_interval_follow_the_turns_and_the_noise():
    models = {"baseline": warmups(80.0, 0.1), "ghost": warmups(60.0, 0.05)}
    found = estimate(models, looks=UNCAPPED)
    assert found.round_s == pytest.approx(2 * 2 * (80.0 + 60.0) / 1000)  # W workers x (turn warm-up + 1) forwards
    assert found.rounds == found.fit_rounds == int(600.0 / found.round_s)
    assert found.noise_log == pytest.approx(0.1)  # the noisier model of the pair
    last_alpha = 0.05 - spending.spent(0.05, LOOKS[-2] / LOOKS[-1])  # what the spending leaves the last look
    t = paired.t_quantile(1 - last_alpha / 1 / 2, paired.MAX_BATCHES - 1)
    assert math.log1p(found.half_width_pct / 100) == pytest.approx(t * math.sqrt(2 * 0.1 ** 2 / (2 * found.rounds)))
    longer = estimate(models, max_time=2400.0, looks=UNCAPPED)
    # four times the rounds: half the interval (on the log scale)
    assert math.log1p(longer.half_width_pct / 100) == pytest.approx(math.log1p(found.half_width_pct / 100) / 2,
                                                                     rel=0.01)
    # Holm's family is the comparisons the study planned, a failed model's included: a wider interval
    assert estimate(models, looks=UNCAPPED, comparisons=5).half_width_pct > found.half_width_pct


def test_the_rounds_it_names_for_equivalence_bring_the_interval_to_half_the_margin():
    models = {"baseline": warmups(80.0, 0.2), "eca": warmups(81.0, 0.2), "p2": warmups(150.0, 0.2)}
    found = estimate(models)
    assert not found.can_show_equivalence and found.half_width_pct > 2
    enough = estimate(models, max_time=found.rounds_for_equivalence * found.round_s * 1.001, looks=UNCAPPED)
    assert math.log1p(enough.half_width_pct / 100) == pytest.approx(math.log1p(0.02) / 2, rel=0.01)
    said, advice = found.lines(models=3)
    assert said.startswith(f"· budget: about {found.rounds} rounds in 600 s of turns")
    assert "no model can be shown equivalent within ±2 %" in said
    assert advice.startswith("  to decide ±2 %: about --study-time ")
    assert "--iters" in advice  # more rounds than the last planned look (1573): --iters sets it
    assert "smaller --imgsz" in advice and "fewer models" in advice


def test_a_budget_that_suffices_gives_no_advice():
    found = estimate({"baseline": warmups(5.0, 0.02), "ghost": warmups(4.0, 0.02)})
    assert found.rounds == LOOKS[-1] < found.fit_rounds  # the last planned look comes before --study-time
    (said,) = found.lines(models=2)
    assert "the last planned look, set by --iters, after about" in said and found.can_show_equivalence


def test_when_the_last_look_comes_first_the_advice_names_iters_not_max_time():
    found = estimate({"baseline": warmups(5.0, 0.3), "ghost": warmups(5.0, 0.3)}, looks=[40, 64, 102, 164, 262, 419])
    assert found.rounds == 419 and found.rounds * found.round_s < 600
    advice = found.lines(models=2)[1]
    assert "--iters" in advice and "--study-time" not in advice, advice


@pytest.mark.parametrize("max_time", [1.0, 5.0])
def test_too_little_time_for_an_interval_says_nothing_can_be_decided(max_time):
    found = estimate({"baseline": warmups(500.0, 0.1), "ghost": warmups(500.0, 0.1)}, max_time=max_time)
    assert found.rounds < budget.INTERVAL_ROUNDS and found.half_width_pct is None
    said, advice = found.lines(models=2)
    assert said.endswith(f"fewer than the {budget.INTERVAL_ROUNDS} an interval needs: nothing can be decided")
    assert "--study-time" in advice


def test_too_few_warm_up_forwards_give_no_estimate_and_no_schedule():
    """--warmup 2 or 6: the first forwards are the slowest; a round time from them would bring the looks too early."""
    for warmup in ([10.0, 10.0], [30.0, 20.0, 15.0, 12.0, 11.0, 10.0]):
        assert estimate({"baseline": [warmup, warmup], "ghost": warmups(5.0, 0.1)}) is None
    assert estimate({"baseline": [[], []], "ghost": warmups(5.0, 0.1)}) is None  # --warmup 0
    assert budget.estimate({"ghost": warmups(5.0, 0.1), "eca": warmups(5.0, 0.1)}, "baseline", 2, 1, 600.0, LOOKS,
                           0.05, 0.02, comparisons=1, first_look=40) is None


def test_a_warm_up_of_equal_timings_has_no_spread_rather_than_a_zero_one():
    equal = [[50.0] * 7 + [10.0] * 14] * 2  # a coarse clock: every forward of the second half the same
    found = estimate({"baseline": equal, "ghost": equal})
    assert found.round_s == pytest.approx(2 * 2 * 20.0 / 1000) and found.half_width_pct is None
    assert not found.can_show_equivalence
    (said,) = found.lines(models=2)
    assert "the interval is not estimated (too few warm-up forwards to measure their spread: --warmup 7" in said


def test_too_little_time_for_a_look_advises_the_time_a_look_needs():
    found = estimate({"baseline": warmups(2000.0, 0.01), "ghost": warmups(2000.0, 0.01)}, max_time=30.0)
    assert found.rounds < budget.INTERVAL_ROUNDS
    advice = found.lines(models=2)[1]
    assert f"--study-time {40 * found.round_s:g}" in advice, advice  # 40 rounds: the first look's
