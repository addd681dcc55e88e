"""Command line: `detbench bench|…`. Flag parsing only; the work is done elsewhere."""

from __future__ import annotations

import argparse
import difflib
import signal
import sys
from pathlib import Path
from typing import NoReturn

from detbench.comparison import TABLE_FORMATS
from detbench.errors import DetbenchError
from detbench.flags import CODE_RUNNING, DeprecatedFlag, add_bench_arguments, bench_config_from_args
from detbench.models.ultralytics_env import configure_process
from detbench.proc import die_with_parent, keep_to_cpus, refuse_namespace_package
from detbench.study import options as ablation  # its flags (torch-free, as is every parser here)
from detbench.study.options import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, StudyConfig
from detbench.text import terminal


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", nargs="*", help="report files or folders (default: every *.json in --dir)")
    parser.add_argument("--dir", default="results/bench", help="folder of reports (default results/bench)")
    parser.add_argument("--baseline", default=None,
                        help="model the deltas refer to (default: the one named baseline, else the baseline of the "
                             "study the reports come from)")
    parser.add_argument("--output", default=None,
                        help="write the comparison as CSV to this file, the same table as Markdown (.md) and LaTeX "
                             "(.tex) beside it, and the plots in plots/ of its folder (or --plots DIR)")
    parser.add_argument("--table-format", "--table_format", dest="formats", action="append", default=[],
                        choices=list(TABLE_FORMATS),
                        help="without --output: also write csv/md/latex (repeatable) as comparison.* next to the "
                             "reports (the folder given, or the common folder of the files given)")
    parser.add_argument("--format", dest="formats", action=DeprecatedFlag, new="--table-format", append=True,
                        choices=list(TABLE_FORMATS))
    parser.add_argument("--plots", default=None,
                        help="folder for PNG plots (latency vs GFLOPs/mAP, latency bars); with --output, plots/ in "
                             "its folder by default")
    parser.add_argument("--sweep", default=None, metavar="OUT",
                        help="compare a sweep (its --out folder): per device kind and setting the ablation table, "
                             "then each model's verdicts across the cells (ranking stability); writes "
                             "sweep_comparison.csv/.md and sweep_latency.png there (the plot in --plots if given)")
    parser.add_argument("--pivot", choices=["backend"], default=None,
                        help="also print a model x backend matrix: each model's median latency in each backend and "
                             "its verdict against the baseline in the same backend (with --plots, a bar chart)")
    parser.add_argument("--html", default=None, metavar="FILE",
                        help="where to write the self-contained HTML page (default: report.html beside the tables: "
                             "in the folder compared, or in --output's folder)")
    parser.add_argument("--no-html", "--no_html", dest="no_html", action="store_true",
                        help="write no HTML page")
    parser.add_argument("--min-effect", "--min_effect", dest="min_effect", type=float, default=None,
                        help=f"the equivalence margin: equivalent needs the (1 - 2 alpha) CI inside it (slower/faster "
                             f"need the whole CI beyond 0; in studies recorded before worker processes held every "
                             f"model, beyond it) (default: the study's own, "
                             f"{DEFAULT_MIN_EFFECT:g} = "
                             f"{100 * DEFAULT_MIN_EFFECT:g} %% by default)")
    parser.add_argument("--alpha", type=float, default=None,
                        help=f"chance of any false verdict in a study: Holm over the models, spent over the "
                             f"study's looks as it spent its own (default: the study's own, {DEFAULT_ALPHA:g} by "
                             f"default)")


def compare_outputs(output: str | None, formats: list[str], plots: str | None) -> tuple[list[str], str | None]:
    """(table formats, plots folder) of a compare run: --output writes every format beside it and the plots in
    its folder's plots/ (the README's Outputs); without it, what --format and --plots ask."""
    if output is None:
        return formats, plots
    if Path(output).suffix.lower() in (".md", ".tex"):  # the CSV and that table would take the same file
        raise DetbenchError(f"--output {terminal(output)}: names the CSV, and the .md and .tex are written beside "
                            f"it; give a .csv path, e.g. --output {terminal(Path(output).with_suffix('.csv'))}")
    if plots is not None:
        return list(TABLE_FORMATS), plots
    from detbench.files.out_tree import folder_below  # imported here: only an --output below a folder needs it

    folder = Path(output).parent
    if folder.is_dir():  # (an output folder that is not one is refused with the output's own checks)
        # the folder detbench picks below the output's: a symlink there is refused, as below any OUT
        folder_below(folder, "plots", create=False, flag="--output")
    return list(TABLE_FORMATS), str(folder / "plots")


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="the sweep file: models, axes (imgsz, batch, precision, format, threads, "
                                     "device_kind) and the settings every study shares")
    parser.add_argument("--out", default="results/sweep",
                        help="folder of the sweep: sweep.json (the index), benchmark_list.txt, studies/CELL/ "
                             "(default results/sweep)")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="print the plan (the studies, the devices, the estimated time) and run nothing")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="run the studies as Ray tasks: 'local' (a private Ray instance here), 'auto' (the "
                             "running cluster) or a cluster address; needs pip install -e '.[ray]'")
    parser.add_argument("--ray-cpus", "--ray_cpus", dest="ray_cpus", type=int, default=None,
                        help="with --ray local: the CPUs Ray may use (default all)")
    parser.add_argument("--study-timeout", "--study_timeout", dest="study_timeout", type=float, default=4 * 3600.0,
                        help="seconds one study may run before it is stopped and recorded as failed "
                             "(default 14400)")
    # a sweep file's plugin or unsafe_load runs only if the command line says the same
    add_bench_arguments(parser, only=CODE_RUNNING)


