"""One model deployed to a backend: exported (or found in the cache), opened in its runtime, checked for parity."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from detbench.backends.export import Artifact, exported
from detbench.backends.formats import Format
from detbench.backends.parity import PARITY_BATCHES, check_parity, parity_warnings
from detbench.backends.runtimes import Runtime, open_runtime
from detbench.text import Echo

MIB = 2**20


@dataclass
class Deployed:
    backend: Format
    artifact: Artifact
    runtime: Runtime
    parity: dict[str, Any]
    size_mib: float  # the exported model's files
    warnings: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The report's settings.backend."""
        return {**self.runtime.info, "exported": self.artifact.record(), "size_MB": self.size_mib,
                "params_and_gflops": "those of the PyTorch model the export was made from"}


def state_sha256(model: torch.nn.Module) -> str:
    """A hash of the model's parameters and buffers, for a model that has no file (built from a YAML)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode() + b"\0")
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _size_mib(path: Path) -> float:
    folder = path.parent
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / MIB


def deploy(backend: Format, model: torch.nn.Module, fused: torch.nn.Module, weights_sha256: str | None,
           imgsz: int, batch: int, threads: int, batches: list[torch.Tensor], cache_root: Path,
           echo: Echo) -> Deployed:
    """Export `model` (as loaded), open it in the backend's runtime, compare it with `fused` on `batches`."""
    artifact = exported(model, weights_sha256 or state_sha256(fused), backend, imgsz, batch, cache_root)
    how = "reused from the cache" if artifact.reused else f"exported in {artifact.export_s:.1f} s"
    echo(f"✓ {backend.runtime} model {how}: {artifact.path}")
    runtime = open_runtime(backend, artifact.path, threads)
    parity = check_parity(fused, runtime.forward, batches[:PARITY_BATCHES])
    warnings = parity_warnings(parity, backend.runtime)
    agreement = parity.get("detection_agreement")
    echo(f"✓ parity with PyTorch: max relative difference {parity.get('max_rel_diff', float('nan')):.2e}, "
         f"detections {'n/a (none found)' if agreement is None else f'{100 * agreement:.1f} % agree'}")
    for warning in warnings:
        echo(f"  warning: {warning}")
    return Deployed(backend, artifact, runtime, parity, _size_mib(artifact.path), warnings)
