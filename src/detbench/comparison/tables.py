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
import math
from collections.abc import Callable
from pathlib import Path

from detbench import text
from detbench.comparison import TABLE_FORMATS, caveats
from detbench.comparison.analysis import DELTA_KEYS, DELTA_RATIO, DELTA_TESTED, Comparison, Group, Row
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


def _signed(value: float | None, digits: int) -> str:
    """A change: "+" before a positive one, "-" before a negative one, none before 0 as shown."""
    shown = _fmt(value, digits)
    return "+" + shown if value is not None and value > 0 and float(shown) != 0 else shown


def _gflops(value: float | None) -> str:
    return _fmt(value, 2 if value is None or value >= 1 else 3)


def _ci(row: Row, num: Callable[[float | None, int], str] = _signed) -> str:
    ci = row.latency_delta_ci_pct
    return "-" if ci is None else f"[{num(ci[0], 1)}, {num(ci[1], 1)}]"


def confidence_floor(confidence: float, decimals: int) -> float:
    """A confidence in %, rounded down: a table never claims more than the interval has."""
    scale = 10 ** decimals
    return math.floor(100 * confidence * scale + 1e-6) / scale


def _verdict(row: Row) -> str:
    if row.is_baseline:
        return "baseline"
    return row.verdict.verdict if row.verdict else "-"


def delta_label(group: Group) -> str:
    """What the group's one latency Δ is: tested in the baseline's study, else a ratio of medians."""
    return DELTA_TESTED if group.study_id is not None else DELTA_RATIO


RATIO_MARK = "†"  # a ratio of medians in a group whose others are tested
OUTSIDE_MARK = "‡"  # the ratio of the medians shown lies outside the tested Δ's CI
FPS_MARK = "§"  # the FPS Δ (means) points the other way than the tested latency Δ (paired ratios)


def _delta(row: Row, group: Group, num: Callable[[float | None, int], str] = _signed) -> str:
    """The row's latency Δ; marked † where it is a ratio of medians in a group whose others are tested, ‡ where
    the ratio of the medians shown lies outside its CI."""
    mark = RATIO_MARK if row.latency_delta_kind not in (None, delta_label(group)) else ""
    return num(row.latency_delta_pct, 1) + mark + (OUTSIDE_MARK if row.medians_outside_ci else "")


def seeds_in_header(group: Group) -> int | None:
    """The seed count every row with an mAP shares, shown once in the header; None when they differ."""
    counts = {row.map_seeds for row in group.rows if row.map_seeds is not None}
    return counts.pop() if len(counts) == 1 else None


def map_header(group: Group, name: str) -> str:
    seeds = seeds_in_header(group)
    return f"{name} (n = {seeds})" if seeds and seeds > 1 else name


def map_cell(row: Row, group: Group, mean: float | None, sd: float | None,
             num: Callable[[float | None, int], str] = _fmt, pm: str = "±") -> str:
    """mAP as mean ± sd over the seeds (the count in the header, or here where rows differ); '-' when unknown."""
    if mean is None:
        return "-"
    shown = num(mean, 3) + (f" {pm} {num(sd, 3)}" if sd is not None else "")
    return shown if seeds_in_header(group) is not None else f"{shown} (n = {row.map_seeds})"


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
    header = ["Model", "Params (M)", "GFLOPs", "Latency Mean (ms)", "Latency Median (ms)", "Latency P95 (ms)", "n",
              "FPS (mean)", group.mem_label]
    if group.has_pipeline:
        header.append(END_TO_END)
    if group.has_accuracy:
        header += [map_header(group, "mAP50"), map_header(group, "mAP50-95")]
    rows = []
    for row in group.rows:
        m = row.metrics
        cells = [text.terminal(row.name), _fmt(m["params_M"], 2), _gflops(m["gflops"]),
                 _fmt(m["latency_mean_ms"], 2) + ("*" if row.mean_above_p95 else ""), _fmt(row.median_ms, 2),
                 _fmt(m["latency_p95_ms"], 2), str(row.n_samples), _fmt(m["fps_mean"], 1), _fmt(m["mem_MB"], 1)]
        if group.has_pipeline:
            cells.append(_fmt(m["end_to_end_median_ms"], 2))
        if group.has_accuracy:
            cells += [map_cell(row, group, row.map50_mean, row.map50_sd),
                      map_cell(row, group, row.map50_95_mean, row.map50_95_sd)]
        rows.append(cells)
    return align_columns(header, rows)


