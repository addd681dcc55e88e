"""The benchmark list: one seeded sample of validation images that every model shares.

File format (`benchmark_list.txt`): one image path per line and nothing
else, as the user specification asks. How the list was made (seed, requested
size, the val split's size and hash, the data YAML), so that a later run can
tell whether it still fits, goes in a sidecar beside it, the list's own file
name with `.json` added (`benchmark_list.txt.json`: it cannot be a model's
report, nor a file of the dataset's with the same stem). The sidecar also holds
the hash of the path lines: a list edited after it was made no longer matches
its sidecar and is refused. A file of that name that is not a sidecar is
never overwritten. Lists written by
earlier versions, whose first lines are `# key: value` headers, are still
read; a plain list with no sidecar is read as it is.

Lines are split on "\n" only and lose only a trailing "\r"; a path is never
stripped. No path may hold a control, line- or paragraph-separator character
or be longer than MAX_PATH_CHARS: drawing a list refuses such a val image
(see `datasets`), and reading a list refuses such a line, so every reader,
`str.splitlines` included, sees the same paths. The list is read with
`safe_io` (regular file, at most MAX_LIST_BYTES).

Links: a list file that is a symlink (a `--list` link the user made, or one
left at OUT/benchmark_list.txt) is read through, like any file detbench only
reads; nothing is written through it or beside its target. The sidecar and
the lock are named from the path as given (beside the link), the lock is
refused if it is a symlink, the list and sidecar are written atomically (the
rename replaces a link instead of writing through it), and the set-up cache
goes in the folder of the path as given (`cache.cache_dir_for`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from detbench.data.datasets import check_path, find_val_images, split_lines
from detbench.errors import DetbenchError
from detbench.files.atomic import write_text_atomic
from detbench.files.safe_io import read_text_file
from detbench.limits import MAX_IMAGE_PIXELS, MAX_LIST_BYTES, MAX_SMALL_FILE_BYTES

MAGIC = "# detbench benchmark list v1"  # the header of lists written by earlier versions
SIDECAR_FORMAT = "detbench benchmark list v2"
SIDECAR_KIND = "detbench benchmark list"  # `compare` skips detbench's own JSON files by their "kind"
LIST_FILENAME = "benchmark_list.txt"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def population_digest(images: list[Path], root: Path) -> str:
    """Hash of the sorted image names relative to the dataset root (independent of where it lives)."""
    names = []
    for image in images:
        try:
            names.append(image.relative_to(root).as_posix())
        except ValueError:
            names.append(image.as_posix())
    return sha256_text("\n".join(sorted(names)))


@dataclass
class BenchmarkList:
    paths: list[str]
    seed: int
    requested_size: int
    population_size: int
    population_sha256: str
    data: str

    @property
    def sha256(self) -> str:
        """Hash of the list's path lines, in order."""
        return sha256_text("\n".join(self.paths) + "\n")

    @property
    def truncated(self) -> bool:
        return self.population_size < self.requested_size

    def render(self) -> str:
        """The list file: one path per line, nothing else."""
        return "\n".join(self.paths) + "\n"

    def sidecar(self) -> str:
        """How the list was made, and the hash of its lines (the sidecar's JSON)."""
        return json.dumps({"kind": SIDECAR_KIND, "format": SIDECAR_FORMAT, "list_sha256": self.sha256,
                           "seed": self.seed,
                           "requested_size": self.requested_size, "population_size": self.population_size,
                           "population_sha256": self.population_sha256, "data": self.data}, indent=2) + "\n"


def sidecar_path(list_path: str | Path) -> Path:
    """`benchmark_list.txt.json` beside `benchmark_list.txt`: the list's file name with `.json` added."""
    list_path = Path(list_path)
    return list_path.with_name(list_path.name + ".json")


def _sidecar_record(sidecar: Path, where: str, fix: str) -> dict | None:
    """The sidecar's JSON object if it is a detbench list record, else None (also for an unreadable file)."""
    try:
        record = json.loads(read_text_file(sidecar, f"{where}: its sidecar {sidecar}", MAX_SMALL_FILE_BYTES, fix=fix))
    except (ValueError, RecursionError, DetbenchError):
        return None
    return record if isinstance(record, dict) and record.get("format") == SIDECAR_FORMAT else None


