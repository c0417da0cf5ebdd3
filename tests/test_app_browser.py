"""The app in a real browser, and the proof that an uploaded photo never reaches the disk or the logs."""

import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from PIL import Image

from helpers import ROOT

pytestmark = [pytest.mark.model, pytest.mark.browser]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


def files_under(root):
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}


@pytest.fixture
def sandbox(tmp_path, london):
    """The app started with an empty HOME, working directory and TMPDIR, on loopback."""
    home, work, tmp = tmp_path / "home", tmp_path / "work", tmp_path / "tmp"
    for d in (home, work, tmp):
        d.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRIVRISK_", "XDG_"))}
    env.update(
        HOME=str(home),
        TMPDIR=str(tmp),
        PRIVRISK_DATASET_DIR=str(london),
        PRIVRISK_APP_DISTRACTORS="200000",
        STREAMLIT_SERVER_PORT=str(port),
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
        ],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url, proc)
        yield url, tmp_path, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_self_check_in_chromium_keeps_photos_in_memory(sandbox, london, tmp_path_factory):
    from playwright.sync_api import expect, sync_playwright

    from browser import launch, upload

    url, root, proc = sandbox
    # Uploads that exist nowhere on disk: the sample photos re-encoded in memory.
    uploads = []
    for kind in ("neutral", "smiling"):
        buf = io.BytesIO()
        Image.open(london / kind / "066.jpg").save(buf, "PNG")
        uploads.append({"name": f"me-{kind}.png", "mimeType": "image/png", "buffer": buf.getvalue()})
    before = files_under(root)
    shot = tmp_path_factory.mktemp("artifacts") / "self-check.png"
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1800})
            page.goto(url, wait_until="networkidle")
            page.get_by_text("These are photos of me").click()
            inputs = page.locator("input[type=file]")
            expect(inputs).to_have_count(2, timeout=60_000)
            upload(page, "Your public profile photo", uploads[0])
            upload(page, "Another photo of you", uploads[1])
            rank = page.locator('[data-testid="stMetric"]', has_text="Rank among 1,000,000 people")
            expect(rank).to_be_visible(timeout=300_000)
            rank_value = rank.locator('[data-testid="stMetricValue"]').inner_text()
            score = page.locator('[data-testid="stMetric"]', has_text="Exposure score (stranger)")
            score_value = score.locator('[data-testid="stMetricValue"]').inner_text()
            assert rank_value.strip() == "1"
            assert score_value.strip().endswith("/ 100") and 0 <= int(score_value.split("/")[0]) <= 100
            expect(page.get_by_text("DeBruine")).to_be_visible()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    artifacts = os.environ.get("PRIVRISK_TEST_ARTIFACTS") or str(ROOT / "test-artifacts")
    os.makedirs(artifacts, exist_ok=True)
    shutil.copy(shot, os.path.join(artifacts, "self-check.png"))

    # Privacy: nothing new on disk holds the uploads (their bytes or their hashes), no image files were
    # written, and the server's log does not mention them.
    proc.terminate()
    log = proc.communicate(timeout=30)[0]
    new = files_under(root) - before
    needles = []
    for up in uploads:
        data = up["buffer"]
        needles += [
            data[len(data) // 2 : len(data) // 2 + 64],
            hashlib.sha256(data).hexdigest().encode(),
            up["name"].encode(),
        ]
    for path in new:
        assert not path.lower().endswith((".png", ".jpg", ".jpeg", ".webp")), path
        content = open(path, "rb").read()
        assert not any(n in content for n in needles), path
    assert not any(n.decode(errors="ignore") in log for n in needles[1::3] + needles[2::3])
    assert "Traceback" not in log
    # what the app may write: the embedding cache of the sample photos (never of uploads)
    assert all("/home/.cache/privrisk/" in p for p in new), sorted(new)


def server_rss_mb(pid: int) -> float:
    total = 0
    for child in [pid] + [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]:
        with open(f"/proc/{child}/status") as fh:
            total += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024
    return total


def test_ten_browser_sessions_at_once(sandbox, london):
    """Ten visitors in one server process at the same time: each gets their own, correct answer."""
    from playwright.sync_api import expect, sync_playwright

    from browser import launch, upload
    from privrisk.models import load_face_model
    from privrisk.selfcheck import build_sample_world, embed_one_face, findability

    url, root, proc = sandbox
    subjects = sorted(p.stem for p in (london / "neutral").glob("*.jpg"))[:10]
    # What each visitor must see: the library's answer for their own two photos, against the same
    # seeded world the server builds (same sample set, same number of distractors).
    model = load_face_model()
    world = build_sample_world(model, n_distractors=200_000)
    expected = {}
    for s in subjects:
        a = embed_one_face((london / "neutral" / f"{s}.jpg").read_bytes(), "a", model)
        b = embed_one_face((london / "smiling" / f"{s}.jpg").read_bytes(), "b", model)
        f = findability(a.embedding, b.embedding, world)
        expected[s] = (f"{f.distance:.3f}", f"{f.at(1_000_000).rank:.0f}")
    with sync_playwright() as p:
        browser = launch(p)
        try:
            # A first visitor warms the server (model, sample world, cache), as a trainer does before the
            # room arrives; the ten then come at once. (Cold, a rerun can take long enough for Streamlit to
            # drop an upload set meanwhile: upload() re-picks the file as a person would.)
            warm = browser.new_context().new_page()
            warm.goto(url, wait_until="networkidle")
            warm.get_by_text("These are photos of me").click()
            upload(warm, "Your public profile photo", london / "neutral" / f"{subjects[0]}.jpg")
            upload(warm, "Another photo of you", london / "smiling" / f"{subjects[0]}.jpg")
            expect(warm.locator('[data-testid="stMetric"]', has_text="Rank among 1,000,000 people")).to_be_visible(
                timeout=600_000
            )
            warm.context.close()
            pages = []
            for subject in subjects:  # open all sessions and start all uploads before waiting on any
                page = browser.new_context(viewport={"width": 1200, "height": 1400}).new_page()
                page.goto(url, wait_until="networkidle")
                page.get_by_text("These are photos of me").click()
                inputs = page.locator("input[type=file]")
                expect(inputs).to_have_count(2, timeout=120_000)
                pages.append((subject, page, inputs))
            warm_rss = server_rss_mb(proc.pid)
            for subject, page, _ in pages:  # start every session's first upload, then every second one
                page.get_by_role("region", name="Your public profile photo").locator(
                    "input[type=file]"
                ).set_input_files(str(london / "neutral" / f"{subject}.jpg"))
            for subject, page, _ in pages:
                upload(page, "Your public profile photo", london / "neutral" / f"{subject}.jpg")
                upload(page, "Another photo of you", london / "smiling" / f"{subject}.jpg")
            for subject, page, _ in pages:
                rank = page.locator('[data-testid="stMetric"]', has_text="Rank among 1,000,000 people")
                expect(rank).to_be_visible(timeout=300_000)
                distance = page.locator('[data-testid="stMetric"]', has_text="Distance between your two photos")
                shown = (
                    distance.locator('[data-testid="stMetricValue"]').inner_text().strip(),
                    rank.locator('[data-testid="stMetricValue"]').inner_text().strip(),
                )
                assert shown == expected[subject], subject
            assert len({d for d, _ in expected.values()}) == len(subjects)  # ten different answers
            assert server_rss_mb(proc.pid) - warm_rss < 1500
        finally:
            browser.close()
