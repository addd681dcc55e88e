"""Summary statistics of latency samples, and distribution-free confidence intervals.

Percentiles use numpy's default "linear" method (type 7 of Hyndman & Fan):
the value at rank (n - 1) * q / 100 of the sorted samples, interpolated
linearly between neighbours. The standard deviation is the sample one (ddof=1).

Confidence intervals of a quantile come from order statistics: the number of
samples below the true q-quantile is Binomial(n, q) whatever the distribution,
so the sorted samples at ranks l and u (1-based) bracket it with probability
P(l <= B <= u - 1). Ranks are chosen with at most (1 - confidence) / 2 in each
tail; at n = 1000 the 95 % interval of the median is samples [469, 532]. Where
no such ranks exist among n samples the interval is null, and the
section's `unavailable` says why. Tail percentiles also get a one-sided
upper bound (the rank u with P(B <= u - 1) >= confidence): p95 needs n >= 59,
p99 n >= 299.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

PERCENTILE_METHOD = "linear"
CONFIDENCE = 0.95
INSUFFICIENT = "insufficient samples"
CI_METHOD = ("distribution-free: order statistics at binomial ranks (1-based ranks given), "
             "two-sided unless named upper")


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """Mean, median/p50, p95, p99, std, min and max of latencies in milliseconds."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no latency samples to summarize")
    p50, p95, p99 = np.percentile(values, [50, 95, 99], method=PERCENTILE_METHOD)
    return {
        "mean_ms": float(values.mean()),
        "median_ms": float(p50),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "std_ms": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
    }


def throughput(batch: int, mean_ms: float, p50_ms: float) -> dict[str, float]:
    """Images per second at the mean and at the median latency of one batch."""
    return {"fps_mean": batch * 1000.0 / mean_ms, "fps_p50": batch * 1000.0 / p50_ms}


@lru_cache(maxsize=256)
def binomial_cdf(n: int, q: float) -> np.ndarray:
    """P(B <= k) for k = 0..n, B ~ Binomial(n, q), in log space (no scipy import needed); read-only."""
    if n < 0 or not 0.0 < q < 1.0:
        raise ValueError(f"binomial_cdf needs n >= 0 and 0 < q < 1, got n={n}, q={q}")
    k = np.arange(n + 1, dtype=np.float64)
    log_fact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))))
    log_pmf = log_fact[n] - log_fact - log_fact[::-1] + k * np.log(q) + (n - k) * np.log1p(-q)
    pmf = np.exp(log_pmf - log_pmf.max())
    cdf = np.cumsum(pmf) / pmf.sum()
    cdf.setflags(write=False)
    return cdf


