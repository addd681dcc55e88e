"""GPU backend names on the command line, checked on the CPU."""

from __future__ import annotations


def test_a_name_that_names_another_backend_than_format_is_refused(cli, tmp_path):
    result = cli("bench", "--weights", "yolov8n.yaml", "--name", "v8n@onnx", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --name v8n@onnx: names the onnx backend but --format is pytorch; pass "
                                     "--format onnx or another --name")
