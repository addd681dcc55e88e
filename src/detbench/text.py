"""Text taken from reports (model names, paths, hardware strings, errors), made safe for each output.

Whoever wrote a report chose these strings, so none of them may act in the
output: no terminal escape sequence, no spreadsheet formula, no Markdown
table break or raw HTML, no LaTeX optional argument or command, no mathtext
in a plot. One function per output format; numbers never pass through them.
How much of it is shown is bounded too: each name or value (`bounded`, with a
hash so that long ones stay distinct), and all the lines a command prints of
it (`bounded_echo`).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from typing import Any

from detbench.limits import MAX_SHOWN_CHARS
from detbench.names import bad_characters

CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP: cells a spreadsheet may run as a formula
_MARKDOWN_ESCAPES = {"\\": "\\\\", "|": "\\|", "[": "\\[", "]": "\\]", "`": "\\`", "$": "\\$",
                     "&": "&amp;", "<": "&lt;", ">": "&gt;"}
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"$<$", ">": r"$>$", "|": r"$|$"}  # OT1 text fonts print < > | as other glyphs


def _replace_bad(text: str, replacement: Callable[[str], str]) -> str:
    """`text` with every control, format or line-separator character replaced by `replacement(ch)`."""
    bad = set(bad_characters(text))
    return "".join(replacement(ch) if ch in bad else ch for ch in text) if bad else text


def _visible(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: Any) -> str:
    """One line for a terminal: escape sequences, control or line-separator characters and lone surrogates (which
    no UTF-8 terminal takes) shown as \\xNN/\\uNNNN."""
    return _replace_bad(no_surrogates(text), _visible)


def csv_cell(value: Any) -> Any:
    """A CSV text cell made inert: a leading "'" before a formula start, control characters shown as in `terminal`.

    Numbers are returned as they are.
    """
    if not isinstance(value, str):
        return value
    return terminal("'" + value if value.startswith(CSV_FORMULA_STARTS) else value)


def markdown(text: Any) -> str:
    """Text for a Markdown table cell or line: one line, no raw HTML, no table break, no link or image."""
    flat = _replace_bad(str(text), lambda ch: " ")
    return "".join(_MARKDOWN_ESCAPES.get(ch, ch) for ch in flat)


def latex(text: Any) -> str:
    """Text for LaTeX: special characters escaped, control and line-separator characters dropped."""
    flat = _replace_bad(str(text), lambda ch: "")
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in flat)


def latex_cell(text: Any) -> str:
    """A LaTeX table cell of outside text, braced: a leading "[" or "*" is not read as an argument of \\\\."""
    return "{" + latex(text) + "}"


def plot_label(text: Any) -> str:
    """Text for a matplotlib label: "$" escaped (no mathtext), control and line-separator characters dropped."""
    return _replace_bad(str(text), lambda ch: "").replace("$", r"\$")


Echo = Callable[[str], None]  # where a command's progress lines go (print, a list's append, a silent sink)


class Cadence:
    """When a progress line is due: at most every `every` seconds (None: never), counted from the last one."""

    def __init__(self, every: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self.began = self.last = clock()

    def due(self) -> bool:
        return self.every is not None and self.clock() - self.last >= self.every

    def said(self) -> None:
        self.last = self.clock()


def terminal_echo(echo: Echo) -> Echo:
    """`echo` that shows control characters (escape sequences from names or checkpoints) instead of sending them."""
    return lambda line: echo(terminal(line))


# ---------------------------------------------------------------- bounded text (how much of a file's text is shown)

_SURROGATES = re.compile("[\ud800-\udfff]")
ELLIPSIS = "\u2026"
HASH_DIGITS = 16


def no_surrogates(text: Any) -> str:
    """Text with lone surrogates (JSON's "\\ud800", a file name's undecodable bytes) shown as \\uXXXX: no UTF-8
    terminal or file takes them."""
    return _SURROGATES.sub(lambda match: _visible(match.group()), str(text))


def bounded(value: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """A name or value from a file as shown: `no_surrogates`, and at most `limit` characters. A longer one keeps its
    start, then "…#" and 16 hex digits of its SHA-256, so that two long texts that differ are shown differently."""
    shown = no_surrogates(value)
    if len(shown) <= limit:
        return shown
    digest = hashlib.sha256(shown.encode("utf-8")).hexdigest()[:HASH_DIGITS]
    return shown[:max(0, limit - HASH_DIGITS - 2)] + ELLIPSIS + "#" + digest


def bounded_echo(echo: Echo, max_bytes: int, note: str) -> Echo:
    """`echo` for lines made of text from files: each one terminal-safe (`terminal`, `no_surrogates`), and together at
    most `max_bytes` of UTF-8. The line that would pass the bound is replaced by `note`, and nothing follows it."""
    spent, stopped = 0, False

    def say(line: str) -> None:
        nonlocal spent, stopped
        if stopped:
            return
        safe = terminal(line)
        spent += len(safe.encode("utf-8")) + 1
        if spent > max_bytes:
            stopped = True
            echo(note)
            return
        echo(safe)

    return say