def base_notes(group: Group) -> list[str]:
    """What the base table's marks mean: a mean above p95 (a burst), mAP across seeds."""
    lines = []
    for row in (row for row in group.rows if row.mean_above_p95):
        m = row.metrics
        lines.append(f"* {text.terminal(row.name)}: mean {_fmt(m['latency_mean_ms'], 2)} ms above p95 "
                     f"{_fmt(m['latency_p95_ms'], 2)} ms: a burst of a few very slow iterations (max "
                     f"{_fmt(m['latency_max_ms'], 2)} ms) pulls the mean up; the median and the latency Δ are robust "
                     "to it")
    if any((row.map_seeds or 0) > 1 for row in group.rows):
        lines.append("mAP: mean ± sd over the trained seeds (n), each at its best epoch (as Ultralytics picks "
                     "best.pt); latency measured once, on the benchmarked seed (same architecture)")
    return lines


def delta_table(group: Group) -> list[str]:
    header = ["Model", "Params Δ (%)", f"Latency Δ (%, {delta_label(group)})", "FPS Δ (%)", "Mem Δ (%)"]
    header += ["End-to-end Δ (%)"] if group.has_pipeline else []
    header += ["CI (%)", "Conf."] + (["Decided at round"] if group.study_id is not None else []) + ["Verdict"]
    rows = []
    for row in group.rows:
        d, verdict = row.deltas, row.verdict
        confidence = f"{confidence_floor(verdict.confidence, 2):.2f}%" if verdict and verdict.confidence else "-"
        fps = _signed(d.get("fps"), 1) + (FPS_MARK if row.fps_delta_contradicts else "")
        cells = [text.terminal(row.name), _signed(d.get("params"), 1), _delta(row, group), fps,
                 _signed(d.get("mem"), 1)]
        cells += [_signed(d.get("end_to_end"), 1)] if group.has_pipeline else []
        decided = [_fmt_round(row.decided_at_round)] if group.study_id is not None else []
        rows.append(cells + [_ci(row), confidence, *decided, _verdict(row)])
    return align_columns(header, rows)


def _fmt_round(value: int | None) -> str:
    return "-" if value is None else str(value)


def one_worker_caveat(group: Group) -> str:
    """The design's caveat when the study ran one worker process ("" otherwise, and for separate runs)."""
    study = (group.baseline.entry.report.study if group.baseline else None) or Study()
    if group.study_id is None or study.workers_per_model != 1:
        return ""
    if study.processes_hold_every_model is True:
        return ("One worker process: its luck cancels in each comparison, but no second process tests it; use "
                "--workers-per-model 2 or more for claims.")
    return ("One worker process per model: luck of a process (memory layout, placement) is not measured and "
            "not in the intervals; use --workers-per-model 2 or more for claims.")


def design_note(group: Group) -> str:
    """What the tested Δ, its interval and the verdict mean in this group (the footnote of every output)."""
    effect = f"{100 * group.min_effect:g} %"
    if group.study_id is None:
        why = f" ({group.untested_why})" if group.untested_why else ""
        return ("Latency Δ: ratio of median latencies. Verdict 'untested': these reports come from separate runs"
                f"{why}, whose noise cannot be compared; run them together with detbench ablate for verdicts.")
    study = (group.baseline.entry.report.study if group.baseline else None) or Study()
    workers, shared = study.workers_per_model, study.processes_hold_every_model is True
    design = paired.design(study.fresh_workers_each_look is True, process_component=workers != 1,
                           spending=study.get("look_alphas") is not None, shared=shared)
    caveat = one_worker_caveat(group)
    single = f" {caveat}" if caveat else ""
    return (f"Latency Δ (tested): trimmed geometric mean of paired per-round latency ratios (not the ratio of the "
            f"medians shown) in interleaved study {group.study_id} ({design}), frozen at the round its verdict was "
            "decided (undecided: every round up to the last look); CI at the confidence shown (Holm- and "
            "look-adjusted, family alpha "
            f"{group.alpha:g}); slower / faster: the whole CI beyond {_directional_bound(group)}; equivalent: "
            f"the CI (at 1 - 2 alpha, two one-sided tests) inside ±{effect}; undecided: neither.{single}")