def quantile_ci_ranks(n: int, q: float, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """1-based ranks (l, u) of a two-sided distribution-free CI of the q-quantile; None if n is too small."""
    if n < 1:
        return None
    tail = (1.0 - confidence) / 2.0
    cdf = binomial_cdf(n, q)
    lower = int(np.count_nonzero(cdf <= tail))  # l - 1 = largest k with P(B <= k) <= tail
    reach = np.flatnonzero(cdf >= 1.0 - tail)  # u - 1 = smallest k with P(B <= k) >= 1 - tail
    upper = int(reach[0]) + 1 if reach.size else n + 1
    if lower < 1 or upper > n:
        return None
    return lower, upper


def quantile_upper_rank(n: int, q: float, confidence: float = CONFIDENCE) -> int | None:
    """1-based rank u whose sample bounds the q-quantile from above with `confidence`; None if n is too small."""
    if n < 1:
        return None
    reach = np.flatnonzero(binomial_cdf(n, q) >= confidence)
    upper = int(reach[0]) + 1 if reach.size else n + 1
    return upper if upper <= n else None


def min_samples_for_upper_bound(q: float, confidence: float = CONFIDENCE) -> int:
    """Smallest n with a one-sided upper bound of the q-quantile: q**n <= 1 - confidence."""
    return int(np.ceil(np.log(1.0 - confidence) / np.log(q) - 1e-12))


def min_samples_below_maximum(q: float, confidence: float = CONFIDENCE) -> int:
    """Smallest n whose one-sided upper bound of the q-quantile is not the largest sample (473 for p99 at 95 %)."""
    n = min_samples_for_upper_bound(q, confidence)
    while quantile_upper_rank(n, q, confidence) == n:
        n += 1
    return n


def median_ci(samples_ms: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The median's distribution-free CI in milliseconds, or None when there are too few samples."""
    values = np.asarray(samples_ms, dtype=np.float64)
    ranks = quantile_ci_ranks(values.size, 0.5, confidence)
    if ranks is None:
        return None
    low, high = np.partition(values, [ranks[0] - 1, ranks[1] - 1])[[ranks[0] - 1, ranks[1] - 1]]
    return float(low), float(high)


def relative_half_width(ci: tuple[float, float] | None, median: float) -> float | None:
    """(high - low) / 2 / median: the stopping rule's measure of precision."""
    if ci is None or not median > 0:
        return None
    return (ci[1] - ci[0]) / 2.0 / median


def confidence_intervals(samples_ms: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """CIs of the median, p95 and p99 (two-sided), and one-sided upper bounds of p95 and p99.

    What needs more samples than were taken is null, and `unavailable` maps its key to the reason.
    """
    ordered = np.sort(np.asarray(samples_ms, dtype=np.float64))
    n = int(ordered.size)
    label = f"{round(confidence * 100)}"
    out: dict[str, Any] = {"confidence": confidence, "method": CI_METHOD}
    unavailable: dict[str, str] = {}
    notes: list[str] = []

    def put(key: str, value: Any) -> None:
        out[key] = value
        if value is None:
            unavailable[key] = f"{INSUFFICIENT} ({n} taken)"

    for name, q in (("median", 0.5), ("p95", 0.95), ("p99", 0.99)):
        ranks = quantile_ci_ranks(n, q, confidence)
        put(f"{name}_ci{label}_ms", [float(ordered[ranks[0] - 1]), float(ordered[ranks[1] - 1])] if ranks else None)
        put(f"{name}_ci{label}_ranks", list(ranks) if ranks else None)
    for name, q in (("p95", 0.95), ("p99", 0.99)):
        rank = quantile_upper_rank(n, q, confidence)
        put(f"{name}_upper{label}_ms", float(ordered[rank - 1]) if rank else None)
        put(f"{name}_upper{label}_rank", rank)
        out[f"{name}_upper{label}_min_samples"] = min_samples_for_upper_bound(q, confidence)
        if rank is not None and rank == n:
            enough = min_samples_below_maximum(q, confidence)
            notes.append(f"{name}_upper{label}_ms is the largest sample: with {n} samples no smaller one bounds "
                         f"{name} at {label} %, so one slow iteration sets it; {enough} or more samples give a "
                         f"bound below the maximum")
    median = float(np.median(ordered)) if n else float("nan")
    ci = out[f"median_ci{label}_ms"]
    put("median_ci_half_width_rel", relative_half_width(tuple(ci), median) if ci is not None else None)
    out["unavailable"] = unavailable
    out["notes"] = notes
    return out


def spread(samples_ms: Sequence[float]) -> dict[str, float]:
    """Quartiles, IQR, IQR/median and the coefficient of variation (std/mean, ddof=1)."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no latency samples")
    q1, median, q3 = np.percentile(values, [25, 50, 75], method=PERCENTILE_METHOD)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {
        "q1_ms": float(q1),
        "q3_ms": float(q3),
        "iqr_ms": float(q3 - q1),
        "iqr_over_median": float((q3 - q1) / median) if median > 0 else float("nan"),
        "cv": std / mean if mean > 0 else float("nan"),
    }
