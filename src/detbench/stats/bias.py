"""Interleaving bias: does a model's turn in a study time what an isolated `bench` loop of it would?

The bias probe (`detbench ablate --bias-probe N`) gives, after each round, one worker a run of N timed forwards
back to back, as bench's own timed loop runs them. The first of them follows the same re-warm-up as a turn; the
others run on caches and a thread pool that only this model has used: the steady loop. The probe runs on
the input of the worker's own turn of the round, and is paired with that turn, seconds apart, so that the
machine's drift (blocks a minute apart here differ by up to 40 %) cancels:

    d = log(turn latency) - mean of log(each of the probe's forwards after its first)

Both terms are means of a log latency, so d is zero on average when turns and loop forwards come from one
distribution, however skewed it is (a median on one side would not be: with right-skewed latencies it sits
below the mean of the logs of single forwards, and an unbiased pair would read about +2 %).
Reported per model: the mean of d as a percentage with its t interval over the probes (95 %); and the ratio
of two medians, of the probed turns and of all the probes' steady forwards (single forwards on both sides,
so the same quantity when there is no bias), with a 95 % percentile bootstrap interval that resamples whole
probes (a turn with its own probe, so the pairing in time is kept). "within" / "median_within" hold when the
whole interval lies inside ±margin. The median ratio is the quantity a reader compares ("is a model's
median in a study that of an isolated bench?"), and medians shrug off the right tail that widens the mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detbench.stats.paired import t_quantile

SKIP_FIRST = 1  # the probe's first forward stands where a turn's would: it is not the steady loop
MIN_PROBES = 3
BOOTSTRAP = 2000


@dataclass
class Probe:
    round: int
    worker: str  # label, model#index
    model: str
    ms: list[float]

    @property
    def steady(self) -> list[float]:
        """The forwards after the first: the back-to-back loop."""
        return [ms for ms in self.ms[SKIP_FIRST:] if ms > 0]

    def record(self, raw: bool = True) -> dict[str, Any]:
        """What study.json keeps of a probe: its first forward, the geometric mean of the others and, with
        `raw`, the others themselves."""
        steady = self.steady
        mean_log = float(np.mean(np.log(steady))) if steady else None
        found = {"round": self.round, "worker": self.worker, "first_ms": self.ms[0] if self.ms else None,
                 "steady_geomean_ms": math.exp(mean_log) if mean_log is not None else None, "steady_n": len(steady)}
        if raw:
            found["steady_ms"] = [round(ms, 4) for ms in steady]
        return found


def _pct(log_ratio: float) -> float:
    return 100.0 * math.expm1(log_ratio)


def model_bias(turns: Mapping[str, Mapping[int, float]], probes: Sequence[Probe], confidence: float = 0.95,
               margin: float = 0.02, resamples: int = BOOTSTRAP) -> dict[str, Any]:
    """The bias of one model from its workers' turns ({label: {round: ms}}) and its probes."""
    pairs, steady_all, units = [], [], []
    for probe in probes:
        steady = probe.steady
        steady_all.extend(steady)
        turn = turns.get(probe.worker, {}).get(probe.round)
        if steady and turn is not None and turn > 0:
            pairs.append(math.log(turn) - float(np.mean(np.log(steady))))
            units.append((turn, steady))
    turn_all = [ms for series in turns.values() for ms in series.values() if ms > 0]
    result: dict[str, Any] = {
        "probes": len(probes), "paired": len(pairs),
        "turn_median_ms": float(np.median(turn_all)) if turn_all else None,
        "loop_median_ms": float(np.median(steady_all)) if steady_all else None,
        "median_ratio_pct": (100.0 * (np.median(turn_all) / np.median(steady_all) - 1.0)
                             if turn_all and steady_all else None),
        "bias_pct": None, "ci_pct": None, "confidence": confidence, "margin_pct": 100.0 * margin, "within": None,
        "paired_median_ratio_pct": None, "median_ratio_ci_pct": None, "median_within": None,
    }
    if len(pairs) < MIN_PROBES:
        return result
    ratio, low_high = paired_median_ratio(units, confidence, resamples)
    result.update(paired_median_ratio_pct=ratio, median_ratio_ci_pct=low_high,
                  median_within=None if low_high is None else
                  bool(-100.0 * margin <= low_high[0] and low_high[1] <= 100.0 * margin))
    values = np.asarray(pairs)
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    half = t_quantile(0.5 + confidence / 2.0, len(values) - 1) * sd / math.sqrt(len(values))
    low, high = _pct(mean - half), _pct(mean + half)
    result.update(bias_pct=_pct(mean), ci_pct=[low, high],
                  within=bool(-100.0 * margin <= low and high <= 100.0 * margin))
    return result


def _median_ratio_pct(turns: np.ndarray, steady: np.ndarray) -> float:
    return 100.0 * (float(np.median(turns)) / float(np.median(steady)) - 1.0)


def paired_median_ratio(units: Sequence[tuple[float, list[float]]], confidence: float = 0.95,
                        resamples: int = BOOTSTRAP, seed: int = 0) -> tuple[float, list[float] | None]:
    """Median of the turns over the median of the probes' steady forwards (%), and its percentile bootstrap
    interval (None with no resamples), resampling whole (turn, probe) units."""
    turns = np.asarray([turn for turn, _ in units])
    width = max(len(steady) for _, steady in units)
    table = np.full((len(units), width), np.nan)  # a probe per row, its steady forwards padded with NaN
    for row, (_, steady) in enumerate(units):
        table[row, :len(steady)] = steady
    point = _median_ratio_pct(turns, table[~np.isnan(table)])
    if resamples <= 0:
        return point, None
    pick = np.random.default_rng(seed).integers(0, len(units), (resamples, len(units)))
    turn_medians = np.median(turns[pick], axis=1)
    steady_medians = np.nanmedian(table[pick].reshape(resamples, -1), axis=1)
    found = 100.0 * (turn_medians / steady_medians - 1.0)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(found, [tail, 100.0 - tail])
    return point, [float(low), float(high)]


def interleaving_bias(turns: Mapping[str, Mapping[str, Mapping[int, float]]], probes: Sequence[Probe],
                      confidence: float = 0.95, margin: float = 0.02) -> dict[str, dict[str, Any]]:
    """Per model ({model: {worker label: {round: ms}}}): `model_bias` of its probes."""
    return {model: model_bias(turns[model], [p for p in probes if p.model == model], confidence, margin)
            for model in sorted(turns)}
