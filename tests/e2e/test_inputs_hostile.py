"""Hostile dataset files: each ends in seconds with one line naming the file and the fix, within bounded memory.

Every case that could hang (a FIFO), read forever (/dev/zero) or take gigabytes
(a decompression bomb) if detbench regressed runs in a child process under a
wall-clock timeout and an address-space limit (what importing detbench takes
plus 3 GiB), so a regression fails the test instead of the machine. The cases
share ONE child (`batch_child.py`: importing torch and Ultralytics once), which
bounds each case by an alarm and gives back each case's exit code, output and
time; the tests stay one per case and fail one per case.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from batch_child import CaseOutcome, run_batch

from detbench.data.benchmark_list import obtain_list, read_list
from detbench.data.datasets import find_val_images
from detbench.data.inputs import check_images, decode_images, header_size
from detbench.data.synthetic import make_dataset
from detbench.errors import DetbenchError
from detbench.limits import MAX_IMAGE_PIXELS

HEADROOM = 3 * 2**30
TIMEOUT_S = 120
FAST_S = 60  # a case may take a few seconds (a whole bench run); the hostile file itself must take none
IMPORTS = ("import detbench.data.benchmark_list, detbench.data.inputs, detbench.measure.pipeline, detbench.data.cache, "
           "ultralytics.data.augment")


# ---------------------------------------------------------------- the bounded child: one for every case below

@dataclass
class Case:
    """What a case runs in the child (`code` with sys.argv[2:] = args) and the paths its test asserts on."""
    code: str
    args: tuple[str | Path, ...]
    folder: Path
    paths: dict[str, Path]


CASES: dict[str, Callable[[Path], Case]] = {}


def case(name: str):
    """Register a case: a function that makes its files in an empty folder of its own and says what to run."""

    def register(prepare: Callable[[Path], Case]) -> Callable[[Path], Case]:
        CASES[name] = prepare
        return prepare

    return register


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[Case, CaseOutcome | None]]:
    """Every case prepared in its own folder, then run in one bounded child: the whole bench runs (cli_*) last."""
    order = sorted(CASES, key=lambda name: name.startswith("cli_"))
    prepared = {name: CASES[name](tmp_path_factory.mktemp(name)) for name in order}
    results = run_batch([(name, c.code, [str(a) for a in c.args], str(c.folder)) for name, c in prepared.items()],
                        imports=IMPORTS, headroom=HEADROOM, case_timeout=TIMEOUT_S,
                        scratch=tmp_path_factory.mktemp("batch"))
    return {name: (c, results.get(name)) for name, c in prepared.items()}


def outcome_of(outcomes, name: str) -> tuple[Case, CaseOutcome]:
    prepared, result = outcomes[name]
    assert result is not None, f"case {name} gave no outcome: the child died before or during it"
    return prepared, result


def refused(result: CaseOutcome, *fragments: str) -> str:
    """The case ended fast with exactly one `error:` line (no traceback) holding every fragment."""
    assert result.returncode == 2, result.stderr
    stderr = result.stderr
    assert "Traceback" not in stderr and stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert result.seconds < FAST_S, result.seconds
    for fragment in fragments:
        assert fragment in stderr, (fragment, stderr)
    return stderr.strip()


# ---------------------------------------------------------------- hostile files

def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@functools.cache
def png_bomb_bytes(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit PNG of width x height zeros: about 110 KB that OpenCV would decode to 3 * width * height bytes
    (compressed once: each case writes a copy)."""
    deflate, row = zlib.compressobj(9), bytes(1 + (width + 7) // 8)
    idat = b"".join([deflate.compress(row) for _ in range(height)] + [deflate.flush()])
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def png_bomb(path: Path) -> Path:
    path.write_bytes(png_bomb_bytes())
    return path


def hostile(kind: str, path: Path) -> Path:
    """A FIFO, a symlink to /dev/zero, or a symlink to a FIFO at `path`."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path.with_name(path.name + ".target"))
        path.symlink_to(path.with_name(path.name + ".target"))
    return path


KINDS = {"fifo": "is a FIFO (named pipe), not a regular file", "dev_zero": "is a device, not a regular file",
         "link_to_fifo": "is a FIFO (named pipe), not a regular file"}


def small_dataset(folder: Path) -> Path:
    return make_dataset(folder / "data", n_train=0, n_val=6, seed=5)


@pytest.fixture
def data(tmp_path) -> Path:
    return small_dataset(tmp_path)


def val_folder(data: Path) -> Path:
    return data.parent / "images" / "val"


def with_val(data: Path, val: str) -> Path:
    """A copy of the data YAML whose val entry is `val`."""
    path = data.with_name("custom.yaml")
    path.write_text(f"path: {data.parent}\nval: {val}\n")
    return path


DRAW = "from detbench.data.benchmark_list import obtain_list\nobtain_list(sys.argv[2], sys.argv[3], 10, 42, False)"


# ---------------------------------------------------------------- files that never end

def _endless_val_txt(kind: str) -> Callable[[Path], Case]:
    def prepare(folder: Path) -> Case:
        data = small_dataset(folder)
        target = hostile(kind, folder / "bad.jpg")
        good = sorted(val_folder(data).glob("*.jpg"))
        (data.parent / "val.txt").write_text("".join(f"{p}\n" for p in good) + f"{target}\n")
        out = folder / "out"
        return Case(DRAW, (out / "benchmark_list.txt", with_val(data, "val.txt")), folder,
                    {"target": target, "out": out})

    return prepare


def _endless_listing(kind: str, which: str) -> Callable[[Path], Case]:
    def prepare(folder: Path) -> Case:
        data = small_dataset(folder)
        if which == "val_list":
            listing = hostile(kind, data.parent / "val.txt")
            return Case(DRAW, (folder / "l.txt", with_val(data, "val.txt")), folder, {"file": listing})
        if which == "data_yaml":
            yaml_file = hostile(kind, folder / "data.yaml")
            return Case(DRAW, (folder / "l.txt", yaml_file), folder, {"file": yaml_file})
        list_file = hostile(kind, folder / "benchmark_list.txt")  # as --list would name it
        return Case(DRAW, (list_file, data), folder, {"file": list_file})

    return prepare


for _kind in sorted(KINDS):
    case(f"val_txt-{_kind}")(_endless_val_txt(_kind))
    for _which in ("val_list", "data_yaml", "benchmark_list"):
        case(f"endless-{_which}-{_kind}")(_endless_listing(_kind, _which))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_val_txt_naming_an_endless_file_is_refused(kind, outcomes):
    prepared, result = outcome_of(outcomes, f"val_txt-{kind}")
    message = refused(result, f"image {os.path.realpath(prepared.paths['target'])}:", KINDS[kind])
    assert message.endswith("replace it with a regular image file, or take it out of the val split")
    out = prepared.paths["out"]
    assert not out.exists() or not any(out.iterdir())


@case("val_txt-dev_zero_itself")
def _val_txt_naming_dev_zero(folder: Path) -> Case:
    data = small_dataset(folder)
    (data.parent / "val.txt").write_text(f"{next(val_folder(data).glob('*.jpg'))}\n/dev/zero\n")
    return Case(DRAW, (folder / "l.txt", with_val(data, "val.txt")), folder, {})


def test_val_txt_naming_dev_zero_itself_is_refused(outcomes):
    refused(outcome_of(outcomes, "val_txt-dev_zero_itself")[1], "image /dev/zero: is a device, not a regular file")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_endless_val_list_data_yaml_or_benchmark_list_is_refused(kind, outcomes):
    prepared, result = outcome_of(outcomes, f"endless-val_list-{kind}")
    refused(result, f"val list {prepared.paths['file']} (from --data ", KINDS[kind],
            "; fix 'val' in the YAML or the list")
    prepared, result = outcome_of(outcomes, f"endless-data_yaml-{kind}")
    refused(result, f"--data {prepared.paths['file']}: {KINDS[kind]}; pass the dataset's data YAML file")
    prepared, result = outcome_of(outcomes, f"endless-benchmark_list-{kind}")
    refused(result, f"benchmark list {prepared.paths['file']}: {KINDS[kind]}; delete it to make a new one, or "
                    f"choose another --list")


@case("walk")
def _val_folder_with_special_files_and_link_loops(folder: Path) -> Case:
    data = small_dataset(folder)
    images = val_folder(data)
    hostile("fifo", images / "pipe.jpg")
    hostile("dev_zero", images / "zero.png")
    hostile("link_to_fifo", images / "linked.jpg")
    (images / "loop").symlink_to(images, target_is_directory=True)  # images/val/loop/loop/... never ends
    (images / "self.jpg").symlink_to(images / "self.jpg")  # a link to itself
    code = ("from detbench.data.datasets import find_val_images\n"
            "print(*[p.name for p in find_val_images(sys.argv[2])[0]])")
    return Case(code, (data,), folder, {})


def test_val_folder_walk_skips_special_files_and_link_loops(outcomes):
    result = outcome_of(outcomes, "walk")[1]
    assert result.returncode == 0 and result.seconds < FAST_S, result.stderr
    assert result.stdout.split() == [f"val_{i:05d}.jpg" for i in range(6)]


# ---------------------------------------------------------------- decompression bombs

BOMB_CASES = {
    "check": "from detbench.data.inputs import check_images\ncheck_images([sys.argv[2]])",
    "decode": "from detbench.data.inputs import decode_images\ndecode_images([sys.argv[2]], 64)",
    "cache": ("from pathlib import Path\nfrom detbench.data.cache import cached_inputs\n"
              "cached_inputs(Path(sys.argv[3]), [sys.argv[2]], 64)"),
    "pipeline": "from detbench.measure.pipeline import decode_originals\ndecode_originals([sys.argv[2]], 'x' * 64)",
}


def _bomb(code: str) -> Callable[[Path], Case]:
    def prepare(folder: Path) -> Case:
        bomb = png_bomb(folder / "bomb.png")
        return Case(code, (bomb, folder / "cache"), folder, {"bomb": bomb, "cache": folder / "cache"})

    return prepare


for _name, _code in sorted(BOMB_CASES.items()):
    case(f"bomb-{_name}")(_bomb(_code))


@pytest.mark.parametrize("reader", sorted(BOMB_CASES))
def test_decompression_bomb_is_refused_from_its_header(reader, outcomes):
    prepared, result = outcome_of(outcomes, f"bomb-{reader}")
    bomb = prepared.paths["bomb"]
    assert bomb.stat().st_size < 200_000
    message = refused(result)
    assert message == (f"error: image {bomb}: 30000x30000 pixels (900.0 megapixels) is above the limit of "
                       f"{MAX_IMAGE_PIXELS:,} pixels; raise the limit with --max-image-pixels if you trust the "
                       f"image, or take it out of the val split")
    assert not prepared.paths["cache"].exists()


@case("bomb_in_val_split")
def _bomb_in_the_val_split(folder: Path) -> Case:
    data = small_dataset(folder)
    png_bomb(val_folder(data) / "val_99999.png")
    out = folder / "out"
    return Case(DRAW.replace("10, 42", "100, 42"), (out / "benchmark_list.txt", data), folder, {"out": out})


def test_bomb_in_the_val_split_writes_no_list(outcomes):
    prepared, result = outcome_of(outcomes, "bomb_in_val_split")
    refused(result, "val_99999.png: 30000x30000 pixels", "--max-image-pixels")
    assert not (prepared.paths["out"] / "benchmark_list.txt").exists()


def test_pixel_limit_is_a_parameter(data):
    image = str(next(val_folder(data).glob("*.jpg")))
    height, width = cv2.imread(image).shape[:2]
    for call in (lambda limit: check_images([image], limit), lambda limit: decode_images([image], 64, limit)):
        with pytest.raises(DetbenchError, match=rf"^image {re.escape(image)}: {width}x{height} pixels .* above the "
                                                rf"limit of {width * height - 1:,} pixels; raise the limit with "
                                                rf"--max-image-pixels"):
            call(width * height - 1)
        call(width * height)


def test_formats_whose_size_pillow_cannot_read_are_not_decoded(tmp_path):
    float_image = np.random.default_rng(0).random((8, 12, 3), dtype=np.float32)
    hdr = cv2.imencode(".hdr", float_image)[1].tobytes()  # Radiance HDR: OpenCV decodes it, Pillow cannot size it
    # An HDR image that Pillow takes for a Kodak PhotoCD (its marker at byte 2048) of 768x512: OpenCV would
    # still decode it as HDR, at whatever size its own header says.
    polyglot = hdr.ljust(2048, b"\0") + b"PCD_IPI" + bytes(2000)
    assert cv2.imdecode(np.frombuffer(polyglot, np.uint8), cv2.IMREAD_COLOR) is not None
    assert header_size(hdr) is None and header_size(polyglot) is None
    paths = []
    for name, content in (("radiance.jpg", hdr), ("polyglot.jpg", polyglot)):
        (tmp_path / name).write_bytes(content)
        paths.append(str(tmp_path / name))
    with pytest.raises(DetbenchError, match=r"2 not decodable of 2 images \(first: .*radiance\.jpg; images are "
                                            r"decoded only in a format whose size Pillow can read, e\.g\. JPEG, "
                                            r"PNG, BMP, TIFF, WebP\); restore them"):
        check_images(paths)


# ---------------------------------------------------------------- awkward names

@pytest.mark.parametrize("char", ["\n", "\r", "\u2028", "\u2029", "\x85", "\x1c", "\t"])
def test_val_image_with_a_line_breaking_name_is_refused_naming_it(char, data, tmp_path):
    folder = val_folder(data)
    awkward = folder / f"val{char}evil.jpg"
    shutil.copy(folder / "val_00000.jpg", awkward)
    with pytest.raises(DetbenchError) as info:
        obtain_list(tmp_path / "benchmark_list.txt", data, 3, 42, use_existing=False)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message and char not in message
    assert message == (f"--data {data}: val image {str(awkward)!r} holds the character {char!r}, which would "
                       f"break the one-path-per-line benchmark list; rename it")
    assert not (tmp_path / "benchmark_list.txt").exists()
    awkward.rename(folder / "val_renamed.jpg")
    assert len(obtain_list(tmp_path / "benchmark_list.txt", data, 7, 42, use_existing=False).blist.paths) == 7


def test_val_txt_lines_are_split_on_newline_only(data, tmp_path):
    images = sorted(val_folder(data).glob("*.jpg"))
    odd = val_folder(data) / "a\u2028b.jpg"
    shutil.copy(images[0], odd)
    (data.parent / "val.txt").write_text(f"{images[1]}\r\n{images[2]}\n  \n{odd}\n")
    with pytest.raises(DetbenchError, match=r"val list .*val\.txt \(from --data .*\) line 4: '.*a\\u2028b\.jpg' "
                                            r"holds the character '\\u2028'.*; rename it$"):
        find_val_images(with_val(data, "val.txt"))
    (data.parent / "val.txt").write_text(f"{images[1]}\r\n{images[2]}\n  \n")
    assert find_val_images(with_val(data, "val.txt"))[0] == images[1:3]
    (data.parent / "val.txt").write_text("x" * 5000 + "\n")
    with pytest.raises(DetbenchError, match=r"line 1: 'x{200}'\.\.\. is 5,000 characters long, above 4,096; move "
                                            r"it to a shorter path$"):
        find_val_images(with_val(data, "val.txt"))


def test_list_lines_keep_their_characters_and_lose_only_a_trailing_cr(tmp_path):
    path = tmp_path / "benchmark_list.txt"
    path.write_bytes(b"# seed: 3\r\n/a b.jpg\r\n /lead.jpg \n\n/c.jpg")
    blist = read_list(path)
    assert (blist.seed, blist.paths) == (3, ["/a b.jpg", " /lead.jpg ", "/c.jpg"])
    for line, char in (("/b\u2028c.jpg", "\\u2028"), ("/b\x1cc.jpg", "\\x1c"), ("/b\x85c.jpg", "\\x85"),
                       ("/c.jpg\r\r", "\\r")):
        path.write_bytes(f"/a.jpg\r\n{line}\n".encode())
        with pytest.raises(DetbenchError, match=rf"^benchmark list {re.escape(str(path))} line 2: '.*' holds the "
                                                rf"character '{re.escape(char)}'.*; rename it, or delete the list "
                                                rf"to make a new one$"):
            read_list(path)
    path.write_text("/" + "x" * 4096 + "\n")
    with pytest.raises(DetbenchError, match=r"line 1: .* is 4,097 characters long, above 4,096"):
        read_list(path)


# ---------------------------------------------------------------- the whole command

CLI = ("from detbench.cli import main\nsys.exit(main(['bench', '--weights', 'yolov8n.yaml', '--device', 'cpu', "
       "'--imgsz', '64', '--warmup', '1', '--iters', '2', '--threads', '1', '--data', sys.argv[2], '--out', "
       "sys.argv[3]]))")


@case("cli_bomb")
def _cli_with_a_bomb_in_the_val_split(folder: Path) -> Case:
    data = small_dataset(folder)
    bomb = png_bomb(val_folder(data) / "val_00002.png")
    return Case(CLI, (data, folder / "out"), folder, {"bomb": bomb, "out": folder / "out"})


def test_cli_refuses_a_bomb_in_the_val_split_in_seconds(outcomes):
    prepared, result = outcome_of(outcomes, "cli_bomb")
    bomb, out, stderr = prepared.paths["bomb"], prepared.paths["out"], result.stderr
    assert result.returncode == 2 and result.seconds < FAST_S and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines() == [f"error: image {bomb}: 30000x30000 pixels (900.0 megapixels) is above the "
                                           f"limit of {MAX_IMAGE_PIXELS:,} pixels; raise the limit with "
                                           f"--max-image-pixels if you trust the image, or take it out of the val "
                                           f"split"]
    assert not (out / "benchmark_list.txt").exists()


@case("cli_linked_cache")
def _cli_beside_a_linked_cache(folder: Path) -> Case:
    outside, out = folder / "outside", folder / "out"
    outside.mkdir()
    out.mkdir()
    (out / ".detbench-cache").symlink_to(outside, target_is_directory=True)
    return Case(CLI, (small_dataset(folder), out), folder, {"outside": outside, "out": out})


def test_cli_never_writes_through_a_symlinked_cache(outcomes):
    prepared, result = outcome_of(outcomes, "cli_linked_cache")
    assert result.returncode == 0, result.stderr
    outside, out = prepared.paths["outside"], prepared.paths["out"]
    assert list(outside.iterdir()) == [] and (out / ".detbench-cache").is_symlink()
    assert (out / "yolov8n.json").is_file()


# ---------------------------------------------------------------- headers padded to be slow to read

def jpeg_with_markers(path: Path, markers: int) -> Path:
    """A valid 64x64 JPEG with `markers` empty COM segments (4 bytes each) after its SOI, written in chunks."""
    jpeg = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
    block = b"\xff\xfe\x00\x02" * 2**20
    with path.open("wb") as out:
        out.write(jpeg[:2])
        for start in range(0, markers, 2**20):
            out.write(block[:4 * min(2**20, markers - start)])
        out.write(jpeg[2:])
    return path


@case("jpeg_markers")
def _jpeg_with_millions_of_empty_markers(folder: Path) -> Case:
    padded = jpeg_with_markers(folder / "padded.jpg", 5_000_000)
    return Case(BOMB_CASES["check"], (padded,), folder, {"padded": padded})


def test_jpeg_with_millions_of_empty_markers_is_refused_fast(tmp_path, outcomes):
    prepared, result = outcome_of(outcomes, "jpeg_markers")
    padded = prepared.paths["padded"]
    message = refused(result)
    assert message == (f"error: image {padded}: more than 1,000 markers or 16 MiB come before its frame header "
                       f"(SOF); re-save it without the extra markers, or take it out of the val split")
    few = jpeg_with_markers(tmp_path / "few.jpg", 900)
    assert header_size(few.read_bytes()) == (64, 64)
    check_images([few])


@case("png_chunks")
def _png_with_a_million_empty_chunks(folder: Path) -> Case:
    bomb = png_bomb(folder / "bomb.png").read_bytes()
    padded = folder / "padded.png"
    padded.write_bytes(bomb[:33] + png_chunk(b"abCd", b"") * 1_000_000 + bomb[33:])  # after IHDR, before IDAT
    return Case(BOMB_CASES["check"], (padded,), folder, {"padded": padded, "bomb": folder / "bomb.png"})


def test_png_with_a_million_empty_chunks_is_sized_from_ihdr(outcomes):
    prepared, result = outcome_of(outcomes, "png_chunks")
    refused(result, f"image {prepared.paths['padded']}: 30000x30000 pixels (900.0 megapixels) is above the limit")
    bomb = prepared.paths["bomb"].read_bytes()
    assert header_size(bomb[:8] + png_chunk(b"abCd", b"") + bomb[8:]) is None  # IHDR must come first


def tiff_tile_bomb(path: Path, tile_width: int = 16384, tile_length: int = 16368) -> Path:
    """A deflated 8-bit grey TIFF that declares 1x1 pixels but holds one tile_width x tile_length tile."""
    tile = zlib.compress(bytes(tile_width * tile_length), 9)
    tags = [(256, 3, 1), (257, 3, 1), (258, 3, 8), (259, 3, 8), (262, 3, 1), (277, 3, 1), (322, 4, tile_width),
            (323, 4, tile_length), (324, 4, 8), (325, 4, len(tile))]
    ifd_offset = 8 + len(tile)
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in tags) + struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", ifd_offset) + tile + ifd)
    return path


@case("tiff_tile")
def _tiff_declaring_one_pixel_with_a_huge_tile(folder: Path) -> Case:
    bomb = tiff_tile_bomb(folder / "tile.tif")
    return Case(BOMB_CASES["decode"], (bomb,), folder, {"bomb": bomb})


def test_tiff_declaring_one_pixel_with_a_huge_tile_is_refused(tmp_path, outcomes):
    prepared, result = outcome_of(outcomes, "tiff_tile")
    bomb = prepared.paths["bomb"]
    assert bomb.stat().st_size < 1_000_000 and header_size(bomb.read_bytes()) == (1, 1)
    message = refused(result)
    assert message == (f"error: image {bomb}: a TIFF tile of 16384x16368 pixels (268.2 megapixels) is above the "
                       f"limit of {MAX_IMAGE_PIXELS:,} pixels; raise the limit with --max-image-pixels if you "
                       f"trust the image, or take it out of the val split")
    plain = tmp_path / "plain.tif"  # strips of at most the image's height
    cv2.imwrite(str(plain), np.zeros((40, 30, 3), np.uint8))
    check_images([plain])
    assert len(decode_images([plain], 64)) == 1


# ---------------------------------------------------------------- repeated val entries

@case("val_aliases")
def _val_listing_many_entries(folder: Path) -> Case:
    aliases = with_val(small_dataset(folder), "[&v /usr/share" + ", *v" * 1999 + "]")
    code = "from detbench.data.datasets import find_val_images\nfind_val_images(sys.argv[2])"
    return Case(code, (aliases,), folder, {"aliases": aliases})


def test_val_listing_many_entries_is_refused_naming_the_count(outcomes):
    prepared, result = outcome_of(outcomes, "val_aliases")
    refused(result, f"--data {prepared.paths['aliases']}: 'val' lists 2,000 entries, above 64; name the validation "
                    f"folders")


def test_repeated_val_entries_are_searched_once_within_one_budget(data, monkeypatch):
    folder = val_folder(data)
    repeated = with_val(data, f"[&v images/val, *v, ./images/val, {folder}, *v]")
    assert [p.name for p in find_val_images(repeated)[0]] == [f"val_{i:05d}.jpg" for i in range(6)]
    monkeypatch.setattr("detbench.data.datasets.MAX_VAL_ENTRIES", 10)
    (data.parent / "val.txt").write_text("".join(f"{p}\n" for p in sorted(folder.glob("*.jpg"))))
    with pytest.raises(DetbenchError, match=r"the val split holds more than 10 entries \(stopped in .*val\.txt\)"):
        find_val_images(with_val(data, "[images/val, val.txt]"))
    empty = data.parent.joinpath(*["e" * 200] * 15)  # about 3,000 characters
    empty.mkdir(parents=True)
    with pytest.raises(DetbenchError) as info:
        find_val_images(with_val(data, f"[{empty}, {empty}/., {empty}/./, {empty}/./.]"))
    assert len(str(info.value)) < 500 and str(info.value).endswith("holds no images; check 'path' and 'val'")