def _directional_bound(group: Group) -> str:
    """What a slower or faster CI must lie beyond: 0 in studies whose processes hold every model, the margin in
    studies recorded before (`paired.claim_p_values`)."""
    study = (group.baseline.entry.report.study if group.baseline else None) or Study()
    return "0" if study.processes_hold_every_model is True else f"±{100 * group.min_effect:g} %"


MEDIANS_NOTE = ("the medians use every round, the Δ stops at the round its verdict was decided, and per-round "
                "pairing removes drift the medians keep")
FPS_NOTE = ("FPS (mean) = 1000 / mean latency × batch (the specification's definition); FPS Δ is a change of means, "
            "as is the CSV's latency_delta_pct (the specification's Latency Δ); the tested Δ is the CSV's "
            "tested_delta_pct")
N_NOTE = "n: the timed samples behind the latency columns (in a study, one per round and worker process)"


def medians_outside_note(group: Group, named: bool) -> str:
    """The ‡ note: that (and, `named`, for which rows) the ratio of the medians shown lies outside the Δ's CI, and
    why that can be; "" when no row's does."""
    outside = [row for row in group.rows if row.medians_outside_ci]
    if not outside:
        return ""
    which = ", ".join(f"{text.terminal(row.name)} {_signed(row.medians_delta_pct, 1)} %" for row in outside)
    return (f"{OUTSIDE_MARK} ratio of the medians shown outside the Δ's CI" + (f" ({which})" if named else "")
            + f": {MEDIANS_NOTE}.")


def fps_contradiction_lines(group: Group) -> list[str]:
    """The § notes: rows whose FPS Δ points the other way than their tested latency Δ, and why."""
    lines = []
    for row in (row for row in group.rows if row.fps_delta_contradicts):
        m = row.metrics
        lines.append(f"{FPS_MARK} {text.terminal(row.name)}: FPS Δ {_signed(row.deltas.get('fps'), 1)} % and "
                     f"latency Δ {_signed(row.latency_delta_pct, 1)} % point opposite ways: FPS comes from the "
                     f"mean latency ({_fmt(m['latency_mean_ms'], 2)} ms, median {_fmt(row.median_ms, 2)} ms), "
                     "which a few slow iterations pull up; the Δ from paired per-round ratios, robust to them")
    return lines


def method_lines(group: Group) -> list[str]:
    lines = [design_note(group)] + ([END_TO_END_NOTE] if group.has_pipeline else [])
    lines += [N_NOTE, FPS_NOTE]
    if any(RATIO_MARK in _delta(row, group) for row in group.rows):
        lines.append(f"{RATIO_MARK} ratio of medians: not part of the baseline's study {group.study_id}, so not tested")
    outside = medians_outside_note(group, named=True)
    lines += [outside] if outside else []
    lines += fps_contradiction_lines(group)
    reasons = [(row.name, row.verdict.reason) for row in group.rows
               if row.verdict and row.verdict.reason and row.verdict.verdict != paired.UNTESTED]
    lines += [f"  {text.terminal(reason)}" for reason in caveats.grouped(reasons, len(group.rows) - 1)]
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
        lines.extend(base_notes(group))
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
# across several trained seeds: mAP50 and mAP50_95 are the means, map_source the model's folder of seed*/
ACCURACY_COLUMNS = ["mAP50", "mAP50_95", "map_epoch", "map_source", "mAP50_sd", "mAP50_95_sd", "map_seeds"]
DELTA_COLUMNS = ["baseline", "params_delta_pct", "latency_delta_pct", "fps_delta_pct", "mem_delta_pct",
                 "tested_delta_pct", "ci_low_pct", "ci_high_pct", "confidence", "verdict", "p_value", "n_rounds",
                 "decided_at_round", "statistic", "study", "reason"]


# last, so that the columns before them keep their places; filled only where a report ran --pipeline
PIPELINE_COLUMNS = ["end_to_end_median_ms", "end_to_end_delta_pct"]
# after them: the samples behind the latency columns, and the ratio of the medians shown (%), which a tested
# Δ (tested_delta_pct, paired per-round ratios up to the round decided_at_round) need not equal;
# latency_delta_pct is the specification's change of the mean
SAMPLE_COLUMNS = ["n_samples", "medians_delta_pct", "medians_outside_ci"]


