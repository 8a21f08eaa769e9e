"""Check a zip of image folders entry by entry, then extract only what passed.

Refused, naming the entry: absolute paths and ".." (entries that escape their folder),
symlinks, encrypted entries, more entries than the limit, a total unpacked size over the limit
(zip bombs: the sizes in the zip's directory are what zipfile enforces while reading), images
outside a class folder and files that are not the images their extension says. Images are
opened with Pillow when it is installed (header and structure, no full decode); otherwise
only their magic bytes are checked and the worker's TensorFlow decode is the final word.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from backend.datasets.validate import ARCHIVE_ERRORS, Checked, UploadInvalid, damaged

IMAGE_EXTENSIONS = frozenset({".bmp", ".gif", ".jpeg", ".jpg", ".png"})
_MAGIC = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".gif": (b"GIF87a", b"GIF89a"),
    ".bmp": (b"BM",),
}
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
TEST_FOLDERS = ("test", "validation")
DEFAULT_IMAGE_SIZE = [150, 150]
# a tiny file may declare a huge image; decoding it would take the worker's memory
MAX_IMAGE_PIXELS = 40_000_000
_DRIVE = re.compile(r"^[A-Za-z]:")


def _bad(entry: str, why: str) -> UploadInvalid:
    return UploadInvalid(f"zip entry {entry!r} {why}", field="file")


def safe_parts(info: zipfile.ZipInfo) -> list[str]:
    """The entry's path parts, refusing anything that could land outside the target folder."""
    name = info.filename
    if (info.external_attr >> 16) and stat.S_ISLNK(info.external_attr >> 16):
        raise _bad(name, "is a symbolic link; links are not extracted")
    if info.flag_bits & 0x1:
        raise _bad(name, "is encrypted")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        raise _bad(name, "has an absolute path and would escape its folder")
    parts = [p for p in PurePosixPath(unified).parts if p not in ("", ".")]
    if ".." in parts:
        raise _bad(name, "contains '..' and would escape its folder")
    if "\x00" in unified:
        raise _bad(name, "has a NUL byte in its name")
    return parts


def _skipped(parts: list[str]) -> bool:
    return not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


def check_image_zip(
    path: Path, dest: Path, *, max_entries: int, max_unpacked_bytes: int
) -> Checked:
    """Check every entry, extract the images under dest, and describe the classes found."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise UploadInvalid("not a zip file", field="file") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > max_entries:
            raise UploadInvalid(
                f"the zip holds {len(infos)} entries; the limit is {max_entries}", field="file"
            )
        images: list[tuple[zipfile.ZipInfo, list[str]]] = []
        total = 0
        for info in infos:
            parts = safe_parts(info)
            total += info.file_size
            if total > max_unpacked_bytes:
                raise _bad(
                    info.filename,
                    f"takes the zip past {max_unpacked_bytes // 2**20} MB unpacked "
                    "(FITBOARD_MAX_UNZIPPED_MB)",
                )
            if info.is_dir() or _skipped(parts):
                continue
            if PurePosixPath(parts[-1]).suffix.lower() in IMAGE_EXTENSIONS:
                images.append((info, parts))
        layout = _layout([parts for _, parts in images])
        shapes: list[tuple[int, int, bool]] = []
        for info, parts in images:
            rel = parts[layout["strip"] :]
            target = dest.joinpath(*rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            _extract(archive, info, target)
            shape = _check_image(target, info.filename)
            if shape is not None:
                shapes.append(shape)
    sizes = {(h, w) for h, w, _ in shapes}
    image_size = list(sizes.pop()) if len(sizes) == 1 and len(shapes) == len(images) else None
    gray = bool(shapes) and len(shapes) == len(images) and all(g for _, _, g in shapes)
    color_mode = "grayscale" if gray else "rgb"
    size = image_size or DEFAULT_IMAGE_SIZE
    return Checked(
        num_examples=len(images),
        class_names=layout["classes"],
        input_shape=[size[0], size[1], 1 if gray else 3],
        options={
            "image_size": size,
            "color_mode": color_mode,
            "layout": layout["kind"],
        },
    )


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """Copy one entry out, streaming; a decoder error (bad CRC, corrupt deflate data, an
    unknown compression method, a size that lies) is a 422 naming the entry."""
    try:
        with archive.open(info) as src, target.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except ARCHIVE_ERRORS as exc:
        target.unlink(missing_ok=True)
        raise damaged(info.filename, exc) from None


def _layout(files: list[list[str]]) -> dict[str, Any]:
    """Strip a common top folder; then class folders, or train/ + test/ (or validation/)."""
    strip = 0
    while files and all(len(p) > strip + 2 for p in files):
        tops = {p[strip] for p in files}
        if len(tops) != 1 or tops & {"train", *TEST_FOLDERS}:
            break
        strip += 1
    tops = {p[strip] for p in files if len(p) > strip + 1}
    split = "train" in tops and bool(tops & set(TEST_FOLDERS))
    depth = strip + (1 if split else 0)
    for parts in files:
        if len(parts) < depth + 2:
            raise _bad("/".join(parts), "is not inside a class folder (one folder per class)")
    if split:
        test_name = next(t for t in TEST_FOLDERS if t in tops)
        train = Counter(p[depth] for p in files if p[strip] == "train")
        test = Counter(p[depth] for p in files if p[strip] == test_name)
        missing = sorted(set(train) - set(test))
        if missing:
            raise UploadInvalid(f"{test_name}/ has no folder for {missing}", field="file")
        counts = train
    else:
        counts = Counter(p[depth] for p in files)
        few = sorted(name for name, n in counts.items() if n < 2)
        if few:
            raise UploadInvalid(
                f"class folders {few} hold fewer than 2 images: each class needs 2 or more to "
                "hold some out for the test split",
                field="file",
            )
    if len(counts) < 2:
        found = sorted(counts) or "none"
        raise UploadInvalid(
            "the zip needs one folder of images (.png, .jpg, .jpeg, .bmp, .gif) per class, at "
            f"least 2 classes; found {found}",
            field="file",
        )
    return {"strip": strip, "classes": sorted(counts), "kind": "split" if split else "folders"}


def _check_image(path: Path, entry: str) -> tuple[int, int, bool] | None:
    """(height, width, grayscale) when Pillow can tell; the magic bytes must match."""
    with path.open("rb") as f:
        head = f.read(16)
    if not head.startswith(_MAGIC[path.suffix.lower()]):
        raise _bad(entry, f"is not a {path.suffix.lower()[1:].upper()} image")
    try:
        from PIL import Image
    except ImportError:  # the worker's decode is then the final check
        return None
    try:
        with Image.open(path) as image:
            width, height, mode = image.width, image.height, image.mode
            image.verify()
    except Exception as exc:  # Pillow raises many types for broken files
        raise _bad(entry, f"cannot be read as an image ({type(exc).__name__}: {exc})") from None
    if height * width > MAX_IMAGE_PIXELS:
        raise _bad(entry, f"is {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS:,} pixels")
    return height, width, mode in _GRAY_MODES
