"""A checkpoint's architecture read from its pickle alone: trained values do not change it, a layer does."""

from __future__ import annotations

import pytest
import torch
from conftest import one_line_error
from torch import nn

from detbench.checkpoint.fingerprint import architecture
from detbench.errors import DetbenchError


def test_the_architecture_is_the_layers_and_shapes_not_the_values(tmp_path, yaml_checkpoint):
    reference = architecture(yaml_checkpoint)
    ckpt = torch.load(yaml_checkpoint, map_location="cpu", weights_only=False)  # the fixture's own file
    with torch.no_grad():
        ckpt["model"].model[0].conv.weight.add_(1.0)  # another seed's trained values
    ckpt["train_args"] = {**ckpt["train_args"], "seed": 7}
    torch.save(ckpt, tmp_path / "retrained.pt")
    assert architecture(tmp_path / "retrained.pt") == reference
    ckpt["model"].model[0].conv = nn.Conv2d(3, 8, 3)  # another layer: another model
    torch.save(ckpt, tmp_path / "other.pt")
    assert architecture(tmp_path / "other.pt") != reference


def test_a_file_that_is_not_a_checkpoint_is_one_line_naming_it(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(DetbenchError) as raised:
        architecture(tmp_path / "best.pt")
    assert one_line_error(raised).startswith(f"{tmp_path / 'best.pt'}: cannot read its architecture (")
