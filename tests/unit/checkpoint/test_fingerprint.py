"""A checkpoint's architecture read from its pickle alone: trained values do not change it, a layer does."""

from __future__ import annotations

import pytest
import torch
from conftest import one_line_error
from hostile_checkpoints import (
    PROTO2,
    cyclic_layer,
    layer,
    layer_dag,
    reused_names,
    seed_checkpoint,
    state_dict,
    text,
)
from torch import nn

from detbench import limits
from detbench.checkpoint.fingerprint import architecture, fingerprint
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


def refusal(path) -> str:
    with pytest.raises(DetbenchError) as raised:
        architecture(path)
    message = one_line_error(raised)
    assert message.startswith(f"{path}: cannot read its architecture (") and message.endswith(
        "; replace it with the run's own weights/best.pt or move the seed folder away"), message
    return message


def test_a_module_that_contains_itself_is_one_line_or_not_followed(tmp_path):
    assert "contains itself" in refusal(seed_checkpoint(cyclic_layer(hidden=False), tmp_path / "cycle.pt"))
    # the state hidden in a getattr call's items: not a module's state, so not walked (no RecursionError)
    hidden = architecture(seed_checkpoint(cyclic_layer(hidden=True), tmp_path / "hidden.pt"))
    bare = PROTO2 + b"}" + text("model") + layer(state_dict()) + b"s" + b"."
    assert hidden == architecture(seed_checkpoint(bare, tmp_path / "bare.pt"))


def test_a_module_shared_at_every_level_is_counted_where_it_is_used(tmp_path):
    # 2**40 modules behind getattr calls: not walked; 2**18 in plain dicts: counted until MAX_MODULES (100,000)
    architecture(seed_checkpoint(layer_dag(40, hidden=True), tmp_path / "hidden.pt"))
    message = refusal(seed_checkpoint(layer_dag(18, hidden=False), tmp_path / "dag18.pt"))
    assert f"more than {limits.MAX_MODULES:,} modules when shared ones are counted" in message
    assert "expand to more than" in refusal(seed_checkpoint(layer_dag(25, hidden=False), tmp_path / "dag25.pt"))


def test_a_long_name_reused_by_reference_is_hashed_once_and_the_hashed_text_is_bounded(tmp_path, monkeypatch):
    # 300 uses of a 1 MiB name would stream 300 MiB into the hash, above MAX_FINGERPRINT_BYTES (16 MiB), if each
    # were written out; hashed, each use is 140 characters
    name = "w" * (1 << 20)
    reused = architecture(seed_checkpoint(reused_names(name, 300), tmp_path / "reused.pt"))
    assert reused != architecture(seed_checkpoint(reused_names(name[:-1] + "x", 300), tmp_path / "other.pt"))
    monkeypatch.setattr(limits, "MAX_FINGERPRINT_BYTES", 10_000)
    assert "names and shapes" in refusal(seed_checkpoint(reused_names("w", 2000), tmp_path / "many.pt"))


def test_only_the_zip_directory_and_the_pickle_are_read(tmp_path, yaml_checkpoint):
    found = fingerprint(yaml_checkpoint)
    assert found.digest == architecture(yaml_checkpoint) and found.bytes_read < yaml_checkpoint.stat().st_size / 10
    pickle_only = PROTO2 + b"}" + text("model") + layer(state_dict()) + b"s" + b"."
    big = seed_checkpoint(pickle_only, tmp_path / "big.pt", {"0": bytes(8 << 20)})
    assert fingerprint(big).bytes_read < 100_000  # of an 8 MiB file: the end records searched, and data.pkl
    damaged = bytearray(big.read_bytes())
    at = damaged.index(pickle_only)
    damaged[at + 4] ^= 0xFF  # data.pkl no longer matches its CRC
    (tmp_path / "damaged.pt").write_bytes(bytes(damaged))
    assert "damaged" in refusal(tmp_path / "damaged.pt")


def test_a_walk_that_runs_out_of_stack_or_memory_is_one_line(tmp_path, monkeypatch):
    from detbench.checkpoint import fingerprint as module

    path = seed_checkpoint(PROTO2 + b"}" + text("model") + layer() + b"s" + b".", tmp_path / "best.pt")
    for error in (RecursionError, MemoryError):
        monkeypatch.setattr(module._Walk, "module", lambda *args, error=error: (_ for _ in ()).throw(error()))
        assert f"too deep or too large: {error.__name__}" in refusal(path)
