"""One real ONNX export of the session's checkpoint, stored in a private export cache of its own: the tests of the
cache's checks read it or copy it, and CLI runs reuse it (DETBENCH_CACHE_DIR), instead of each exporting again.
It is made where an entry that fails the cache's checks was planted, so it also shows what a run does then.

Registered with `pytest_plugins = ("exported_onnx",)` by the test files that use it (which do not import it: pytest
would not rewrite its asserts). Nothing may change the cache in place: a test that edits an entry edits a copy."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from detbench.backends.export import Artifact, Target, export_key, exported, versions
from detbench.backends.export_child import ExportSource
from detbench.backends.formats import FORMATS
from detbench.models import loading
from detbench.models.loading import load_model, prepare_for_inference

ONNX = FORMATS["onnx"]
TARGET = Target(64, 1)  # what the CLI runs of these tests ask for: --imgsz 64, --batch 1, on the CPU


def loaded_for_export(weights: Path | str, plugins: tuple[str, ...] = ()) -> tuple[ExportSource, torch.nn.Module]:
    """What a run hands the export: the model as it loaded it, and its fused model."""
    loaded = load_model(str(weights), plugins=list(plugins))
    return ExportSource.of(loaded, plugins), prepare_for_inference(loaded.model)


@dataclass(frozen=True)
class CachedExport:
    root: Path  # the private cache (`DETBENCH_CACHE_DIR` = its parent)
    artifact: Artifact  # the export as `exported` returned it, made afresh and stored
    source: ExportSource
    fused: torch.nn.Module

    @property
    def entry(self) -> Path:
        return Path(str(self.artifact.cached_at))

    @property
    def cache_dir(self) -> Path:
        """What DETBENCH_CACHE_DIR names for a run to use this cache."""
        return self.root.parent


def plant_entry(root: Path, key: str) -> Path:
    """An entry at `key` in the private cache `root` (made 0700) whose file does not hash to its record, as anyone
    who could write there might leave; its folder."""
    entry = root / key
    os.mkdir(root, 0o700)
    (entry / "files").mkdir(parents=True)
    (entry / "files" / "model.onnx").write_bytes(b"planted")
    (entry / "export.json").write_text(json.dumps({"sha256": "0" * 64}))
    return entry


@pytest.fixture(scope="session")
def onnx_export(tmp_path_factory, yaml_checkpoint) -> CachedExport:
    """The checkpoint exported to ONNX at imgsz 64 by a process that ran no code but detbench's, and cached in place
    of the entry planted where it belongs (`artifact.refused_entry` says why that was not used)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loading, "_plugin_prefixes", [])
        patch.setattr(loading, "_foreign_code", [])
        patch.delenv("PYTHONPATH", raising=False)
        source, fused = loaded_for_export(yaml_checkpoint)
        root = tmp_path_factory.mktemp("onnx-cache") / "exports"
        planted = plant_entry(root, export_key(str(source.sha256), ONNX, TARGET, versions(ONNX)))
        artifact = exported(source, fused, ONNX, TARGET, root)
    assert artifact.cached_at == str(planted), artifact.not_cached
    return CachedExport(root, artifact, source, fused)
