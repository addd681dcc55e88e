"""Does the exported model compute what the PyTorch model computes? Raw outputs and detections compared on the
first batches of the benchmark list.

Recorded: the largest absolute difference of the raw output, the same relative to the largest absolute value
of PyTorch's output, and after NMS (conf 0.25, IoU 0.7, as the predictor) the share of PyTorch's detections
that the backend also finds (a box of the same class at IoU >= 0.5), with both counts. Out of tolerance
(relative difference above REL_TOLERANCE, or agreement below AGREEMENT_TOLERANCE) gives a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

PARITY_BATCHES = 4
REL_TOLERANCE = 1e-3
AGREEMENT_TOLERANCE = 0.99
MATCH_IOU = 0.5


def raw_output(output: Any) -> torch.Tensor:
    """The decoded predictions: PyTorch eager returns (predictions, features); exported models the first alone."""
    while isinstance(output, (list, tuple)):
        output = output[0]
    return output.float()


def _matched(reference: torch.Tensor, candidate: torch.Tensor) -> int:
    """PyTorch's detections that the backend also has: same class, IoU >= MATCH_IOU, each used once."""
    from ultralytics.utils.metrics import box_iou

    if len(reference) == 0 or len(candidate) == 0:
        return 0
    iou = box_iou(reference[:, :4], candidate[:, :4])
    iou[reference[:, 5:6] != candidate[:, 5].unsqueeze(0)] = 0.0
    used, found = set(), 0
    for row in range(len(reference)):
        for col in torch.argsort(iou[row], descending=True).tolist():
            if iou[row, col] < MATCH_IOU:
                break
            if col not in used:
                used.add(col)
                found += 1
                break
    return found


def check_parity(reference: Callable[[torch.Tensor], Any], candidate: Callable[[torch.Tensor], Any],
                 batches: list[torch.Tensor]) -> dict[str, Any]:
    """The `parity` section of a backend's report."""
    from ultralytics.utils.nms import non_max_suppression

    max_abs, scale, n_ref, n_cand, matched = 0.0, 0.0, 0, 0, 0
    with torch.inference_mode():
        for x in batches:
            ref, cand = raw_output(reference(x)), raw_output(candidate(x))
            if ref.shape != cand.shape:
                return {"batches": len(batches), "shape_pytorch": list(ref.shape), "shape_backend": list(cand.shape),
                        "within_tolerance": False, "problem": "the outputs differ in shape"}
            max_abs = max(max_abs, float((ref - cand).abs().max()))
            scale = max(scale, float(ref.abs().max()))
            for r, c in zip(non_max_suppression(ref, 0.25, 0.7), non_max_suppression(cand, 0.25, 0.7), strict=True):
                n_ref, n_cand, matched = n_ref + len(r), n_cand + len(c), matched + _matched(r, c)
    relative = max_abs / scale if scale > 0 else 0.0
    agreement = matched / max(n_ref, n_cand) if max(n_ref, n_cand) else None
    within = relative <= REL_TOLERANCE and (agreement is None or agreement >= AGREEMENT_TOLERANCE)
    return {"batches": len(batches), "max_abs_diff": max_abs, "max_rel_diff": relative,
            "detections_pytorch": n_ref, "detections_backend": n_cand, "detection_agreement": agreement,
            "tolerance": {"max_rel_diff": REL_TOLERANCE, "detection_agreement": AGREEMENT_TOLERANCE,
                          "match_iou": MATCH_IOU, "nms": {"conf": 0.25, "iou": 0.7}},
            "within_tolerance": within}


def parity_warnings(section: dict[str, Any], backend: str) -> list[str]:
    if section.get("within_tolerance"):
        return []
    if section.get("problem"):
        return [f"parity: the {backend} model's output differs from PyTorch's: {section['problem']}"]
    agreement = section.get("detection_agreement")
    shown = "n/a" if agreement is None else f"{100 * agreement:.1f} %"
    return [f"parity: the {backend} model's output differs from PyTorch's beyond tolerance (max relative "
            f"difference {section['max_rel_diff']:.2e}, detection agreement {shown}); its latency may not be "
            f"of the same computation"]
