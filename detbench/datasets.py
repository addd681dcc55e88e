"""Find the validation images named by an Ultralytics data YAML.

`val` may be a folder (searched recursively), a .txt file listing images, or a
list of either; relative entries are relative to the YAML's `path` (itself
relative to the working directory, else to the YAML's folder), as Ultralytics
resolves them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from detbench.errors import DetbenchError

IMAGE_SUFFIXES = {".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".pfm", ".heic"}


def _read_yaml(data_yaml: Path) -> dict:
    if data_yaml.is_dir():
        raise DetbenchError(f"--data {data_yaml}: is a folder; pass the dataset's data YAML file inside it")
    if not data_yaml.is_file():
        raise DetbenchError(f"--data {data_yaml}: file not found; pass the dataset's data YAML")
    try:
        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DetbenchError(f"--data {data_yaml}: not valid YAML ({first_line}); fix the file") from exc
    except OSError as exc:
        raise DetbenchError(f"--data {data_yaml}: cannot read it ({exc.strerror}); check its permissions") from exc
    if not isinstance(data, dict):
        raise DetbenchError(f"--data {data_yaml}: expected a mapping with a 'val' entry, got {type(data).__name__}")
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


def _images_from_entry(entry: Path, data_yaml: Path) -> list[Path]:
    if entry.is_dir():
        return [p.resolve() for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if entry.is_file() and entry.suffix.lower() == ".txt":
        images = []
        for line in entry.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if not line or "\x00" in line:
                continue
            image = Path(line)
            if not image.is_absolute():
                image = entry.parent / image
            images.append(image.resolve())
        return images
    if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
        return [entry.resolve()]
    raise DetbenchError(f"--data {data_yaml}: val entry {entry} does not exist; fix 'path'/'val' in the YAML")


def find_val_images(data_yaml: str | Path) -> tuple[list[Path], Path]:
    """Return the validation images, sorted by path, and the dataset root."""
    data_yaml = Path(data_yaml)
    data = _read_yaml(data_yaml)
    val = data.get("val", data.get("validation"))
    if not val:
        raise DetbenchError(f"--data {data_yaml}: no 'val' entry; add the validation split (folder or .txt list)")
    entries = val if isinstance(val, list) else [val]
    if not all(isinstance(raw, str) and raw.strip() and "\x00" not in raw for raw in entries):
        raise DetbenchError(f"--data {data_yaml}: 'val' must be a folder, a .txt list or a list of them (path "
                            f"strings); fix the YAML")
    if data.get("path") is not None and (not isinstance(data["path"], str) or "\x00" in data["path"]):
        raise DetbenchError(f"--data {data_yaml}: 'path' must be a folder path string; fix the YAML")
    root = _dataset_root(data, data_yaml)
    images: set[Path] = set()
    for raw in entries:
        entry = Path(raw).expanduser()
        images.update(_images_from_entry(entry if entry.is_absolute() else root / entry, data_yaml))
    if not images:
        shown = ", ".join(entries)[:200]
        raise DetbenchError(f"--data {data_yaml}: the val split ({shown}) holds no images; check 'path' and 'val'")
    return sorted(images), root
