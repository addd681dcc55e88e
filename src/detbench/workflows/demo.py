"""`detbench demo` (= `make demo`): the six-model ablation study, offline, on a synthetic dataset.

The workspace (default `demo/`, git-ignored) holds:
  data/                       a synthetic detection dataset (data.yaml, >= 200 val images), written once
  results/runs/{model}/seed0/weights/best.pt   the six zoo models as checkpoints whose train_args['data']
                              names the dataset (untrained; `--train-epochs N` trains them briefly instead,
                              which also writes results.csv, so accuracy joins the comparison)
  results/bench/              one report per model, study.json (the verdicts), comparison.csv/.md/.tex, plots/*.png,
                              report.html (the whole comparison in one self-contained page)
Everything is reused when present, and the benchmark resumes: a second run only re-prints the comparison.
Untrained weights have no accuracy, so the comparison has no mAP column unless the models were trained.

The workspace itself may be (or lie under) a link the user made; no link below it is followed (`out_tree`): every
folder the demo writes or replaces below it is made and checked with `folder_below` before anything is written
or removed, so a `data -> /elsewhere` or `results/runs/MODEL -> /elsewhere` link is refused in one line.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

from detbench.data.benchmark_list import LIST_FILENAME
from detbench.errors import DetbenchError
from detbench.files.out_tree import folder_below
from detbench.flags import add_bench_arguments
from detbench.study.options import StudyConfig
from detbench.text import Echo

N_TRAIN = 16
DATA_MARKER = ".complete"
FLAG = "--workspace"


@dataclass
class DemoOptions:
    workspace: str = "demo"
    imgsz: int = 320
    warmup: int = 10
    iters: int = 40
    workers_per_model: int = 2  # the fewest that measure what processes disagree on (see stats.paired)
    study_time: float = 60.0
    train_epochs: int = 0
    threads: int | None = None
    device: str | None = None
    val_images: int = 220
    force: bool = False
    models: tuple[str, ...] = ()  # default: all six zoo models
    formats: tuple[str, ...] = ()  # backends besides PyTorch eager (--formats onnx,openvino)


STUDY_FLAGS = ("workers_per_model", "study_time", "force")  # the demo's defaults, ablate's flags
BENCH_FLAGS = ("imgsz", "warmup", "iters", "threads", "device")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoOptions()
    parser.add_argument("--workspace", default=defaults.workspace, help="folder to build and run in (default demo)")
    add_bench_arguments(parser, only=BENCH_FLAGS)
    add_bench_arguments(parser, config=StudyConfig, only=STUDY_FLAGS)
    parser.add_argument("--train-epochs", "--train_epochs", dest="train_epochs", type=int,
                        default=defaults.train_epochs,
                        help="train each model this many epochs with Ultralytics first, giving mAP (default 0: "
                             "untrained, latency/params/GFLOPs only)")
    parser.add_argument("--val-images", "--val_images", dest="val_images", type=int, default=defaults.val_images,
                        help=f"val images of the synthetic dataset (default {defaults.val_images})")
    parser.add_argument("--models", default=None,
                        help="comma-separated subset of the zoo models (default: all six)")
    parser.add_argument("--formats", default=None,
                        help="also run every model in these backends, in the same study (e.g. onnx,openvino): "
                             "results in results/bench-FORMATS/, with the model x backend matrix (default: PyTorch "
                             "eager only)")
    parser.set_defaults(**{name: getattr(defaults, name) for name in (*STUDY_FLAGS, *BENCH_FLAGS)})


def options_from_args(args: argparse.Namespace) -> DemoOptions:
    values = {item.name: getattr(args, item.name) for item in fields(DemoOptions)}
    return DemoOptions(**{**values, "models": tuple(m.strip() for m in (args.models or "").split(",") if m.strip()),
                          "formats": tuple(f.strip() for f in (args.formats or "").split(",") if f.strip())})


def ensure_dataset(root: Path, val_images: int, echo: Echo) -> tuple[Path, bool]:
    """The synthetic dataset's data.yaml, written once (a marker file says it is complete); whether it is new."""
    # imported here, not at the top: loads OpenCV, PyYAML, numpy, which only this path needs
    from detbench.data.synthetic import make_dataset

    data_yaml, marker = root / "data.yaml", root / DATA_MARKER
    wanted = f"train={N_TRAIN} val={val_images}"
    if data_yaml.is_file() and marker.is_file() and marker.read_text().strip() == wanted:
        echo(f"✓ dataset: {data_yaml} (reused: {val_images} val images)")
        return data_yaml, False
    folder_below(root.parent, root.name, create=False, flag=FLAG)  # never remove through a link
    shutil.rmtree(root, ignore_errors=True)
    folder_below(root.parent, root.name, flag=FLAG)
    data_yaml = make_dataset(root, n_train=N_TRAIN, n_val=val_images, seed=0)
    marker.write_text(wanted + "\n")
    echo(f"✓ dataset: {data_yaml} (written: {N_TRAIN} train, {val_images} val synthetic images)")
    return data_yaml, True


