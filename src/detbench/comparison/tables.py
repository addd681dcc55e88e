"""Render a Comparison: console tables (the user's layout), CSV, Markdown and LaTeX.

Text that comes from reports (model names, paths, hardware) passes through
`detbench.text` for the format at hand: console table cells before they are
aligned (and `comparison.run.run_compare` makes every printed line terminal-safe),
CSV cells, Markdown cells and notes, LaTeX cells and captions. Names and settings
are bounded before that (`text.bounded`, in `comparison.analysis`), paths in the
CSV to MAX_PATH_CHARS, so no row grows with what a report holds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

from detbench import text
from detbench.comparison import TABLE_FORMATS, caveats
from detbench.comparison.analysis import DELTA_KEYS, Comparison, Group, Row
from detbench.errors import DetbenchError
from detbench.files.atomic import write_text_atomic
from detbench.limits import MAX_PATH_CHARS
from detbench.report.model import Study
from detbench.stats import paired

TITLE = "Model performance benchmark comparison"


# ---------------------------------------------------------------- number formats

def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    shown = f"{value:.{digits}f}"
    return shown[1:] if shown.startswith("-") and float(shown) == 0 else shown  # no "-0.0"


def _gflops(value: float | None) -> str:
    return _fmt(value, 2 if value is None or value >= 1 else 3)


def _ci(row: Row) -> str:
    ci = row.verdict.ci_pct if row.verdict else None
    return "-" if ci is None else f"[{ci[0]:.1f}, {ci[1]:.1f}]"


def _tested_delta(row: Row) -> str:
    if row.is_baseline:
        return "0.0"
    delta = row.verdict.delta_pct if row.verdict else None
    return _fmt(delta, 1)


def _verdict(row: Row) -> str:
    if row.is_baseline:
        return "baseline"
    return row.verdict.verdict if row.verdict else "-"


def align_columns(header: list[str], rows: list[list[str]]) -> list[str]:
    """Model column left-aligned, the rest right-aligned, two spaces apart (the user's layout)."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = []
    for cells in [header, *rows]:
        parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        lines.append("  ".join(parts).rstrip())
    return lines


# ---------------------------------------------------------------- console

END_TO_END = "End-to-end median (ms)"
END_TO_END_NOTE = ("End-to-end: the median of --pipeline's total per batch (letterbox and transfer, forward, NMS and "
                   "Results), from the decoded original images; its Δ compares medians of runs that were not "
                   "interleaved (in a study each worker times its pipeline alone, at its end), so it has no "
                   "verdict; blank where a report ran without --pipeline.")


def base_table(group: Group) -> list[str]:
    header = ["Model", "Params (M)", "GFLOPs", "Latency Mean (ms)", "Latency P95 (ms)", "FPS (mean)",
              group.mem_label]
    if group.has_pipeline:
        header.append(END_TO_END)
    if group.has_accuracy:
        header += ["mAP50", "mAP50-95"]
    rows = []
    for row in group.rows:
        m = row.metrics
        cells = [text.terminal(row.name), _fmt(m["params_M"], 2), _gflops(m["gflops"]), _fmt(m["latency_mean_ms"], 2),
                 _fmt(m["latency_p95_ms"], 2), _fmt(m["fps_mean"], 1), _fmt(m["mem_MB"], 1)]
        if group.has_pipeline:
            cells.append(_fmt(m["end_to_end_median_ms"], 2))
        if group.has_accuracy:
            cells += [_fmt(m["mAP50"], 3), _fmt(m["mAP50_95"], 3)]
        rows.append(cells)
    return align_columns(header, rows)


def delta_table(group: Group) -> list[str]:
    header = ["Model", "Params Δ (%)", "Latency Δ (%)", "FPS Δ (%)", "Mem Δ (%)"]
    header += ["End-to-end Δ (%)"] if group.has_pipeline else []
    header += ["Tested Δ (%)", "CI (%)", "Conf.", "Verdict"]
    rows = []
    for row in group.rows:
        d, verdict = row.deltas, row.verdict
        confidence = f"{100 * verdict.confidence:.2f}%" if verdict and verdict.confidence else "-"
        shown = [key for key in DELTA_KEYS if key != "end_to_end" or group.has_pipeline]
        cells = [text.terminal(row.name), *(_fmt(d.get(key), 1) for key in shown)]
        rows.append(cells + [_tested_delta(row), _ci(row), confidence, _verdict(row)])
    return align_columns(header, rows)


def design_note(group: Group) -> str:
    """What the tested Δ, its interval and the verdict mean in this group (the footnote of every output)."""
    effect = f"{100 * group.min_effect:g} %"
    if group.study_id is None:
        why = f" ({group.untested_why})" if group.untested_why else ""
        return ("Tested Δ: ratio of median latencies. Verdict 'untested': these reports come from separate runs"
                f"{why}, whose noise cannot be compared; run them together with detbench ablate for verdicts.")
    study = (group.baseline.entry.report.study if group.baseline else None) or Study()
    workers, shared = study.workers_per_model, study.processes_hold_every_model is True
    design = paired.design(study.fresh_workers_each_look is True, process_component=workers != 1,
                           spending=study.get("look_alphas") is not None, shared=shared)
    single = "" if workers != 1 else (
        " One worker process: its luck cancels in each comparison, but no second process tests it; use "
        "--workers-per-model 2 or more for claims." if shared else
        " One worker process per model: luck of a process (memory layout, placement) is not measured and "
        "not in the intervals; use --workers-per-model 2 or more for claims.")
    return (f"Tested Δ: geometric mean of per-round latency ratios in interleaved study {group.study_id} "
            f"({design}); CI at the confidence shown (Holm- and look-adjusted, family alpha "
            f"{group.alpha:g}); slower / faster: the whole CI beyond ±{effect}; equivalent: the CI (at 1 - 2 "
            f"alpha, two one-sided tests) inside "
            f"±{effect}; undecided: neither.{single}")


def method_lines(group: Group) -> list[str]:
    lines = [design_note(group)] + ([END_TO_END_NOTE] if group.has_pipeline else [])
    reasons = [f"{row.name}: {row.verdict.reason}" for row in group.rows
               if row.verdict and row.verdict.reason and row.verdict.verdict != paired.UNTESTED]
    lines += [f"  {text.terminal(reason)}" for reason in reasons]
    unmeasured = [row.name for row in group.rows if row.metrics["mem_MB"] is None]
    if unmeasured and not group.on_gpu:
        lines.append(f"Mem is blank for {', '.join(text.terminal(name) for name in unmeasured)}: the report has no "
                     "model_memory_MB (made before detbench measured a model's own memory on CPU, or where Linux "
                     "would not reset the resident peak); re-run bench for it")
    recorded = [(row.name, caveat) for row in group.rows for caveat in row.entry.caveats()]
    if recorded:
        lines.append("Caveats recorded in the reports:")
        lines += [f"  {text.terminal(line)}" for line in caveats.grouped(recorded, len(group.rows))]
    return lines


def console_lines(comparison: Comparison) -> list[str]:
    lines = [TITLE]
    many = len(comparison.groups) > 1
    if many:
        lines.append(f"{len(comparison.groups)} groups of reports measured under different settings: "
                     "deltas are computed only within a group")
    for group in comparison.groups:
        if many:
            lines.append("")
            lines.append(f"Group {group.index} of {len(comparison.groups)}: {group.setting()}")
            if group.why:
                lines.append(f"  not comparable with group 1: {group.why}")
        else:
            lines.append(f"Setting: {group.setting()}")
        lines.append("Base metrics:")
        lines.extend(base_table(group))
        if group.baseline is None:
            lines.append(f"No change table: no model named {comparison.baseline_name!r} was measured under this "
                         "setting")
            continue
        lines.append("Change relative to baseline:")
        lines.extend(delta_table(group))
        lines.extend(method_lines(group))
    return lines


# ---------------------------------------------------------------- CSV

# the fields of the group's SettingKey the CSV holds, each in the column of its name
SETTING_COLUMNS = ["imgsz", "batch", "device", "precision", "threads", "hardware", "modes", "software", "backend",
                   "decoded_sha256"]
CSV_COLUMNS = ["group", "model", "report", "weights", *SETTING_COLUMNS, "params_M", "gflops", "latency_mean_ms",
               "latency_median_ms", "latency_p95_ms", "fps_mean", "mem_MB", "mem_kind"]
ACCURACY_COLUMNS = ["mAP50", "mAP50_95", "map_epoch", "map_source"]
DELTA_COLUMNS = ["baseline", "params_delta_pct", "latency_delta_pct", "fps_delta_pct", "mem_delta_pct",
                 "tested_delta_pct", "ci_low_pct", "ci_high_pct", "confidence", "verdict", "p_value", "n_rounds",
                 "decided_at_round", "statistic", "study", "reason"]


# last, so that the columns before them keep their places; filled only where a report ran --pipeline
PIPELINE_COLUMNS = ["end_to_end_median_ms", "end_to_end_delta_pct"]


def _path_text(path: object) -> str | None:
    """A path a report names, as the CSV holds it: whole up to the longest path (MAX_PATH_CHARS), UTF-8."""
    return None if path is None else text.bounded(path, MAX_PATH_CHARS)


def csv_text(comparison: Comparison) -> str:
    columns = CSV_COLUMNS + (ACCURACY_COLUMNS if comparison.has_accuracy else []) + DELTA_COLUMNS + PIPELINE_COLUMNS
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for group in comparison.groups:
        for row in group.rows:
            m, d = row.metrics, row.deltas
            record = {"group": group.index, "model": row.name, "report": text.no_surrogates(row.entry.path),
                      "weights": _path_text(row.entry.report.metadata.weights),
                      **{column: getattr(group.key, column) for column in SETTING_COLUMNS},
                      "mem_kind": "gpu peak allocated" if group.on_gpu else "model (weights + activations)"}
            record.update({key: m[key] for key in ("params_M", "gflops", "latency_mean_ms", "latency_median_ms",
                                                   "latency_p95_ms", "fps_mean", "mem_MB", "end_to_end_median_ms")})
            if comparison.has_accuracy:
                acc = row.entry.accuracy
                record.update({"mAP50": m["mAP50"], "mAP50_95": m["mAP50_95"],
                               "map_epoch": acc.epoch if acc else None,
                               "map_source": _path_text(acc.source) if acc else None})
            if group.baseline is not None:
                record.update({"baseline": group.baseline.name,
                               **{f"{key}_delta_pct": d.get(key) for key in DELTA_KEYS}})
            if row.is_baseline:
                record.update({"tested_delta_pct": 0.0, "verdict": "baseline", "study": group.study_id})
            elif row.verdict is not None:
                verdict, ci = row.verdict, row.verdict.ci_pct
                record.update({
                    "tested_delta_pct": verdict.delta_pct, "ci_low_pct": ci[0] if ci else None,
                    "ci_high_pct": ci[1] if ci else None, "confidence": verdict.confidence,
                    "verdict": verdict.verdict, "p_value": verdict.p_value, "n_rounds": verdict.n_rounds or None,
                    "decided_at_round": verdict.decided_at_round, "study": group.study_id,
                    "statistic": ("geometric mean of per-round ratios" if group.study_id else "ratio of medians"),
                    "reason": verdict.reason or None})
            writer.writerow({k: ("" if v is None else text.csv_cell(v)) for k, v in record.items()})
    return buffer.getvalue()


# ---------------------------------------------------------------- paper tables (Markdown, LaTeX)

def _paper_rows(group: Group, minus: str, name: Callable[[str], str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a paper table; model names through `name`, the format's own escaping."""
    header = ["Model", "Params (M)", "GFLOPs"]
    if group.has_accuracy:
        header += ["mAP50", "mAP50-95"]
    header += ["Latency mean (ms)", "Latency p95 (ms)", "FPS (mean)", group.mem_label]
    header += [END_TO_END] if group.has_pipeline else []
    with_deltas = group.baseline is not None
    if with_deltas:
        header += ["Δ Params (%)", "Δ FPS (%)", "Δ Mem (%)"]
        header += ["Δ End-to-end (%)"] if group.has_pipeline else []
        header += ["Tested Δ latency (%)", "CI (%)", "Verdict"]

    def num(value: float | None, digits: int) -> str:
        shown = _fmt(value, digits)
        return minus + shown[1:] if shown.startswith("-") and shown != "-" else shown

    rows = []
    for row in group.rows:
        m, d = row.metrics, row.deltas
        cells = [name(row.name), num(m["params_M"], 2), _gflops(m["gflops"])]
        if group.has_accuracy:
            cells += [num(m["mAP50"], 3), num(m["mAP50_95"], 3)]
        cells += [num(m["latency_mean_ms"], 2), num(m["latency_p95_ms"], 2), num(m["fps_mean"], 1),
                  num(m["mem_MB"], 1)]
        cells += [num(m["end_to_end_median_ms"], 2)] if group.has_pipeline else []
        if with_deltas:
            ci = row.verdict.ci_pct if row.verdict else None
            interval = "-" if ci is None else f"[{num(ci[0], 1)}, {num(ci[1], 1)}]"
            cells += [num(d.get("params"), 1), num(d.get("fps"), 1), num(d.get("mem"), 1)]
            cells += [num(d.get("end_to_end"), 1)] if group.has_pipeline else []
            cells += [num(row.verdict.delta_pct, 1) if row.verdict else ("0.0" if row.is_baseline else "-"),
                      interval, _verdict(row)]
        rows.append(cells)
    return header, rows


def _footnote(group: Group, escape: Callable[[str], str]) -> str:
    """The note under a paper table; text from reports passes through `escape`."""
    note = f"Setting: {escape(group.setting())}."
    if group.baseline is not None:
        note += f" Δ relative to {escape(group.baseline.name)}. {escape(design_note(group))}"
    if group.has_pipeline:
        note += f" {escape(END_TO_END_NOTE)}"
    return note


def markdown_text(comparison: Comparison) -> str:
    out = [f"## {TITLE}", ""]
    for group in comparison.groups:
        if len(comparison.groups) > 1:
            why = f" (differs from group 1: {text.markdown(group.why)})" if group.why else ""
            out += [f"### Group {group.index}{why}", ""]
        header, rows = _paper_rows(group, minus="−", name=text.markdown)
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join([":--"] + ["--:"] * (len(header) - 1)) + "|")
        out.extend("| " + " | ".join(cells) + " |" for cells in rows)
        out += ["", _footnote(group, text.markdown), ""]
    return "\n".join(out)


def _latex_ours(label: str) -> str:
    """A header or the note under a table in LaTeX: all of it escaped, then detbench's own symbols typeset."""
    return text.latex(label).replace("Δ", r"$\Delta$").replace("≥", r"$\geq$")


def latex_text(comparison: Comparison) -> str:
    out = ["% Requires \\usepackage{booktabs}"]
    for group in comparison.groups:
        header, rows = _paper_rows(group, minus="$-$", name=text.latex_cell)
        caption = _latex_ours(_footnote(group, str))
        out += [r"\begin{table}[t]", r"\centering", r"\small",
                r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
                " & ".join(_latex_ours(h) for h in header) + r" \\", r"\midrule"]
        out += [" & ".join(cells) + r" \\" for cells in rows]
        out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", r"\end{table}", ""]
    return "\n".join(out)


RENDERERS: dict[str, Callable[[Comparison], str]] = dict(zip(TABLE_FORMATS, (csv_text, markdown_text, latex_text),
                                                              strict=True))
SUFFIXES = dict(zip(TABLE_FORMATS, (".csv", ".md", ".tex"), strict=True))


def write_table(path: Path, content: str, fix: str = "choose another place with --output") -> None:
    """Write one table atomically; a failure (no space, read-only, no permission) is one line naming the path."""
    try:
        write_text_atomic(path, content)
    except OSError as exc:
        raise DetbenchError(f"{text.terminal(path)}: cannot write the table ({exc.strerror or exc}); free some "
                            f"space or {fix}") from exc
