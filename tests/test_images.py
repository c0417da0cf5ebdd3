import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from helpers import encode_image, noise_image
from privrisk.errors import ImageError, ImageTooLarge
from privrisk.images import load_image


def rgb_image(w=120, h=80):
    return Image.fromarray(noise_image(3, size=(w, h)))


def test_jpeg_png_webp_bmp_tiff_gif_decode_to_rgb():
    base = rgb_image()
    for fmt in ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"):
        img = load_image(encode_image(base, fmt), name=f"x.{fmt.lower()}")
        assert img.rgb.shape == (80, 120, 3), fmt
        assert img.rgb.dtype == np.uint8 and img.rgb.flags.c_contiguous
        assert img.scale == 1.0


def test_gif_first_frame_is_used():
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    img = load_image(buf.getvalue(), name="anim.gif")
    r, g, b = img.rgb[10, 10]
    assert r > 200 and b < 50


@pytest.mark.parametrize("mode", ["CMYK", "L", "RGBA", "P", "LA", "I;16", "1"])
def test_colour_modes_convert_to_rgb(mode):
    base = rgb_image()
    if mode == "I;16":
        arr = np.asarray(base.convert("L"), np.uint16) * 257
        img = Image.fromarray(arr)
        fmt = "PNG"
    else:
        img = base.convert(mode)
        fmt = "TIFF" if mode == "CMYK" else "PNG"
    out = load_image(encode_image(img, fmt), name=f"m.{mode}")
    assert out.rgb.shape == (80, 120, 3)
    if mode in ("I;16", "L"):
        # 16-bit grey scales to the same 8-bit picture as the 8-bit grey version
        expected = np.asarray(base.convert("L"), np.int16)
        assert np.abs(out.rgb[:, :, 0].astype(np.int16) - expected).max() <= 1


def test_transparent_pixels_become_white():
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    out = load_image(encode_image(img, "PNG"), name="t.png")
    assert (out.rgb == 255).all()


def test_palette_with_transparency():
    img = Image.new("P", (10, 10), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    out = load_image(encode_image(img, "PNG", transparency=0), name="p.png")
    assert (out.rgb == 255).all()


def test_exif_orientation_is_applied():
    base = rgb_image(120, 80)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = encode_image(base, "JPEG", exif=exif.tobytes())
    out = load_image(data, name="rot.jpg")
    assert out.rgb.shape == (120, 80, 3)
    assert out.original_size == (80, 120)


def test_bogus_exif_orientation_is_ignored():
    exif = Image.Exif()
    exif[0x0112] = 77
    out = load_image(encode_image(rgb_image(), "JPEG", exif=exif.tobytes()), name="bogus.jpg")
    assert out.rgb.shape == (80, 120, 3)


def test_large_photo_is_downscaled_on_load():
    big = Image.fromarray(noise_image(1, size=(3000, 2000)))
    out = load_image(encode_image(big, "JPEG", quality=80), name="big.jpg", max_side=1000)
    assert max(out.rgb.shape[:2]) == 1000
    assert out.original_size == (3000, 2000)
    assert out.scale == pytest.approx(1000 / 3000, rel=1e-3)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match="empty") as info:
        load_image(p)
    assert info.value.path == str(p)


def test_text_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("<html>not a photo</html>")
    with pytest.raises(ImageError, match="not a recognised image") as info:
        load_image(p)
    assert "notes.jpg" in str(info.value)


def test_truncated_jpeg_is_refused():
    data = encode_image(rgb_image(400, 300), "JPEG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2], name="cut.jpg")


def test_corrupt_png_is_refused():
    data = bytearray(encode_image(rgb_image(), "PNG"))
    data[60:80] = b"\xff" * 20
    with pytest.raises(ImageError):
        load_image(bytes(data), name="flip.png")


def _bomb_png(w: int, h: int) -> bytes:
    """A tiny PNG whose header declares w x h pixels."""

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_refused_from_the_header(monkeypatch):
    from PIL import ImageFile

    def no_decoding(self):
        raise AssertionError("a bomb must be refused before any pixel is decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageTooLarge, match="pixels"):
        load_image(_bomb_png(50_000, 50_000), name="bomb.png")


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ImageError, match="not found") as info:
        load_image(tmp_path / "ghost.jpg")
    assert "ghost.jpg" in info.value.path


def test_file_over_byte_limit(tmp_path):
    p = tmp_path / "big.png"
    p.write_bytes(encode_image(rgb_image(), "PNG"))
    with pytest.raises(ImageTooLarge, match="bytes"):
        load_image(p, max_bytes=100)


def test_content_hash_changes_with_content():
    a = load_image(encode_image(rgb_image(), "PNG"), name="a")
    b = load_image(encode_image(Image.fromarray(noise_image(4, size=(120, 80))), "PNG"), name="b")
    assert a.sha256 != b.sha256 and len(a.sha256) == 64


# --- Netpbm: the classic research face sets (e.g. 92x112 8-bit PGM) -----------------------------------


def _pgm(w: int, h: int, pixels: bytes, maxval: int = 255, magic: bytes = b"P5") -> bytes:
    return magic + f"\n{w} {h}\n{maxval}\n".encode() + pixels


def test_8bit_pgm_decodes_to_grey_rgb():
    gray = (np.arange(92 * 112) % 251).astype(np.uint8).reshape(112, 92)
    img = load_image(_pgm(92, 112, gray.tobytes()), name="s1/1.pgm")
    assert img.rgb.shape == (112, 92, 3)
    assert (img.rgb[:, :, 0] == gray).all() and (img.rgb[:, :, 0] == img.rgb[:, :, 2]).all()


def test_ascii_pgm_ppm_and_pbm_decode():
    ascii_pgm = b"P2\n3 2\n255\n0 128 255\n10 20 30\n"
    assert load_image(ascii_pgm, name="a.pgm").rgb[0, :, 0].tolist() == [0, 128, 255]
    ppm = encode_image(rgb_image(40, 30), "PPM")
    assert ppm[:2] == b"P6"
    assert (load_image(ppm, name="c.ppm").rgb == np.asarray(rgb_image(40, 30))).all()
    pbm = b"P1\n2 2\n1 0\n0 1\n"
    assert load_image(pbm, name="b.pbm").rgb[:, :, 0].tolist() == [[0, 255], [255, 0]]


def test_16bit_pgm_is_scaled_to_8_bits():
    values = np.array([[0, 65535], [32768, 257]], ">u2")
    img = load_image(_pgm(2, 2, values.tobytes(), maxval=65535), name="deep.pgm")
    assert img.rgb[:, :, 0].tolist() == [[0, 255], [127, 1]]


def test_truncated_pgm_is_refused_naming_it():
    with pytest.raises(ImageError, match="corrupt or truncated") as info:
        load_image(_pgm(92, 112, b"\x80" * 500), name="s1/cut.pgm")
    assert "s1/cut.pgm" in str(info.value)


def test_pgm_bomb_is_refused_from_the_header():
    # The header declares 50k x 50k; only 10 bytes of pixels follow. Refused before any decoding.
    with pytest.raises(ImageTooLarge, match="pixels"):
        load_image(_pgm(50_000, 50_000, b"\x00" * 10), name="bomb.pgm")