class Parser(argparse.ArgumentParser):
    """argparse without prefix matching (`--imgs` is not taken for `--imgsz`), suggesting the flag meant."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """One line naming the flag and what to do (not argparse's usage block before it); exit status 2."""
        help_hint = "" if "did you mean" in message or "--help" in message else f"; see {self.prog} --help"
        self.exit(2, f"error: {self.prog}: {terminal(message)}{help_hint}\n")

    def flag_error(self, unknown: list[str]) -> None:
        """Exit with one line naming the unknown flag and the closest known one."""
        known = [option for action in self._actions for option in action.option_strings]
        first = unknown[0].split("=", 1)[0]
        close = difflib.get_close_matches(first, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f"; see {self.prog} --help"
        self.error(f"unrecognized argument{'s' if len(unknown) > 1 else ''}: {' '.join(unknown)}{hint}")


def build_parser() -> Parser:
    from detbench.version import __version__  # here, not at the top: main() first checks that it is the real package

    parser = Parser(prog="detbench", description="Benchmarks for YOLO ablation studies.")
    parser.add_argument("--version", action="version", version=f"detbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    bench = sub.add_parser("bench", help="benchmark one model", description="Benchmark one model.")
    add_bench_arguments(bench)
    compare = sub.add_parser("compare", help="compare benchmark reports",
                             description="Compare benchmark reports against a baseline; verdicts for studies.")
    add_compare_arguments(compare)
    from detbench.workflows import demo  # its flags (torch-free, as is every parser here)

    ablate = sub.add_parser("ablate", help="benchmark every model of a study, each in a fresh process",
                            description="Benchmark every results/runs/*/seed*/weights/best.pt (or --models) on one "
                                        "shared list, each model in a fresh process; resumable.")
    ablation.add_arguments(ablate)
    demo_parser = sub.add_parser("demo", help="offline demo: six zoo models on a synthetic dataset, compared",
                                 description="Build a workspace with a synthetic dataset and the six zoo models, "
                                             "benchmark them and compare them, offline.")
    demo.add_arguments(demo_parser)
    sweep = sub.add_parser("sweep", help="one interleaved study per cell of a settings matrix, locally or on Ray",
                           description="Run one interleaved study (every model, compared) per cell of the axes "
                                       "in SWEEP.yaml, on this machine's GPUs (or CPU) or on a Ray cluster; "
                                       "resumable, with an index of the studies.")
    add_sweep_arguments(sweep)
    report = sub.add_parser("report", help="write the self-contained HTML page of a results folder",
                            description="Write DIR/report.html: the ablation table, the plots, each model's latency "
                                        "distribution and rounds, the backend matrix, a sweep's ranking stability, "
                                        "provenance and caveats, in one file that needs no network.")
    report.add_argument("folder", nargs="?", default="results/bench",
                        help="folder of reports, or a sweep's --out folder (default results/bench)")
    report.add_argument("--output", default=None, help="write the page here instead of FOLDER/report.html")
    report.add_argument("--baseline", default=None,
                        help="model the deltas refer to (default: as compare chooses it)")
    clean = sub.add_parser("clean", help="remove the helper files detbench leaves beside its results",
                           description="Remove the helper files detbench leaves in a results folder (and in a "
                                       "sweep's studies): the decoded-input cache .detbench-cache/, the lock files "
                                       "and an unfinished study's .study/. Reports, lists, tables and plots stay.")
    clean.add_argument("folders", nargs="*", default=["results/bench"],
                       help="results folders (default results/bench)")
    parser.commands = sub.choices  # each subcommand's parser, by name
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; an unknown flag is reported by its subcommand, with a suggestion."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.commands.get(args.command, parser).flag_error(unknown)
    return args


def cmd_bench(args: argparse.Namespace) -> int:
    cfg = bench_config_from_args(args)  # flag errors before the heavy imports
    # imported here, not at the top: loads torch, OpenCV, NVML, psutil, numpy, which only this path needs
    from detbench.workflows.bench import run_bench

    run_bench(cfg, argv=sys.argv)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    if args.sweep:
        from detbench.comparison.sweep import run_sweep_compare  # imported here: loads numpy (each command its own)

        return run_sweep_compare(args.sweep, plots_dir=args.plots)
    from detbench.comparison.run import html_target, run_compare  # imported here: loads numpy (each command its own)
    from detbench.page.run import PageTarget  # and its page: matplotlib, Jinja2

    formats, plots = compare_outputs(args.output, args.formats, args.plots)
    sources = args.reports or [args.dir]
    html = html_target(sources, args.output, args.html, args.no_html)
    return run_compare(sources, baseline=args.baseline, output=args.output, formats=formats, plots_dir=plots,
                       min_effect=args.min_effect, alpha=args.alpha, pivot=args.pivot,
                       page=PageTarget(html, asked=args.html is not None) if html is not None else None)


def cmd_ablate(args: argparse.Namespace) -> int:
    # imported here, not at the top: loads torch, OpenCV, NVML, numpy, which only this path needs
    from detbench.study.ablation import run_ablation

    config = StudyConfig.from_args(args)
    status = run_ablation(config)
    if config.html and status != 130:  # the page of what the study wrote (ablate --no-html: none)
        from detbench.page.run import study_page  # imported here: matplotlib and Jinja2, only for the page

        study_page(config.out, config.baseline, print)
    return status


def cmd_demo(args: argparse.Namespace) -> int:
    # imported here, not at the top: loads torch, OpenCV, NVML, numpy, which only this path needs
    from detbench.workflows.demo import options_from_args, run_demo

    return run_demo(options_from_args(args))


def cmd_sweep(args: argparse.Namespace) -> int:
    from detbench.sweep.run import SweepOptions, run_sweep  # imported here: loads torch (each command its own)

    return run_sweep(SweepOptions(spec=args.spec, out=args.out, ray=args.ray, dry_run=args.dry_run,
                                  study_timeout=args.study_timeout, ray_cpus=args.ray_cpus,
                                  unsafe_load=args.unsafe_load, plugins=args.plugins))


def cmd_report(args: argparse.Namespace) -> int:
    from detbench.page.run import run_report  # imported here: loads numpy, matplotlib, Jinja2 (each command its own)

    return run_report(args.folder, output=args.output, baseline=args.baseline)


def cmd_clean(args: argparse.Namespace) -> int:
    from detbench.workflows.clean import clean  # imported here: loads torch (each command its own)

    return clean(args.folders)


COMMANDS = {"bench": cmd_bench, "compare": cmd_compare, "ablate": cmd_ablate, "demo": cmd_demo, "sweep": cmd_sweep,
            "report": cmd_report, "clean": cmd_clean}


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that the same clean-up runs and no partial file is left."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    refuse_namespace_package()
    die_with_parent()  # a bench started by a study ends with it
    keep_to_cpus()  # a sweep's study on one GPU of several keeps to that slot's cores
    for note in configure_process():  # Ultralytics offline, quiet and restricted: read when it is imported, so first
        print("note: " + terminal(note), file=sys.stderr)
    args = parse(argv)
    try:  # SIGTERM, and SIGHUP (the terminal closed, the SSH session lost): the clean-up of Ctrl-C
        previous = {signum: signal.signal(signum, _raise_terminated) for signum in (signal.SIGTERM, signal.SIGHUP)}
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return COMMANDS[args.command](args)
    except DetbenchError as exc:
        print("error: " + terminal(str(exc).replace("\r", " ").replace("\n", " ")), file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        by = f" ({signal.Signals(exc.signum).name})" if isinstance(exc, Terminated) else ""
        print(f"interrupted{by}: no partial report or list was left; results finished before it are kept",
              file=sys.stderr)
        return 128 + exc.signum if isinstance(exc, Terminated) else 130
    finally:
        for signum, handler in (previous or {}).items():
            signal.signal(signum, handler)


def bench_main(argv: list[str] | None = None) -> int:
    """`python scripts/benchmark_model.py …`: the bench subcommand with the spec's flags."""
    return main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