def _path_text(path: object) -> str | None:
    """A path a report names, as the CSV holds it: whole up to the longest path (MAX_PATH_CHARS), UTF-8."""
    return None if path is None else text.bounded(path, MAX_PATH_CHARS)


def csv_text(comparison: Comparison) -> str:
    columns = (CSV_COLUMNS + (ACCURACY_COLUMNS if comparison.has_accuracy else []) + DELTA_COLUMNS + PIPELINE_COLUMNS
               + SAMPLE_COLUMNS)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for group in comparison.groups:
        for row in group.rows:
            m, d = row.metrics, row.deltas
            record = {"group": group.index, "model": row.name, "report": text.no_surrogates(row.entry.path),
                      "weights": _path_text(row.entry.report.metadata.weights),
                      **{column: getattr(group.key, column) for column in SETTING_COLUMNS},
                      "mem_kind": "gpu peak allocated" if group.on_gpu else "model (weights + activations)",
                      "n_samples": row.n_samples}
            record.update({key: m[key] for key in ("params_M", "gflops", "latency_mean_ms", "latency_median_ms",
                                                   "latency_p95_ms", "fps_mean", "mem_MB", "end_to_end_median_ms")})
            if comparison.has_accuracy:
                acc = row.entry.accuracy
                record.update({"mAP50": row.map50_mean, "mAP50_95": row.map50_95_mean,
                               "map_epoch": acc.epoch if acc else None,
                               "map_source": _path_text(acc.source) if acc else None, "mAP50_sd": row.map50_sd,
                               "mAP50_95_sd": row.map50_95_sd, "map_seeds": row.map_seeds})
            if group.baseline is not None:
                record.update({"baseline": group.baseline.name,
                               **{f"{key}_delta_pct": d.get(key) for key in DELTA_KEYS},
                               "medians_delta_pct": row.medians_delta_pct,
                               "medians_outside_ci": row.medians_outside_ci if row.latency_delta_ci_pct else None})
            if row.is_baseline:
                record.update({"tested_delta_pct": 0.0, "verdict": "baseline", "study": group.study_id})
            elif row.verdict is not None:
                verdict, ci = row.verdict, row.verdict.ci_pct
                record.update({
                    "tested_delta_pct": verdict.delta_pct, "ci_low_pct": ci[0] if ci else None,
                    "ci_high_pct": ci[1] if ci else None, "confidence": verdict.confidence,
                    "verdict": verdict.verdict, "p_value": verdict.p_value, "n_rounds": verdict.n_rounds or None,
                    "decided_at_round": verdict.decided_at_round, "study": group.study_id,
                    "statistic": ("trimmed geometric mean of paired per-round ratios" if row.in_study else DELTA_RATIO),
                    "reason": verdict.reason or None})
            writer.writerow({k: ("" if v is None else text.csv_cell(v)) for k, v in record.items()})
    return buffer.getvalue()


# ---------------------------------------------------------------- paper tables (Markdown, LaTeX)

MINUS = "\u2212"  # the minus sign of a paper table's and the page's numbers (a hyphen breaks and reads as a dash)


def paper_number(value: float | None, digits: int) -> str:
    """A number in a paper table or on the page: with a true minus sign (−), typeset as $-$ in LaTeX."""
    shown = _fmt(value, digits)
    return MINUS + shown[1:] if shown.startswith("-") and shown != "-" else shown


def paper_signed(value: float | None, digits: int) -> str:
    """A change in a paper table or on the page: signed (+ or a true minus), none before 0 as shown."""
    shown = _signed(value, digits)
    return MINUS + shown[1:] if shown.startswith("-") and shown != "-" else shown


VERDICT_MARKS = {"faster": "↓", "slower": "↑", "equivalent": "≈", "undecided": "?", paired.UNTESTED: "–",
                 "baseline": ""}


