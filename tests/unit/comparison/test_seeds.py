"""mAP across a model's trained seeds: each seed's best epoch, then mean, sample sd and count in every table."""

from __future__ import annotations

import csv
import io
import shutil
import statistics
from pathlib import Path

import pytest
from conftest import captured, make_report, save, spread

from detbench.comparison.analysis import build_comparison, load_entries, report_files
from detbench.comparison.tables import csv_text, latex_text, markdown_text

HEADER = "epoch,metrics/mAP50(B),metrics/mAP50-95(B)\n"
SEEDS = {0: [(0.50, 0.30), (0.60, 0.40)], 1: [(0.70, 0.45), (0.55, 0.35)], 2: [(0.40, 0.20), (0.66, 0.42)]}


def seeded_run(runs: Path, name: str, checkpoint: Path, seeds: dict[int, list[tuple[float, float]]]) -> Path:
    """RUNS/NAME/seedK/{weights/best.pt, results.csv} for each seed: one checkpoint copied, the epochs given."""
    for seed, epochs in seeds.items():
        run = runs / name / f"seed{seed}"
        (run / "weights").mkdir(parents=True)
        shutil.copy(checkpoint, run / "weights" / "best.pt")
        (run / "results.csv").write_text(HEADER + "".join(f"{k + 1},{a},{b}\n" for k, (a, b) in enumerate(epochs)))
    return runs / name / "seed0" / "weights" / "best.pt"


def test_each_seeds_best_epoch_is_averaged_with_its_sd_and_count(tmp_path, yaml_checkpoint):
    bench = tmp_path / "bench"
    save(bench, make_report("baseline", spread(5.0), weights=str(seeded_run(tmp_path, "baseline", yaml_checkpoint,
                                                                            SEEDS))))
    save(bench, make_report("ghost", spread(4.0), weights=str(seeded_run(tmp_path, "ghost", yaml_checkpoint,
                                                                         {0: [(0.5, 0.25)]}))))
    rows = {row.name: row for row in build_comparison(load_entries(report_files([bench]))).groups[0].rows}
    best = [max(epochs, key=lambda e: e[1]) for epochs in SEEDS.values()]  # Ultralytics 8.4: fitness = mAP50-95
    baseline, ghost = rows["baseline"], rows["ghost"]
    assert baseline.map50_mean == pytest.approx(statistics.fmean(a for a, _ in best))
    assert baseline.map50_95_sd == pytest.approx(statistics.stdev(b for _, b in best))
    assert baseline.map_seeds == 3 and [seed.epoch for seed in baseline.entry.accuracy.seeds] == [2, 1, 2]
    assert (ghost.map50_mean, ghost.map50_sd, ghost.map_seeds) == (0.5, None, 1)  # one seed: no spread

    _, lines, warnings = captured(report_paths_or_dir=bench)
    assert not warnings
    shown = f"{statistics.fmean(b for _, b in best):.3f} ± {statistics.stdev(b for _, b in best):.3f}"
    assert lines[3].split()[-2:] == ["mAP50", "mAP50-95"]  # the seed counts differ: each cell says its own
    assert next(line for line in lines if line.startswith("baseline ")).endswith(f"{shown} (n = 3)")
    assert next(line for line in lines if line.startswith("ghost ")).split("  ")[-1] == "0.250 (n = 1)"
    comparison = build_comparison(load_entries(report_files([bench])))
    table = {row["model"]: row for row in csv.DictReader(io.StringIO(csv_text(comparison)))}
    assert (table["baseline"]["map_seeds"], table["ghost"]["map_seeds"], table["ghost"]["mAP50_sd"]) == ("3", "1", "")
    assert f"| {shown} (n = 3) |" in markdown_text(comparison)
    assert shown.replace("±", r"$\pm$") + " (n = 3)" in latex_text(comparison)
