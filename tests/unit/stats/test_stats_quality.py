"""Confidence intervals, outlier flags, warnings and the stopping rule, on real numbers and a real CLI run."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy.stats import binom

from detbench.config import BenchConfig
from detbench.errors import DetbenchError
from detbench.measure.timing import StopRule, run_timed_loop
from detbench.stats import diagnostics as quality
from detbench.stats import summary as stats


def test_median_ci_at_n_1000_is_samples_469_to_532():
    assert stats.quantile_ci_ranks(1000, 0.5) == (469, 532)
    values = np.random.default_rng(3).permutation(np.arange(1.0, 1001.0))  # rank r has value r
    assert stats.median_ci(values) == (469.0, 532.0)
    section = stats.confidence_intervals(values)
    assert section["median_ci95_ms"] == [469.0, 532.0] and section["median_ci95_ranks"] == [469, 532]


@pytest.mark.parametrize("n,q", [(7, 0.5), (100, 0.5), (300, 0.95), (1000, 0.99), (5000, 0.5)])
def test_binomial_cdf_matches_scipy_and_ranks_cover_at_least_95_percent(n, q):
    assert np.allclose(stats.binomial_cdf(n, q), binom.cdf(np.arange(n + 1), n, q), atol=1e-9)
    ranks = stats.quantile_ci_ranks(n, q)
    if ranks is None:
        return
    low, high = ranks
    coverage = binom.cdf(high - 1, n, q) - binom.cdf(low - 1, n, q)
    assert coverage >= 0.95
    assert binom.cdf(low - 1, n, q) <= 0.025 and binom.sf(high - 1, n, q) <= 0.025  # at most 2.5 % per tail


def test_tail_bounds_need_59_samples_for_p95_and_299_for_p99():
    assert stats.min_samples_for_upper_bound(0.95) == 59 and stats.min_samples_for_upper_bound(0.99) == 299
    too_few = stats.confidence_intervals(np.arange(58.0))
    assert too_few["p95_upper95_ms"] is None and too_few["unavailable"]["p95_upper95_ms"].startswith(stats.INSUFFICIENT)
    assert stats.confidence_intervals(np.arange(59.0))["p95_upper95_ms"] == 58.0  # the maximum
    at_298 = stats.confidence_intervals(np.arange(298.0))
    at_299 = stats.confidence_intervals(np.arange(299.0))
    assert at_298["p99_upper95_ms"] is None and at_299["p99_upper95_ms"] == 298.0
    assert at_299["p99_ci95_ms"] is None and "p99_ci95_ms" in at_299["unavailable"]  # two-sided needs more
    five = stats.confidence_intervals(np.arange(5.0))
    assert five["median_ci95_ms"] is None and five["unavailable"]["median_ci95_ms"] == "insufficient samples (5 taken)"
    assert stats.confidence_intervals(np.arange(6.0))["median_ci95_ms"] == [0.0, 5.0]


def test_p99_bound_that_is_only_the_maximum_says_so_until_473_samples():
    at_300 = stats.confidence_intervals(np.arange(300.0))
    assert at_300["p99_upper95_ms"] == 299.0 and at_300["p99_upper95_rank"] == 300  # the largest sample
    (note,) = at_300["notes"]
    assert note.startswith("p99_upper95_ms is the largest sample: with 300 samples") and "473 or more" in note
    assert stats.confidence_intervals(np.arange(472.0))["p99_upper95_rank"] == 472
    at_473 = stats.confidence_intervals(np.arange(473.0))
    assert at_473["p99_upper95_rank"] == 472 and at_473["notes"] == []
    assert stats.confidence_intervals(np.arange(1000.0))["p99_upper95_rank"] == 996


def test_median_ci_covers_the_true_median_of_a_skewed_distribution():
    rng = np.random.default_rng(0)
    true_median = np.log(2.0)  # of Exponential(1)
    hits = [low <= true_median <= high
            for low, high in (stats.median_ci(rng.exponential(size=60)) for _ in range(2000))]
    assert 0.94 <= np.mean(hits) <= 0.99


def test_outliers_are_flagged_counted_and_kept():
    rng = np.random.default_rng(1)
    samples = list(rng.normal(10.0, 0.1, 200))
    samples[17], samples[150] = 25.0, 10.7
    before = list(samples)
    flags = quality.outliers(samples)
    assert samples == before  # never deleted or changed
    assert 17 in flags["indices"] and 150 in flags["indices"]
    assert flags["severe_indices"] == [17] and flags["count"] == len(flags["indices"]) >= 2
    assert quality.outliers([5.0] * 50)["count"] == 0  # no spread: nothing to flag
    constant_but_one = [5.0] * 50 + [9.0]  # MAD 0: the mean absolute deviation stands in
    assert quality.outliers(constant_but_one)["indices"] == [50]


def test_warnings_name_their_cause():
    rng = np.random.default_rng(2)
    quiet = list(rng.normal(10.0, 0.05, 300))
    assert quality.statistics_section(quiet)["warnings"] == []

    noisy = quality.statistics_section(list(rng.lognormal(2.3, 0.4, 300)))["warnings"]
    assert any(w.startswith("CV ") and "system noisy: close other programs / lock clocks" in w for w in noisy)
    assert any(w.startswith("IQR/median") for w in noisy)

    slow_start = [30.0] * 30 + quiet[30:]
    text = " ".join(quality.statistics_section(slow_start)["warnings"])
    assert "first 30 timed iterations" in text and "warm-up too short" in text
    # a study worker's first turns came at another time of the study: the machine's drift is named first
    turns = quality.warmup_warning(quality.statistics_section(slow_start)["warmup_check"], turns=True)
    assert turns.startswith("its first 30 turns are ") and "the machine was slower then" in turns
    assert "the comparisons are not biased" in turns and "raise --warmup if most workers show it" in turns

    # events stretch to the launches, so host time tells nothing; the time to enqueue does
    launch = quality.statistics_section(quiet, host_samples=[10.1] * 300, enqueue_samples=[9.5] * 300)
    assert any("launch-bound" in w and "CUDA graphs / larger batch" in w for w in launch["warnings"])
    assert launch["enqueue_over_device"] == pytest.approx(9.5 / np.median(quiet))
    gpu_bound = quality.statistics_section(quiet, host_samples=[10.1] * 300, enqueue_samples=[2.0] * 300)
    assert not any("launch-bound" in w for w in gpu_bound["warnings"])


def _sleeper(ms: float):
    def forward(_x):
        time.sleep(ms / 1000)
    return forward


def test_stop_rule_min_time_and_iters_are_both_floors():
    cpu = torch.device("cpu")
    by_time = run_timed_loop(_sleeper(2), torch.tensor, 1, 3, cpu, stop=StopRule(3, min_time_s=0.1))
    assert by_time.stop_reason == "min_time" and len(by_time.latency_ms) > 3 and by_time.timed_s >= 0.1
    by_count = run_timed_loop(_sleeper(1), torch.tensor, 0, 12, cpu, stop=StopRule(12, min_time_s=0.001))
    assert by_count.stop_reason == "iters" and len(by_count.latency_ms) == 12
    plain = run_timed_loop(_sleeper(1), torch.tensor, 0, 5, cpu)
    assert plain.stop_reason == "iters" and len(plain.latency_ms) == 5


def test_stop_rule_target_ci_then_max_time():
    cpu = torch.device("cpu")
    reached = run_timed_loop(_sleeper(1), torch.tensor, 2, 10, cpu, stop=StopRule(10, target_ci=0.5))
    assert reached.stop_reason == "target_ci" and len(reached.latency_ms) >= 10
    assert reached.ci_half_width_rel <= 0.5
    capped = run_timed_loop(_sleeper(1), torch.tensor, 0, 10, cpu, stop=StopRule(10, target_ci=1e-9, max_time_s=0.2))
    assert capped.stop_reason == "max_time" and 0.2 <= capped.timed_s < 5


def test_stopping_flags_are_validated():
    for kwargs, words in [({"min_time": -1.0}, "--min-time"), ({"target_ci": 1.5}, "--target-ci"),
                          ({"max_time": 10.0}, "--max-time bounds the --target-ci"),
                          ({"target_ci": 0.01, "min_time": 5.0, "max_time": 1.0}, "not below --min-time")]:
        with pytest.raises(DetbenchError, match=words):
            BenchConfig(weights="baseline", **kwargs)