def _paper_rows(group: Group, name: Callable[[str], str],
                verdict: Callable[[str], str]) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """Header (each column's name and its unit line) and rows of a compact paper table (the CSV has every column):
    model names through `name` (the format's escaping), verdicts through `verdict`."""
    num, signed = paper_number, paper_signed
    tested = group.study_id is not None
    seeds = seeds_in_header(group)
    per_seeds = f"(n = {seeds})" if seeds and seeds > 1 else ""
    header = [("Model", ""), ("Params", "(M)"), ("GFLOPs", "")]
    header += [("mAP50", per_seeds), ("mAP50-95", per_seeds)] if group.has_accuracy else []
    header += [("Latency", "median (ms)"), ("n", "")]
    header += [("End-to-end", "median (ms)")] if group.has_pipeline else []
    if group.baseline is not None:
        header += [("Δ latency", "(%) [CI]" if tested else "(%)")]
        header += [("Decided", "(round)"), ("Verdict", "")] if tested else []
    rows = []
    for row in group.rows:
        cells = [name(row.name), num(row.metrics["params_M"], 2), _gflops(row.metrics["gflops"])]
        if group.has_accuracy:
            cells += [map_cell(row, group, row.map50_mean, row.map50_sd, num),
                      map_cell(row, group, row.map50_95_mean, row.map50_95_sd, num)]
        cells += [num(row.median_ms, 2), str(row.n_samples)]
        cells += [num(row.metrics["end_to_end_median_ms"], 2)] if group.has_pipeline else []
        if group.baseline is not None:
            ci = row.latency_delta_ci_pct
            cells.append(_delta(row, group, signed) + (f" {_ci(row, signed)}" if ci else ""))
            if tested:
                cells += [_fmt_round(row.decided_at_round).replace("-", "–"),
                          verdict("baseline" if row.is_baseline else _verdict(row))]
        rows.append(cells)
    return header, rows


def caption(group: Group, count: int) -> str:
    """One line naming the setting (the method is in the note under the table)."""
    which = f" (group {group.index} of {count})" if count > 1 else ""
    return f"Latency of the models on {group.headline()}{which}."


def paper_note(group: Group, legend: bool) -> str:
    """The short method under a paper table: what the latency, the Δ, the verdicts and the mAP are."""
    parts = ["Latency: median of the n timed iterations" + (" (one per round and worker process)."
                                                              if group.study_id is not None else ".")]
    if group.baseline is not None and group.study_id is not None:
        tested = [row.verdict.confidence for row in group.rows if row.in_study and row.verdict
                  and not row.is_baseline and row.verdict.confidence]
        level = f" at ≥ {confidence_floor(min(tested), 1):g} %" if tested else ""
        effect = f"{100 * group.min_effect:g} %"
        parts.append(f"Δ: change against {group.baseline.name}: trimmed geometric mean of paired per-round ratios "
                     "in one interleaved run (not the ratio of the medians shown), up to the round its verdict was "
                     f"decided (undecided: every round); CI{level}, adjusted for the models compared and the looks "
                     "taken.")
        outside = medians_outside_note(group, named=False)
        parts += [outside] if outside else []
        marks = VERDICT_MARKS if legend else dict.fromkeys(VERDICT_MARKS, "")
        untested = any(row.verdict and row.verdict.verdict == paired.UNTESTED for row in group.rows)
        parts.append(" ".join(f"Verdict: {marks['faster']} faster / {marks['slower']} slower, the CI beyond "
                              f"{_directional_bound(group)}; {marks['equivalent']} equivalent, within ±{effect}; "
                              f"{marks['undecided']} undecided, neither".split())
                     + (f"; {marks[paired.UNTESTED]} untested." if legend and untested else "."))
    elif group.baseline is not None:
        parts.append(f"Δ: ratio of medians against {group.baseline.name}, from separate runs (not tested).")
    if any(RATIO_MARK in _delta(row, group) for row in group.rows):
        parts.append(f"{RATIO_MARK} ratio of medians: not part of the study.")
    if group.has_pipeline:
        parts.append("End-to-end: median of preprocessing, inference and postprocessing (--pipeline).")
    seeds = [row.map_seeds for row in group.rows if row.map_seeds]
    if seeds and max(seeds) > 1:
        parts.append("mAP: mean ± sd over the trained seeds, each at its best epoch.")
    elif seeds:
        parts.append("mAP: the checkpoint's best epoch.")
    caveat = one_worker_caveat(group)
    parts += [caveat] if caveat else []
    parts += busy_host_lines(group)
    return " ".join(parts)


BUSY_HOST = ("CPU busy", "CPU contended", "GPU busy")  # the reports' warnings that other programs competed