def _epochs_done(results_csv: Path) -> int:
    try:
        with results_csv.open(newline="", encoding="utf-8") as handle:
            return sum(1 for _ in csv.DictReader(handle))
    except OSError:
        return 0


def ensure_checkpoints(models: tuple[str, ...], runs_dir: Path, data_yaml: Path, train_epochs: int, imgsz: int,
                       echo: Echo) -> None:
    """Zoo models at RUNS/{model}/seed0/weights/best.pt: saved untrained, or trained `train_epochs` epochs."""
    # imported here, not at the top: loads OpenCV, PyYAML, numpy, which only this path needs
    from detbench.data.artifacts import save_untrained, train_tiny

    made, reused = [], []
    for name in models:
        run_dir = runs_dir / name / "seed0"
        best = run_dir / "weights" / "best.pt"
        folder_below(runs_dir, name, "seed0", "weights", flag=FLAG)  # no link below RUNS, before any write
        trained = _epochs_done(run_dir / "results.csv")
        if train_epochs > 0:
            if best.is_file() and trained == train_epochs:
                reused.append(name)
                continue
            folder_below(runs_dir, name, "seed0", create=False, flag=FLAG)  # checked again just before removing
            shutil.rmtree(run_dir, ignore_errors=True)
            echo(f"  training {name}: {train_epochs} epoch(s) at imgsz {imgsz} on the synthetic data …")
            train_tiny(name, data_yaml, runs_dir / name, "seed0", epochs=train_epochs, imgsz=imgsz)
            made.append(name)
        elif best.is_file() and best.stat().st_size > 0:
            reused.append(name + (f" (trained {trained} epochs)" if trained else ""))
        else:
            save_untrained(name, best, data_yaml)
            made.append(name)
    what = f"trained {train_epochs} epoch(s)" if train_epochs > 0 else "saved untrained"
    if made:
        echo(f"✓ checkpoints {what}: {', '.join(made)} -> {runs_dir}/MODEL/seed0/weights/best.pt")
    if reused:
        echo(f"✓ checkpoints reused: {', '.join(reused)}")


