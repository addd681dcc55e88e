"""Flags on a run's samples: outliers (kept, never deleted) and warnings that name their cause.

Outliers use the modified z-score of Iglewicz and Hoaglin, as hyperfine does:
z = (x - median) / (1.4826 * MAD), MAD being the median absolute deviation
from the median (when MAD is 0, 1.2533 * the mean absolute deviation stands in;
when that is 0 too, nothing is an outlier). |z| > 3.5 flags an outlier,
|z| > 14 (hyperfine's threshold) a severe one. Indices are 0-based positions
in `samples.latency_ms`.

Warnings (thresholds below are module constants):
- CV (std/mean) above 5 %: the system is noisy;
- IQR/median >= 0.10 (torch.utils.benchmark's threshold);
- severe outliers present (hyperfine warns on the same);
- the first timed iterations slower than the rest: the warm-up was too short;
- on CUDA, launch-bound: the host's time to enqueue the forward (until it
  returns, before the synchronize) is at least 80 % of the device time, so the
  GPU spent the forward waiting for kernel launches. (Host time around the
  events cannot show this: events on an idle stream stretch to the launches,
  so host and device time agree whether or not the GPU waited.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detbench.stats import summary as stats

OUTLIER_Z = 3.5
SEVERE_Z = 14.0
CV_WARN = 0.05
IQR_WARN = 0.10
WARMUP_HEAD_FRACTION = 0.10
WARMUP_HEAD_MIN = 5
WARMUP_MIN_SAMPLES = 20
WARMUP_SLOW_RATIO = 1.10
LAUNCH_BOUND_ENQUEUE_SHARE = 0.8
NOISY = "system noisy: close other programs / lock clocks"


def modified_z_scores(samples: Sequence[float]) -> np.ndarray:
    """(x - median) / (1.4826 MAD) per sample; zeros when the samples do not spread at all."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        return values
    deviation = np.abs(values - np.median(values))
    scale = 1.4826 * float(np.median(deviation))
    if scale == 0.0:
        scale = 1.2533 * float(deviation.mean())
    if scale == 0.0:
        return np.zeros_like(values)
    return (values - np.median(values)) / scale


def outliers(samples: Sequence[float]) -> dict[str, Any]:
    """Which samples are outliers (flagged and counted; the samples themselves are left as they are)."""
    z = modified_z_scores(samples)
    flagged = np.flatnonzero(np.abs(z) > OUTLIER_Z)
    severe = np.flatnonzero(np.abs(z) > SEVERE_Z)
    return {
        "method": f"modified z-score |x - median| / (1.4826 MAD) > {OUTLIER_Z}; severe > {SEVERE_Z} (hyperfine)",
        "count": int(flagged.size),
        "fraction": float(flagged.size / z.size) if z.size else 0.0,
        "high": int(np.count_nonzero(z[flagged] > 0)),
        "indices": [int(i) for i in flagged],
        "severe_count": int(severe.size),
        "severe_indices": [int(i) for i in severe],
        "kept": True,
    }


def warmup_check(samples: Sequence[float]) -> dict[str, Any] | None:
    """Median of the first 10 % (at least 5) timed samples against the median of the rest; None if n < 20."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size < WARMUP_MIN_SAMPLES:
        return None
    head = max(WARMUP_HEAD_MIN, int(values.size * WARMUP_HEAD_FRACTION))
    head_median, rest_median = float(np.median(values[:head])), float(np.median(values[head:]))
    return {
        "head_iterations": head,
        "head_median_ms": head_median,
        "rest_median_ms": rest_median,
        "ratio": head_median / rest_median if rest_median > 0 else float("nan"),
    }


def warmup_warning(warm: dict[str, Any] | None, turns: bool = False) -> str | None:
    """The warm-up-too-short sentence when the first timed iterations were clearly slower, else None. `turns`: the
    iterations are a study worker's turns, spread over the study's time, where the machine's drift shows too."""
    if warm is None or warm["ratio"] <= WARMUP_SLOW_RATIO:
        return None
    if turns:
        return (f"its first {warm['head_iterations']} turns are {warm['ratio'] - 1:.0%} slower than its others "
                f"(median {warm['head_median_ms']:.3f} vs {warm['rest_median_ms']:.3f} ms): the machine was slower "
                f"then (every model's turns of those rounds share that, so the comparisons are not biased), or the "
                f"warm-up was too short: raise --warmup if most workers show it")
    return (f"the first {warm['head_iterations']} timed iterations are {warm['ratio'] - 1:.0%} slower "
            f"than the rest (median {warm['head_median_ms']:.3f} vs {warm['rest_median_ms']:.3f} ms): "
            f"warm-up too short; raise --warmup")


def warnings_for(spread: dict[str, float], flags: dict[str, Any], warm: dict[str, Any] | None,
                 median_ms: float, enqueue_median_ms: float | None = None, n: int = 0) -> list[str]:
    """One sentence per problem found, each naming its likely cause and what to do."""
    found = []
    if n > 1 and spread["cv"] > CV_WARN:
        found.append(f"CV {spread['cv']:.1%} is above {CV_WARN:.0%}: {NOISY}")
    if n > 1 and spread["iqr_over_median"] >= IQR_WARN:
        found.append(f"IQR/median {spread['iqr_over_median']:.1%} is at least {IQR_WARN:.0%}: {NOISY}")
    if flags["severe_count"]:
        first = flags["severe_indices"][0]
        found.append(f"{flags['severe_count']} severe outlier(s) (|modified z| > {SEVERE_Z:g}, first at timed "
                     f"iteration {first}), kept in the samples: interruptions by other programs; {NOISY}")
    warm_up = warmup_warning(warm)
    if warm_up:
        found.append(warm_up)
    if enqueue_median_ms is not None and median_ms > 0 and enqueue_median_ms >= LAUNCH_BOUND_ENQUEUE_SHARE * median_ms:
        found.append(f"launching the forward's kernels took {enqueue_median_ms:.3f} ms of the device's "
                     f"{median_ms:.3f} ms ({enqueue_median_ms / median_ms:.0%}): launch-bound (the GPU waits for the "
                     f"CPU): consider CUDA graphs / larger batch")
    return found


def statistics_section(samples: Sequence[float], host_samples: Sequence[float] | None = None,
                       enqueue_samples: Sequence[float] | None = None) -> dict[str, Any]:
    """The report's `statistics` for one series of samples: CIs, spread, outliers, warm-up check, warnings."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no samples")
    median = float(np.median(values))
    spread = stats.spread(values)
    flags = outliers(values)
    warm = warmup_check(values)
    host_median = float(np.median(host_samples)) if host_samples is not None and len(host_samples) else None
    enqueue = float(np.median(enqueue_samples)) if enqueue_samples is not None and len(enqueue_samples) else None
    return {
        "n_samples": int(values.size),
        **stats.confidence_intervals(values),
        **spread,
        "outliers": flags,
        "warmup_check": warm,
        "host_over_device": host_median / median if host_median is not None and median > 0 else None,
        "enqueue_over_device": enqueue / median if enqueue is not None and median > 0 else None,
        "warnings": warnings_for(spread, flags, warm, median, enqueue, int(values.size)),
    }


def format_ci(ci: Any, digits: int = 2) -> str:
    """`[a, b] ms` for an interval; "n/a (insufficient samples)" for none."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}] ms"
    return f"n/a ({stats.INSUFFICIENT})"
