"""Reading any image file as 8-bit RGB.

Real folders hold palette GIFs, grayscale and 16-bit PNGs, RGBA and CMYK JPEGs, truncated
downloads and files that are not images at all. Every readable one becomes RGB; every
unreadable one raises :class:`UnreadableImage` with the reason, for the caller to report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jfif"}
)


class UnreadableImage(Exception):
    """An image file that cannot be decoded; ``str()`` is the reason."""


def is_image_file(path: Path) -> bool:
    """Whether ``path`` has an image extension (case-insensitive) and is not hidden."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # PIL clips wide integer images at 255 when converting; scale by the real range.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "P":
        # Palette images with transparency must go through RGBA to keep their colours right.
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    """Decode ``path`` fully and return an RGB image.

    Raises:
        UnreadableImage: the file is missing, not an image, or truncated/corrupt.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # decode now: truncated files fail here, not deep inside a worker
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            return _to_rgb(img).copy()
    except FileNotFoundError:
        raise UnreadableImage("file not found") from None
    except UnidentifiedImageError:
        raise UnreadableImage("not a recognised image format") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UnreadableImage(f"corrupt image: {exc}") from None
    except ImportError as exc:  # a third-party Image.open wrapper without its optional decoder
        raise UnreadableImage(f"not a recognised image format ({exc})") from None


#: The bytes a complete file of these formats ends with (before any trailing padding).
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
_TAIL_BYTES = 1024


def _lacks_end_marker(path: Path, fmt: str | None) -> bool:
    """Whether a JPEG/PNG file's last bytes lack its end marker: a truncated download."""
    marker = _END_MARKERS.get(fmt or "")
    if marker is None:
        return False
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - _TAIL_BYTES))
        return marker not in fh.read()


def probe_image(path: Path) -> str | None:
    """Cheap check while scanning a dataset: ``None`` if it looks readable, else why.

    Reads the header, and for JPEG and PNG the file's last kilobyte: a file without its end
    marker (a truncated download, the commonest corrupt file) is decoded in full to confirm,
    so it is reported while scanning instead of being counted as usable and failing later.
    """
    try:
        with Image.open(path) as img:
            img.size  # noqa: B018 - reading the header is the check
            if _lacks_end_marker(path, img.format):
                img.load()  # confirm: raises for truncated data, passes for odd but whole files
        return None
    except FileNotFoundError:
        return "file not found"
    except UnidentifiedImageError:
        return "not a recognised image format"
    except (OSError, ValueError, SyntaxError) as exc:
        return f"corrupt image: {exc}"
    except ImportError as exc:  # a third-party Image.open wrapper without its optional decoder
        return f"not a recognised image format ({exc})"


def image_files(images: Sequence[str | Path]) -> list[Path]:
    """The files to predict: files as given, folders expanded to the images inside them
    (sorted; a folder without any is named in a warning).

    Raises:
        DataError: no image at all.
    """
    from visiontl import log
    from visiontl.errors import DataError

    files: list[Path] = []
    empty: list[str] = []
    for item in images:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and is_image_file(q))
            if not found:
                empty.append(str(p))
            files += found
        else:
            files.append(p)
    if not files:
        raise DataError(
            f"No image to predict in {', '.join(repr(e) for e in empty) or 'the arguments'}: "
            f"folders are searched for files ending in {', '.join(sorted(IMAGE_EXTENSIONS))} (any case; hidden files are skipped).",
            fix="pass image files, or folders that hold some",
        )
    for folder in empty:
        log.warning(f"no image in folder {folder}")
    return files


def overlay_names(images: Sequence[str | Path], files: list[Path]) -> dict[Path, Path]:
    """Each file's overlay path under the output folder: its path relative to the common
    folder of the inputs, with ``.png`` appended to its full name (so ``x.jpg`` and
    ``x.png``, or ``a/y.png`` and ``b/y.png``, get different overlays)."""
    import os

    roots = [os.path.abspath(p if Path(p).is_dir() else Path(p).parent) for p in images]
    try:
        base: str | None = os.path.commonpath(roots) if roots else None
    except ValueError:  # different drives (Windows)
        base = None
    names: dict[Path, Path] = {}
    for f in files:
        absolute = os.path.abspath(f)
        rel = Path(os.path.relpath(absolute, base)) if base else Path(*Path(absolute).parts[1:])
        names[f] = rel.parent / f"{rel.name}.png"
    return names
