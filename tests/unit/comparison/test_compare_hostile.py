"""`detbench compare` on hostile folders: crafted reports, special files, injected names, unwritable outputs.

Reports are copies of one real report (made by `detbench bench` on this machine) with fields changed. Each
case ends in a one-line warning naming the file (the rest is compared), a one-line error, or output in which
the crafted text is inert; never a traceback or a hang.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import make_report, save

from detbench import text
from detbench.comparison.run import run_compare
from detbench.errors import DetbenchError
from detbench.names import bad_characters
from detbench.report.schema import load_report, validate_report

HOSTILE_NAMES = ['=HYPERLINK("http://x")', "a|b", "<img src=x onerror=alert(1)>", "x\ny", "[evil]", "\x1b[31mred",
                 r"$\frac{1}{0}$", "u\u2028v", "n\x85m", "+1", "@SUM(A1)", "-2", "\tz", "\rw", "*star", "a\\b&c%_{}~^#"]


def put(folder: Path, file_name: str, report: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name
    path.write_text(json.dumps(report))
    return path


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_terminal_text_shows_control_characters_instead_of_sending_them(name):
    shown = text.terminal(name)
    assert not bad_characters(shown) and "\x1b" not in shown
    assert text.terminal(shown) == shown  # already safe text is left as it is
    if name == "\x1b[31mred":
        assert shown == "\\x1b[31mred"
    if name == "u\u2028v":
        assert shown == "u\\u2028v"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_csv_cell_is_never_a_formula(name):
    cell = text.csv_cell(name)
    assert not cell.startswith(text.CSV_FORMULA_STARTS) and not bad_characters(cell)
    if name.startswith(text.CSV_FORMULA_STARTS):
        assert cell.startswith("'")
    else:
        assert cell == text.terminal(name)
    assert text.csv_cell(-2.5) == -2.5 and text.csv_cell(3) == 3  # numbers stay numbers


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_markdown_cell_stays_one_cell_without_html(name):
    cell = text.markdown(name)
    assert not bad_characters(cell) and "<" not in cell and ">" not in cell
    assert not re.search(r"(?<!\\)(\\\\)*[|\[\]$`]", cell)  # every | [ ] $ ` is escaped
    assert text.markdown("a|b") == "a\\|b" and text.markdown("x\ny") == "x y"
    assert text.markdown("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_latex_cell_is_braced_and_escaped(name):
    cell = text.latex_cell(name)
    assert cell.startswith("{") and cell.endswith("}") and not bad_characters(cell)
    assert not re.search(r"(?<!\\)[%#&_^~]", cell)  # special characters only escaped
    assert text.latex_cell("[evil]") == "{[evil]}"
    assert text.latex(r"$\frac{1}{0}$") == r"\$\textbackslash{}frac\{1\}\{0\}\$"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_plot_label_has_no_mathtext_and_draws(name, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = text.plot_label(name)
    assert not bad_characters(label) and label.count("$") == label.count(r"\$")
    fig, ax = plt.subplots()
    ax.set_title(label)
    ax.annotate(label, (0.5, 0.5))
    fig.savefig(tmp_path / "label.png")  # mathtext in a name would raise here
    plt.close(fig)


@pytest.mark.parametrize("body", [b"[" + b"[]," * 300_000 + b"[]]", b"[" + b"0," * 17_000_000 + b"0]"])
def test_report_whose_parse_would_cost_far_more_than_its_size_is_refused(tmp_path, body):
    """A list of a million empty lists is 3 MB on disk and about 60 MB parsed: refused before parsing."""
    path = tmp_path / "many.json"
    path.write_bytes(body)
    with pytest.raises(DetbenchError, match=r"many\.json: holds [\d,]+ lists and objects and [\d,]+ values, far more "
                                            r"than a report"):
        load_report(path)


def test_unterminated_string_of_escaped_quotes_is_checked_in_linear_time(tmp_path):
    """1 MB of `"` then `\\"` repeated: a backtracking scan for strings took minutes; the check is linear."""
    path = tmp_path / "quotes.json"
    path.write_bytes(b'"' + b'\\"' * 500_000)
    start = time.perf_counter()
    with pytest.raises(DetbenchError, match=r"quotes\.json: not valid JSON"):
        load_report(path)
    assert time.perf_counter() - start < 5  # linear: well under a second; the backtracking scan took minutes


def test_brackets_and_commas_inside_strings_are_not_counted(tmp_path):
    path = tmp_path / "text.json"
    path.write_bytes(b'{"x": "\\\\\\"' + b"[{," * 300_000 + b'", "y": "\\\\"}')
    with pytest.raises(DetbenchError, match=r"text\.json: unknown schema_version"):
        load_report(path)


def test_summary_that_disagrees_with_the_samples_is_skipped(tmp_path):
    """An edited median (or min, max) is refused, naming the file; a float's last digits are not an edit."""
    folder = tmp_path / "bench"
    samples = [10.0 + 0.1 * k for k in range(31)]
    save(folder, make_report("baseline", samples))
    save(folder, make_report("fine", [x * 1.5 for x in samples]))
    for key, value in (("median_ms", 5.0), ("min_ms", 9.0), ("max_ms", 20.0)):
        edited = make_report("edited", [x * 2.0 for x in samples])
        edited["latency"][key] = value
        target = put(folder, "edited.json", edited)
        lines: list[str] = []
        found: list[str] = []
        assert run_compare(folder, echo=lines.append, warn=found.append) == 0
        assert len(found) == 1 and str(target) in found[0], found
        assert f"latency.{key} does not match samples.latency_ms; the file was edited or damaged" in found[0]
        assert not any(line.startswith("edited") for line in lines)
    close = make_report("close", samples)
    close["latency"]["median_ms"] *= 1.0 + 1e-9
    assert validate_report(close)["latency"]["median_ms"] == close["latency"]["median_ms"]
