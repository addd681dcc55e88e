"""One model deployed to a backend: exported (or found in the cache), opened in its runtime, checked for parity."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from detbench.backends.export import Artifact, exported
from detbench.backends.formats import Format
from detbench.backends.parity import PARITY_BATCHES, check_parity, parity_warnings
from detbench.backends.runtimes import Runtime, open_runtime
from detbench.measure.memory import current_rss_mib
from detbench.text import Echo

MIB = 2**20


@dataclass
class Deployed:
    backend: Format
    artifact: Artifact
    runtime: Runtime
    parity: dict[str, Any]
    size_mib: float  # the exported model's files
    runtime_rss_mib: float | None  # resident memory that opening the runtime (and its first runs) added
    warnings: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The report's settings.backend."""
        return {**self.runtime.info, "exported": self.artifact.record(), "exported_size_MB": self.size_mib,
                "runtime_rss_MB": self.runtime_rss_mib,
                "params_and_gflops": "those of the PyTorch model the export was made from"}


def deploy(backend: Format, model: torch.nn.Module, fused: torch.nn.Module, weights_sha256: str | None,
           imgsz: int, batch: int, threads: int, batches: list[torch.Tensor], echo: Echo,
           cache_root: Path | None = None) -> Deployed:
    """Export `model` (as loaded), open it in the backend's runtime, compare it with `fused` on `batches`.
    `weights_sha256`: the checkpoint file's, which keys the private export cache; None exports afresh."""
    artifact = exported(model, weights_sha256, backend, imgsz, batch, cache_root)
    how = ("reused from the private export cache" if artifact.reused
           else f"exported in {artifact.export_s:.1f} s" + ("" if artifact.cached_at else " (not cached)"))
    echo(f"✓ {backend.runtime} model {how} (sha256 {artifact.sha256[:12]})")
    rss_before = current_rss_mib(settle=True)
    runtime = open_runtime(backend, artifact, threads)
    spec = getattr(fused, "yaml", None)
    classes = getattr(fused, "nc", None) or (spec.get("nc") if isinstance(spec, dict) else None)
    parity = check_parity(fused, runtime.forward, batches[:PARITY_BATCHES], imgsz, classes)
    runtime_rss = max(0.0, current_rss_mib(settle=True) - rss_before)
    warnings = parity_warnings(parity, backend.runtime)
    agreement = parity.get("detection_agreement")
    echo(f"✓ parity with PyTorch: boxes within {parity.get('box_max_abs_diff_px', float('nan')):.2g} px, scores "
         f"within {parity.get('score_max_abs_diff', float('nan')):.2g}, detections "
         f"{'n/a (none at conf 0.3)' if agreement is None else f'{100 * agreement:.1f} % agree'}")
    for warning in warnings:
        echo(f"  warning: {warning}")
    return Deployed(backend, artifact, runtime, parity, artifact.size_bytes / MIB, runtime_rss, warnings)
