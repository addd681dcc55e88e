"""YOLOv8n in each CPU backend, compared in one interleaved study: PyTorch eager against TorchScript, ONNX Runtime
and OpenVINO, with the verdicts of `detbench ablate` and the parity of each export.

    python benchmarks/backends.py [--imgsz 320] [--threads 1] [--formats torchscript,onnx,openvino]
                                  [--max-time 300] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import common

from detbench.proc import python_module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--formats", default="torchscript,onnx,openvino")
    parser.add_argument("--max-time", type=float, default=300.0)
    parser.add_argument("--workspace", default=None)
    opts = parser.parse_args()
    common.print_header("backends: YOLOv8n in PyTorch eager and each CPU backend, one interleaved study")
    # imported here, not at the top: common must configure the process before Ultralytics is imported
    from detbench.data.artifacts import save_untrained

    work = Path(opts.workspace or tempfile.mkdtemp(prefix="detbench-backends-")).resolve()
    data = common.dataset(work / "data")
    weights = save_untrained("yolov8n.yaml", work / "yolov8n.pt", data)
    formats = ["pytorch", *[f.strip() for f in opts.formats.split(",") if f.strip()]]
    out = work / "study"
    command = [*python_module(sys.executable, "detbench.cli"), "ablate", "--models",
               ",".join(f"{weights}@{fmt}" for fmt in formats), "--baseline", "yolov8n@pytorch", "--out", str(out),
               "--data", str(data), "--imgsz", str(opts.imgsz), "--threads", str(opts.threads), "--device", "cpu",
               "--study-time", str(opts.max_time), "--quiet"]
    study = subprocess.run(command, capture_output=True, text=True)
    print(study.stdout[-4000:])
    if study.returncode != 0:
        print(study.stderr[-2000:])
        return study.returncode
    for fmt in formats[1:]:
        report = json.loads((out / f"yolov8n@{fmt}.json").read_text())
        parity, backend = report["parity"], report["settings"]["backend"]
        boxes = parity.get("box_max_abs_diff_px")
        shown = (f"boxes within {boxes:.2g} px, scores within {parity['score_max_abs_diff']:.2g}" if boxes is not None
                 else f"max relative difference {parity['max_rel_diff']:.2e}")
        export = "reused" if backend["exported"]["reused"] else "made"
        print(f"{fmt:<12} {backend['runtime']} {backend['version']}: threads {backend['threads']}; parity {shown}, "
              f"within tolerance {parity['within_tolerance']}; export {export}")
    compared = subprocess.run([*python_module(sys.executable, "detbench.cli"), "compare", str(out), "--baseline",
                               "yolov8n@pytorch"], capture_output=True, text=True)
    print(compared.stdout)
    return compared.returncode


if __name__ == "__main__":
    raise SystemExit(main())
