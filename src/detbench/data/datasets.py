"""Find the validation images named by an Ultralytics data YAML.

`val` may be a folder (searched recursively), a .txt file listing images, or a
list of either; relative entries are relative to the YAML's `path` (itself
relative to the working directory, else to the YAML's folder), as Ultralytics
resolves them.

Hostile files end the search with a one-line error, never a hang: the YAML
and .txt lists are read with `safe_io` (regular files only, bounded size); a
folder walk looks at each entry's type without opening it, keeps regular
files (or links to them) with an image suffix, skips FIFOs, devices and
sockets, does not enter symlinked folders (so a link loop cannot make it
endless) and stops above MAX_VAL_ENTRIES entries. `val` may list at most
MAX_VAL_LIST entries; repeated ones (YAML aliases) are searched once, and
all of them share one budget of MAX_VAL_ENTRIES folder entries and lines.

Names: a val image whose path holds a control, line- or paragraph-separator
character (`names.bad_characters`: "\\n", "\\r", U+2028, U+2029, U+0085, ...),
is not UTF-8 or is longer than MAX_PATH_CHARS is refused with an error that
names it (repr) and says to rename it. Refused, not left out: the draw and
the population hash depend on every name in the split, so leaving one out
would silently benchmark another sample than the split the user gave, and a
note is seen only by the run that creates the list. Renaming is a one-time
fix; after it every model draws the same list.
"""

from __future__ import annotations

import os
from pathlib import Path

from detbench.errors import DetbenchError
from detbench.files.safe_io import load_yaml, read_regular_file, read_text_file
from detbench.limits import MAX_LIST_BYTES, MAX_PATH_CHARS, MAX_YAML_BYTES
from detbench.names import bad_characters

