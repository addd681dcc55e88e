"""The structure check of a loaded model (`detbench.checkpoint.structure`): hooks, hidden layers, tensors that are
not plain, methods borrowed from other objects; each named with where it sits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detbench.checkpoint.structure import StructureError, check_model


def test_a_plain_model_passes_and_its_modules_are_counted():
    assert check_model(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())) == 3


@pytest.mark.parametrize("spoil, message", [
    (lambda m: m[0].register_forward_hook(lambda *a: None), "carries _forward_hooks"),
    (lambda m: setattr(m[1], "spare", [nn.Linear(1, 1)]), "holds layers or functions outside the module tree"),
    (lambda m: m[0].__dict__.__setitem__("helper", nn.ReLU()), "holds the layer 'helper' outside the module tree"),
    (lambda m: setattr(m[1], "forward", nn.Linear(1, 1).forward), "is a method of another object"),
    (lambda m: m[0].register_buffer("odd", torch.zeros(2, dtype=torch.complex64)), "is not a dense CPU tensor"),
])
def test_what_would_change_the_computation_is_refused_naming_the_module(spoil, message):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    spoil(model)
    with pytest.raises(StructureError, match=message):
        check_model(model)
