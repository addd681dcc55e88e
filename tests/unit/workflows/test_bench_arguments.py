"""Hostile arguments of a bench in process: flags out of range, bad report files, a CUDA device without CUDA."""

from __future__ import annotations

import re

import pytest
import torch

from detbench.config import BenchConfig
from detbench.errors import DetbenchError
from detbench.measure.devices import resolve_device
from detbench.report.schema import load_report


@pytest.mark.parametrize("flag, value, pattern", [
    ("benchmark_size", 0, r"--benchmark_size must be between 1 and"),
    ("benchmark_size", -5, r"--benchmark_size must be between 1 and"),
    ("iters", 0, r"--iters must be between 1 and"),
    ("warmup", -1, r"--warmup must be between 0 and"),
    ("batch", 0, r"--batch must be between 1 and 1024"),
    ("batch", 4096, r"--batch must be between 1 and 1024"),
    ("imgsz", 16, r"--imgsz must be between 32 and 8192"),
    ("imgsz", 100_000, r"--imgsz must be between 32 and 8192"),
    ("threads", 0, r"--threads must be between 1 and"),
    ("name", "../elsewhere", r"--name '\.\./elsewhere': the model name '\.\./elsewhere' holds a path separator"),
])
def test_flags_out_of_range(flag, value, pattern):
    with pytest.raises(DetbenchError, match=pattern):
        BenchConfig(weights="yolov8n.yaml", **{flag: value})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda():
    for spec in ("0", "cuda", "cuda:1"):
        with pytest.raises(DetbenchError, match=rf"--device {spec} asks for a CUDA GPU, but none is available here: "
                                                r"use --device cpu"):
            resolve_device(spec)
    with pytest.raises(DetbenchError, match=r"--device 'gpu' is not understood"):
        resolve_device("gpu")


@pytest.mark.parametrize("content, pattern", [
    (b"{\"schema_version\": 1, ", r"not valid JSON \(JSONDecodeError\); delete it and re-run"),
    (b"\xff\xfe{}", r"not valid JSON \(UnicodeDecodeError\)"),
    (b"[" * 100_000 + b"]" * 100_000, r"not valid JSON \(RecursionError\)"),
    (b"{\"schema_version\": " + b"9" * 5000 + b"}", r"not valid JSON \(ValueError\)"),
    (b"[1, 2]", r"not a detbench report \(top level is list\)"),
    (b"{\"schema_version\": 3}", r"unknown schema_version 3 \(this detbench reads 1 and 2\); re-run the benchmark"),
    (b"{\"schema_version\": true}", r"unknown schema_version True"),
    (b"{\"schema_version\": 1}", r"missing section\(s\) metadata, model_complexity, latency, throughput, memory"),
])
def test_bad_report_files_are_named(tmp_path, content, pattern):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(DetbenchError, match=rf"^{re.escape(str(path))}: {pattern}"):
        load_report(path)
