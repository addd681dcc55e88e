"""The flags of `detbench bench`, built from `BenchConfig`'s field metadata: used by the CLI, by `ablate` (which
passes them through to each model's run) and for the command line of a study's child process.

Each field is the flag `--field_name` (also spelt `--field-name`) unless its metadata names another; a bool that
defaults to False is a switch, one that defaults to True gets a `--no-` form too, a list is a repeatable flag.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Iterator
from dataclasses import MISSING, Field, fields
from typing import Any

from detbench.config import BenchConfig

_TYPES = {"int": int, "float": float, "str": str}


def bench_fields(pass_through: bool = False) -> Iterator[Field]:
    """BenchConfig's fields; with `pass_through`, only those a study passes on to every model as given (not set
    per model, not the timed loop's stopping rule)."""
    for item in fields(BenchConfig):
        if not (pass_through and (item.metadata["per_model"] or not item.metadata["in_study"])):
            yield item


def default_of(item: Field) -> Any:
    return item.default_factory() if item.default_factory is not MISSING else copy.copy(item.default)


def flag_name(item: Field) -> str:
    return item.metadata["flag"] or item.name


def _kind(item: Field) -> str:
    """The field's type as written, without `| None`: int, float, str, bool or list[str]."""
    return str(item.type).replace(" | None", "")


CODE_RUNNING = ("plugins", "unsafe_load")  # the settings that run code other than detbench's and the model's


def add_bench_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = (),
                        only: tuple[str, ...] | None = None) -> None:
    """One flag per BenchConfig field (except those in `skip`; with `only`, just those), its destination the
    field's name."""
    for item in bench_fields():
        if item.name in skip or (only is not None and item.name not in only):
            continue
        name, kind, default = flag_name(item), _kind(item), default_of(item)
        spellings = sorted({f"--{name}", f"--{name.replace('_', '-')}"}, reverse=True)
        options: dict[str, Any] = {"dest": item.name, "help": item.metadata["help"], "default": default}
        if kind == "bool":
            # --x/--no-x when on by default or unset (None: the library's own default), else just --x
            options["action"] = argparse.BooleanOptionalAction if default is not False else "store_true"
        elif kind == "list[str]":
            options["action"] = "append"
            spellings = [f"--{name}"]
        else:
            options["type"] = _TYPES[kind]
        if item.name == "weights":
            options["required"] = True
            del options["default"]
        parser.add_argument(*spellings, **options)


def bench_config_from_args(args: argparse.Namespace, **overrides: Any) -> BenchConfig:
    """The BenchConfig the parsed flags describe (validated: a bad value is a one-line DetbenchError)."""
    values = {item.name: getattr(args, item.name) for item in bench_fields() if hasattr(args, item.name)}
    return BenchConfig(**{**values, **overrides})


def config_argv(values: dict[str, Any]) -> list[str]:
    """Flags for these field values, only those that differ from the defaults; each value joined to its flag
    (`--name=value`), so that a value starting with "-" stays a value."""
    argv: list[str] = []
    for item in bench_fields():
        if item.name not in values:
            continue
        value, default, flag = values[item.name], default_of(item), f"--{flag_name(item)}"
        if value == default:
            continue
        kind = _kind(item)
        if kind == "bool":
            argv.append(flag if value else f"--no-{flag[2:]}")
        elif kind == "list[str]":
            argv += [f"{flag}={entry}" for entry in value]
        else:
            argv.append(f"{flag}={value}")
    return argv
