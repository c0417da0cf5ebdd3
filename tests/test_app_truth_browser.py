"""Issue 22 in a real browser: each page tells its user the truth. One app server (headless Chromium
drives it) serves every test in this module; each test is one user's path through a page.

With ``PRIVRISK_SCREENSHOTS=DIR`` every test also saves a full-page screenshot of its page after
the main action into DIR (``docs/screenshots`` holds the committed ones; see docs/app.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

pytestmark = [pytest.mark.model, pytest.mark.browser]

WIDTH = 1280


@pytest.fixture(scope="module")
def app(tmp_path_factory, london, shared_cache_dir):
    """The app on loopback with an empty HOME and working directory; the sample photos' embeddings
    come from the session's shared cache (filled on first use)."""
    from test_app_browser import free_port, wait_for

    base = tmp_path_factory.mktemp("truth")
    home, work = base / "home", base / "work"
    home.mkdir()
    work.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRIVRISK_", "XDG_"))}
    env.update(
        HOME=str(home),
        PRIVRISK_DATASET_DIR=str(london),
        PRIVRISK_CACHE_DIR=shared_cache_dir,
        PRIVRISK_APP_DISTRACTORS="200000",
        PRIVRISK_APP_EXPERIMENT_CONFIG=str(ROOT / "tests" / "data" / "app_experiment.toml"),  # a small run
        STREAMLIT_SERVER_PORT=str(port),
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true"]
        + ["--server.address", "127.0.0.1"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url, proc)
        yield url, work
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from browser import launch

    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": WIDTH, "height": 1400})
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page, name: str) -> None:
    """A full-page PNG of ``page`` into $PRIVRISK_SCREENSHOTS (when set), after the page settles."""
    folder = os.environ.get("PRIVRISK_SCREENSHOTS")
    if not folder:
        return
    page.wait_for_timeout(2500)  # images and charts paint
    # Streamlit scrolls an inner container, not the page: grow the window to the content's height
    height = page.evaluate(
        "() => Math.max(document.body.scrollHeight, ...Array.from(document.querySelectorAll("
        "'[data-testid=stMain], [data-testid=stMainBlockContainer], [data-testid=stAppViewContainer]'))"
        ".map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": WIDTH, "height": min(int(height) + 40, 9000)})
    page.wait_for_timeout(1500)
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTH, "height": 1400})


def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]', has_text=label)
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def self_check(page, url: str, profile: Path, snapshot: Path) -> None:
    from playwright.sync_api import expect

    from browser import upload

    page.goto(url, wait_until="networkidle")
    page.get_by_text("These are photos of me").click()
    expect(page.locator("input[type=file]")).to_have_count(2, timeout=60_000)
    upload(page, "Your public profile photo", profile)
    upload(page, "Another photo of you", snapshot)
    page.get_by_role("button", name="Find me").click()


def test_the_score_agrees_with_the_search(app, page, london):
    """One person's neutral and smiling photos: the search finds them first, so the score below may not
    be the population curves' "0 / 100"; before any photo, the score says it is a population estimate."""
    from playwright.sync_api import expect

    url, _ = app
    page.goto(url, wait_until="networkidle")
    page.get_by_text("These are photos of me").click()
    expect(page.get_by_text("Population estimate, not your photos")).to_be_visible(timeout=60_000)
    self_check(page, url, london / "neutral" / "066.jpg", london / "smiling" / "066.jpg")
    rank = page.locator('[data-testid="stMetric"]', has_text="Rank among 1,000,000 people")
    expect(rank).to_be_visible(timeout=300_000)
    assert metric(page, "Rank among 1,000,000 people") == "1"
    sentence = page.get_by_text(re.compile(r"Exposure \d+ .*out of 100 for a stranger: your search found"))
    expect(sentence).to_be_visible(timeout=60_000)
    assert re.search(
        r"at rank 1 among [\d,]+ people \(counted on your photos\), within the top 10", sentence.inner_text()
    )
    score = int(metric(page, "Exposure score (stranger)").split("/")[0])
    assert score > 0  # found first, within the top 10 a stranger checks: never 0 / 100
    assert metric(page, "Chance a photo leads here") == "100%"
    expect(page.get_by_text("Population estimate, not your photos")).to_have_count(0)
    # no "0 -> 0" change is offered, and no arrow decorates a neutral number
    assert not page.get_by_text(re.compile(r"\b0 (->|\u2192) 0\b")).count()  # Streamlit shows -> as an arrow
    assert not page.locator('[data-testid="stMetricDelta"]').count()
    screenshot(page, "check-my-exposure")


def test_another_persons_snapshot_triggers_the_question(app, page, london):
    from playwright.sync_api import expect

    url, _ = app
    self_check(page, url, london / "neutral" / "066.jpg", london / "smiling" / "017.jpg")
    question = page.get_by_text("Is this really you in both photos?")
    rank = page.locator('[data-testid="stMetric"]', has_text="Rank among 1,000,000 people")
    expect(question.or_(rank).first).to_be_visible(timeout=300_000)  # the question, or (wrongly) an answer
    expect(question).to_be_visible(timeout=1_000)
    expect(page.get_by_text("above this face model's match threshold of 0.6")).to_be_visible()
    # nothing is answered before the user says yes. The question shows while the page's run is still
    # ending, and until it ends Streamlit keeps the previous run's elements on screen (the profile
    # settings' score, from before "Find me"): wait for the page to settle, then nothing may be left.
    for label in ("Rank among 1,000,000 people", "Exposure score"):
        expect(page.locator('[data-testid="stMetric"]', has_text=label)).to_have_count(0, timeout=30_000)
    screenshot(page, "check-my-exposure-is-this-you")
    page.get_by_role("button", name="Yes, both photos are of me: go on").click()
    expect(page.locator('[data-testid="stMetric"]', has_text="Rank among 1,000,000 people")).to_be_visible(
        timeout=120_000
    )


