"""Checkpoints that Ultralytics trained load safely with their train_args."""

from __future__ import annotations

import torch

from detbench.models import complexity
from detbench.models.loading import load_model


def test_checkpoints_load_safely_with_train_args(yaml_checkpoint, trained_best, dataset):
    saved = load_model(str(yaml_checkpoint))
    assert saved.kind == "checkpoint" and saved.train_args["data"] == str(dataset.resolve())
    assert complexity.count_params(saved.model) == 3_157_200
    trained = load_model(str(trained_best))
    assert trained.train_args["data"] == str(dataset)
    assert next(trained.model.parameters()).dtype == torch.float32
