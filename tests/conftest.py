"""Shared fixtures: a fake face model for fast exact tests, image makers, the sample data."""

from __future__ import annotations

import os

import pytest

from helpers import FakeFaceModel, noise_image, write_png


def pytest_addoption(parser):
    parser.addoption(
        "--engine",
        choices=("fast", "dlib"),
        default="fast",
        help="the engine that computes dlib's descriptor where the settings ask for the default 'fast' "
        "(dlib: every test runs dlib itself, as when the fast engine cannot be used; benchmarks/run.py "
        "times the whole suite with each). CLI tests that start a new process keep the default",
    )


def pytest_configure(config):
    if config.getoption("--engine") == "dlib":
        from privrisk import models

        # the state models.resolve_engine records when the fast engine cannot run here: every request for
        # 'fast' gets dlib, and embedding caches are keyed by the engine that ran
        models._engines["fast"] = "dlib"


HEAVY = ("model", "slow", "browser")
# files whose tests take minutes (the demo run, kill-and-resume, the app's experiment runs): started first
LONGEST = (
    "tests/test_experiment.py",
    "tests/test_resilience.py",
    "tests/test_app_truth_browser.py",
    "tests/test_app.py",
    "tests/test_docs.py",
    "tests/test_packaging.py",
)


def pytest_collection_modifyitems(config, items):
    """The files in LONGEST first, then the other files with a test marked model, slow or browser, then
    the rest, each file's tests together and in their usual order. Under ``pytest -n`` with ``--dist
    loadscope`` (pyproject.toml: a file's tests run on one worker, so its module fixtures run once) the
    workers take files in this order as they become free: the long ones start first and the many short
    ones fill in at the end, instead of one long file finishing alone."""

    def where(item) -> str:
        return item.nodeid.split("::")[0]

    heavy = {where(item) for item in items if any(item.get_closest_marker(m) for m in HEAVY)}

    def rank(item) -> tuple[int, int]:
        f = where(item)
        return (0, LONGEST.index(f)) if f in LONGEST else (1 if f in heavy else 2, 0)

    items[:] = sorted(items, key=rank)


@pytest.fixture
def fast_engine(request):
    """For tests of the fast engine itself: skipped under ``--engine dlib``, where there is none."""
    if request.config.getoption("--engine") == "dlib":
        pytest.skip("--engine dlib: this test checks the fast engine itself")


@pytest.fixture
def fake_model():
    return FakeFaceModel()


@pytest.fixture
def synthetic_set(tmp_path):
    """Ten synthetic subjects: gallery PNGs and noisy probe PNGs, with a consent manifest."""
    root = tmp_path / "images"
    lines = ["subject_id,image,consent,consent_ref,source"]
    for s in range(10):
        write_png(root / "gallery" / f"{s:03d}.png", noise_image(s))
        write_png(root / "probe" / f"{s:03d}.png", noise_image(s, noise=8.0, noise_seed=s))
        lines.append(f"{s:03d},gallery/{s:03d}.png,yes,form-{s},synthetic")
    manifest = root / "gallery.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return root, manifest


@pytest.fixture(scope="session")
def london():
    """The consenting sample set (skipped only outside CI when it is absent)."""
    from privrisk.samples import dataset_dir

    try:
        return dataset_dir()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            raise
        pytest.skip(f"sample dataset not available: {exc}")


@pytest.fixture(scope="session")
def real_model():
    from privrisk.models import load_face_model

    return load_face_model()


@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory, pytestconfig) -> str:
    """One embedding cache folder (PRIVRISK_CACHE_DIR) for the tests that run the sample set end to end
    without testing the cache itself: the sample photos and their E2 captures are embedded once per
    session instead of once per test. It is keyed by image content, settings and versions like any cache;
    tests of caching, resuming and cold starts keep folders of their own. Under ``pytest -n`` the workers
    share it too."""
    base = tmp_path_factory.getbasetemp()
    if hasattr(pytestconfig, "workerinput"):  # an xdist worker (not a pytest it started, which inherits its env)
        # pytest -n: each worker is a session of its own, under one run folder (pytest-N/popen-gw0, ...);
        # the cache sits beside them so the workers share it (SQLite in WAL mode, safe across processes)
        base = base.parent
    return str(base / "shared-cache")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    from privrisk.embeddings import EmbeddingCache

    return EmbeddingCache(tmp_path_factory.mktemp("cache") / "embeddings.sqlite")


@pytest.fixture
def short_ladders(monkeypatch):
    """Each transform's two ends only (mildest, harshest): the same logic, a quarter of the work."""
    import dataclasses

    from privrisk import transforms

    for name, t in list(transforms.TRANSFORMS.items()):
        monkeypatch.setitem(transforms.TRANSFORMS, name, dataclasses.replace(t, ladder=(t.ladder[0], t.ladder[-1])))
