"""A run's results.csv may be crafted: columns, rows and mAP values are bounded, and each refusal is one line."""

from __future__ import annotations

import pytest
from conftest import one_line_error

from detbench.comparison.accuracy import MAP50, MAP50_95, best_epoch
from detbench.errors import DetbenchError
from detbench.limits import MAX_RESULTS_CSV_COLUMNS

HEADER = f"epoch,{MAP50},{MAP50_95}"
FIX = "; remove it or move it out of the run folder"


def refused(path) -> str:
    with pytest.raises(DetbenchError) as raised:
        best_epoch(path)
    message = one_line_error(raised)
    assert message.startswith(f"{path}: ") and message.endswith(FIX), message
    return message


def test_a_header_or_row_of_too_many_columns_is_refused_before_its_rows_are_split(tmp_path):
    # a 200,000-column header over 2,000 short rows: read as dicts, each row filled 200,000 missing fields
    wide = tmp_path / "results.csv"
    wide.write_text(HEADER + "".join(f",c{k}" for k in range(200_000)) + "\n" + "1\n" * 2000)
    assert refused(wide) == f"{wide}: a row of 200,003 columns, more than a results.csv holds (at most " \
                            f"{MAX_RESULTS_CSV_COLUMNS:,}){FIX}"
    wide.write_text(f"{HEADER}\n1,0.5,0.3\n" + "," * MAX_RESULTS_CSV_COLUMNS + "\n")
    assert f"a row of {MAX_RESULTS_CSV_COLUMNS + 1:,} columns" in refused(wide)
    wide.write_text(HEADER + "," * (MAX_RESULTS_CSV_COLUMNS - 3) + "\n1,0.5,0.3\n")  # the most: read
    assert best_epoch(wide).map50 == 0.5


def test_the_needed_columns_are_taken_by_their_stripped_names_wherever_they_are(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(f"  {MAP50_95},x,   epoch,{MAP50}\n0.3,a,1,0.5\n0.4,b\n\n0.2,c,3,0.9,extra\n")
    best = best_epoch(path)
    assert (best.map50, best.map50_95, best.epoch) == (0.5, 0.3, 1)  # the short row has no mAP50: skipped


def test_an_map_outside_0_to_1_is_one_line_naming_the_file_and_column(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(f"{HEADER}\n1,0.5,0.3\n2,1e308,0.4\n")
    assert refused(path) == f"{path}: column {MAP50} holds 1e+308, not an mAP between 0 and 1{FIX}"
    path.write_text(f"{HEADER}\n1,0.5,-0.01\n")
    assert f"column {MAP50_95} holds -0.01," in refused(path)
    path.write_text(f"{HEADER}\n1,nan,nan\n2,0.5,0.3\n3,inf,0.9\n1e300,0.6,0.35\n")  # no number: skipped
    best = best_epoch(path)
    assert (best.map50, best.map50_95, best.epoch) == (0.6, 0.35, None)  # an epoch beyond 10**9 is not shown