def sample_list(data_yaml: str | Path, size: int, seed: int) -> BenchmarkList:
    """Sort the val images, then draw `size` of them with `random.Random(seed)` (all if fewer)."""
    population, root = find_val_images(data_yaml)
    data = str(Path(data_yaml).resolve())
    check_path(data, f"--data {data_yaml}: its full path")  # it goes into the list's header
    chosen = random.Random(seed).sample(population, min(size, len(population)))
    return BenchmarkList(
        paths=[str(p) for p in chosen],
        seed=seed,
        requested_size=size,
        population_size=len(population),
        population_sha256=population_digest(population, root),
        data=data,
    )


def _parse(text: str, where: str) -> tuple[dict[str, str], list[str]]:
    """The `# key: value` header and the path lines; blank lines are skipped, paths are kept as written."""
    header: dict[str, str] = {}
    paths: list[str] = []
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            key, sep, value = line.lstrip("#").partition(":")
            if sep:
                header[key.strip()] = value.strip()
            continue
        check_path(line, f"{where} line {number}:")
        paths.append(line)
    return header, paths


def _read_sidecar(path: Path, paths: list[str], where: str) -> dict[str, str]:
    """The sidecar's fields (as the old header's strings); {} when there is none. One that does not describe
    these path lines (the list was edited, or the sidecar belongs to another list) is an error."""
    sidecar = sidecar_path(path)
    if not os.path.lexists(sidecar):
        return {}
    fix = f"delete {path.name} and {sidecar.name} to make a new list"
    record = _sidecar_record(sidecar, where, fix)
    if record is None:
        raise DetbenchError(f"{where}: its sidecar {sidecar} is not a detbench list record; {fix}")
    if record.get("list_sha256") != sha256_text("\n".join(paths) + "\n"):
        raise DetbenchError(f"{where} does not match its sidecar {sidecar.name} (the list was edited after it was "
                            f"made); {fix}, or restore the list")
    return {key: str(value) for key, value in record.items() if isinstance(value, (str, int)) and
            not isinstance(value, bool)}


def read_list(path: str | Path) -> BenchmarkList:
    """Parse a benchmark list file and its sidecar; an earlier version's list with a `#` header, and a plain
    one-path-per-line file with no sidecar, are accepted too."""
    path = Path(path)
    where = f"benchmark list {path}"
    text = read_text_file(path, where, MAX_LIST_BYTES, fix="delete it to make a new one, or choose another --list")
    try:
        header, paths = _parse(text, where)
    except DetbenchError as exc:
        raise DetbenchError(f"{exc}, or delete the list to make a new one") from None
    if not paths:
        raise DetbenchError(f"{where} names no images; delete it to make a new one")
    if not text.startswith(MAGIC):
        header = _read_sidecar(path, paths, where) or header

    def int_field(key: str, default: int) -> int:
        try:
            return int(header.get(key, default))
        except ValueError as exc:
            raise DetbenchError(f"{where}: header '{key}' is not an integer; delete it to make a new one") from exc

    blist = BenchmarkList(
        paths=paths,
        seed=int_field("seed", -1),
        requested_size=int_field("requested_size", len(paths)),
        population_size=int_field("population_size", len(paths)),
        population_sha256=header.get("population_sha256", ""),
        data=header.get("data", ""),
    )
    expected = min(blist.requested_size, blist.population_size)
    if text.startswith(MAGIC) and len(paths) != expected:
        raise DetbenchError(f"{where} is incomplete or edited: {len(paths)} paths, its header says "
                            f"{expected}; delete it to make a new one")
    return blist


def write_list(blist: BenchmarkList, path: str | Path) -> None:
    """The sidecar first, then the list: a list that exists always has its record beside it. A file in the
    sidecar's place that is not a detbench list record is someone else's: refused, not replaced."""
    sidecar = sidecar_path(path)
    if os.path.lexists(sidecar) and _sidecar_record(sidecar, f"benchmark list {path}", "") is None:
        raise DetbenchError(f"benchmark list {path}: {sidecar} exists and is not a detbench list record, so the "
                            f"list's record cannot go there; move that file or choose another --list")
    write_text_atomic(sidecar, blist.sidecar())
    write_text_atomic(path, blist.render())


@dataclass
class ListOutcome:
    blist: BenchmarkList
    path: Path
    created: bool
    note: str = ""


def list_lock_path(list_path: str | Path) -> Path:
    """The lock file beside the list (LIST.lock), which makes concurrent first runs agree on one list."""
    return Path(str(list_path) + ".lock")


