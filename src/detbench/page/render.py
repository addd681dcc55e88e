"""The page from its Jinja2 template, and its atomic write.

Autoescape is on for the whole template: every text from a report (names, paths, settings, warnings, command
lines) is escaped where it is put in, after its control and bidirectional characters are made visible
(`visible`); the plots are data URIs made here. The page asks for nothing outside
itself, and its Content-Security-Policy forbids the browser to: no script, no font, no request (images only as
data URIs, styles only inline).
"""

from __future__ import annotations

import math
from pathlib import Path

from markupsafe import Markup, escape

from detbench import text
from detbench.comparison import tables
from detbench.errors import DetbenchError
from detbench.files.atomic import write_text_atomic
from detbench.page.content import PageContent

TEMPLATE = "report.html.j2"
VERDICT_CLASSES = {"faster": "faster", "slower": "slower", "equivalent": "equivalent", "undecided": "undecided",
                   "untested": "untested", "baseline": "baseline"}


def num(value: float | None, digits: int = 2) -> str:
    """A number as the page shows it: a paper table's (fixed digits, a real minus sign, never "−0.0"), "-" when
    unknown or not finite."""
    return "-" if value is None or not math.isfinite(value) else tables.paper_number(value, digits)


def signed(value: float | None, digits: int = 1) -> str:
    """`num` with "+" before a positive number."""
    return "-" if value is None or not math.isfinite(value) else tables.paper_signed(value, digits)


def gflops(value: float | None) -> str:
    return num(value, 2 if value is None or value >= 1 else 3)


def exact(value: float | None) -> str:
    """The exact value kept in a cell's data-value ("" when unknown): what the table was formatted from."""
    return "" if value is None else repr(float(value))


def verdict_class(verdict: str) -> str:
    return VERDICT_CLASSES.get(verdict, "unknown")


def visible(value: object) -> object:
    """Every text put into the page, before it is escaped: control, bidirectional and line-separator characters
    shown as \\xNN/\\uNNNN (`text.terminal`), so that a name cannot reorder or hide the text around it. Markup
    is what `breakable` made of such a text already."""
    if isinstance(value, Markup):
        return value
    return text.terminal(value) if isinstance(value, str) else value


def breakable(value: object) -> Markup:
    """A model name that a narrow column breaks only after its underscores: made `visible`, escaped, then a
    <wbr> after each "_" (the only markup added; the name's own text stays escaped)."""
    return Markup(str(escape(visible(str(value)))).replace("_", "_<wbr>"))


def environment():
    # imported here, not at the top: Jinja2, only for the page
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("detbench.page", "templates"), autoescape=True, finalize=visible,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=num, signed=signed, gflops=gflops, exact=exact, verdict_class=verdict_class,
                       breakable=breakable)
    return env


def render(page: PageContent) -> str:
    return environment().get_template(TEMPLATE).render(page=page)


def write_page(page: PageContent, path: Path, fix: str = "choose another place with --html") -> Path:
    """Render the page and write it atomically; a failure is one line naming the file."""
    html = render(page)
    try:
        write_text_atomic(path, html)
    except OSError as exc:
        raise DetbenchError(f"{text.terminal(path)}: cannot write the page ({exc.strerror or exc}); free some space "
                            f"or {fix}") from exc
    return path