def run_demo(opts: DemoOptions, echo: Echo = print) -> int:
    """Build the workspace, benchmark the six models, print and write the comparison; the exit status."""
    # imported here, not at the top: loads torch, OpenCV, NVML, numpy, which only this path needs
    from detbench import zoo
    from detbench.backends.formats import FORMATS
    from detbench.config import available_cores
    from detbench.measure.devices import resolve_device
    from detbench.study.ablation import run_ablation

    models = opts.models or zoo.MODELS
    unknown = [m for m in models if m not in zoo.MODELS]
    if unknown:
        raise DetbenchError(f"--models {','.join(unknown)}: not a zoo model; choose from {','.join(zoo.MODELS)}")
    if opts.val_images < 1:
        raise DetbenchError(f"--val-images must be at least 1, got {opts.val_images}")
    if opts.train_epochs < 0:
        raise DetbenchError(f"--train-epochs must be 0 or more, got {opts.train_epochs}")
    unknown_formats = [f for f in opts.formats if f not in FORMATS]
    if unknown_formats:
        raise DetbenchError(f"--formats {','.join(unknown_formats)}: not a backend; choose from {','.join(FORMATS)}")
    workspace = Path(opts.workspace)
    bench_name = "bench-" + "-".join(opts.formats) if opts.formats else "bench"
    # every folder written below the workspace: all checked (no link followed) before any is made, and all made
    # before anything is written or removed
    made = [("data",), ("results", bench_name), *(("results", "runs", m, "seed0", "weights") for m in models)]
    for parts in [*made, ("results", bench_name, "plots")]:
        folder_below(workspace, *parts, create=False, flag=FLAG)
    for parts in made:
        folder_below(workspace, *parts, flag=FLAG)
    data_dir, runs_dir = workspace / "data", workspace / "results" / "runs"
    bench_dir = workspace / "results" / bench_name
    threads = opts.threads or available_cores()
    training = (f"{opts.train_epochs} epoch(s) of Ultralytics training per model (mAP from results.csv)"
                if opts.train_epochs else "none: untrained weights, so latency, params and GFLOPs only (no mAP)")
    echo("detbench demo: the six-model ablation study, offline")
    echo(f"  workspace   {workspace}/  (data/, results/runs/, results/bench/)")
    echo(f"  models      {' '.join(models)}")
    if opts.formats:
        echo(f"  backends    pytorch (eager) and {', '.join(opts.formats)}: every model in each, in one study")
    echo(f"  settings    imgsz {opts.imgsz}, batch 1, warmup {opts.warmup}, at least {opts.iters} samples per "
         f"model, {opts.workers_per_model} worker(s) per model, {threads} thread(s), device "
         f"{resolve_device(opts.device)}")
    echo("              the models' workers take turns in seeded random order until every comparison with the")
    echo(f"              baseline is decided (faster / slower / equivalent), or {opts.study_time:g} s of turns;")
    echo("              fewer samples than the specification's 300, to suit a CPU laptop.")
    echo(f"  dataset     synthetic, {opts.val_images} val images")
    echo(f"  training    {training}")

    data_yaml, new_data = ensure_dataset(data_dir, opts.val_images, echo)
    if new_data:  # a list drawn from an earlier dataset would not fit
        (bench_dir / LIST_FILENAME).unlink(missing_ok=True)
    ensure_checkpoints(models, runs_dir, data_yaml, opts.train_epochs, opts.imgsz, echo)

    studied = [f"{m}@{f}" for m in models for f in ("pytorch", *opts.formats)] if opts.formats else list(models)
    baseline = ("baseline@pytorch" if opts.formats else "baseline") if "baseline" in models else None
    # the workspace is the demo's own: a demo at other settings replaces its reports
    status = run_ablation(StudyConfig(runs=str(runs_dir), models=studied, baseline=baseline, replace_reports=True,
                                      out=str(bench_dir), quiet=True,
                                      **{name: getattr(opts, name) for name in STUDY_FLAGS},
                                      bench={name: getattr(opts, name) for name in BENCH_FLAGS}), echo)

    # imported here, not at the top: loads numpy, kept out of light commands
    from detbench.comparison.run import run_compare
    from detbench.page.run import PageTarget

    reports = [bench_dir / f"{name}.json" for name in studied if (bench_dir / f"{name}.json").is_file()]
    if not reports:
        echo("no report to compare: every model failed (see the errors above)")
        return status or 1
    echo("")
    compared = run_compare([str(p) for p in reports], baseline=baseline, output=bench_dir / "comparison.csv",
                           formats=("md", "latex"), plots_dir=bench_dir / "plots", echo=echo,
                           pivot="backend" if opts.formats else None,
                           page=PageTarget(bench_dir / "report.html", writer="demo"))
    return status or compared