IMAGE_SUFFIXES = {".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".pfm", ".heic"}
MAX_VAL_ENTRIES = 5_000_000  # folder entries walked, or lines of the .txt lists (COCO val: 5,000 images)
MAX_VAL_LIST = 64  # folders or lists named by 'val'


def split_lines(text: str) -> list[str]:
    """Lines of a list file: split on "\\n" only (not `str.splitlines`, which also splits on U+2028, U+0085,
    "\\x1c".., characters a file name may hold), each without one trailing "\\r"."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def path_problem(path: str) -> tuple[str, str] | None:
    """(why `path` cannot be a line of the benchmark list, the fix), or None if it can."""
    if len(path) > MAX_PATH_CHARS:
        return f"is {len(path):,} characters long, above {MAX_PATH_CHARS:,}", "move it to a shorter path"
    bad = bad_characters(path)
    if bad:
        return (f"holds the character {bad[0]!r}, which would break the one-path-per-line benchmark list",
                "rename it")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8", "rename it"
    return None


def check_path(path: str, where: str) -> None:
    """Raise a one-line DetbenchError: `where` (e.g. "--data x.yaml: val image"), the path (repr, shortened),
    the problem and the fix; nothing if the path can be a line of a list."""
    problem = path_problem(path)
    if problem:
        shown = repr(path) if len(path) <= 200 else repr(path[:200]) + "..."
        raise DetbenchError(f"{where} {shown} {problem[0]}; {problem[1]}")


def _read_yaml(data_yaml: Path) -> dict:
    what = f"--data {data_yaml}"
    raw = read_regular_file(data_yaml, what, MAX_YAML_BYTES, fix="pass the dataset's data YAML file")
    data = load_yaml(raw, what)
    if not isinstance(data, dict):
        raise DetbenchError(f"{what}: expected a mapping with a 'val' entry, got {type(data).__name__}")
    return data


def _dataset_root(data: dict, data_yaml: Path) -> Path:
    raw = data.get("path")
    if not raw:
        return data_yaml.parent.resolve()
    root = Path(str(raw)).expanduser()
    if root.is_absolute():
        return root
    for candidate in (Path.cwd() / root, data_yaml.parent / root):
        if candidate.exists():
            return candidate.resolve()
    return (data_yaml.parent / root).resolve()


def _absolute(path: Path) -> Path:
    """`path.resolve()`, or the plain absolute path where links loop or the path is not valid."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return Path(os.path.abspath(path))


class _Budget:
    """Folder entries and list lines left to look at, shared by all of 'val''s entries."""

    def __init__(self, data_yaml: Path) -> None:
        self.data_yaml, self.left = data_yaml, MAX_VAL_ENTRIES

    def take(self, source: Path) -> None:
        self.left -= 1
        if self.left < 0:
            raise DetbenchError(f"--data {self.data_yaml}: the val split holds more than {MAX_VAL_ENTRIES:,} "
                                f"entries (stopped in {source}); point 'val' at the validation images only")


def _entry_kind(entry: os.DirEntry) -> str:
    """"folder" (a real one, not a link), "image" (a regular file or a link to one, with an image suffix) or ""."""
    try:
        if entry.is_dir(follow_symlinks=False):
            return "folder"
        if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
            return "image"  # is_file() is a stat: a FIFO or device is never opened
    except OSError:  # a link loop, a vanished entry
        pass
    return ""


def _walk_images(folder: Path, budget: _Budget) -> list[Path]:
    """Image files under `folder`; entries are classified without being opened, symlinked folders not entered."""
    images: list[Path] = []
    pending = [folder]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    budget.take(folder)
                    kind = _entry_kind(entry)
                    if kind == "folder":
                        pending.append(Path(entry.path))
                    elif kind == "image":
                        images.append(_absolute(Path(entry.path)))
        except OSError:
            continue  # an unreadable sub-folder is skipped, as Path.rglob does
    return images


def _images_from_list(listing: Path, budget: _Budget) -> list[Path]:
    """The images a .txt list names, one per line; relative lines are relative to the list's folder."""
    where = f"val list {listing} (from --data {budget.data_yaml})"
    text = read_text_file(listing, where, MAX_LIST_BYTES, fix="fix 'val' in the YAML or the list")
    images = []
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        budget.take(listing)
        line = line.strip(" \t")
        check_path(line, f"{where} line {number}:")
        image = Path(line)
        images.append(_absolute(image if image.is_absolute() else listing.parent / image))
    return images


def _images_from_entry(entry: Path, budget: _Budget) -> list[Path]:
    data_yaml = budget.data_yaml
    if entry.is_dir():
        return _walk_images(entry, budget)
    if entry.suffix.lower() == ".txt" and os.path.lexists(entry):
        return _images_from_list(entry, budget)  # a FIFO or device is refused there, without opening it
    if entry.suffix.lower() in IMAGE_SUFFIXES and os.path.lexists(entry):
        return [_absolute(entry)]  # checked as an image (regular file, size) before use
    raise DetbenchError(f"--data {data_yaml}: val entry {entry} does not exist; fix 'path'/'val' in the YAML")


def _val_split(data_yaml: Path) -> tuple[list[str], list[Path], Path]:
    """The YAML's 'val' entries as written, resolved against the dataset root (each once), and the root."""
    data = _read_yaml(data_yaml)
    val = data.get("val", data.get("validation"))
    if not val:
        raise DetbenchError(f"--data {data_yaml}: no 'val' entry; add the validation split (folder or .txt list)")
    entries = val if isinstance(val, list) else [val]
    if len(entries) > MAX_VAL_LIST:
        raise DetbenchError(f"--data {data_yaml}: 'val' lists {len(entries):,} entries, above {MAX_VAL_LIST}; name "
                            f"the validation folders or .txt lists once each")
    if not all(isinstance(raw, str) and raw.strip() and "\x00" not in raw for raw in entries):
        raise DetbenchError(f"--data {data_yaml}: 'val' must be a folder, a .txt list or a list of them (path "
                            f"strings); fix the YAML")
    if data.get("path") is not None and (not isinstance(data["path"], str) or "\x00" in data["path"]):
        raise DetbenchError(f"--data {data_yaml}: 'path' must be a folder path string; fix the YAML")
    root = _dataset_root(data, data_yaml)
    resolved = {}  # one search per folder or list however often it is named
    for raw in entries:
        entry = Path(raw).expanduser()
        entry = entry if entry.is_absolute() else root / entry
        if not os.path.lexists(entry):
            raise DetbenchError(f"--data {data_yaml}: val entry {entry} does not exist; fix 'path'/'val' in the YAML")
        resolved.setdefault(_absolute(entry), entry)
    return entries, list(resolved.values()), root


def check_data_yaml(data_yaml: str | Path) -> None:
    """The data YAML read and its 'val' entries found, without walking them: the cheap checks, made before
    anything slow so that a wrong --data fails at once."""
    _val_split(Path(data_yaml))


def find_val_images(data_yaml: str | Path) -> tuple[list[Path], Path]:
    """Return the validation images, sorted by path, and the dataset root."""
    data_yaml = Path(data_yaml)
    entries, resolved, root = _val_split(data_yaml)
    images: set[Path] = set()
    budget = _Budget(data_yaml)
    for entry in resolved:
        images.update(_images_from_entry(entry, budget))
    if not images:
        shown = ", ".join(raw[:200] for raw in entries[:3])[:200] + (", ..." if len(entries) > 3 else "")
        raise DetbenchError(f"--data {data_yaml}: the val split ({shown}) holds no images; check 'path' and 'val'")
    population = sorted(images)
    for image in population:
        check_path(str(image), f"--data {data_yaml}: val image")
    return population, root
