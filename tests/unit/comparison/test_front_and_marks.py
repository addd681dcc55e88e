"""What the tables and plots say beside the numbers: n and the round a verdict was decided, the ratio of the
medians shown against the tested Δ's CI, FPS against the tested Δ, signs, and when the Pareto front is established
by the verdicts (`analysis.front_not_established_why`, shared with the page)."""

from __future__ import annotations

import pytest
from conftest import make_report, save, spread, study_report

from detbench.comparison import plots, tables
from detbench.comparison.analysis import (
    build_comparison,
    front_established,
    front_not_established_why,
    load_entries,
    report_files,
)

GFLOPS = {"baseline": 8.0, "p2": 12.0, "twin": 4.0}


@pytest.fixture
def study(tmp_path):
    """A study of baseline, p2 (60 % slower, decided) and twin (the baseline's speed), twin the cheapest."""
    for seed, (name, factor) in enumerate((("baseline", 1.0), ("p2", 1.6), ("twin", 1.0))):
        report = study_report(name, factor, seed=seed)
        report["model_complexity"]["gflops"] = GFLOPS[name]
        save(tmp_path, report)
    return tmp_path


def rows_of(comparison):
    return {row.name: row for row in comparison.groups[0].rows}


def gflops(row):
    return row.metrics["gflops"]


def test_rows_say_their_samples_the_round_decided_and_the_ratio_of_their_medians(study):
    comparison = build_comparison(load_entries(report_files([study]), print))
    rows = rows_of(comparison)
    p2 = rows["p2"]
    assert p2.verdict.verdict == "slower" and p2.decided_at_round == p2.verdict.decided_at_round == 60
    assert p2.n_samples == 120 and p2.tested_rounds == 60  # two workers, one turn each per round
    assert p2.medians_delta_pct == pytest.approx(100 * (p2.median_ms / rows["baseline"].median_ms - 1))
    assert not p2.medians_outside_ci and not p2.fps_delta_contradicts
    assert rows["baseline"].decided_at_round is None and rows["baseline"].medians_delta_pct == 0.0

    # the medians moved by what the paired Δ removes; the FPS (from means) the other way than the Δ
    p2.metrics["latency_median_ms"] = 3 * rows["baseline"].median_ms
    p2.deltas["fps"] = 4.0
    assert p2.medians_outside_ci and p2.fps_delta_contradicts
    lines = tables.console_lines(comparison)
    outside = next(line for line in lines if line.startswith("‡ ratio of the medians shown outside the Δ's CI (p2 "
                                                             "+200.0 %"))
    assert outside.endswith("the medians use every round, the Δ stops at the round its verdict was decided, and "
                            "per-round pairing removes drift the medians keep.")
    assert any(line.startswith("§ p2: FPS Δ +4.0 % and latency Δ +") for line in lines)
    assert "Decided at round" in next(line for line in lines if line.startswith("Model") and "Params Δ" in line)
    assert any(line.startswith("FPS (mean) = 1000 / mean latency × batch") for line in lines)
    markdown = tables.markdown_text(comparison)
    assert "| n | Δ latency (%) [CI] | Decided (round) | Verdict |" in markdown
    low, high = p2.latency_delta_ci_pct
    assert f"‡ [+{low:.1f}, +{high:.1f}] | 60 | slower |" in markdown  # every change and bound signed
    assert "‡ ratio of the medians shown outside the Δ's CI: the medians use every round" in markdown
    latex = tables.latex_text(comparison)
    assert r"\ddag{}" in latex and r"\texttt{p2}" in latex
    record = next(r for r in tables.csv_text(comparison).splitlines() if r.startswith("1,p2,"))
    assert record.endswith(",120,200.0,True")  # n_samples, medians_delta_pct, medians_outside_ci


def test_the_paper_note_rounds_the_confidence_down_and_carries_the_hosts_and_designs_caveats(study):
    comparison = build_comparison(load_entries(report_files([study]), print))
    group = comparison.groups[0]
    for row in group.rows:
        row.entry.report.warnings = ["CPU busy: tasks waited for a core during 90 % of the timed loop; 3 runnable "
                                     "task(s) of other programs on 2 core(s); other programs compete"]
    group.baseline.entry.report.study["workers_per_model"] = 1
    group.baseline.entry.report.study["processes_hold_every_model"] = True
    tested = [row.verdict for row in group.rows if not row.is_baseline]
    tested[0].confidence, tested[1].confidence = 0.97959, 0.999
    note = tables.paper_note(group, legend=False)
    assert "CI at ≥ 97.9 %" in note  # never more than the lowest confidence
    assert "One worker process: its luck cancels in each comparison" in note
    assert note.endswith("CPU busy: tasks waited for a core during 90 % of the timed loop (all 3 models); latency "
                         "may be inflated.")
    assert "-{}-workers-per-model" in tables.latex_text(comparison)  # a flag's two hyphens, not an en dash


def test_the_front_is_established_only_when_the_verdicts_decide_every_relation_it_rests_on(study, tmp_path):
    comparison = build_comparison(load_entries(report_files([study]), print))
    group, rows = comparison.groups[0], rows_of(comparison)
    medians = {"baseline": 10.0, "p2": 16.0, "twin": 9.0}
    for name, row in rows.items():
        row.metrics["latency_median_ms"] = medians[name]
    rows["twin"].verdict.verdict = "faster"  # twin: cheapest and faster; dominates both, decided
    assert front_not_established_why(group, gflops, maximize_x=False) == ""
    assert front_established(group, gflops, maximize_x=False)

    legends = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "save", lambda fig, path: legends.update(
            {path.name: [t.get_text() for t in fig.axes[0].get_legend().get_texts()]} if fig.axes[0].get_legend()
            else {}))
        plots.write_plots(comparison, tmp_path / "plots")
    assert legends["latency_vs_gflops.png"][-1] == "Pareto front (established by the verdicts)"

    rows["twin"].verdict.verdict = "undecided"  # the medians' front is the same, but nothing shows twin faster
    assert "beats baseline" in front_not_established_why(group, gflops, maximize_x=False)
    rows["twin"].metrics["latency_median_ms"] = 11.0  # now a trade-off: twin cheaper, baseline faster, untested
    assert front_not_established_why(group, gflops, maximize_x=False) == (
        "no verdict shows baseline faster than twin, which is as good or better on the other axis")
    rows["twin"].verdict.verdict = "slower"  # decided: the trade-off is established
    assert front_established(group, gflops, maximize_x=False)


def test_separate_runs_establish_no_front(tmp_path):
    save(tmp_path, make_report("baseline", spread(5.0), gflops=8.0))
    save(tmp_path, make_report("ghost", spread(4.0), gflops=6.0))
    group = build_comparison(load_entries(report_files([tmp_path]), print)).groups[0]
    assert front_not_established_why(group, gflops, maximize_x=False) == (
        "the reports come from separate runs, so no latency difference was tested")
