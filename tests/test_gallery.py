import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from helpers import ROOT, write_png
from privrisk.config import FaceSettings, GallerySettings
from privrisk.embeddings import EmbeddingCache, EmbedRun, embed_batch
from privrisk.errors import GalleryError
from privrisk.gallery import Gallery, build_gallery
from privrisk.manifest import read_manifest
from privrisk.matching import match_images


def test_build_and_match_synthetic(tmp_path, synthetic_set, fake_model):
    root, manifest = synthetic_set
    report = build_gallery(read_manifest(manifest), tmp_path / "g", run=EmbedRun(model=fake_model, workers=1))
    assert report.added == 10 and not report.skipped
    with Gallery.open(tmp_path / "g") as g:
        assert len(g) == 10 and g.subjects()[0] == "000"
        matches = match_images(
            g, sorted((root / "probe").glob("*.png")), k=3, run=EmbedRun(model=fake_model, workers=1)
        )
    assert [m.best.subject_id for m in matches] == [f"{s:03d}" for s in range(10)]
    assert all(m.is_match for m in matches)
    assert all(len(m.candidates) == 3 for m in matches)
    assert all(m.candidates[0].distance <= m.candidates[1].distance for m in matches)


def test_missing_and_faceless_images_are_skipped_with_reasons(tmp_path, synthetic_set, fake_model):
    root, manifest = synthetic_set
    write_png(root / "blank.png", np.full((32, 32, 3), 128, np.uint8))
    (root / "bad.jpg").write_text("not an image")
    manifest.write_text(
        manifest.read_text() + "X,missing.png,yes\nY,blank.png,yes\nZ,bad.jpg,yes\nW,gallery/000.png,no\n"
    )
    report = build_gallery(read_manifest(manifest), tmp_path / "g", run=EmbedRun(model=fake_model, workers=1))
    assert report.added == 10
    reasons = {os.path.basename(i): r for i, r in report.skipped}
    assert reasons["missing.png"] == "file not found"
    assert reasons["blank.png"] == "no face found"
    assert "not a recognised image" in reasons["bad.jpg"]
    assert [r.subject_id for r in report.refused] == ["W"]


def test_rebuild_adds_nothing_and_remove_updates_index(tmp_path, synthetic_set, fake_model):
    _, manifest = synthetic_set
    build_gallery(read_manifest(manifest), tmp_path / "g", run=EmbedRun(model=fake_model, workers=1))
    again = build_gallery(read_manifest(manifest), tmp_path / "g", run=EmbedRun(model=fake_model, workers=1))
    assert again.added == 0 and again.already_present == 10
    with Gallery.open(tmp_path / "g") as g:
        v = g.version
        assert g.remove_subject("003") == 1
        assert g.version == v + 1 and g.index.ntotal == 9
        _, ids = g.search(g.embeddings()[1], k=1)
        assert "003" not in {g.faces(ids.ravel())[i]["subject_id"] for i in ids.ravel()}
        assert g.remove_subject("003") == 0
    assert sorted(p.name for p in (tmp_path / "g").glob("index-*.faiss")) == [f"index-{v + 1}.faiss"]


def test_missing_or_stale_index_is_rebuilt(tmp_path, synthetic_set, fake_model):
    _, manifest = synthetic_set
    build_gallery(read_manifest(manifest), tmp_path / "g", run=EmbedRun(model=fake_model, workers=1))
    for p in (tmp_path / "g").glob("index-*.faiss"):
        p.unlink()
    with Gallery.open(tmp_path / "g") as g:
        assert g.index.ntotal == 10
    assert list((tmp_path / "g").glob("index-*.faiss"))


def test_settings_mismatch_is_refused(tmp_path, synthetic_set, fake_model):
    _, manifest = synthetic_set
    build_gallery(read_manifest(manifest), tmp_path / "g", run=EmbedRun(model=fake_model, workers=1))
    with pytest.raises(GalleryError, match="other face settings"):
        build_gallery(
            read_manifest(manifest),
            tmp_path / "g",
            face_settings=FaceSettings(upsample=2),
            run=EmbedRun(model=fake_model, workers=1),
        )
    with pytest.raises(GalleryError, match="no gallery here"):
        Gallery.open(tmp_path / "elsewhere")


