"""Text taken from reports (model names, paths, hardware strings, errors), made safe for each output.

Whoever wrote a report chose these strings, so none of them may act in the
output: no terminal escape sequence, no spreadsheet formula, no Markdown
table break or raw HTML, no LaTeX optional argument or command, no mathtext
in a plot. One function per output format; numbers never pass through them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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
    """One line for a terminal: escape sequences and control or line-separator characters shown as \\xNN/\\uNNNN."""
    return _replace_bad(str(text), _visible)


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
