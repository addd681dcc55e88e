"""Is a latency difference between two models real? Tests, effect sizes and Holm's correction.

Method (what `detbench compare` does for every model against the baseline):

1. Effect size: the relative change of the median latency, ``median(model) /
   median(baseline) - 1``.
2. A two-sided test of "no difference":

   * Both reports hold at least ``MIN_ROUNDS`` (3) rounds, i.e. each model
     was run in several fresh processes (``detbench ablate --rounds K``):
     Welch's t-test on the logarithms of the per-round medians. The rounds are
     the independent units: samples within one process share that process's
     luck (memory layout, clock state, neighbours on the machine), so the
     spread *between* processes is the honest noise. The effect is then the
     ratio of the geometric means of the round medians, and its 95 %
     confidence interval is Welch's interval on the log scale, exponentiated.
     When the two reports' rounds were interleaved (round k of both ran
     before round k+1 of either, as `detbench ablate --rounds K` runs them),
     round k of each shared the machine's state at that time, so the rounds
     are paired: a paired t-test on the per-round log ratios, which cancels
     drift common to both models (e.g. a slow first round for everyone).
   * Otherwise: the Mann-Whitney U test (two-sided) on the raw per-iteration
     samples, and a percentile bootstrap 95 % confidence interval of the
     ratio of medians (``BOOTSTRAP_RESAMPLES`` resamples, fixed seed). A side
     with more than ``MAX_TEST_SAMPLES`` samples is tested on that many of
     them, evenly spaced over the run (the same ones every time), so the cost
     is bounded however long the run; the effect still uses every sample. This
     only sees within-process noise, so it can call a difference between two
     processes' luck significant; the minimum effect size below guards
     against that, and rounds remove the problem.
3. Holm's step-down correction of the p-values across all model-vs-baseline
   pairs of one comparison (family-wise error rate ``alpha``).
4. A difference is significant ("*") only if the Holm-adjusted p-value is
   below ``alpha`` AND ``|effect| >= min_effect`` (default 2 %) AND the 95 %
   confidence interval of the effect excludes 0 (so a "*" never sits next to
   an interval that allows no change); otherwise it is "n.s.". A pair without
   enough samples to test is marked "n/a".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

MIN_ROUNDS = 3
MIN_SAMPLES = 3
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95

MAX_TEST_SAMPLES = 20_000  # per side: a bootstrap of 2000 resamples then takes seconds, not hours

TEST_ROUNDS = "Welch t-test on log round medians"
TEST_PAIRED = "paired t-test on log ratios of interleaved rounds"
TEST_SAMPLES = f"Mann-Whitney U on raw samples (at most {MAX_TEST_SAMPLES:,} per side, evenly spaced)"


@dataclass(frozen=True)
class PairTest:
    """One model against the baseline, before the multiple-comparison correction."""

    test: str | None  # TEST_ROUNDS, TEST_SAMPLES, or None when there is nothing to test
    p_value: float | None
    effect: float | None  # relative change of the median latency (0.05 = 5 % slower)
    ci_low: float | None  # 95 % CI of that relative change
    ci_high: float | None
    n_baseline: int
    n_model: int
    reason: str = ""  # why no test was run


@dataclass(frozen=True)
class Verdict:
    """A PairTest after Holm's correction and the minimum-effect rule."""

    pair: PairTest
    p_holm: float | None
    significant: bool | None  # None: not tested

    @property
    def mark(self) -> str:
        if self.significant is None:
            return "n/a"
        return "*" if self.significant else "n.s."


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (monotone, capped at 1)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[index])))
        adjusted[index] = running
    return adjusted


