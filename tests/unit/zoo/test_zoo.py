"""The six ablation models: build, forward, save as a checkpoint, reload safely."""

from __future__ import annotations

import pytest
import torch

from detbench import zoo
from detbench.data.artifacts import save_untrained
from detbench.models import complexity
from detbench.models.loading import load_model
from detbench.zoo.eca import ECA, eca_kernel_size

EXPECTED_PARAMS = {"baseline": 3_157_200, "ghost": 1_865_316, "eca": 3_157_213, "p2": 3_354_144,
                   "ghost_eca": 1_865_329, "ghost_eca_p2": 2_033_957}


@pytest.mark.parametrize("channels, k", [(16, 3), (32, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5),
                                         (2048, 7)])
def test_eca_kernel_size_is_odd_and_adaptive(channels, k):
    assert eca_kernel_size(channels) == k


def test_eca_keeps_shape_and_reweights_channels():
    layer = ECA(64)
    generator = torch.Generator().manual_seed(0)
    # |x| >= 0.5: y / x near x = 0 would amplify rounding beyond the tolerance
    x = torch.randn(2, 64, 8, 8, generator=generator).sign() * (0.5 + torch.rand(2, 64, 8, 8, generator=generator))
    y = layer(x)
    assert y.shape == x.shape
    ratio = (y / x).flatten(2)
    assert torch.allclose(ratio.min(-1).values, ratio.max(-1).values, atol=1e-5)  # one weight per channel
    assert ((ratio > 0) & (ratio < 1)).all()


@pytest.mark.parametrize("name", zoo.MODELS)
def test_zoo_model_builds_runs_saves_and_reloads(name, tmp_path):
    model = load_model(name).model
    assert complexity.count_params(model) == EXPECTED_PARAMS[name]
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append((mod.channels, inp[0].shape[1])))
             for m in model.modules() if isinstance(m, ECA)]
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    assert out[0].shape[1] == 84
    assert all(declared == actual for declared, actual in seen)
    assert len(seen) == (3 if "eca" in name else 0)

    path = save_untrained(name, tmp_path / name / "seed0" / "weights" / "best.pt")
    reloaded = load_model(str(path))
    assert reloaded.kind == "checkpoint"
    assert complexity.count_params(reloaded.model) == EXPECTED_PARAMS[name]
    assert any(isinstance(m, ECA) for m in reloaded.model.modules()) == ("eca" in name)