def busy_host_lines(group: Group) -> list[str]:
    """The reports' busy-host caveats, each in short (its first clause) and said once for the models that have
    it (`caveats.grouped`), with what it means for the latency."""
    busy = [(row.name, caveat.split(";")[0].split(", though")[0]) for row in group.rows
            for caveat in row.entry.caveats() if caveat.startswith(BUSY_HOST)]
    return [f"{line.rstrip('.')}; latency may be inflated." for line in caveats.grouped(busy, len(group.rows))]


def markdown_text(comparison: Comparison) -> str:
    out = [f"## {TITLE}", ""]
    for group in comparison.groups:
        header, rows = _paper_rows(group, text.markdown, lambda verdict: verdict)
        out += [f"**{text.markdown(caption(group, len(comparison.groups)))}**", ""]
        out.append("| " + " | ".join(f"{top} {unit}".strip() for top, unit in header) + " |")
        out.append("|" + "|".join([":--"] + ["--:"] * (len(header) - 1)) + "|")
        out.extend("| " + " | ".join(cells) + " |" for cells in rows)
        out += ["", text.markdown(paper_note(group, legend=False)), ""]
    return "\n".join(out)


LATEX_SYMBOLS = {"Δ": r"$\Delta$", "≥": r"$\geq$", "±": r"$\pm$", "↓": r"$\downarrow$", "↑": r"$\uparrow$",
                 "≈": r"$\approx$", "†": r"\dag{}", "‡": r"\ddag{}", "§": r"\S{}", "–": "--", "−": "$-$"}


def _latex_ours(label: str) -> str:
    """Text in LaTeX: all of it escaped, then detbench's own symbols typeset (the names in it are outside text)."""
    # "--" of a flag stays two hyphens (not an en dash)
    escaped = "".join(LATEX_SYMBOLS.get(ch, ch) for ch in text.latex(label).replace("--", "-{}-"))
    return "--" if escaped == "-" else escaped.replace(r" \%", r"~\%")  # "2 %" never broken over lines


def _latex_name(name: str) -> str:
    """A model name in a LaTeX cell: typewriter, its underscores the font's own glyph (\\_ draws a low rule)."""
    return r"\texttt" + text.latex_cell(name).replace(r"\_", r"\char95{}")


def latex_text(comparison: Comparison) -> str:
    """One booktabs table per group: caption naming the setting, the compact columns, the method in a note."""
    out = ["% detbench comparison tables: \\usepackage{booktabs} in the preamble; every column is in the CSV",
           r"\ifdefined\detbenchtable\else\newsavebox{\detbenchtable}\fi"]
    for group in comparison.groups:
        header, rows = _paper_rows(group, _latex_name,
                                   lambda verdict: VERDICT_MARKS.get(verdict, "–"))
        tested = header[-1][0] == "Verdict"
        columns = "l" + "r" * (len(header) - 1 - tested) + "c" * tested
        # about 50 characters of \small text fill one column of a two-column paper; wider spans both
        wide = sum(max(len(top), len(unit), *(len(row[j]) for row in rows)) + 2
                   for j, (top, unit) in enumerate(header)) > 50
        float_env = "table*" if wide else "table"
        out += [rf"\begin{{{float_env}}}[t]", r"\centering", r"\small", r"\setlength{\tabcolsep}{4pt}",
                rf"\caption{{{_latex_ours(caption(group, len(comparison.groups)))}}}",
                rf"\sbox{{\detbenchtable}}{{\begin{{tabular}}{{{columns}}}", r"\toprule",
                " & ".join(_latex_ours(top) for top, _ in header) + r" \\"]
        if any(unit for _, unit in header):
            out.append(" & ".join(_latex_ours(unit) for _, unit in header) + r" \\")
        out.append(r"\midrule")
        out += [" & ".join(_latex_ours(cell) if k else cell for k, cell in enumerate(cells)) + r" \\"
                for cells in rows]
        out += [r"\bottomrule", r"\end{tabular}}", r"\usebox{\detbenchtable}\par\smallskip",
                rf"\parbox{{\wd\detbenchtable}}{{\footnotesize\raggedright "
                rf"{_latex_ours(paper_note(group, legend=True))}}}",
                rf"\end{{{float_env}}}", ""]
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
