"""The interleaving-bias estimate (`detbench.stats.bias`) on simulated studies whose answer is known: turns and
probe loops that drift together, by a lot, from round to round."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detbench.stats.bias import Probe, interleaving_bias, model_bias


def noise(rng: np.random.Generator, size: int | None = None, skewed: bool = False):
    """Multiplicative noise of one forward: lognormal, or (skewed) lognormal with 10 % of forwards 30 % slower,
    the right tail real CPU latencies have."""
    base = rng.lognormal(0.0, 0.02 if skewed else 0.03, size)
    return base * np.where(rng.random(size) < 0.1, 1.3, 1.0) if skewed else base


def simulated(bias: float, rounds: int, seed: int, forwards: int = 6, skewed: bool = False):
    """Two workers of one model; the machine's speed drifts as a random walk (a few % per round); every turn
    takes (1 + bias) times the back-to-back loop at the same moment; the probe's first forward is a cold one."""
    rng = np.random.default_rng(seed)
    speed = np.exp(np.cumsum(rng.normal(0.0, 0.03, rounds)))
    turns: dict[str, dict[int, float]] = {"m#0": {}, "m#1": {}}
    probes = []
    for r in range(rounds):
        for label in turns:
            turns[label][r] = float(40.0 * speed[r] * (1 + bias) * noise(rng, skewed=skewed))
        worker = f"m#{rng.integers(2)}"
        loop = list(40.0 * speed[r] * noise(rng, forwards, skewed))
        probes.append(Probe(r, worker, "m", [loop[0] * 1.5, *loop[1:]]))
    return turns, probes


@pytest.mark.parametrize("bias", [0.0, 0.03, -0.03])
def test_the_interval_covers_the_true_bias_despite_drift_and_a_cold_first_forward(bias):
    covered = 0
    for seed in range(200):
        turns, probes = simulated(bias, 60, seed)
        found = model_bias(turns, probes, resamples=0)
        covered += found["ci_pct"][0] <= 100 * bias <= found["ci_pct"][1]
    assert covered >= 0.92 * 200  # a 95 % interval


def test_skewed_latencies_without_bias_read_no_bias():
    """With a right tail, a median on the loop's side would read about +2 % here; the mean of logs reads 0."""
    estimates, covered = [], 0
    for seed in range(150):
        found = model_bias(*simulated(0.0, 150, seed, forwards=10, skewed=True), resamples=0)
        estimates.append(found["bias_pct"])
        covered += found["ci_pct"][0] <= 0.0 <= found["ci_pct"][1]
    # a t interval over so skewed a difference covers a little under 95 % (93.5 % over 400 seeds)
    assert abs(float(np.mean(estimates))) < 0.3 and covered >= 0.88 * 150


def test_no_bias_is_shown_within_the_margin_and_a_switch_penalty_is_not():
    turns, probes = simulated(0.0, 150, seed=1)
    assert model_bias(turns, probes)["within"] is True
    turns, probes = simulated(0.05, 150, seed=1)
    found = model_bias(turns, probes)
    assert found["within"] is False and found["ci_pct"][0] > 2.0
    assert math.isclose(found["bias_pct"], 5.0, abs_tol=1.5)


def test_too_few_probes_give_medians_but_no_interval():
    turns, probes = simulated(0.0, 2, seed=3)
    found = model_bias(turns, probes)
    assert found["paired"] == 2 and found["ci_pct"] is None and found["within"] is None
    assert found["turn_median_ms"] > 0 and found["loop_median_ms"] > 0


def test_each_model_gets_only_its_own_probes():
    turns, probes = simulated(0.0, 20, seed=4)
    found = interleaving_bias({"m": turns, "other": {}}, probes)
    assert found["m"]["probes"] == 20 and found["other"]["probes"] == 0 and found["other"]["bias_pct"] is None


def test_the_paired_median_ratio_reads_no_bias_without_one_and_finds_a_switch_penalty():
    covered = 0
    for seed in range(40):
        found = model_bias(*simulated(0.0, 150, seed, forwards=10, skewed=True), resamples=400)
        low, high = found["median_ratio_ci_pct"]
        covered += low <= 0.0 <= high
    assert covered >= 34  # a 95 % interval, 40 studies
    found = model_bias(*simulated(0.05, 150, seed=2, forwards=10, skewed=True), resamples=400)
    assert found["median_ratio_ci_pct"][0] > 2.0 and found["median_within"] is False
    assert math.isclose(found["paired_median_ratio_pct"], 5.0, abs_tol=2.0)