def test_a_measured_rank_of_one_is_never_safe(app, page, london):
    """Person 017: on main the cheapest protection offered was a sticker over the mouth with the
    measured rank still 1 -> 1. No verdict or protection may overrule a measured rank of 1."""
    from playwright.sync_api import expect

    url, _ = app
    page.goto(url + "/my_photos", wait_until="networkidle")
    page.get_by_text("These are photos of me").click()
    expect(page.locator("input[type=file]")).to_have_count(2, timeout=60_000)
    box = page.get_by_role("region", name="Your photos (up to 10)")
    box.locator("input[type=file]").set_input_files(str(london / "neutral" / "017.jpg"))
    expect(box.get_by_text("017.jpg")).to_be_visible(timeout=120_000)
    snap = page.get_by_role("region", name="A stranger's snapshot of you")
    snap.locator("input[type=file]").set_input_files(str(london / "smiling" / "017.jpg"))
    expect(snap.get_by_text("017.jpg")).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Check my photos").click()
    expect(page.get_by_text("1 of 1 photos give you away")).to_be_visible(timeout=600_000)
    header = page.locator('[data-testid="stExpander"] summary', has_text="017.jpg")
    expect(header).to_contain_text("017.jpg: gives you away")  # found first among the sample faces
    # the protection's measured ranks before -> after (the photo's expander opens with it)
    moved = page.locator('[data-testid="stMetric"]', has_text="Rank among the sample faces")
    expect(moved.first).to_be_attached(timeout=60_000)
    for ranks in moved.all():
        # the page writes "a -> b"; Streamlit shows the arrow as one character
        before, after = re.split(
            r"\s*(?:->|\u2192)\s*", ranks.locator('[data-testid="stMetricValue"]').text_content() or ""
        )
        assert after.strip() != "1" and after.strip() != before.strip(), (before, after)
    assert not page.get_by_text(re.compile(r"measured rank 1 (->|\u2192) 1\b")).count()
    screenshot(page, "which-photos-give-me-away")


def test_a_sample_set_volunteer_is_flagged_and_the_original_is_checked_first(app, page, london):
    """The trainer enrols a volunteer from the shipped sample photo of person 017: on main they were
    enrolled, found as "sample person 017", and most changes were called defences."""
    from playwright.sync_api import expect

    url, _ = app
    page.goto(url + "/trainer", wait_until="networkidle")
    page.get_by_label("First name or nickname").fill("Sam")
    page.get_by_text("The volunteer agrees").click()
    page.get_by_role("region", name="Volunteer photo").locator("input[type=file]").set_input_files(
        str(london / "neutral" / "017.jpg")
    )
    expect(page.get_by_role("region", name="Volunteer photo").get_by_text("017.jpg")).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Enrol").click()
    flagged = page.get_by_text("Not enrolled yet: Sam's photo matches sample person 017")
    expect(flagged.or_(page.get_by_text("Sam joined as")).first).to_be_visible(timeout=300_000)
    expect(flagged).to_be_visible(timeout=1_000)
    expect(page.get_by_text("Volunteers enrolled: 0")).to_be_visible()
    screenshot(page, "trainer-sample-volunteer")
    page.get_by_role("button", name="Continue as sample person 017").click()
    expect(page.get_by_text("Sam joined as volunteer-1. Sample person 017 is now the volunteer.")).to_be_visible(
        timeout=120_000
    )
    # someone else's snapshot: the untouched photo does not find Sam, so no change is scored
    snapshot = page.get_by_role("region", name="Snapshot", exact=True)
    snapshot.locator("input[type=file]").set_input_files(str(london / "smiling" / "066.jpg"))
    expect(page.get_by_role("button", name="Test every change")).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Test every change").click()
    expect(page.get_by_text("No changes scored.")).to_be_visible(timeout=300_000)
    expect(page.get_by_text("The untouched photo does not find Sam")).to_be_visible()
    assert not page.locator('[data-testid="stMetric"]', has_text="Changes that break the match").count()
    # Sam's own snapshot: identified, and the changes are scored against a match that is there
    snapshot.locator("input[type=file]").set_input_files(str(london / "smiling" / "017.jpg"))
    expect(page.get_by_text("Identified: Sam")).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Test every change").click()
    expect(page.locator('[data-testid="stMetric"]', has_text="Changes that break the match")).to_be_visible(
        timeout=600_000
    )
    screenshot(page, "trainer-demo")


def test_experiment_results_appear_without_a_manual_rerun(app, page):
    from playwright.sync_api import expect

    url, work = app
    page.goto(url + "/experiment", wait_until="networkidle")
    shots = page.get_by_role("spinbutton", name="offline.shots")
    shots.fill("1")
    shots.press("Enter")
    largest = page.get_by_role("slider", name="largest scaling.sizes")
    largest.focus()
    largest.press("Home")  # 10,000: the smallest largest size keeps the run short
    expect(largest).to_have_attribute("aria-valuetext", "10,000")
    folder = page.get_by_role("textbox", name="output folder")
    folder.fill("runs/browser")
    folder.press("Enter")
    page.wait_for_timeout(1500)
    page.get_by_role("button", name="Run the experiment").click()
    expect(page.get_by_text("Done: runs/browser")).to_be_visible(timeout=900_000)
    # nobody touches the page: the results follow on their own
    expect(page.get_by_role("heading", name="Summary")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("button", name="report.html")).to_be_visible()
    assert (work / "runs" / "browser" / "results.json").is_file()
    screenshot(page, "run-an-experiment")
