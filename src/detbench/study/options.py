"""`detbench ablate`'s settings: `StudyConfig`, whose field metadata gives ablate's own flags (help, spellings,
bounds), as `BenchConfig` gives bench's, and which holds the bench settings passed through to every model.
Building the command line (every subcommand's parser is built on each start) must not load torch."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any

from detbench.config import BenchConfig, check_settings, setting
from detbench.flags import add_bench_arguments, bench_fields, config_argv, default_of
from detbench.limits import MAX_BIAS_PROBE, MAX_WORKERS_PER_MODEL

DEFAULT_ALPHA = 0.05
DEFAULT_MIN_EFFECT = 0.02
DEFAULT_MODEL_TIMEOUT_S = 3600.0
DEFAULT_STUDY_TIME_S = 600.0
SECONDS = (lambda value: 0 < value <= 7 * 86_400, "a positive number of seconds (at most a week)")


def bench_defaults() -> dict[str, Any]:
    """Default value of every bench setting that ablate passes through."""
    return {item.name: default_of(item) for item in bench_fields(pass_through=True)}


@dataclass
class StudyConfig:
    """Settings of one `detbench ablate` study, checked by `validate` (a bad value is a one-line DetbenchError
    naming the flag). Each field with a help text is one of ablate's flags; `bench` holds the bench settings passed
    through to every model's run (BenchConfig field -> value; the rest at their defaults)."""

    models: list[str] | None = setting(None, "comma-separated models instead of discovery: run folder names under "
                                             "--runs, .pt/.yaml paths or zoo names; one may end in @FORMAT (e.g. "
                                             "baseline@onnx) to run it in that backend, so that one study compares "
                                             "backends", csv=True)
    runs: str = setting("results/runs", "folder of training runs: NAME/seed*/weights/best.pt (default results/runs)")
    baseline: str | None = setting(None, "the model the others are compared with (default: 'baseline' if there is "
                                         "one, else the first model)")
    workers_per_model: int = setting(2, "worker processes, each holding every model, so that a process's luck "
                                        "cancels in each comparison and the processes' agreement is tested "
                                        "(default %(default)s)",
                                     check=(lambda value: 1 <= value <= MAX_WORKERS_PER_MODEL,
                                            f"between 1 and {MAX_WORKERS_PER_MODEL}"), design=True)
    fresh_workers: bool = setting(True, "replace every worker by a fresh process after each look, so that process "
                                        "luck is sampled again in every generation (default on; needs "
                                        "--until-decided and at least 2 workers per model)", design=True)
    until_decided: bool = setting(True, "keep taking turns until every comparison is decided, up to --study-time "
                                        "(default on); --no-until-decided runs a fixed number of rounds (enough for "
                                        "--iters samples)", design=True)
    study_time: float = setting(DEFAULT_STUDY_TIME_S, "seconds of turns after which an undecided study stops "
                                                      "(default %(default)g)",
                                check=SECONDS, deprecated=("max_time",), design="max_time")
    min_effect: float = setting(DEFAULT_MIN_EFFECT, f"the equivalence margin, as a fraction: 'equivalent' means any "
                                                    f"difference is smaller (default "
                                                    f"{DEFAULT_MIN_EFFECT:g} = {100 * DEFAULT_MIN_EFFECT:g} %%)",
                                check=(lambda value: 0 < value < 1, "a fraction between 0 and 1 (e.g. 0.02 for 2 %)"),
                                design=True)
    alpha: float = setting(DEFAULT_ALPHA, f"chance of any false 'faster', 'slower' or 'equivalent' in the study "
                                          f"(default {DEFAULT_ALPHA:g})",
                           check=(lambda value: 0 < value < 1, "between 0 and 1 (e.g. 0.05)"), design=True)
    turn_warmup: int | None = setting(None, "untimed forwards at the start of each turn, so that the timed one runs "
                                            "on warm caches and a woken thread pool (default 1)",
                                      check=(lambda value: value is None or 0 <= value <= 100, "between 0 and 100"),
                                      design=True)
    bias_probe: int = setting(0, "after each round, one worker also times N (at least 2) forwards back to back on "
                                 "its turn's input, as an isolated bench loop would; study.json then reports each "
                                 "model's turn latency against that loop (interleaving bias), paired round by round "
                                 "(default 0: off; it lengthens the study, and --study-time does not count it)",
                              metavar="N", check=(lambda value: value == 0 or 2 <= value <= MAX_BIAS_PROBE,
                                                  f"0 (off) or between 2 and {MAX_BIAS_PROBE} forwards (the first "
                                                  f"of a probe is not the steady loop)"), design="if_set")
    order_seed: int = setting(0, "seed of the turn order (default 0; the order is recorded)", design=True)
    force: bool = setting(False, "run the study even if its results are up to date")
    quiet: bool = setting(False, "no progress lines between looks (by default one every 15 s: the round, the time "
                                 "left and each comparison's interval so far)")
    model_timeout: float = setting(DEFAULT_MODEL_TIMEOUT_S, f"seconds a worker may take per model to load and warm "
                                                            f"up, and to finish, before the worker is stopped and "
                                                            f"recorded as lost (default {DEFAULT_MODEL_TIMEOUT_S:g})",
                                   check=SECONDS)
    out: str = setting("results/bench", "output folder (default results/bench)")
    list_path: str | None = setting(None, "benchmark list file (default: OUT/benchmark_list.txt)", flag="list")
    reuse_list: bool = setting(False, "reuse the existing benchmark list as is (error if there is none)",
                               flag="use_benchmark_list")
    html: bool = setting(True, "write OUT/report.html after the study: the ablation table, plots, provenance and "
                               "caveats in one self-contained page (default on; detbench report OUT writes it too)")
    bench: dict[str, Any] = field(default_factory=dict)
    replace_reports: bool = False  # replace OUT/NAME.json of other settings (the demo's own folder)

    def validate(self) -> BenchConfig:
        """Raise DetbenchError naming the flag for a value out of range; the pass-through settings as a BenchConfig
        (checked as bench would, threads resolved)."""
        check_settings(self)
        return BenchConfig(**{**self.bench_values(), "weights": "ablate", "out": self.out})

    def bench_values(self) -> dict[str, Any]:
        return {**bench_defaults(), **self.bench}

    def design(self, baseline: str) -> dict[str, Any]:
        """What the study's key holds of its own settings: each field whose metadata has `design` (True, or the name
        studies record it under; "if_set": only when not at its default, so that adding such a setting leaves the
        keys of finished studies as they were)."""
        design: dict[str, Any] = {"baseline": baseline, "processes_hold_every_model": True}  # the engine's
        for item in fields(self):
            kind, value = item.metadata.get("design"), getattr(self, item.name)
            if kind is True or (kind == "if_set" and value != default_of(item)):
                design[item.name] = value
            elif isinstance(kind, str) and kind != "if_set":
                design[kind] = value
        return design

    def argv(self) -> list[str]:
        """`detbench ablate`'s flags for this config (those not at their default)."""
        return config_argv(vars(self), StudyConfig) + config_argv(self.bench)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> StudyConfig:
        """The config the parsed flags describe."""
        own = {item.name: getattr(args, item.name) for item in fields(cls) if hasattr(args, item.name)}
        return cls(**own, bench={item.name: getattr(args, item.name) for item in bench_fields(pass_through=True)})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`detbench ablate` flags: its own, then the bench flags it passes to every model."""
    add_bench_arguments(parser, config=StudyConfig)
    add_bench_arguments(parser, pass_through=True)
