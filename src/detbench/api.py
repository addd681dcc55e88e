"""The Python API: `detbench.bench` and `detbench.comparison`, for notebooks and scripts.

    import detbench
    r = detbench.bench("results/runs/ghost/seed0/weights/best.pt", imgsz=640, device="0")
    r.latency.median_ms; r.save("results/bench")
    c = detbench.compare([base, r], baseline="baseline")
    c.to_pandas(); c.to_markdown()

`bench` writes nothing unless asked: without `out`, the benchmark list and the
decoded-input cache live in a temporary folder that is removed afterwards, and
the report is written only by `BenchReport.save`. Ultralytics' environment
(offline, quiet, restricted loading) is set only while detbench works, and the
environment, torch's thread count and backend flags are restored when the call returns.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from detbench.errors import DetbenchError
from detbench.report.model import Report


class BenchReport(Report):
    """One model's report: typed sections (`r.latency.median_ms`), `r.save(folder)`, `r.to_dict()`."""

    def save(self, folder: str | Path, force: bool = False) -> Path:
        """Write the report as FOLDER/NAME.json (validated, atomically); return the path. A report already there is
        replaced only by one of the same settings, as `detbench bench` would (DetbenchError naming each
        difference); `force` replaces any."""
        # imported here, not at the top: loads numpy, kept out of `import detbench`
        from detbench.report.schema import write_report
        from detbench.workflows.existing import refuse_replacing_with

        path = Path(folder) / f"{self.name}.json"
        if not force:
            refuse_replacing_with(path, self)
        return write_report(self, path)


@contextlib.contextmanager
def _detbench_settings() -> Iterator[None]:
    """Ultralytics' environment while detbench works; torch's threads and backend flags as they were after."""
    # imported here, not at the top: loads torch, which only this path needs
    import torch

    from detbench.models.ultralytics_env import ultralytics_environment

    threads = torch.get_num_threads()
    flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    environment = dict(os.environ)  # all of it: a plugin may set a variable (PYTHONPATH, say) later calls inherit
    try:
        with ultralytics_environment():
            yield
    finally:
        for key in set(os.environ) - set(environment):
            del os.environ[key]
        os.environ.update(environment)
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


def bench(weights: str | Path, *, out: str | Path | None = None, verbose: bool = False,
          **settings: Any) -> BenchReport:
    """Benchmark one model (the settings of `detbench bench`, e.g. imgsz=640, device="0", iters=300).

    With `out`, the benchmark list is created in (or reused from) that folder, as for the CLI; the report is
    still written only by `.save()`.
    """
    # imported here, not at the top: loads torch, OpenCV, NVML, psutil, numpy, which only this path needs
    from detbench.config import BenchConfig
    from detbench.workflows.bench import run_bench

    command = ["detbench.bench", str(weights), *(f"{key}={value!r}" for key, value in sorted(settings.items()))]
    with contextlib.ExitStack() as stack:
        folder = out if out is not None else stack.enter_context(tempfile.TemporaryDirectory(prefix="detbench-"))
        cfg = BenchConfig(weights=str(weights), out=str(folder), **settings)
        with _detbench_settings():
            report, _path = run_bench(cfg, echo=print if verbose else _silent, argv=command, write=False)
    return BenchReport(**vars(report))


def _silent(line: str) -> None:
    pass


class Comparison:
    """Reports compared against a baseline: groups of comparable reports, deltas and verdicts."""

    def __init__(self, result: Any) -> None:
        self.result = result  # detbench.comparison.analysis.Comparison

    @property
    def groups(self) -> list[Any]:
        return self.result.groups

    def _table(self, fmt: str) -> str:
        # imported here, not at the top: loads numpy, kept out of light commands
        from detbench.comparison.tables import RENDERERS

        return RENDERERS[fmt](self.result)

    def to_csv(self) -> str:
        return self._table("csv")

    def to_markdown(self) -> str:
        return self._table("md")

    def to_latex(self) -> str:
        return self._table("latex")

    def to_pandas(self):
        """The CSV's rows as a pandas DataFrame (pandas: `pip install -e '.[api]'`)."""
        try:
            # imported here, not at the top: loads pandas, which only this path needs
            import pandas
        except ImportError as exc:
            raise DetbenchError("Comparison.to_pandas needs pandas; install it with pip install pandas (or "
                                "pip install -e '.[api]')") from exc
        return pandas.read_csv(io.StringIO(self.to_csv()))

    def __str__(self) -> str:
        # imported here, not at the top: loads numpy, kept out of light commands
        from detbench.comparison.tables import console_lines

        return "\n".join(console_lines(self.result))


def compare(reports: Sequence[Report | dict[str, Any] | str | Path], baseline: str | None = None,
            alpha: float | None = None, min_effect: float | None = None) -> Comparison:
    """Compare reports (BenchReports, report dicts, report files or folders of them) against `baseline`."""
    # imported here, not at the top: loads numpy, kept out of light commands
    from detbench.comparison import analysis
    from detbench.report.schema import validate_report

    entries, files = [], []
    for index, item in enumerate(reports):
        if isinstance(item, (str, Path)):
            files.append(Path(item))
            continue
        report = item.to_dict() if isinstance(item, Report) else item
        source = f"report {index + 1}"
        typed = Report.from_dict(validate_report(report, source))
        entries.append(analysis.Entry(path=Path(f"<{source}>"), report=typed, name=""))
    if files:
        entries += analysis.load_entries(analysis.report_files(files))
    if not entries:
        raise DetbenchError("detbench.comparison: no reports given")
    with _detbench_settings():
        result = analysis.build_comparison(analysis.name_entries(entries), baseline=baseline, alpha=alpha,
                                           min_effect=min_effect)
    return Comparison(result)
