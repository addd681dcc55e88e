"""List creation, seed consistency, loading, file validation and reuse (spec §4 and §5)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from detbench.comparison.analysis import is_own_other_file
from detbench.data.benchmark_list import obtain_list, read_list, sample_list
from detbench.data.datasets import find_val_images
from detbench.errors import DetbenchError
from detbench.files.atomic import write_text_atomic


def test_population_is_sorted_and_complete(dataset):
    images, root = find_val_images(dataset)
    assert len(images) == 60
    assert images == sorted(images)
    assert all(p.is_file() and p.suffix == ".jpg" for p in images)


def test_same_seed_same_list_other_seed_other_list(dataset):
    first = sample_list(dataset, 20, seed=42)
    again = sample_list(dataset, 20, seed=42)
    other = sample_list(dataset, 20, seed=7)
    assert first.paths == again.paths and first.sha256 == again.sha256
    assert first.paths != other.paths and first.sha256 != other.sha256
    assert len(set(first.paths)) == 20


def test_sample_matches_python_random_sample_of_sorted_images(dataset):
    import random

    images, _ = find_val_images(dataset)
    random.seed(42)
    expected = [str(p) for p in random.sample(images, 25)]
    assert sample_list(dataset, 25, seed=42).paths == expected


def test_created_then_reused(tmp_path, dataset):
    path = tmp_path / "benchmark_list.txt"
    created = obtain_list(path, dataset, 20, 42, use_existing=False)
    assert created.created and path.is_file()
    before = path.read_bytes()
    reused = obtain_list(path, dataset, 20, 42, use_existing=False)
    assert not reused.created and reused.blist.paths == created.blist.paths
    flagged = obtain_list(path, None, 999, 1, use_existing=True)
    assert flagged.blist.paths == created.blist.paths
    assert path.read_bytes() == before


def test_round_trip_and_plain_reader_sees_one_path_per_line(tmp_path, dataset):
    path = tmp_path / "benchmark_list.txt"
    blist = obtain_list(path, dataset, 15, 3, use_existing=False).blist
    loaded = read_list(path)
    assert (loaded.paths, loaded.seed, loaded.requested_size) == (blist.paths, 3, 15)
    assert loaded.sha256 == blist.sha256
    assert path.read_text().splitlines() == blist.paths  # the specification's format: paths only
    record = json.loads((tmp_path / "benchmark_list.txt.json").read_text())
    assert (record["seed"], record["requested_size"], record["list_sha256"]) == (3, 15, blist.sha256)


def test_an_edited_list_no_longer_matches_its_sidecar(tmp_path, dataset):
    path = tmp_path / "benchmark_list.txt"
    blist = obtain_list(path, dataset, 15, 3, use_existing=False).blist
    path.write_text("\n".join(blist.paths[:-1]) + "\n")
    with pytest.raises(DetbenchError, match=r"does not match its sidecar benchmark_list\.txt\.json \(the list was "):
        read_list(path)
    (tmp_path / "benchmark_list.txt.json").unlink()
    assert read_list(path).paths == blist.paths[:-1]  # a plain list of the user's own is read as it is


def test_a_file_in_the_sidecars_place_is_never_overwritten_and_compare_skips_the_sidecar(tmp_path, dataset):
    path = tmp_path / "val.txt"
    theirs = tmp_path / "val.txt.json"
    theirs.write_text('{"images": [1, 2, 3]}')
    with pytest.raises(DetbenchError, match=r"val\.txt\.json exists and is not a detbench list record"):
        obtain_list(path, dataset, 5, 42, use_existing=False)
    assert theirs.read_text() == '{"images": [1, 2, 3]}' and not path.exists()
    theirs.write_text("[" * 100_000)  # nested past the parser's recursion limit: still just "not a record"
    with pytest.raises(DetbenchError, match="is not a detbench list record"):
        obtain_list(path, dataset, 5, 42, use_existing=False)
    theirs.unlink()
    obtain_list(path, dataset, 5, 42, use_existing=False)
    assert is_own_other_file(json.loads(theirs.read_text()))  # `compare DIR` leaves it out without a warning


def test_a_plain_list_without_its_sidecar_says_so(tmp_path, dataset):
    path = tmp_path / "benchmark_list.txt"
    obtain_list(path, dataset, 5, 42, use_existing=False)
    (tmp_path / "benchmark_list.txt.json").unlink()
    with pytest.raises(DetbenchError, match=r"has no record of how it was made \(its sidecar benchmark_list\.txt\.json "
                                            r"is missing\): pass --use_benchmark_list"):
        obtain_list(path, dataset, 5, 42, use_existing=False)


def test_a_list_with_the_earlier_header_is_still_read(tmp_path):
    path = tmp_path / "benchmark_list.txt"
    path.write_text("# detbench benchmark list v1\n# seed: 7\n# requested_size: 2\n# population_size: 9\n"
                    "# population_sha256: abc\n# data: /d.yaml\n/a.jpg\n/b.jpg\n")
    old = read_list(path)
    assert (old.paths, old.seed, old.requested_size, old.population_sha256) == (["/a.jpg", "/b.jpg"], 7, 2, "abc")


def test_list_from_other_seed_or_size_is_not_overwritten(tmp_path, dataset):
    path = tmp_path / "benchmark_list.txt"
    obtain_list(path, dataset, 20, 42, use_existing=False)
    before = path.read_bytes()
    for size, seed in ((20, 1), (30, 42)):
        with pytest.raises(DetbenchError, match="--use_benchmark_list"):
            obtain_list(path, dataset, size, seed, use_existing=False)
    assert path.read_bytes() == before


def test_use_benchmark_list_without_a_list_is_an_error(tmp_path, dataset):
    with pytest.raises(DetbenchError, match="no list at"):
        obtain_list(tmp_path / "benchmark_list.txt", dataset, 20, 42, use_existing=True)
    assert not (tmp_path / "benchmark_list.txt").exists()


def test_size_larger_than_split_uses_all_and_says_so(tmp_path, dataset):
    outcome = obtain_list(tmp_path / "l.txt", dataset, 500, 42, use_existing=False)
    assert len(outcome.blist.paths) == 60 and outcome.blist.truncated
    assert "only 60 images" in outcome.note


@pytest.mark.parametrize("content, message", [
    ("", "names no images"),
    ("# detbench benchmark list v1\n# seed: 1\n", "names no images"),
    ("# seed: x\n/a.jpg\n", "not an integer"),
])
def test_invalid_list_files_are_rejected(tmp_path, content, message):
    path = tmp_path / "benchmark_list.txt"
    path.write_text(content)
    with pytest.raises(DetbenchError, match=message):
        read_list(path)


def test_binary_list_file_is_rejected(tmp_path):
    path = tmp_path / "benchmark_list.txt"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DetbenchError, match="is not UTF-8 text"):
        read_list(path)


def test_data_yaml_forms(tmp_path, dataset):
    images, root = find_val_images(dataset)
    listing = tmp_path / "val.txt"
    listing.write_text("\n".join(str(p) for p in images[:5]) + "\n")
    yaml_txt = tmp_path / "txt.yaml"
    yaml_txt.write_text(f"path: {tmp_path}\nval: val.txt\n")
    assert find_val_images(yaml_txt)[0] == sorted(images[:5])
    yaml_list = tmp_path / "list.yaml"
    yaml_list.write_text(f"path: {root}\nval: [images/val, images/train]\n")
    assert len(find_val_images(yaml_list)[0]) == 76
    bad = tmp_path / "noval.yaml"
    bad.write_text("train: images/train\n")
    with pytest.raises(DetbenchError, match="no 'val' entry"):
        find_val_images(bad)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_lists_and_atomic_writes_get_the_mode_open_would_give(tmp_path, dataset, umask, mode):
    old = os.umask(umask)
    try:
        obtain_list(tmp_path / "benchmark_list.txt", dataset, 5, 42, use_existing=False)
        write_text_atomic(tmp_path / "report.json", "{}\n")
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x")
    finally:
        os.umask(old)
    for name in ("benchmark_list.txt", "benchmark_list.txt.json", "report.json", "plain.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benchmark_list.txt", "benchmark_list.txt.json",
                                                          "benchmark_list.txt.lock", "plain.txt",
                                                          "report.json"]  # no temporary left


def test_atomic_write_replaces_a_symlink_and_can_refuse_a_symlinked_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("keep")
    link = tmp_path / "list.txt"
    link.symlink_to(outside / "target.txt")
    write_text_atomic(link, "new\n")
    assert not link.is_symlink() and link.read_text() == "new\n" and (outside / "target.txt").read_text() == "keep"
    linked_folder = tmp_path / "linked"
    linked_folder.symlink_to(outside, target_is_directory=True)
    with pytest.raises(OSError):
        write_text_atomic(linked_folder / "x.json", "{}", follow_folder_link=False)
    assert sorted(p.name for p in outside.iterdir()) == ["target.txt"]


def test_symlinked_lock_file_is_refused_and_its_target_kept(tmp_path, dataset):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "out" / "benchmark_list.txt"
    path.parent.mkdir()
    Path(str(path) + ".lock").symlink_to(victim)
    with pytest.raises(DetbenchError, match=r"benchmark_list\.txt\.lock: is a symlink or not a regular file, so "
                                            r"detbench will not open it as the list's lock; delete it$"):
        obtain_list(path, dataset, 5, 42, use_existing=False)
    assert victim.read_text() == "precious" and not path.exists()


def test_data_yaml_whose_path_breaks_the_header_is_refused(tmp_path, dataset):
    folder = tmp_path / "a\nb"
    folder.mkdir()
    odd = folder / "data.yaml"
    odd.write_text(dataset.read_text())
    with pytest.raises(DetbenchError, match=r"its full path '.*a\\nb/data\.yaml' holds the character '\\n'"):
        sample_list(odd, 5, 42)