def _lock_file(list_path: Path) -> str:
    """The lock file beside the list; refused if it is a symlink or not a regular file (it is opened for writing)."""
    lock = list_lock_path(list_path)
    try:
        info = os.lstat(lock)
    except FileNotFoundError:
        return str(lock)
    except OSError as exc:
        raise DetbenchError(f"{lock}: cannot use it as the list's lock ({exc.strerror}); delete it") from exc
    if not stat.S_ISREG(info.st_mode):
        raise DetbenchError(f"{lock}: is a symlink or not a regular file, so detbench will not open it as the "
                            f"list's lock; delete it")
    return str(lock)


def existing_list_sha256(list_path: Path) -> str | None:
    """The hash of the list at `list_path` when one is there (a run then reuses it, and a dry run's keys match the
    real run's); None when a run would draw a new one, or will itself report what is wrong with it."""
    try:
        return read_list(list_path).sha256 if list_path.is_file() else None
    except DetbenchError:
        return None


def check_list_exists(list_path: Path) -> None:
    """--use_benchmark_list needs the list to be there already."""
    if not list_path.exists():
        raise DetbenchError(f"--use_benchmark_list: no list at {list_path}; run once without the flag to create "
                            f"it, or point --out at the folder that holds it")


def obtain_list(list_path: str | Path, data_yaml: str | Path | None, size: int, seed: int,
                use_existing: bool, data_from_flag: bool = True,
                max_pixels: int = MAX_IMAGE_PIXELS) -> ListOutcome:
    """Create the list on first use, reuse it after; refuse to reuse one made differently.

    `use_existing` (the --use_benchmark_list flag) reuses whatever list is there
    as is. Without it an existing list is reused only if it was made from the
    same data, seed and size; otherwise the run stops rather than overwrite it.
    Nothing is written unless the list is new and its data and images check out;
    a file lock makes concurrent first runs agree on one list. Lists are written
    atomically, so reading one needs no lock. Images above `max_pixels`
    (--max-image-pixels) are refused before they are decoded.
    """
    list_path = Path(list_path)
    if list_path.exists():
        return _reuse(list_path, data_yaml, size, seed, use_existing, data_from_flag)
    if use_existing:
        check_list_exists(list_path)
    if data_yaml is None:
        raise DetbenchError("no dataset to draw the benchmark list from: pass --data DATA.yaml (the weights carry "
                            "no train_args['data'])")
    # imported here, not at the top: loads torch and OpenCV, which reading or naming a list does not need
    from detbench.data.inputs import check_images

    blist = sample_list(data_yaml, size, seed)
    check_images(blist.paths, max_pixels)
    list_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(_lock_file(list_path), timeout=600):
        if list_path.exists():  # another run made it while this one waited for the lock
            return _reuse(list_path, data_yaml, size, seed, use_existing, data_from_flag, wanted=blist)
        write_list(blist, list_path)
    note = ""
    if blist.truncated:
        note = (f"val split has only {blist.population_size} images (< --benchmark_size {size}): "
                f"all of them are used")
    return ListOutcome(blist, list_path, created=True, note=note)


def _reuse(list_path: Path, data_yaml: str | Path | None, size: int, seed: int, use_existing: bool,
           data_from_flag: bool, wanted: BenchmarkList | None = None) -> ListOutcome:
    """The existing list, if it was made the way this run would make it (or --use_benchmark_list)."""
    existing = read_list(list_path)
    if use_existing:
        return ListOutcome(existing, list_path, created=False)
    if data_yaml is None:
        return ListOutcome(existing, list_path, created=False,
                           note="no data YAML known: list reused without checking its origin")
    if not Path(data_yaml).is_file() and not data_from_flag:
        return ListOutcome(existing, list_path, created=False,
                           note=f"checkpoint's data YAML {data_yaml} not found: list reused unchecked")
    wanted = wanted or sample_list(data_yaml, size, seed)
    if not existing.population_sha256:
        raise DetbenchError(
            f"{list_path} has no record of how it was made (its sidecar {sidecar_path(list_path).name} is "
            f"missing): pass --use_benchmark_list to reuse it as is, copy its sidecar beside it, or delete it or "
            f"choose another --out to make a new one")
    # Same header but other paths: a dataset with the same file names elsewhere (or moved).
    if (existing.seed, existing.requested_size, existing.population_sha256, existing.paths) != (
            wanted.seed, wanted.requested_size, wanted.population_sha256, wanted.paths):
        raise DetbenchError(
            f"{list_path} was made from other data, seed or size (seed {existing.seed}, size "
            f"{existing.requested_size}, data {existing.data or '?'}; this run: seed {seed}, size {size}, "
            f"data {Path(data_yaml).resolve()}): pass --use_benchmark_list to reuse it as is, or delete it "
            f"or choose another --out to make a new one")
    return ListOutcome(existing, list_path, created=False)
