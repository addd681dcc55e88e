"""Whether results can be written in a folder (`detbench.files.space`), checked before any work, making nothing."""

from __future__ import annotations

import os

import pytest

from detbench.errors import DetbenchError
from detbench.files.space import check_writable


def test_a_folder_to_be_made_is_probed_at_its_nearest_parent_and_not_made(tmp_path):
    check_writable(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_unwritable_folders_and_too_little_space_are_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DetbenchError, match=r"is a file, not a folder; choose another --out$"):
        check_writable(tmp_path / "file" / "out")
    with pytest.raises(DetbenchError, match=r"MiB free there, the results need about .* MiB; free some space"):
        check_writable(tmp_path, needed=2**62)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        with pytest.raises(DetbenchError, match=r"cannot write there .*; choose a writable folder$"):
            check_writable(locked / "out")
