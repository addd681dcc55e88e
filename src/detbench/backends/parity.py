"""Does the exported model compute what the PyTorch model computes? Raw outputs and detections compared on the
first batches of the benchmark list.

A detection head's raw output is [batch, 4 + classes, anchors]: boxes in pixels, then class scores in [0, 1].
Recorded: the largest box difference in pixels and as a share of imgsz, the largest score difference, and the
share of PyTorch's detections that the backend also finds (a box of the same class at IoU >= 0.5). Detections
are compared with hysteresis, PyTorch's at conf >= 0.3 against the backend's at conf >= 0.2, so that a score a
hair's breadth from one threshold does not count as a disagreement. Out of tolerance (a box off by more than
`box_of_imgsz` of imgsz, a score by more than `score`, or agreement below `detection_agreement`) gives a
warning. The raw outputs are compared whether or not PyTorch finds any detection (an untrained model finds
none), and a value that is NaN or infinite in either output is out of tolerance (NaN compares false with
everything, so it would otherwise pass every bound; where PyTorch's own output is not finite there is nothing
to compare with). Agreement means something only where PyTorch's outputs vary from one input to another by more
than the tolerance: an untrained model's hardly do (its head's biases decide them: two builds of one YAML, or a
backend that ignores its input, agree within fp32 tolerance), which is recorded (`informative`) and warned of.
An output of another layout is compared as a whole, relative to its largest value. The tolerances
are those of TOLERANCES: "fp32" for an fp32 model on the CPU or the GPU, "reduced" where the backend computes
in fp16 (a TensorRT engine built with --half) or TF32 (--tf32 on the GPU), whose rounding is about 1e-3
relative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

PARITY_BATCHES = 4
TOLERANCES = {
    # box: of imgsz (0.064 px at 640); other_relative: an output of another layout, relative to its largest value
    "fp32": {"box_of_imgsz": 1e-4, "score": 1e-4, "other_relative": 1e-4, "detection_agreement": 0.99},
    "reduced": {"box_of_imgsz": 2e-3, "score": 1e-2, "other_relative": 1e-2, "detection_agreement": 0.95},
}
MATCH_IOU = 0.5
REFERENCE_CONF, CANDIDATE_CONF = 0.3, 0.2


def raw_output(output: Any) -> torch.Tensor:
    """The decoded predictions: PyTorch eager returns (predictions, features); exported models the first alone."""
    while isinstance(output, (list, tuple)):
        output = output[0]
    return output.float()


def _matched(reference: torch.Tensor, candidate: torch.Tensor) -> int:
    """PyTorch's detections that the backend also has: same class, IoU >= MATCH_IOU, each used once."""
    # imported here: Ultralytics only once the process is set up for it (models.ultralytics_env)
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


def _is_detect_layout(output: torch.Tensor, classes: int | None) -> bool:
    return classes is not None and output.dim() == 3 and output.shape[1] == 4 + classes


