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
from pathlib import Path

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


def assert_uploads_left_no_trace(proc, root, before: set, uploads: list[dict]) -> None:
    """Stop the server, then: no new file under ``root`` holds an upload's bytes, its SHA-256 or its
    name, no image file was written, and the server's log names none of them."""
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


@pytest.fixture
def sandbox(request, tmp_path, london, shared_cache_dir):
    """The app started with an empty HOME, working directory and TMPDIR, on loopback. With the
    parameter ``{"warm_cache": True}`` (not for the privacy tests, whose check reads only new files)
    HOME's embedding cache starts as a copy of the session's shared one, which holds the sample photos."""
    home, work, tmp = tmp_path / "home", tmp_path / "work", tmp_path / "tmp"
    for d in (home, work, tmp):
        d.mkdir()
    shared = Path(shared_cache_dir) / "embeddings.sqlite"
    if getattr(request, "param", {}).get("warm_cache") and shared.is_file():
        import sqlite3

        (home / ".cache" / "privrisk").mkdir(parents=True)
        src, dst = sqlite3.connect(shared), sqlite3.connect(home / ".cache" / "privrisk" / "embeddings.sqlite")
        with dst:
            src.backup(dst)  # a consistent copy, WAL included
        src.close()
        dst.close()
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
            page.get_by_role("button", name="Find me").click()
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
    assert_uploads_left_no_trace(proc, root, before, uploads)


def server_rss_mb(pid: int) -> float:
    total = 0
    for child in [pid] + [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]:
        with open(f"/proc/{child}/status") as fh:
            total += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024
    return total


@pytest.mark.parametrize("sandbox", [{"warm_cache": True}], indirect=True)
def test_ten_browser_sessions_at_once(sandbox, london):
    """Ten visitors in one server process at the same time: each gets their own, correct answer."""
    from playwright.sync_api import expect, sync_playwright

    from app_pages.common import SETTINGS  # the face settings the page embeds uploads with
    from browser import launch, upload
    from privrisk.models import load_face_model
    from privrisk.selfcheck import DistractorDraw, build_sample_world, embed_one_face, findability

    url, root, proc = sandbox
    subjects = sorted(p.stem for p in (london / "neutral").glob("*.jpg"))[:10]
    # What each visitor must see: the library's answer for their own two photos, against the same
    # seeded world the server builds (same sample set, same number of distractors).
    model = load_face_model()
    world = build_sample_world(model, distractors=DistractorDraw(n=200_000))
    expected = {}
    for s in subjects:
        a = embed_one_face((london / "neutral" / f"{s}.jpg").read_bytes(), "a", model, SETTINGS)
        b = embed_one_face((london / "smiling" / f"{s}.jpg").read_bytes(), "b", model, SETTINGS)
        f = findability(a.embedding, b.embedding, world)
        expected[s] = (f"{f.distance:.3f}", f"{f.at(1_000_000).rank:,.0f}")  # as the page writes it
    with sync_playwright() as p:
        browser = launch(p)
        try:
            # A first visitor warms the server (model, sample world, cache), as a trainer does before the
            # room arrives; the ten then come at once.
            warm = browser.new_context().new_page()
            warm.goto(url, wait_until="networkidle")
            warm.get_by_text("These are photos of me").click()
            upload(warm, "Your public profile photo", london / "neutral" / f"{subjects[0]}.jpg")
            upload(warm, "Another photo of you", london / "smiling" / f"{subjects[0]}.jpg")
            warm.get_by_role("button", name="Find me").click()
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
                page.get_by_role("button", name="Find me").click()
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


def test_which_photos_give_me_away_in_chromium_keeps_ten_photos_in_memory(sandbox, london, tmp_path_factory):
    """The self-check's per-photo page with ten photos and a snapshot: results, a protected copy to
    download, and afterwards no file anywhere under the server's HOME, TMPDIR or working directory
    holds the photos' bytes, their hashes or their names."""
    from playwright.sync_api import expect, sync_playwright

    from browser import launch

    url, root, proc = sandbox
    # ten photos of one person that exist nowhere on disk: person 066's neutral photo re-framed,
    # scaled and re-encoded in memory; the snapshot is their smiling photo, re-encoded
    base = Image.open(london / "neutral" / "066.jpg").convert("RGB")
    w, h = base.size
    uploads = []
    for i in range(10):
        m = 0.04 * (i % 4)
        framed = base.crop((int(w * m), int(h * m), int(w * (1 - m)), int(h * (1 - m))))
        framed = framed.resize(
            (max(64, int(framed.width * (0.2 + 0.08 * i))), max(64, int(framed.height * (0.2 + 0.08 * i))))
        )
        buf = io.BytesIO()
        framed.save(buf, "PNG")
        uploads.append({"name": f"me-{i + 1}.png", "mimeType": "image/png", "buffer": buf.getvalue()})
    buf = io.BytesIO()
    Image.open(london / "smiling" / "066.jpg").save(buf, "PNG")
    snapshot = {"name": "stranger-snap.png", "mimeType": "image/png", "buffer": buf.getvalue()}
    before = files_under(root)
    shot = tmp_path_factory.mktemp("artifacts") / "which-photos.png"
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.goto(url + "/my_photos", wait_until="networkidle")
            page.get_by_text("These are photos of me").click()
            inputs = page.locator("input[type=file]")
            expect(inputs).to_have_count(2, timeout=60_000)
            photos_box = page.get_by_role("region", name="Your photos (up to 10)")
            photos_box.locator("input[type=file]").set_input_files(uploads)
            # wait until the app shows it received the photos before the next upload
            expect(photos_box.get_by_text("me-1.png")).to_be_visible(timeout=120_000)
            snap_box = page.get_by_role("region", name="A stranger's snapshot of you")
            snap_box.locator("input[type=file]").set_input_files(snapshot)
            expect(snap_box.get_by_text("stranger-snap.png")).to_be_visible(timeout=120_000)
            page.get_by_role("button", name="Check my photos").click()
            headline = page.get_by_text("of 10 photos give you away")
            expect(headline).to_be_visible(timeout=600_000)
            assert int(headline.inner_text().split()[0]) >= 1  # the snapshot's own person is found
            expect(page.get_by_text("DeBruine").first).to_be_visible()  # beside the table and the faces
            expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible(timeout=60_000)
            download = page.get_by_role("button", name="Download the protected copy (PNG)")
            if download.count():
                with page.expect_download() as got:
                    download.first.click()
                data = open(got.value.path(), "rb").read()
                assert data[:8] == b"\x89PNG\r\n\x1a\n"
                got.value.delete()  # Playwright's own copy, outside the server's sandbox
            page.wait_for_timeout(2000)  # let the previews paint before the screenshot
            page.screenshot(path=str(shot), full_page=True)
            page.get_by_role("button", name="Forget me").click()
            expect(page.get_by_text("Tick the box above to start.")).to_be_visible(timeout=60_000)
        finally:
            browser.close()
    artifacts = os.environ.get("PRIVRISK_TEST_ARTIFACTS") or str(ROOT / "test-artifacts")
    os.makedirs(artifacts, exist_ok=True)
    shutil.copy(shot, os.path.join(artifacts, "which-photos.png"))

    assert_uploads_left_no_trace(proc, root, before, [*uploads, snapshot])
