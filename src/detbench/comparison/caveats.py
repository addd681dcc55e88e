"""Caveats that several models share, said once: "CV 18–26 % is above 5 % (6 of 6 models)".

Two caveats are the same when they differ only in their numbers. Each number that varies is shown as the range
it takes over the models; the models are named when fewer than all have the caveat.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
MAX_NAMED = 4  # models named for a caveat that not every model has; beyond, "and N more"


def _range(values: list[str]) -> str:
    if len(set(values)) == 1:
        return values[0]
    numbers = sorted(float(value) for value in values)
    decimals = max(len(value.partition(".")[2]) for value in values)
    return f"{numbers[0]:.{decimals}f}–{numbers[-1]:.{decimals}f}"


def grouped(caveats: Sequence[tuple[str, str]], models: int) -> list[str]:
    """(model, caveat) pairs, in order, as one line per distinct caveat (numbers aside), each saying how many of
    the `models` models have it and, when not all, which."""
    groups: dict[tuple[str, ...], list[tuple[str, list[str]]]] = {}
    for model, caveat in caveats:
        skeleton = tuple(NUMBER.split(caveat))
        groups.setdefault(skeleton, []).append((model, NUMBER.findall(caveat)))
    lines = []
    for skeleton, members in groups.items():
        names = list(dict.fromkeys(model for model, _ in members))
        numbers = [_range([found[k] for _, found in members]) for k in range(len(skeleton) - 1)]
        text = "".join(part + (numbers[k] if k < len(numbers) else "") for k, part in enumerate(skeleton))
        if len(names) == 1:
            lines.append(f"{names[0]}: {text}")
            continue
        who = f"{len(names)} of {models} models" if len(names) < models else f"all {models} models"
        if len(names) < models:
            shown = ", ".join(names[:MAX_NAMED]) + (f" and {len(names) - MAX_NAMED} more"
                                                    if len(names) > MAX_NAMED else "")
            who += f": {shown}"
        lines.append(f"{text} ({who})")
    return lines
