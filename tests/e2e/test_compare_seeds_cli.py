"""`detbench compare` of models trained with three seeds each: mAP as mean ± sd (n = 3) in every table, a seed of
another architecture refused, and the LaTeX table compiled by pdflatex."""

from __future__ import annotations

import csv
import shutil
import statistics
from pathlib import Path

import pytest
from conftest import make_report, one_line_error, run_command, save, spread, study_report

PDFLATEX = shutil.which("pdflatex")
PAPER = ("\\documentclass[twocolumn]{article}\n\\usepackage{booktabs}\n\\begin{document}\n\\input{comparison.tex}\n"
         "A paragraph of the paper.\n\\end{document}\n")


def seeded_reports(folder: Path, runs: Path) -> None:
    """Reports of baseline and ghost whose checkpoints are RUNS/NAME/seed0/weights/best.pt, as ablate benchmarks."""
    folder.mkdir()
    for name, center in (("baseline", 5.0), ("ghost", 4.0)):
        save(folder, make_report(name, spread(center), weights=str(runs / name / "seed0" / "weights" / "best.pt")))


def seed_maps(run: Path) -> tuple[list[float], list[float]]:
    """mAP50 and mAP50-95 of each seed's last (with one epoch: best) row of results.csv."""
    found = []
    for seed in (0, 1, 2):
        with open(run / f"seed{seed}" / "results.csv", newline="") as handle:
            last = [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(handle)][-1]
        found.append((float(last["metrics/mAP50(B)"]), float(last["metrics/mAP50-95(B)"])))
    return [a for a, _ in found], [b for _, b in found]


def test_map_of_three_trained_seeds_is_mean_sd_and_count_in_every_table(tmp_path, trained_seeds, cli):
    bench = tmp_path / "bench"
    seeded_reports(bench, trained_seeds)
    result = cli("compare", str(bench), "--table-format", "csv", "--table-format", "md", "--table-format", "latex")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    map50, map50_95 = seed_maps(trained_seeds / "baseline")
    shown = f"{statistics.fmean(map50_95):.3f} ± {statistics.stdev(map50_95):.3f}"

    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("Model") and "Params (M)" in line)
    assert header.endswith("mAP50 (n = 3)  mAP50-95 (n = 3)")
    assert next(line for line in lines if line.startswith("baseline ")).endswith(shown)
    assert any(line.startswith("mAP: mean ± sd over the trained seeds (n)") for line in lines)

    with open(bench / "comparison.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    for name in ("baseline", "ghost"):
        row = rows[name]
        assert float(row["mAP50"]) == pytest.approx(statistics.fmean(map50), abs=1e-9)
        assert float(row["mAP50_95_sd"]) == pytest.approx(statistics.stdev(map50_95), abs=1e-9)
        assert (row["map_seeds"], row["map_epoch"], row["map_source"]) == ("3", "", str(trained_seeds / name))

    markdown = (bench / "comparison.md").read_text()
    assert "| Model | Params (M) | GFLOPs | mAP50 (n = 3) | mAP50-95 (n = 3) | Latency median (ms) |" in markdown
    assert f"| ghost | 3.00 | 8.00 | {statistics.fmean(map50):.3f} ± " in markdown
    assert "mAP: mean ± sd over the trained seeds" in markdown
    latex = (bench / "comparison.tex").read_text()
    assert "mAP50 & mAP50-95" in latex and "(n = 3) & (n = 3)" in latex
    assert shown.replace("±", r"$\pm$") in latex


def test_a_seed_of_another_architecture_is_refused_in_one_line(tmp_path, trained_seeds, yaml_checkpoint, cli):
    runs = shutil.copytree(trained_seeds, tmp_path / "runs")
    shutil.copy(yaml_checkpoint, runs / "ghost" / "seed2" / "weights" / "best.pt")  # YOLOv8n for 80 classes
    seeded_reports(tmp_path / "bench", runs)
    result = cli("compare", str(tmp_path / "bench"), "--table-format", "md")
    assert result.returncode == 2 and result.stdout == ""
    assert one_line_error(result.stderr) == (
        f"error: {runs / 'ghost' / 'seed2'}: its weights/best.pt is another architecture than the benchmarked "
        f"{runs / 'ghost' / 'seed0' / 'weights' / 'best.pt'} (other layers or shapes), so its mAP is another "
        f"model's; move seed2 out of {runs / 'ghost'} or retrain it from the same model YAML")
    assert not (tmp_path / "bench" / "comparison.md").exists()

    (runs / "ghost" / "seed2" / "weights" / "best.pt").unlink()  # cannot be checked: no mAP, said, the rest shown
    result = cli("compare", str(tmp_path / "bench"))
    assert result.returncode == 0
    assert result.stderr.startswith(f"warning: no mAP for ghost: {runs / 'ghost' / 'seed2' / 'weights' / 'best.pt'}: "
                                    "file not found")
    assert "mAP50 (n = 3)" in result.stdout


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed (apt: texlive-latex-base "
                                             "texlive-latex-recommended): the LaTeX table is not compiled")
def test_the_latex_tables_compile_with_pdflatex(tmp_path, trained_seeds, cli):
    """Separate runs with mAP across seeds and a name full of LaTeX specials; an interleaved study with intervals
    and verdict marks. Each comparison.tex is \\input by a two-column paper and compiled."""
    bench = tmp_path / "bench"
    seeded_reports(bench, trained_seeds)
    save(bench, make_report("odd_#1&50%{x}~^\\", spread(6.0)))
    study = tmp_path / "study"
    study.mkdir()
    for seed, (name, factor) in enumerate((("baseline", 1.0), ("p2", 1.3), ("twin", 1.0))):
        save(study, study_report(name, factor, rounds=200, seed=seed))
    for folder in (bench, study):
        assert cli("compare", str(folder), "--table-format", "latex").returncode == 0
        (folder / "paper.tex").write_text(PAPER)
        result = run_command([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                              "paper.tex"], cwd=folder, timeout=120)
        assert result.returncode == 0, result.stdout[-3000:]
        assert (folder / "paper.pdf").read_bytes()[:5] == b"%PDF-"
        assert "Overfull" not in (folder / "paper.log").read_text(errors="replace")
    latex = (study / "comparison.tex").read_text()
    assert r"\begin{table*}" in latex and r"\toprule" in latex and r"$\uparrow$" in latex
    assert r"\caption{Latency of the models on Test CPU (cpu, 2 threads), fp32, imgsz 640, batch 1.}" in latex