@pytest.mark.parametrize("index_type", ["flat", "ivf", "hnsw"])
def test_index_types_find_the_right_subject(tmp_path, synthetic_set, fake_model, index_type):
    root, manifest = synthetic_set
    build_gallery(
        read_manifest(manifest),
        tmp_path / "g",
        settings=GallerySettings(index_type=index_type),
        run=EmbedRun(model=fake_model, workers=1),
    )
    with Gallery.open(tmp_path / "g") as g:
        matches = match_images(g, sorted((root / "probe").glob("*.png")), run=EmbedRun(model=fake_model, workers=1))
    assert sum(m.best.subject_id == f"{i:03d}" for i, m in enumerate(matches)) == 10


def test_embedding_cache_notices_replaced_image(tmp_path, synthetic_set, fake_model):
    root, _ = synthetic_set
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    img = root / "gallery" / "000.png"
    first = embed_batch([img], model=fake_model, cache=cache, workers=1)[0]
    assert not first.cached
    assert embed_batch([img], model=fake_model, cache=cache, workers=1)[0].cached
    import shutil

    shutil.copy(root / "gallery" / "001.png", img)
    third = embed_batch([img], model=fake_model, cache=cache, workers=1)[0]
    assert not third.cached and third.sha256 != first.sha256
    assert not np.allclose(third.faces[0].embedding, first.faces[0].embedding)


BUILD_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from helpers import FakeFaceModel
    from privrisk.embeddings import EmbeddingCache, EmbedRun
    from privrisk.gallery import build_gallery
    from privrisk.manifest import read_manifest
    cache = EmbeddingCache(sys.argv[3]) if sys.argv[3] != "-" else None
    build_gallery(read_manifest(sys.argv[1]), sys.argv[2], chunk_size=3,
                  run=EmbedRun(model=FakeFaceModel(delay=float(sys.argv[4])), cache=cache, workers=1))
    print("done")
""")


@pytest.mark.slow
def test_killed_build_resumes_to_the_same_gallery(tmp_path, synthetic_set):
    """SIGKILL a build at several points; re-running gives the gallery an uninterrupted build gives."""
    _, manifest = synthetic_set
    script = tmp_path / "build.py"
    script.write_text(BUILD_SCRIPT.format(tests=str(ROOT / "tests")))
    run = [sys.executable, str(script), str(manifest)]
    subprocess.run(run + [str(tmp_path / "ref"), "-", "0"], check=True, capture_output=True)
    with Gallery.open(tmp_path / "ref") as g:
        reference = g.fingerprint()
    rng = np.random.default_rng(7)
    for attempt, delay in enumerate(rng.uniform(0.3, 1.6, size=10)):
        target, cache = tmp_path / f"g{attempt}", tmp_path / f"c{attempt}.sqlite"
        proc = subprocess.Popen(run + [str(target), str(cache), "0.05"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out = subprocess.run(run + [str(target), str(cache), "0.0"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        with Gallery.open(target) as g:
            assert g.fingerprint() == reference
            assert g.index.ntotal == len(g) == 10
        assert not list(target.glob("*.tmp"))


def test_match_with_another_engine_through_the_face_settings(tmp_path, synthetic_set, fake_model):
    """Another engine than the gallery's comes in the face settings (``engine`` is not a parameter of
    its own): accepted, and the same descriptor finds the same people."""
    import dataclasses

    root, manifest = synthetic_set
    run = EmbedRun(model=fake_model, workers=1)
    build_gallery(read_manifest(manifest), tmp_path / "g", run=run)
    probes = sorted((root / "probe").glob("*.png"))
    with Gallery.open(tmp_path / "g") as g:
        engine = "dlib" if g.face_settings.engine == "fast" else "fast"
        same = match_images(g, probes, k=3, run=run)
        other = match_images(g, probes, k=3, face_settings=dataclasses.replace(g.face_settings, engine=engine), run=run)
    assert [m.to_dict() for m in other] == [m.to_dict() for m in same]
    assert [m.best.subject_id for m in other] == [f"{s:03d}" for s in range(10)]
