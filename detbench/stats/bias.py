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
Reported per model: the mean of d as a percentage with its t interval over the probes (95 %), and, for
reading, the ratio of the two medians over the whole study. "within" holds when the whole interval lies
inside ±margin.
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

    def record(self) -> dict[str, Any]:
        """What study.json keeps of a probe: its first forward and the geometric mean of the others."""
        steady = self.steady
        mean_log = float(np.mean(np.log(steady))) if steady else None
        return {"round": self.round, "worker": self.worker, "first_ms": self.ms[0] if self.ms else None,
                "steady_geomean_ms": math.exp(mean_log) if mean_log is not None else None, "steady_n": len(steady)}


def _pct(log_ratio: float) -> float:
    return 100.0 * math.expm1(log_ratio)


def model_bias(turns: Mapping[str, Mapping[int, float]], probes: Sequence[Probe], confidence: float = 0.95,
               margin: float = 0.02) -> dict[str, Any]:
    """The bias of one model from its workers' turns ({label: {round: ms}}) and its probes."""
    pairs, steady_all = [], []
    for probe in probes:
        steady = probe.steady
        steady_all.extend(steady)
        turn = turns.get(probe.worker, {}).get(probe.round)
        if steady and turn is not None and turn > 0:
            pairs.append(math.log(turn) - float(np.mean(np.log(steady))))
    turn_all = [ms for series in turns.values() for ms in series.values() if ms > 0]
    result: dict[str, Any] = {
        "probes": len(probes), "paired": len(pairs),
        "turn_median_ms": float(np.median(turn_all)) if turn_all else None,
        "loop_median_ms": float(np.median(steady_all)) if steady_all else None,
        "median_ratio_pct": (100.0 * (np.median(turn_all) / np.median(steady_all) - 1.0)
                             if turn_all and steady_all else None),
        "bias_pct": None, "ci_pct": None, "confidence": confidence, "margin_pct": 100.0 * margin, "within": None,
    }
    if len(pairs) < MIN_PROBES:
        return result
    values = np.asarray(pairs)
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    half = t_quantile(0.5 + confidence / 2.0, len(values) - 1) * sd / math.sqrt(len(values))
    low, high = _pct(mean - half), _pct(mean + half)
    result.update(bias_pct=_pct(mean), ci_pct=[low, high],
                  within=bool(-100.0 * margin <= low and high <= 100.0 * margin))
    return result


def interleaving_bias(turns: Mapping[str, Mapping[str, Mapping[int, float]]], probes: Sequence[Probe],
                      confidence: float = 0.95, margin: float = 0.02) -> dict[str, dict[str, Any]]:
    """Per model ({model: {worker label: {round: ms}}}): `model_bias` of its probes."""
    return {model: model_bias(turns[model], [p for p in probes if p.model == model], confidence, margin)
            for model in sorted(turns)}
