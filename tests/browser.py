"""Headless Chromium (Debian's package) driven by Playwright; no browser is downloaded."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return path


def launch(playwright):
    # Playwright gives the browser a fresh, empty profile of its own.
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)


def upload(page, label: str, path, timeout_ms: int = 120_000) -> None:
    """Give the file uploader labelled `label` a file, and wait until the app shows it received it.

    The app's photo uploaders sit in forms, so picking a file starts no rerun. A rerun from an earlier
    widget (the consent tick) may still be in flight, though, and Streamlit can re-mount an uploader and
    drop a file set on the old element; a person would see the empty box and pick the file again, and
    so does this.
    """
    from pathlib import Path

    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    region = page.get_by_role("region", name=label)
    payload = path if isinstance(path, dict) else str(path)  # a file on disk, or Playwright's in-memory file
    name = path["name"] if isinstance(path, dict) else Path(path).name
    for attempt in range(3):
        if region.get_by_text(name).count():  # already received (an earlier call started this upload)
            return
        region.locator("input[type=file]").set_input_files(payload)
        try:
            expect(region.get_by_text(name)).to_be_visible(timeout=timeout_ms // 3)
            return
        except (AssertionError, PlaywrightTimeout):
            if attempt == 2:
                raise
