"""The Python API: `detbench.bench` and `detbench.comparison`, for notebooks and scripts.

    import detbench
    r = detbench.bench("results/runs/ghost/seed0/weights/best.pt", imgsz=640, device="0")
    r.latency.median_ms; r.save("results/bench")
    c = detbench.compare([base, r], baseline="baseline")
    c.to_pandas(); c.to_markdown()

`bench` writes nothing unless asked: without `out`, the benchmark list and the
decoded-input cache live in a temporary folder that is removed afterwards, and
the report is written only by `BenchReport.save`. Ultralytics' environment
(offline, quiet, restricted loading) is set only while detbench works, and
torch's thread count and backend flags are restored when the call returns.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from detbench.errors import DetbenchError


class Section:
    """One section of a report, read by attribute (`report.latency.median_ms`); nested sections alike."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            value = self._values[name]
        except KeyError:
            raise AttributeError(f"no field {name!r} (fields: {', '.join(self._values)})") from None
        return Section(value) if isinstance(value, dict) else value

    def __dir__(self) -> list[str]:
        return list(self._values)

    def __repr__(self) -> str:
        return f"Section({self._values!r})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)


class BenchReport(Section):
    """One model's report, as `detbench bench` writes it; sections by attribute, the JSON by `to_dict`."""

    @property
    def name(self) -> str:
        return str(self._values["metadata"]["model_name"])

    def save(self, folder: str | Path) -> Path:
        """Write the report as FOLDER/NAME.json (atomically); return the path."""
        from detbench.report.schema import write_report

        return write_report(self._values, Path(folder) / f"{self.name}.json")

    def __repr__(self) -> str:
        latency = self._values.get("latency") or {}
        return f"BenchReport({self.name!r}, median {latency.get('median_ms')} ms)"


@contextlib.contextmanager
def _detbench_settings() -> Iterator[None]:
    """Ultralytics' environment while detbench works; torch's threads and backend flags as they were after."""
    import torch

    from detbench.models.ultralytics_env import ultralytics_environment

    threads = torch.get_num_threads()
    flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        with ultralytics_environment():
            yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


def bench(weights: str | Path, *, out: str | Path | None = None, verbose: bool = False,
          **settings: Any) -> BenchReport:
    """Benchmark one model (the settings of `detbench bench`, e.g. imgsz=640, device="0", iters=300).

    With `out`, the benchmark list is created in (or reused from) that folder, as for the CLI; the report is
    still written only by `.save()`.
    """
    from detbench.config import BenchConfig
    from detbench.workflows.bench import run_bench

    command = ["detbench.bench", str(weights), *(f"{key}={value!r}" for key, value in sorted(settings.items()))]
    with contextlib.ExitStack() as stack:
        folder = out if out is not None else stack.enter_context(tempfile.TemporaryDirectory(prefix="detbench-"))
        cfg = BenchConfig(weights=str(weights), out=str(folder), **settings)
        with _detbench_settings():
            report, _path = run_bench(cfg, echo=print if verbose else _silent, argv=command, write=False)
    return BenchReport(report)


def _silent(line: str) -> None:
    pass


class Comparison:
    """Reports compared against a baseline: groups of comparable reports, deltas and verdicts."""

    def __init__(self, result: Any) -> None:
        self.result = result  # detbench.comparison.analysis.Comparison

    @property
    def groups(self) -> list[Any]:
        return self.result.groups

    def to_csv(self) -> str:
        from detbench.comparison.tables import csv_text

        return csv_text(self.result)

    def to_markdown(self) -> str:
        from detbench.comparison.tables import markdown_text

        return markdown_text(self.result)

    def to_latex(self) -> str:
        from detbench.comparison.tables import latex_text

        return latex_text(self.result)

    def to_pandas(self):
        """The CSV's rows as a pandas DataFrame (pandas: `pip install -e '.[api]'`)."""
        try:
            import pandas
        except ImportError as exc:
            raise DetbenchError("Comparison.to_pandas needs pandas; install it with pip install pandas (or "
                                "pip install -e '.[api]')") from exc
        return pandas.read_csv(io.StringIO(self.to_csv()))

    def __str__(self) -> str:
        from detbench.comparison.tables import console_lines

        return "\n".join(console_lines(self.result))


def compare(reports: Sequence[BenchReport | dict[str, Any] | str | Path], baseline: str | None = None,
            alpha: float = 0.05, min_effect: float = 0.02) -> Comparison:
    """Compare reports (BenchReports, report dicts, report files or folders of them) against `baseline`."""
    from detbench.comparison import analysis
    from detbench.report.schema import validate_report

    entries, files = [], []
    for index, item in enumerate(reports):
        if isinstance(item, (str, Path)):
            files.append(Path(item))
            continue
        report = item.to_dict() if isinstance(item, Section) else item
        source = f"report {index + 1}"
        entries.append(analysis.Entry(path=Path(f"<{source}>"), report=validate_report(report, source), name=""))
    if files:
        entries += analysis.load_entries(analysis.report_files(files))
    if not entries:
        raise DetbenchError("detbench.comparison: no reports given")
    with _detbench_settings():
        result = analysis.build_comparison(analysis.name_entries(entries), baseline=baseline, alpha=alpha,
                                           min_effect=min_effect)
    return Comparison(result)