def _finite_diff(ref: torch.Tensor, cand: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """(|ref - cand| where both are finite, 0 elsewhere; the values non-finite in the backend's output where
    PyTorch's are finite; the values non-finite in PyTorch's)."""
    ref_finite, cand_finite = torch.isfinite(ref), torch.isfinite(cand)
    diff = torch.where(ref_finite & cand_finite, ref - cand, torch.zeros_like(ref)).abs()
    return diff, int((ref_finite & ~cand_finite).sum()), int((~ref_finite).sum())


def check_parity(reference: Callable[[torch.Tensor], Any], candidate: Callable[[torch.Tensor], Any],
                 batches: list[torch.Tensor], imgsz: int, classes: int | None = None,
                 precision: str = "fp32") -> dict[str, Any]:
    """The `parity` section of a backend's report. `classes`: the detection head's class count (its output is
    then [batch, 4 + classes, anchors]); `precision`: the TOLERANCES to judge by."""
    tolerance = TOLERANCES[precision]
    # imported here: Ultralytics only once the process is set up for it (models.ultralytics_env)
    from ultralytics.utils.nms import non_max_suppression

    box, score, other, scale, n_ref, n_cand, matched = 0.0, 0.0, 0.0, 0.0, 0, 0, 0
    nonfinite = {"backend": 0, "pytorch": 0}
    detect, refs = True, []
    with torch.inference_mode():
        for x in batches:
            ref, cand = raw_output(reference(x)), raw_output(candidate(x))
            refs.append(ref)
            if ref.shape != cand.shape:
                return {"batches": len(batches), "shape_pytorch": list(ref.shape), "shape_backend": list(cand.shape),
                        "within_tolerance": False, "problem": "the outputs differ in shape"}
            diff, backend_only, in_reference = _finite_diff(ref, cand)
            nonfinite["backend"] += backend_only
            nonfinite["pytorch"] += in_reference
            detect = detect and _is_detect_layout(ref, classes)
            if detect:
                box, score = max(box, float(diff[:, :4].max())), max(score, float(diff[:, 4:].max()))
                for r, c in zip(non_max_suppression(ref, REFERENCE_CONF, 0.7),
                                non_max_suppression(cand, CANDIDATE_CONF, 0.7), strict=True):
                    n_ref, n_cand, matched = n_ref + len(r), n_cand + len(c), matched + _matched(r, c)
            finite_ref = ref[torch.isfinite(ref)]
            other = max(other, float(diff.max()))
            scale = max(scale, float(finite_ref.abs().max()) if finite_ref.numel() else 0.0)
    found: dict[str, Any] = {"batches": len(batches), "max_abs_diff": other,
                             "max_rel_diff": other / scale if scale > 0 else 0.0, "nonfinite_values": nonfinite,
                             **_spread(refs, detect, tolerance, imgsz, scale)}
    if detect:
        agreement = matched / n_ref if n_ref else None
        within = (box <= tolerance["box_of_imgsz"] * imgsz and score <= tolerance["score"]
                  and (agreement is None or agreement >= tolerance["detection_agreement"]))
        found.update(box_max_abs_diff_px=box, box_max_diff_of_imgsz=box / imgsz, score_max_abs_diff=score,
                     detections_pytorch=n_ref, detections_backend=n_cand, detection_agreement=agreement)
    else:
        within = found["max_rel_diff"] <= tolerance["other_relative"]
    problem = _nonfinite_problem(nonfinite)
    if problem:
        within, found["problem"] = False, problem
    found["tolerance"] = {"precision": precision, **tolerance, "match_iou": MATCH_IOU,
                          "conf": {"pytorch": REFERENCE_CONF, "backend": CANDIDATE_CONF}, "nms_iou": 0.7}
    found["within_tolerance"] = within
    return found


def _spread(refs: list[torch.Tensor], detect: bool, tolerance: dict[str, float], imgsz: int,
            scale: float) -> dict[str, Any]:
    """How far PyTorch's outputs move from their mean over the inputs (boxes in pixels and scores, or the whole
    output), and whether that is beyond the tolerance (None: a single input, nothing to tell)."""
    outputs = torch.cat(refs) if refs and len({tuple(r.shape[1:]) for r in refs}) == 1 else None
    if outputs is None or outputs.shape[0] < 2:
        return {"reference_spread": None, "informative": None}
    deviation = torch.nan_to_num((outputs - outputs.mean(0, keepdim=True)).abs(), nan=0.0, posinf=0.0)
    if detect:
        box, score = float(deviation[:, :4].max()), float(deviation[:, 4:].max())
        informative = box > tolerance["box_of_imgsz"] * imgsz or score > tolerance["score"]
        return {"reference_spread": {"box_px": box, "score": score}, "informative": informative}
    spread = float(deviation.max())
    return {"reference_spread": {"output": spread}, "informative": spread > tolerance["other_relative"] * scale}


def _nonfinite_problem(counts: dict[str, int]) -> str | None:
    if counts["backend"]:
        return f"{counts['backend']} of its values are NaN or infinite where PyTorch's are finite"
    if counts["pytorch"]:
        return f"PyTorch's own output has {counts['pytorch']} NaN or infinite values, nothing to compare with"
    return None


def parity_warnings(section: dict[str, Any], backend: str) -> list[str]:
    if section.get("within_tolerance"):
        if section.get("informative") is False:
            return [f"parity: PyTorch's outputs hardly vary from one input to another ({_spread_text(section)}: an "
                    f"untrained model?), so agreeing with them says little about whether the {backend} model "
                    f"computes the same"]
        return []
    if section.get("problem"):
        return [f"parity: the {backend} model's output differs from PyTorch's: {section['problem']}"]
    agreement = section.get("detection_agreement")
    shown = "n/a" if agreement is None else f"{100 * agreement:.1f} %"
    if "box_max_abs_diff_px" in section:
        what = (f"boxes up to {section['box_max_abs_diff_px']:.3g} px, scores up to "
                f"{section['score_max_abs_diff']:.2e}, detection agreement {shown}")
    else:
        what = f"max relative difference {section['max_rel_diff']:.2e}"
    return [f"parity: the {backend} model's output differs from PyTorch's beyond tolerance ({what}); its latency "
            f"may not be of the same computation"]


def _spread_text(section: dict[str, Any]) -> str:
    spread = section.get("reference_spread") or {}
    if "box_px" in spread:
        return f"boxes by at most {spread['box_px']:.2g} px, scores by {spread['score']:.2g}"
    return f"by at most {spread.get('output', 0.0):.2g}"
