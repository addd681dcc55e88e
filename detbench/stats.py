"""Summary statistics of latency samples.

Percentiles use numpy's default "linear" method (type 7 of Hyndman & Fan):
the value at rank (n - 1) * q / 100 of the sorted samples, interpolated
linearly between neighbours. The standard deviation is the sample one (ddof=1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILE_METHOD = "linear"


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
