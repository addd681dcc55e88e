"""Host memory of the input cache's set-up: the resident peak while the list's images are decoded (or mapped from
the set-up cache), against the size of the cache itself.

The cache is filled in place and hashed through a memoryview, so the peak should stay near one copy of the
cache: 1.0x on a cache hit (the mapped file), a little more on a fresh decode (one decoded original at a time).

    python benchmarks/setup_memory.py [--imgsz 640] [--images 200] [--rect]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import common


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rect", action="store_true", help="the --rect cache (content per image, padded per batch)")
    opts = parser.parse_args()
    common.print_header("set-up memory: resident peak while the inputs are decoded or mapped")
    # imported here, not at the top: common must configure the process before Ultralytics is imported
    from detbench.data.benchmark_list import sample_list
    from detbench.data.cache import cached_inputs
    from detbench.measure.memory import current_rss_mib, lifetime_peak_rss_mib, reset_rss_peak

    paths = sample_list(common.dataset(n_val=opts.images), opts.images, 42).paths
    cache_dir = Path(tempfile.mkdtemp(prefix="detbench-setup-memory-"))
    for label in ("fresh decode", "cache hit"):
        reset_rss_peak()
        before = current_rss_mib()
        inputs, reused = cached_inputs(cache_dir, paths, opts.imgsz, rect_stride=32 if opts.rect else None)
        peak = lifetime_peak_rss_mib() - before
        size = inputs.images.numel() / 2**20
        print(f"{label:<12} (reused {reused!s:<5}): cache {size:.0f} MiB, resident peak above the start {peak:.0f} MiB "
              f"= {peak / size:.2f}x the cache")
        del inputs
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