def ratio_of_medians_ci(baseline: Sequence[float], model: Sequence[float],
                        resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                        confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap CI of median(model) / median(baseline), resampling each side independently."""
    rng = np.random.default_rng(seed)
    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(model, dtype=np.float64)
    chunk = max(1, 2_000_000 // max(a.size, b.size))  # bounds memory for long runs
    med_a, med_b = np.empty(resamples), np.empty(resamples)
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        med_a[start:start + rows] = np.median(a[rng.integers(0, a.size, size=(rows, a.size))], axis=1)
        med_b[start:start + rows] = np.median(b[rng.integers(0, b.size, size=(rows, b.size))], axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(med_b / med_a, [tail, 100.0 - tail])
    return float(low), float(high)


def thin(samples: np.ndarray, limit: int = MAX_TEST_SAMPLES) -> np.ndarray:
    """At most `limit` of `samples`, evenly spaced from first to last (deterministic); all of them if fewer."""
    if samples.size <= limit:
        return samples
    return samples[np.linspace(0, samples.size - 1, limit).round().astype(np.intp)]


def samples_pair(baseline: Sequence[float], model: Sequence[float]) -> PairTest:
    """Mann-Whitney U (two-sided) on raw samples, with a bootstrap CI of the ratio of medians.

    Both run on at most MAX_TEST_SAMPLES per side (`thin`); the effect and the counts use every sample.
    """
    # imported here, not at the top: loads scipy, which only this path needs
    from scipy.stats import mannwhitneyu

    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(model, dtype=np.float64)
    if min(a.size, b.size) < MIN_SAMPLES:
        return PairTest(None, None, _ratio(b, a), None, None, int(a.size), int(b.size),
                        reason=f"fewer than {MIN_SAMPLES} latency samples")
    a_test, b_test = thin(a), thin(b)
    p_value = float(mannwhitneyu(b_test, a_test, alternative="two-sided").pvalue)
    low, high = ratio_of_medians_ci(a_test, b_test)
    return PairTest(TEST_SAMPLES, p_value, _ratio(b, a), low - 1.0, high - 1.0, int(a.size), int(b.size))


def rounds_pair(baseline_medians: Sequence[float], model_medians: Sequence[float],
                confidence: float = CONFIDENCE) -> PairTest:
    """Welch's t-test on log round medians; effect and CI as a ratio of geometric means."""
    # imported here, not at the top: loads scipy, which only this path needs
    from scipy import stats

    a = np.log(np.asarray(baseline_medians, dtype=np.float64))
    b = np.log(np.asarray(model_medians, dtype=np.float64))
    diff = float(b.mean() - a.mean())
    var_a, var_b = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(var_a + var_b)
    if se == 0.0:  # identical rounds on both sides: a difference is certain, none is no evidence
        p_value = 1.0 if diff == 0.0 else 0.0
        low = high = diff
    else:
        dof = (var_a + var_b) ** 2 / (var_a ** 2 / (a.size - 1) + var_b ** 2 / (b.size - 1))
        p_value = float(2.0 * stats.t.sf(abs(diff) / se, dof))
        half = float(stats.t.ppf(0.5 + confidence / 2.0, dof)) * se
        low, high = diff - half, diff + half
    return PairTest(TEST_ROUNDS, p_value, _change(diff), _change(low), _change(high),
                    int(a.size), int(b.size))


def paired_rounds(baseline_medians: Sequence[float], model_medians: Sequence[float],
                  confidence: float = CONFIDENCE) -> PairTest:
    """Paired t-test on log(model / baseline) per round; effect and CI as the geometric mean ratio."""
    # imported here, not at the top: loads scipy, which only this path needs
    from scipy import stats

    ratios = np.log(np.asarray(model_medians, dtype=np.float64)) - np.log(
        np.asarray(baseline_medians, dtype=np.float64))
    diff = float(ratios.mean())
    se = float(ratios.std(ddof=1) / math.sqrt(ratios.size))
    if se == 0.0:
        p_value = 1.0 if diff == 0.0 else 0.0
        low = high = diff
    else:
        dof = ratios.size - 1
        p_value = float(2.0 * stats.t.sf(abs(diff) / se, dof))
        half = float(stats.t.ppf(0.5 + confidence / 2.0, dof)) * se
        low, high = diff - half, diff + half
    return PairTest(TEST_PAIRED, p_value, _change(diff), _change(low), _change(high),
                    int(ratios.size), int(ratios.size))


def interleaved(baseline_times: Sequence[str | None], model_times: Sequence[str | None]) -> bool:
    """True when both series of round timestamps (ISO 8601) have the same length and alternate round by round."""

    if len(baseline_times) != len(model_times) or any(t is None for t in [*baseline_times, *model_times]):
        return False
    try:
        a = [datetime.fromisoformat(str(t)) for t in baseline_times]
        b = [datetime.fromisoformat(str(t)) for t in model_times]
        return all(max(a[k], b[k]) <= min(a[k + 1], b[k + 1]) for k in range(len(a) - 1))
    except (TypeError, ValueError):
        return False


def decide(pairs: Sequence[PairTest], alpha: float, min_effect: float) -> list[Verdict]:
    """Holm-correct the tested pairs together, then apply the minimum-effect rule."""
    tested = [i for i, pair in enumerate(pairs) if pair.p_value is not None]
    adjusted = dict(zip(tested, holm([pairs[i].p_value for i in tested]), strict=True))
    verdicts = []
    for i, pair in enumerate(pairs):
        if i not in adjusted:
            verdicts.append(Verdict(pair, None, None))
            continue
        big_enough = pair.effect is not None and abs(pair.effect) >= min_effect
        excludes_zero = pair.ci_low is None or pair.ci_high is None or pair.ci_low > 0 or pair.ci_high < 0
        verdicts.append(Verdict(pair, adjusted[i], bool(adjusted[i] < alpha and big_enough and excludes_zero)))
    return verdicts


def _change(log_ratio: float) -> float:
    """The relative change exp(log_ratio) - 1; infinite beyond the range of a float, never an error."""
    try:
        return math.expm1(log_ratio)
    except OverflowError:
        return math.inf


def _ratio(model: np.ndarray, baseline: np.ndarray) -> float | None:
    if model.size == 0 or baseline.size == 0:
        return None
    base = float(np.median(baseline))
    return float(np.median(model)) / base - 1.0 if base > 0 else None
