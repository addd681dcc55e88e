"""Property-based tests: the list reader and the report loader on arbitrary input load it or raise DetbenchError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detbench.data.benchmark_list import MAGIC, BenchmarkList, read_list, sidecar_path, write_list
from detbench.data.datasets import path_problem
from detbench.errors import DetbenchError
from detbench.report.model import SCHEMA_VERSION, Report, Section
from detbench.report.schema import REQUIRED_LATENCY, REQUIRED_SECTIONS, load_report

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("properties")


def read_list_bytes(scratch: Path, data: bytes, keep_sidecar: bool = False) -> BenchmarkList | None:
    path = scratch / "benchmark_list.txt"
    if not keep_sidecar:
        sidecar_path(path).unlink(missing_ok=True)
    path.write_bytes(data)
    try:
        blist = read_list(path)
    except DetbenchError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return None
    assert blist.paths and all(line.strip() and not line.startswith("#") and path_problem(line) is None
                               for line in blist.paths)
    return blist


def load_report_bytes(scratch: Path, data: bytes) -> Report | None:
    path = scratch / "report.json"
    path.write_bytes(data)
    try:
        report = load_report(path)
    except DetbenchError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return None
    assert report.schema_version == SCHEMA_VERSION and all(isinstance(getattr(report, s), Section)
                                                           for s in REQUIRED_SECTIONS)
    assert Report.from_dict(report.to_dict()) == report  # what is read is written back unchanged
    return report


header_line = st.one_of(
    st.sampled_from([MAGIC, "# seed: 42", "# requested_size: 3", "# population_size: 2", "# data: x.yaml"]),
    st.builds(lambda k, v: f"# {k}: {v}", st.sampled_from(["seed", "requested_size", "population_size",
                                                            "population_sha256", "data"]), st.text(max_size=12)),
    st.builds(lambda k, v: f"# {k}: {v}", st.sampled_from(["seed", "requested_size"]),
              st.integers(-10**30, 10**30)),
)
path_line = st.text(st.characters(blacklist_categories=["Cs"]), min_size=0, max_size=30)
list_text = st.lists(st.one_of(header_line, path_line), max_size=12).map("\n".join)


@SETTINGS
@given(data=st.binary(max_size=600))
def test_list_reader_on_arbitrary_bytes(scratch, data):
    read_list_bytes(scratch, data)


@SETTINGS
@given(text=list_text)
def test_list_reader_on_list_like_text(scratch, text):
    blist = read_list_bytes(scratch, text.encode("utf-8"))
    if blist is not None and text.startswith(MAGIC):
        assert len(blist.paths) == min(blist.requested_size, blist.population_size)


listable_path = st.text(st.characters(blacklist_categories=["Cs", "Cc", "Cf", "Zl", "Zp"],
                                      blacklist_characters="\x85"), min_size=1, max_size=40).filter(
    lambda p: p.strip() and not p.startswith("#"))


@SETTINGS
@given(paths=st.lists(listable_path, min_size=1, max_size=8), seed=st.integers(0, 2**32))
def test_list_round_trip_keeps_every_listable_path(scratch, paths, seed):
    """Any path the drawing accepts comes back unchanged, one per line, for `read_list` and `str.splitlines`."""
    blist = BenchmarkList(paths, seed, len(paths), len(paths), "0" * 64, "/data.yaml")
    write_list(blist, scratch / "benchmark_list.txt")
    text = (scratch / "benchmark_list.txt").read_text(encoding="utf-8")
    loaded = read_list_bytes(scratch, text.encode("utf-8"), keep_sidecar=True)
    assert loaded.paths == paths and loaded.seed == seed and loaded.sha256 == blist.sha256
    assert text.splitlines() == paths  # one path per line and nothing else


@SETTINGS
@given(path=st.text(min_size=1, max_size=20), char=st.sampled_from(["\n", "\r", "\u2028", "\u2029", "\x85",
                                                                    "\x0b", "\x1c", "\x00"]))
def test_list_reader_never_returns_a_path_with_a_line_breaking_character(scratch, path, char):
    blist = read_list_bytes(scratch, f"/a.jpg\n/{path}{char}{path}.jpg\n".encode("utf-8", "surrogatepass"))
    assert blist is None or all(char not in line for line in blist.paths)


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def valid_report() -> dict:
    return {
        "schema_version": 1, "status": "ok",
        "metadata": {"model_name": "m", "imgsz": 64, "batch": 1},
        "model_complexity": {"params": 1}, "throughput": {}, "memory": {},
        "latency": dict.fromkeys(REQUIRED_LATENCY, 1.0),
        "samples": {"latency_ms": [1.0, 1.0]},
    }


@SETTINGS
@given(data=st.binary(max_size=600))
def test_report_loader_on_arbitrary_bytes(scratch, data):
    load_report_bytes(scratch, data)


@SETTINGS
@given(value=json_value)
def test_report_loader_on_arbitrary_json(scratch, value):
    load_report_bytes(scratch, json.dumps(value).encode())


@SETTINGS
@given(key=st.sampled_from([*valid_report(), "latency.median_ms", "samples.latency_ms", "status"]),
       value=json_value, truncate=st.integers(0, 400))
def test_report_loader_on_damaged_reports(scratch, key, value, truncate):
    report = valid_report()
    section, _, field = key.partition(".")
    if field:
        report[section][field] = value
    else:
        report[section] = value
    text = json.dumps(report)
    loaded = load_report_bytes(scratch, text.encode())
    if loaded is not None and loaded.ok:
        assert all(isinstance(getattr(loaded.latency, k), (int, float)) or getattr(loaded.latency, k) is None
                   for k in REQUIRED_LATENCY)
    load_report_bytes(scratch, text.encode()[:truncate])


def test_valid_report_and_list_load(scratch):
    assert load_report_bytes(scratch, json.dumps(valid_report()).encode()) is not None
    text = f"{MAGIC}\n# seed: 1\n# requested_size: 2\n# population_size: 5\n/a.jpg\n/b.jpg\n"
    assert read_list_bytes(scratch, text.encode()).paths == ["/a.jpg", "/b.jpg"]
