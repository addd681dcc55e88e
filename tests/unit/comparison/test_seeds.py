"""mAP across a model's trained seeds: each seed's best epoch, then mean, sample sd and count in every table."""

from __future__ import annotations

import csv
import io
import shutil
import statistics
from pathlib import Path

import pytest
from conftest import captured, make_report, one_line_error, save, spread

from detbench.comparison import accuracy
from detbench.comparison.accuracy import AccuracyReader, seed_runs
from detbench.comparison.analysis import build_comparison, load_entries, report_files
from detbench.comparison.tables import csv_text, latex_text, markdown_text
from detbench.errors import DetbenchError
from detbench.limits import MAX_TRAINED_SEEDS

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


def test_at_most_64_seed_folders_and_no_symbolic_link_among_them(tmp_path):
    for seed in range(MAX_TRAINED_SEEDS):
        (tmp_path / "m" / f"seed{seed}").mkdir(parents=True)
        (tmp_path / "m" / f"seed{seed}" / "results.csv").write_text(HEADER)
    assert len(seed_runs(tmp_path / "m" / "seed0")) == MAX_TRAINED_SEEDS
    shutil.copytree(tmp_path / "m" / "seed0", tmp_path / "m" / f"seed{MAX_TRAINED_SEEDS}")
    with pytest.raises(DetbenchError) as raised:
        seed_runs(tmp_path / "m" / "seed0")
    assert one_line_error(raised) == (f"{tmp_path / 'm'}: more than {MAX_TRAINED_SEEDS} seed folders or 10,000 "
                                      "entries; keep only the trained seed*/ folders")

    (tmp_path / "n" / "seed0").mkdir(parents=True)
    (tmp_path / "n" / "seed0" / "results.csv").write_text(HEADER)
    (tmp_path / "n" / "seed1").symlink_to("/")  # any folder on the machine, or another seed counted twice
    with pytest.raises(DetbenchError) as raised:
        seed_runs(tmp_path / "n" / "seed0")
    assert one_line_error(raised) == (f"{tmp_path / 'n' / 'seed1'}: a symbolic link, not a seed folder of its own; "
                                      f"replace it with the seed's own folder or move it out of {tmp_path / 'n'}")


def test_a_symbolic_link_seed_is_a_warning_and_no_map_for_its_model(tmp_path, yaml_checkpoint):
    bench = tmp_path / "bench"
    save(bench, make_report("baseline", spread(5.0), weights=str(seeded_run(tmp_path, "baseline", yaml_checkpoint,
                                                                            SEEDS))))
    (tmp_path / "baseline" / "seed3").symlink_to(tmp_path / "baseline" / "seed1")
    _, lines, warnings = captured(report_paths_or_dir=bench)
    assert warnings == [f"no mAP for baseline: {tmp_path / 'baseline' / 'seed3'}: a symbolic link, not a seed folder "
                        f"of its own; replace it with the seed's own folder or move it out of "
                        f"{tmp_path / 'baseline'}"]
    assert "(n = " not in "\n".join(lines)


def test_the_seeds_checkpoints_are_read_up_to_a_budget_of_their_pickles(tmp_path, yaml_checkpoint, monkeypatch):
    bench = tmp_path / "bench"
    two = {seed: SEEDS[seed] for seed in (0, 1)}
    save(bench, make_report("baseline", spread(5.0), weights=str(seeded_run(tmp_path, "baseline", yaml_checkpoint,
                                                                            two))))
    report = load_entries(report_files([bench]))[0].report
    reader = AccuracyReader()
    assert reader.accuracy_for(report).n_seeds == 2
    assert 0 < reader.checkpoint_bytes_read < 2 * yaml_checkpoint.stat().st_size / 10  # zip directories, pickles

    monkeypatch.setattr(accuracy, "MAX_SEED_CHECKPOINT_TOTAL_BYTES", 1)  # the benchmarked seed0 read, seed1 not
    with pytest.raises(DetbenchError) as raised:
        AccuracyReader().accuracy_for(report)
    assert one_line_error(raised).startswith(f"{tmp_path / 'baseline' / 'seed1' / 'weights' / 'best.pt'}: not read: "
                                             "the seeds' checkpoints before it needed ")
