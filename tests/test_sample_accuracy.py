"""The real dlib pipeline on the consenting sample set."""

import numpy as np
import pytest
from PIL import Image

from helpers import encode_image
from privrisk.config import FaceSettings
from privrisk.embeddings import EmbedRun, embed_image
from privrisk.gallery import Gallery, build_gallery
from privrisk.manifest import read_manifest
from privrisk.matching import match_images
from privrisk.samples import sample_manifest

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def neutral_gallery(tmp_path_factory, london, session_cache):
    path = tmp_path_factory.mktemp("london") / "gallery"
    report = build_gallery(read_manifest(sample_manifest("neutral"), london), path, run=EmbedRun(cache=session_cache))
    assert report.added == 102 and not report.skipped and not report.refused
    return path


def test_neutral_gallery_identifies_smiling_probes(neutral_gallery, london, session_cache):
    probes = read_manifest(sample_manifest("smiling"), london)
    with Gallery.open(neutral_gallery) as g:
        matches = match_images(g, [r.image for r in probes.rows], run=EmbedRun(cache=session_cache))
    correct = sum(m.best is not None and m.best.subject_id == r.subject_id for r, m in zip(probes.rows, matches))
    assert correct >= 101, f"rank-1 {correct}/102"


def test_exif_rotated_photo_is_found_after_rotation(london, real_model):
    photo = Image.open(london / "smiling" / "005.jpg")
    stored = photo.rotate(90, expand=True)  # as a sideways phone stores it
    sideways = embed_image(encode_image(stored, "JPEG"), real_model, name="sideways.jpg")
    assert not sideways.ok  # the HOG detector needs an upright face
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", which undoes the stored rotation
    result = embed_image(encode_image(stored, "JPEG", exif=exif.tobytes()), real_model, name="rotated.jpg")
    assert result.ok and len(result.faces) == 1
    upright = embed_image(london / "smiling" / "005.jpg", real_model)
    assert np.linalg.norm(result.faces[0].embedding - upright.faces[0].embedding) < 0.15


def test_photo_without_a_face(real_model):
    blank = Image.fromarray(np.full((300, 300, 3), 200, np.uint8))
    result = embed_image(encode_image(blank, "PNG"), real_model, name="wall.png")
    assert not result.ok and result.error == "no face found"
    with pytest.raises(Exception, match="no face"):
        result.chosen("largest")


def test_photo_with_several_faces(london, real_model):
    a = Image.open(london / "neutral" / "010.jpg").resize((400, 400))
    b = Image.open(london / "neutral" / "020.jpg").resize((300, 300))
    canvas = Image.new("RGB", (800, 450), "white")
    canvas.paste(a, (0, 0))
    canvas.paste(b, (480, 100))
    result = embed_image(encode_image(canvas, "PNG"), real_model, name="two.png")
    assert len(result.faces) == 2
    assert result.faces[0].width_px > result.faces[1].width_px
    assert len(result.chosen("largest")) == 1 and len(result.chosen("all")) == 2
    with pytest.raises(Exception, match="2 faces"):
        result.chosen("error")


def test_cmyk_sixteen_bit_and_huge_photos_still_give_the_same_person(london, real_model):
    photo = Image.open(london / "smiling" / "007.jpg")
    ref = embed_image(london / "smiling" / "007.jpg", real_model).faces[0].embedding
    big = photo.resize((4000, 4000))
    variants = {
        "cmyk.tiff": encode_image(photo.convert("CMYK"), "TIFF"),
        "grey16.png": encode_image(Image.fromarray(np.asarray(photo.convert("L"), np.uint16) * 257), "PNG"),
        "rgba.png": encode_image(photo.convert("RGBA"), "PNG"),
        "palette.png": encode_image(photo.convert("P"), "PNG"),
        "huge.jpg": encode_image(big, "JPEG", quality=90),
    }
    for name, data in variants.items():
        result = embed_image(data, real_model, FaceSettings(), name=name)
        assert result.ok, (name, result.error)
        assert np.linalg.norm(result.faces[0].embedding - ref) < 0.35, name
