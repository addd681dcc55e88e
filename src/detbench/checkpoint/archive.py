"""The zip archive of a `torch.save` checkpoint, checked entry by entry before anything is inflated.

torch writes checkpoints as uncompressed (stored) zip archives: one folder
holding `data.pkl` (the pickle), `data/KEY` (one record per tensor storage)
and a few small records. Before any record is read, every entry's declared
size is checked: the total may exceed the file's own size by at most
`ZIP_SLACK_BYTES` (a 7.8 MB file cannot inflate to 2 GB), the pickle is at
most `MAX_PICKLE_BYTES`, names are unique and share the archive's folder.
The records are then read (CRC-checked, never beyond their declared size) and
written into a fresh stored archive: what torch loads is exactly what was
checked, with no room for two zip readers disagreeing about a crafted file.

`read_pickle` checks the same and reads `data.pkl` alone (CRC-checked), from
an open file: what a caller that only scans the pickle needs, without reading
or copying the tensor records.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from detbench import limits


class ArchiveError(ValueError):
    """The archive's declared sizes or layout exceed detbench's bounds (a hostile file)."""


class DamagedArchive(ArchiveError):
    """The archive is truncated or damaged, or is not a torch checkpoint at all."""


@dataclass
class Archive:
    pickle: bytes  # data.pkl
    sizes: dict[str, int]  # record name (without the archive's folder) -> size in bytes
    clean: bytes  # the records re-written as a stored zip, for torch.load


_EOCD = b"PK\x05\x06"
_ZIP64_EOCD = b"PK\x06\x06"
MAX_CENTRAL_DIRECTORY_BYTES = limits.MAX_ZIP_ENTRIES * (46 + 300)  # a record with a name of up to 300 bytes
_END_RECORDS_BYTES = 65_557 + 4096 + 56  # the end record with the longest comment, and the zip64 one before it


def check_central_directory(data: bytes) -> None:
    """Read the zip's end record before Python's zipfile does: a central directory larger than
    MAX_ZIP_ENTRIES records could need is refused before millions of entries are parsed."""
    at = data.rfind(_EOCD, max(0, len(data) - 65_557))
    if at < 0 or len(data) < at + 22:
        return  # zipfile reports the damage
    entries = int.from_bytes(data[at + 10:at + 12], "little")
    size = int.from_bytes(data[at + 12:at + 16], "little")
    zip64 = data.rfind(_ZIP64_EOCD, max(0, at - 4096), at)
    if zip64 >= 0 and len(data) >= zip64 + 56:
        entries = max(entries, int.from_bytes(data[zip64 + 32:zip64 + 40], "little"))
        size = max(size, int.from_bytes(data[zip64 + 40:zip64 + 48], "little"))
    if entries > limits.MAX_ZIP_ENTRIES or size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise ArchiveError(f"the archive declares {entries:,} entries in a {size / 2**20:.1f} MiB directory (a "
                           f"checkpoint holds one per tensor, at most {limits.MAX_ZIP_ENTRIES:,})")


def _entries(data: bytes) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo], str]:
    check_central_directory(data)
    return _listed(io.BytesIO(data))


def _listed(handle: BinaryIO) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo], str]:
    try:
        archive = zipfile.ZipFile(handle)
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise DamagedArchive(f"the zip archive is truncated or damaged ({type(exc).__name__})") from exc
    if not infos or len(infos) > limits.MAX_ZIP_ENTRIES:
        raise ArchiveError(f"the archive holds {len(infos)} entries (a checkpoint holds one per tensor, at most "
                           f"{limits.MAX_ZIP_ENTRIES:,})")
    names = [info.filename for info in infos]
    if not any(name.endswith("/data.pkl") for name in names):
        raise DamagedArchive("it is a zip archive but not a PyTorch checkpoint (no data.pkl)")
    if len(set(names)) != len(names):
        raise ArchiveError("the archive names one entry twice (zip readers would disagree on which to use)")
    prefix = names[0].split("/", 1)[0]
    if any(not name.startswith(prefix + "/") for name in names):
        raise ArchiveError("the archive's entries are not all in one folder, as torch.save writes them")
    return archive, infos, prefix


def _check_sizes(infos: list[zipfile.ZipInfo], prefix: str, file_size: int) -> None:
    total = 0
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(f"entry {info.filename!r} uses zip compression method {info.compress_type}, which "
                               f"torch.save never writes")
        if info.file_size < 0 or info.compress_size < 0:
            raise ArchiveError(f"entry {info.filename!r} declares a negative size")
        total += info.file_size
    if total > file_size + limits.ZIP_SLACK_BYTES:
        raise ArchiveError(f"its entries inflate to {total / 2**20:.0f} MiB from a {file_size / 2**20:.1f} MiB file "
                           f"(a decompression bomb; torch.save stores records uncompressed)")
    pickled = next((i for i in infos if i.filename == f"{prefix}/data.pkl"), None)
    if pickled is None:
        raise ArchiveError("the archive has no data.pkl")
    if pickled.file_size > limits.MAX_PICKLE_BYTES:
        raise ArchiveError(f"its pickle is {pickled.file_size / 2**20:.1f} MiB, above detbench's limit of "
                           f"{limits.MAX_PICKLE_BYTES / 2**20:.0f} MiB (a YOLO checkpoint's is under 1 MiB)")


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One record, CRC-checked, never beyond its declared size."""
    with archive.open(info) as handle:
        content = handle.read(info.file_size + 1)
    if len(content) != info.file_size:
        raise ArchiveError(f"entry {info.filename!r} holds other than its declared {info.file_size} bytes")
    return content


def _damaged(exc: Exception) -> DamagedArchive:
    return DamagedArchive(f"the zip archive is damaged ({type(exc).__name__}: {str(exc)[:80]})")


def read_pickle(handle: BinaryIO, file_size: int) -> bytes:
    """data.pkl of the checkpoint archive open in `handle` (seekable, `file_size` bytes), checked as
    `read_archive` checks the whole archive, with no other record read; raise ArchiveError naming what is
    wrong."""
    try:
        handle.seek(max(0, file_size - _END_RECORDS_BYTES))
        check_central_directory(handle.read(_END_RECORDS_BYTES))
        handle.seek(0)
    except OSError as exc:
        raise _damaged(exc) from exc
    archive, infos, prefix = _listed(handle)
    _check_sizes(infos, prefix, file_size)
    pickled = next(info for info in infos if info.filename == f"{prefix}/data.pkl")
    try:
        return _read_entry(archive, pickled)
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise _damaged(exc) from exc


def read_archive(data: bytes) -> Archive:
    """Check and copy a checkpoint archive; raise ArchiveError naming what is wrong."""
    archive, infos, prefix = _entries(data)
    _check_sizes(infos, prefix, len(data))
    clean = io.BytesIO()
    sizes: dict[str, int] = {}
    pickled = b""
    try:
        with zipfile.ZipFile(clean, "w", zipfile.ZIP_STORED) as writer:
            for info in infos:
                content = _read_entry(archive, info)
                writer.writestr(info.filename, content)
                sizes[info.filename[len(prefix) + 1:]] = len(content)
                if info.filename == f"{prefix}/data.pkl":
                    pickled = content
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise _damaged(exc) from exc
    return Archive(pickle=pickled, sizes=sizes, clean=clean.getvalue())
