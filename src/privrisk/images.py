"""Images in, RGB uint8 arrays out.

One entry point, :func:`load_image`, takes a path, bytes or a binary file object and returns a
:class:`LoadedImage`. It accepts what people actually have (JPEG, PNG, WebP, BMP, TIFF, GIF's
first frame, and the Netpbm PGM/PPM/PBM files classic research face sets come in), applies the EXIF orientation, converts every colour mode to 8-bit RGB, refuses
decompression bombs from the header alone and downscales large photos while decoding. Every
failure is an :class:`~privrisk.errors.ImageError` naming the image and the reason.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageError, ImageTooLarge

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO

#: Formats we decode. Anything else (PDF, PSD, EPS ...) is refused before decoding.
#: Pillow names every Netpbm file (PBM, PGM, PPM, 8 or 16 bits) "PPM".
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF", "PPM"})
#: How the supported formats are named to people, in errors and the README.
SUPPORTED_FORMATS_TEXT = "JPEG, PNG, WebP, BMP, TIFF, GIF or Netpbm (PGM, PPM, PBM)"

DEFAULT_MAX_PIXELS = 40_000_000  # a 50 MP phone photo is ~8000x6000 = 48 MP; bombs are far beyond
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_SIDE = 2048


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image: ``rgb`` is (H, W, 3) uint8, C-contiguous.

    ``original_size`` is (width, height) as stored in the file (after EXIF rotation), and
    ``scale`` is how much the pixels were shrunk on loading (1.0 = untouched), so a box in
    ``rgb`` maps back to the original by dividing by ``scale``.
    """

    rgb: np.ndarray
    name: str
    sha256: str
    original_size: tuple[int, int]
    scale: float

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def _read_bytes(source: ImageSource, name: str, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise ImageError(name, "file not found") from None
        except OSError as exc:
            raise ImageError(name, f"cannot read file ({exc.strerror or exc})") from None
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(name, "is a directory, not an image file")
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise ImageError(name, "is not a regular file")
        size = info.st_size
        if size > max_bytes:
            raise ImageTooLarge(name, f"file is {size:,} bytes, over the limit of {max_bytes:,}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(name, f"cannot read file ({exc.strerror or exc})") from None
    else:
        data = source.read(max_bytes + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise ImageError(name, "file object did not return bytes")
        data = bytes(data)
    if len(data) > max_bytes:
        raise ImageTooLarge(name, f"file is over the limit of {max_bytes:,} bytes")
    if not data:
        raise ImageError(name, "file is empty (0 bytes)")
    return data


def _source_name(source: ImageSource, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return getattr(source, "name", None) or "<uploaded image>"


def _to_rgb(img: Image.Image, name: str) -> np.ndarray:
    """Convert any Pillow mode to (H, W, 3) uint8; transparency is flattened onto white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode == "F" or arr.max(initial=0) > 65535 or arr.min(initial=0) < 0:
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        elif mode != "I" or arr.max(initial=0) > 255:
            arr = arr / 257.0
        gray = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    try:
        rgb = img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(name, f"unsupported colour mode {mode!r} ({exc})") from None
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def load_image(
    source: ImageSource,
    *,
    name: str | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LoadedImage:
    """Decode one image into RGB.

    ``source`` is a path, the image's bytes or a binary file object; ``name`` labels it in
    errors (defaults to the path). Images whose header declares more than ``max_pixels`` are
    refused without decoding. The longer side is shrunk to ``max_side`` (None keeps full size).
    Raises :class:`ImageError` (or :class:`ImageTooLarge`) naming the image and the reason.
    """
    label = _source_name(source, name)
    data = _read_bytes(source, label, max_bytes)
    digest = hashlib.sha256(data).hexdigest()
    # Pillow keeps this as a module global; face_recognition sets it to True at import, which
    # would turn truncated files into grey half-images. We want the error.
    truncated_before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(io.BytesIO(data))
            except UnidentifiedImageError:
                raise ImageError(label, f"not a recognised image ({SUPPORTED_FORMATS_TEXT})") from None
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise ImageTooLarge(label, "declares too many pixels (decompression bomb guard)") from None
            except (OSError, ValueError, SyntaxError) as exc:
                raise ImageError(label, f"cannot read image header ({exc})") from None
            with img:
                return _decode(img, label, digest, max_side, max_pixels)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated_before


def _decode(img: Image.Image, label: str, digest: str, max_side: int | None, max_pixels: int) -> LoadedImage:
    if img.format not in ALLOWED_FORMATS:
        raise ImageError(label, f"format {img.format} is not supported (use {SUPPORTED_FORMATS_TEXT})")
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError(label, f"has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLarge(
            label, f"declares {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}"
        )
    try:
        if max_side and img.format == "JPEG" and max(width, height) > 2 * max_side:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: far faster for huge photos.
            img.draft(
                "RGB", (max(1, width * max_side // max(width, height)), max(1, height * max_side // max(width, height)))
            )
        img.load()
        before = img.size
        try:
            img = ImageOps.exif_transpose(img)
        except Exception:  # noqa: BLE001 - malformed EXIF must not lose a good image
            pass
        swapped = img.size != before
        orig_w, orig_h = (height, width) if swapped else (width, height)
        rgb = _to_rgb(img, label)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(label, "declares too many pixels (decompression bomb guard)") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageError(label, f"corrupt or truncated image data ({exc})") from None
    h, w = rgb.shape[:2]
    scale = w / orig_w if orig_w else 1.0
    if max_side and max(h, w) > max_side:
        factor = max_side / max(h, w)
        new_size = (max(1, round(w * factor)), max(1, round(h * factor)))
        rgb = np.ascontiguousarray(np.asarray(Image.fromarray(rgb).resize(new_size, Image.Resampling.LANCZOS)))
        scale = rgb.shape[1] / orig_w
    return LoadedImage(rgb=rgb, name=label, sha256=digest, original_size=(orig_w, orig_h), scale=float(scale))
