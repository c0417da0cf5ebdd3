"""A hostile-input corpus, generated (no stored binaries): images, manifests, configs, profiles.

Each item is (name, kind, maker); ``maker(dir)`` writes the item under ``dir`` and returns its path.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from helpers import noise_image


def _png_header_only(w: int, h: int) -> bytes:
    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _rgb(w=160, h=120, seed=1):
    return Image.fromarray(noise_image(seed, size=(w, h)))


def _flip(data: bytes, seed: int, n: int = 12) -> bytes:
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    for pos in rng.integers(len(out) // 4, len(out), n):
        out[pos] ^= 0xFF
    return bytes(out)


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_rgb(), "JPEG", exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 40), c) for c in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


def _palette_transparent() -> bytes:
    img = _rgb().convert("P")
    return _encode(img, "PNG", transparency=0)


def _faces_grid(london: Path | None, n: int) -> bytes:
    if london is None:
        return _encode(_rgb(), "PNG")
    ids = sorted(p.name for p in (london / "neutral").glob("*.jpg"))[:n]
    cols = 5
    rows = (n + cols - 1) // cols
    canvas = Image.new("RGB", (cols * 200, rows * 200), "white")
    for k, name in enumerate(ids):
        canvas.paste(Image.open(london / "neutral" / name).resize((200, 200)), ((k % cols) * 200, (k // cols) * 200))
    return _encode(canvas, "JPEG", quality=90)


def image_items(london: Path | None):
    jpeg, png = _encode(_rgb(400, 300), "JPEG"), _encode(_rgb(400, 300), "PNG")
    face = (london / "neutral" / "066.jpg").read_bytes() if london else jpeg
    return [
        ("truncated.jpg", jpeg[: len(jpeg) // 3]),
        ("truncated.png", png[: len(png) // 2]),
        ("bitflip.jpg", _flip(jpeg, 1)),
        ("bitflip.png", _flip(png, 2)),
        ("bitflip-face.jpg", _flip(face, 3, n=40)),
        ("zero.jpg", b""),
        ("text.jpg", b"just some words, not a photo\n" * 20),
        ("page.jpg", b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"),
        ("polyglot.png", png + b"PK\x03\x04" + b"\x00" * 64 + b"<script>alert(1)</script>"),
        ("gif-header-js.gif", b"GIF89a/*" + b"\x00" * 20 + b"*/=alert(1);"),
        ("bomb.png", _png_header_only(50_000, 50_000)),
        ("bomb-wide.png", _png_header_only(2_000_000, 100)),
        ("aspect-10000x1.png", _encode(Image.new("RGB", (10_000, 1), "gray"), "PNG")),
        ("aspect-1x10000.png", _encode(Image.new("RGB", (1, 10_000), "gray"), "PNG")),
        ("tiny-1x1.png", _encode(Image.new("RGB", (1, 1), "gray"), "PNG")),
        ("wide-10000.jpg", _encode(_rgb(10_000, 400), "JPEG", quality=70)),
        ("cmyk.jpg", _encode(_rgb().convert("CMYK"), "JPEG")),
        ("grey16.png", _encode(Image.fromarray(np.asarray(_rgb().convert("L"), np.uint16) * 257), "PNG")),
        ("palette-transparent.png", _palette_transparent()),
        ("animated.gif", _animated_gif()),
        ("exif-bogus.jpg", _exif(99)),
        ("exif-zero.jpg", _exif(0)),
        ("exif-rotate.jpg", _exif(6)),
        ("pdf.jpg", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"),
        ("ico.jpg", _encode(_rgb(32, 32), "ICO")),
        ("bad-bmp.bmp", b"BM" + b"\xff" * 60),
        ("no-face.png", _encode(_rgb(300, 300), "PNG")),
        ("one-face.jpg", face),
        ("twenty-faces.jpg", _faces_grid(london, 20)),
        ("webp-truncated.webp", _encode(_rgb(), "WEBP")[:40]),
    ]


def manifest_items():
    head = "subject_id,image,consent\n"
    return [
        ("m-missing-columns.csv", b"who,what\nA,a.jpg\n"),
        ("m-latin1.csv", (head + "Jos\u00e9,a.jpg,yes\n").encode("latin-1")),
        ("m-duplicate.csv", (head + "A,a.jpg,yes\nA,a.jpg,yes\n").encode()),
        ("m-absolute.csv", (head + "A,/etc/passwd,yes\n").encode()),
        ("m-dotdot.csv", (head + "A,../../secret.jpg,yes\n").encode()),
        ("m-100k.csv", (head + "".join(f"S{i},img{i}.jpg,yes\n" for i in range(100_000))).encode()),
        ("m-empty.csv", b""),
        ("m-binary.csv", bytes(range(256)) * 8),
        ("m-nul.csv", (head + "A,a\x00.jpg,yes\n").encode()),
        ("m-extra-cells.csv", (head + "A,a.jpg,yes,more,cells\n").encode()),
        ("m-unterminated-quote.csv", (head + 'A,"a.jpg,yes\n').encode()),
        ("m-no-consent.csv", (head + "A,a.jpg,maybe\nB,b.jpg,\n").encode()),
    ]


def config_items():
    return [
        ("c-wrong-type.toml", b"seed = 'abc'\n"),
        ("c-out-of-range.toml", b"unseen_share = 2.0\n"),
        ("c-unknown-key.toml", b"colour = 'blue'\n"),
        ("c-not-toml.toml", b"[[[ this is not toml\n"),
        ("c-headline.toml", b"[offline]\nheadline = 'moon'\n"),
        ("c-sizes.toml", b"[scaling]\nsizes = [1000, 10]\n"),
        ("c-latin1.toml", "seed = 1 # caf\u00e9\n".encode("latin-1")),
        ("c-negative-workers.toml", b"workers = -3\n"),
    ]


def profile_items():
    return [
        ("p-wrong-type.json", json.dumps({"public_photos_with_face": "lots"}).encode()),
        ("p-negative.json", json.dumps({"public_photos_with_face": -1}).encode()),
        ("p-unknown-field.json", json.dumps({"visibility": {"shoe_size": "public"}}).encode()),
        ("p-bad-level.json", json.dumps({"visibility": {"phone": "everyone"}}).encode()),
        ("p-not-json.json", b"{visibility: public"),
        ("p-list.json", b"[1, 2, 3]"),
        ("p-year.json", json.dumps({"birth_year": 3000}).encode()),
        ("p-country.json", json.dumps({"birth_country": "United States"}).encode()),
    ]


def special_files(directory: Path):
    """A FIFO and a directory named like images: they must be refused, not block."""
    fifo = directory / "fifo.jpg"
    os.mkfifo(fifo)
    folder = directory / "folder.jpg"
    folder.mkdir()
    return [fifo, folder]
