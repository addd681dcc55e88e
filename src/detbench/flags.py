"""Flags built from a config dataclass's field metadata (`config.setting`): `detbench bench`'s from `BenchConfig`,
`ablate`'s own from `StudyConfig` (which passes bench's through to each model's run); and back, the command line
of a config (`config_argv`: a study's child process, a sweep's studies).

Each field is the flag `--field_name` (also spelt `--field-name`) unless its metadata names another; a bool that
defaults to False is a switch, one that defaults to True gets a `--no-` form too, a list is a repeatable flag (or
one comma-separated value, with `csv`); a `deprecated` old spelling still works, with one warning line.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Iterator
from dataclasses import MISSING, Field, fields
from typing import Any

from detbench.config import BenchConfig
from detbench.errors import DetbenchError

_TYPES = {"int": int, "float": float, "str": str}


def bench_fields(pass_through: bool = False) -> Iterator[Field]:
    """BenchConfig's fields; with `pass_through`, only those a study passes on to every model as given (not set
    per model, not the timed loop's stopping rule)."""
    for item in fields(BenchConfig):
        if not (pass_through and (item.metadata["per_model"] or not item.metadata["in_study"])):
            yield item


def flag_fields(config: type = BenchConfig, pass_through: bool = False) -> Iterator[Field]:
    """The fields of `config` that are flags (those with a help text); for BenchConfig with `pass_through`, only
    those a study passes on (`bench_fields`)."""
    items = bench_fields(pass_through) if config is BenchConfig else fields(config)
    return (item for item in items if "help" in item.metadata)


def default_of(item: Field) -> Any:
    return item.default_factory() if item.default_factory is not MISSING else copy.copy(item.default)


def flag_name(item: Field) -> str:
    return item.metadata["flag"] or item.name


def _kind(item: Field) -> str:
    """The field's type as written, without `| None`: int, float, str, bool or list[str]."""
    return str(item.type).replace(" | None", "")


CODE_RUNNING = ("plugins", "unsafe_load")  # the settings that run code other than detbench's and the model's


class DeprecatedFlag(argparse.Action):
    """An old spelling of a flag: one warning line on stderr, then the value goes where the new flag's goes."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", append: bool = False,
                 **kwargs: Any) -> None:
        self.new, self.append = new, append
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if not getattr(namespace, f"_{self.dest}_warned", False):  # one line, however often it is given
            print(f"warning: {option_string} is deprecated for {parser.prog.split()[-1]}; use {self.new}",
                  file=sys.stderr)
            setattr(namespace, f"_{self.dest}_warned", True)
        if self.append:
            values = [*(getattr(namespace, self.dest, None) or []), values]
        setattr(namespace, self.dest, values)


def _csv(value: str) -> list[str] | None:
    return [part.strip() for part in value.split(",") if part.strip()] or None


def add_bench_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = (),
                        only: tuple[str, ...] | None = None, config: type = BenchConfig,
                        pass_through: bool = False) -> None:
    """One flag per field of `config` (except those in `skip`; with `only`, just those; with `pass_through`, the
    bench settings a study passes on), its destination the field's name."""
    for item in flag_fields(config, pass_through):
        if item.name in skip or (only is not None and item.name not in only):
            continue
        name, kind, default = flag_name(item), _kind(item), default_of(item)
        spellings = sorted({f"--{name}", f"--{name.replace('_', '-')}"}, reverse=True)
        options: dict[str, Any] = {"dest": item.name, "help": item.metadata["help"], "default": default}
        if item.metadata.get("metavar"):
            options["metavar"] = item.metadata["metavar"]
        if item.metadata.get("csv"):
            options["type"] = _csv
        elif kind == "bool":
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
        for old in item.metadata.get("deprecated", ()):
            extra = {key: options[key] for key in ("type", "metavar") if key in options}
            parser.add_argument(*sorted({f"--{old}", f"--{old.replace('_', '-')}"}, reverse=True), dest=item.name,
                                action=DeprecatedFlag, new=f"--{name.replace('_', '-')}", **extra)


def bench_config_from_args(args: argparse.Namespace, **overrides: Any) -> BenchConfig:
    """The BenchConfig the parsed flags describe (validated: a bad value is a one-line DetbenchError)."""
    values = {item.name: getattr(args, item.name) for item in bench_fields() if hasattr(args, item.name)}
    return BenchConfig(**{**values, **overrides})


def typed(item: Field, value: Any, where: str) -> Any:
    """A value given as data (a sweep file's) for the field, as its flag would parse it; a one-line error naming
    `where` for one of another type."""
    kind = "list[str]" if item.metadata.get("csv") else _kind(item)
    if value is None and "None" in str(item.type):
        return None
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "list[str]" and not isinstance(value, bool):
        return [str(entry) for entry in (value if isinstance(value, list) else [value])]
    if kind in _TYPES and not isinstance(value, (bool, list)):
        try:
            return _TYPES[kind](str(value))
        except (TypeError, ValueError):
            pass
    raise DetbenchError(f"{where}: invalid {kind} value: {value!r}")


def config_argv(values: dict[str, Any], config: type = BenchConfig) -> list[str]:
    """Flags for these field values of `config`, only those that differ from the defaults; each value joined to
    its flag (`--name=value`), so that a value starting with "-" stays a value."""
    argv: list[str] = []
    for item in flag_fields(config):
        if item.name not in values:
            continue
        value, default, flag = values[item.name], default_of(item), f"--{flag_name(item)}"
        if value == default:
            continue
        kind = _kind(item)
        if item.metadata.get("csv"):
            argv.append(f"{flag}={','.join(value)}")
        elif kind == "bool":
            argv.append(flag if value else f"--no-{flag[2:]}")
        elif kind == "list[str]":
            argv += [f"{flag}={entry}" for entry in value]
        else:
            argv.append(f"{flag}={value}")
    return argv
