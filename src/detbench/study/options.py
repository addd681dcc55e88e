"""`detbench ablate`'s flags and options, apart from the study itself: building the command line (every
subcommand's parser is built on each start) must not load torch."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from detbench.flags import add_bench_arguments, bench_fields, default_of

DEFAULT_MODEL_TIMEOUT_S = 3600.0
DEFAULT_MAX_TIME_S = 600.0


def bench_defaults() -> dict[str, Any]:
    """Default value of every bench setting that ablate passes through."""
    return {item.name: default_of(item) for item in bench_fields(pass_through=True)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`detbench ablate` flags: its own, then the bench flags it passes to every model."""
    parser.add_argument("--runs", default="results/runs",
                        help="folder of training runs: NAME/seed*/weights/best.pt (default results/runs)")
    parser.add_argument("--models", default=None,
                        help="comma-separated models instead of discovery: run folder names under --runs, "
                             ".pt/.yaml paths or zoo names; one may end in @FORMAT (e.g. baseline@onnx) to run "
                             "it in that backend, so that one study compares backends")
    parser.add_argument("--baseline", default=None,
                        help="the model the others are compared with (default: 'baseline' if there is one, else "
                             "the first model)")
    parser.add_argument("--workers-per-model", "--workers_per_model", dest="workers_per_model", type=int, default=2,
                        help="worker processes per model, so that one process's luck is measured (default 2)")
    parser.add_argument("--fresh-workers", "--fresh_workers", dest="fresh_workers",
                        action=argparse.BooleanOptionalAction, default=True,
                        help="replace every worker by a fresh process after each look, so that process luck is "
                             "sampled again in every generation (default on; needs --until-decided and at least 2 "
                             "workers per model)")
    parser.add_argument("--until-decided", "--until_decided", dest="until_decided",
                        action=argparse.BooleanOptionalAction, default=True,
                        help="keep taking turns until every comparison is decided, up to --max-time (default on); "
                             "--no-until-decided runs a fixed number of rounds (enough for --iters samples)")
    parser.add_argument("--max-time", "--max_time", dest="max_time", type=float, default=DEFAULT_MAX_TIME_S,
                        help=f"seconds of turns after which an undecided study stops (default {DEFAULT_MAX_TIME_S:g})")
    parser.add_argument("--min-effect", "--min_effect", dest="min_effect", type=float, default=0.02,
                        help="smallest difference that counts, as a fraction (default 0.02 = 2 %%)")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="chance of any false 'faster', 'slower' or 'equivalent' in the study (default 0.05)")
    parser.add_argument("--turn-warmup", "--turn_warmup", dest="turn_warmup", type=int, default=None,
                        help="untimed forwards at the start of each turn, so that the timed one runs on warm caches "
                             "and a woken thread pool (default 1)")
    parser.add_argument("--bias-probe", "--bias_probe", dest="bias_probe", type=int, default=0, metavar="N",
                        help="after each round, one worker also times N (at least 2) forwards back to back on its "
                             "turn's input, as an isolated bench loop would; study.json then reports each model's "
                             "turn latency against that loop (interleaving bias), paired round by round (default 0: "
                             "off; it lengthens the study, and --max-time does not count it)")
    parser.add_argument("--order-seed", "--order_seed", dest="order_seed", type=int, default=0,
                        help="seed of the turn order (default 0; the order is recorded)")
    parser.add_argument("--force", action="store_true", help="run the study even if its results are up to date")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress lines between looks (by default one every 15 s: the round, the time left "
                             "and each comparison's interval so far)")
    parser.add_argument("--model-timeout", "--model_timeout", dest="model_timeout", type=float,
                        default=DEFAULT_MODEL_TIMEOUT_S,
                        help=f"seconds one worker may take to load and warm up, and to finish, before it is "
                             f"stopped and its model recorded as failed (default {DEFAULT_MODEL_TIMEOUT_S:g})")
    add_bench_arguments(parser, skip=tuple(item.name for item in bench_fields()
                                           if not item.metadata["in_study"]
                                           or item.name in ("weights", "name", "force")))


@dataclass
class AblationOptions:
    runs: str = "results/runs"
    models: list[str] | None = None
    baseline: str | None = None
    force: bool = False
    out: str = "results/bench"
    list_path: str | None = None
    reuse_list: bool = False
    quiet: bool = False
    bench: dict[str, Any] = field(default_factory=dict)  # pass-through bench settings (field -> value)
    model_timeout: float = DEFAULT_MODEL_TIMEOUT_S
    workers_per_model: int = 2
    fresh_workers: bool = True
    until_decided: bool = True
    max_time: float = DEFAULT_MAX_TIME_S
    min_effect: float = 0.02
    alpha: float = 0.05
    turn_warmup: int | None = None
    order_seed: int = 0
    bias_probe: int = 0
    replace_reports: bool = False  # replace OUT/NAME.json of other settings (--force; the demo's own folder)


def options_from_args(args: argparse.Namespace) -> AblationOptions:
    bench = {item.name: getattr(args, item.name) for item in bench_fields(pass_through=True)}
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    return AblationOptions(runs=args.runs, models=models, baseline=args.baseline, force=args.force, out=args.out,
                           list_path=args.list_path, reuse_list=args.use_benchmark_list, quiet=args.quiet,
                           bench=bench, model_timeout=args.model_timeout, workers_per_model=args.workers_per_model,
                           fresh_workers=args.fresh_workers, until_decided=args.until_decided,
                           max_time=args.max_time, min_effect=args.min_effect, alpha=args.alpha,
                           turn_warmup=args.turn_warmup, order_seed=args.order_seed, bias_probe=args.bias_probe)
