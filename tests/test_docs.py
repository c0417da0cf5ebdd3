"""Docs that cannot drift: every command and setting is in the generated reference, every page is in the
site's nav and every internal link resolves, the README stays a short front door, and CI runs the README's
test command and builds the site with warnings as errors."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from markdown.extensions.toc import slugify

from helpers import ROOT
from privrisk.cli import build_parser
from privrisk.exposure import DEFAULT_SENSITIVITY
from privrisk.profiles import FIELDS

DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()
MKDOCS = yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOKS = _hooks()


def _page(rel: str) -> str:
    """A docs page as the site shows it: its generated blocks expanded."""
    return HOOKS.expand((DOCS / rel).read_text(), rel)


def _nav_pages(nav) -> list[str]:
    out = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        out += _nav_pages(value) if isinstance(value, list) else [value]
    return out


def _pages() -> list[str]:
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


# --- the reference covers the code -------------------------------------------------------------------


def test_every_cli_command_is_documented():
    commands = list(HOOKS.commands(build_parser()))
    assert len(commands) >= 7
    generated = _page("reference/cli.md")
    overview = (DOCS / "reference" / "cli.md").read_text().split("<!-- generated")[0]
    for words, sub, summary in commands:
        assert summary, f"privrisk {words} has no help text in build_parser()"
        assert f"### `privrisk {words}`\n\n{HOOKS.cell(summary.replace('%%', '%'))}" in generated, words
        assert f"`privrisk {words}" in overview, f"privrisk {words} is missing from the commands-at-a-glance table"
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"privrisk {words}: argument {action.dest} has no help text"
            assert HOOKS.cell(action.help.replace("%%", "%")) in generated, (words, action.dest)


def test_every_setting_is_documented():
    page = _page("reference/settings.md")
    for cls in ("ExperimentConfig", "Degradation", "ExposureSettings"):
        rows = HOOKS.setting_rows(cls)
        assert rows, cls
        for name, _default, help_text in rows:
            assert help_text.strip(), f"setting {name} has no help text"
            assert f"| `{name}` | `" in page and f"| {HOOKS.cell(help_text)} |" in page, name


def _settings_classes_in_package() -> set[type]:
    """Every dataclass in privrisk with a field made by ``setting()`` (it carries help text)."""
    import privrisk

    found = set()
    for info in pkgutil.walk_packages(privrisk.__path__, "privrisk."):
        if info.name == "privrisk.cli" or info.name.startswith("privrisk.cli."):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and dataclasses.is_dataclass(value)
                and value.__module__ == module.__name__
                and any("help" in f.metadata for f in dataclasses.fields(value))
            ):
                found.add(value)
    return found


def _reachable(cls: type, seen: set[type]) -> set[type]:
    seen.add(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if default is None and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        items = default if isinstance(default, (list, tuple)) else [default]
        for item in items:
            if dataclasses.is_dataclass(item) and type(item) not in seen:
                _reachable(type(item), seen)
    return seen


def test_no_settings_class_is_left_out_of_the_reference():
    documented: set[type] = set()
    for cls in ("ExperimentConfig", "Degradation", "ExposureSettings"):
        _reachable(HOOKS.settings_class(cls), documented)
    missing = {c.__qualname__ for c in _settings_classes_in_package() - documented}
    assert not missing, f"settings classes not in the generated reference (add them to settings_markdown): {missing}"


def test_every_profile_field_and_sensitivity_is_documented():
    page = _page("reference/settings.md")
    for field, sensitivity in DEFAULT_SENSITIVITY.items():
        assert f"| `{field}` | {FIELDS[field]} | {sensitivity} |" in page, field


def test_every_module_has_a_role_in_the_architecture_page():
    page = _page("architecture.md")
    for name, doc in HOOKS.module_docstrings():
        assert doc.strip(), f"privrisk module {name} has no docstring: the architecture page lists it without a role"
        assert f"| `{name}` | {HOOKS.cell(doc)} |" in page, name


def test_the_api_page_covers_the_public_api():
    import privrisk

    page = _page("reference/api.md")
    for name in privrisk.__all__:
        if name != "__version__":
            assert f"### `privrisk.{name}`" in page, name


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:n]))
        except ImportError:
            continue
        try:
            for attribute in parts[n:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            return False
        return True
    return False


def test_every_privrisk_name_in_the_docs_exists():
    """A `privrisk.module.name` in the prose must still exist: moving code moves its docs too."""
    texts = {"README.md": README} | {rel: (DOCS / rel).read_text() for rel in _pages()}
    bad = []
    for source, text in texts.items():
        for span in re.findall(r"`([^`\n]+)`", text):
            for name in re.findall(r"(?<![\w/])privrisk(?:\.[A-Za-z_]\w*)+(?![\w/])", span):
                if not _resolves(name):
                    bad.append(f"{source}: {name}")
    assert not bad, f"names in the docs that the code no longer has: {sorted(set(bad))}"


def test_an_unknown_generated_block_is_an_error():
    with pytest.raises(ValueError, match="unknown generated block 'nope'"):
        HOOKS.expand("<!-- generated: nope -->", "x.md")


# --- the site: nav, links, offline -------------------------------------------------------------------


def test_every_docs_page_is_in_the_nav():
    nav = _nav_pages(MKDOCS["nav"])
    missing = [p for p in _pages() if p not in nav]
    assert not missing, f"pages not in mkdocs.yml's nav (add one line under their reader's section): {missing}"
    assert not [p for p in nav if not (DOCS / p).is_file()], "nav names a page that does not exist"


def _strip_code(markdown: str) -> str:
    markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", markdown)


def _anchors(markdown: str) -> set[str]:
    heads = re.findall(r"^#{1,6} (.+?)\s*$", _strip_code_blocks(markdown), re.M)
    return {slugify(re.sub(r"[`*]", "", h), "-") for h in heads}


def _strip_code_blocks(markdown: str) -> str:
    return re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)


def _links(markdown: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", _strip_code(markdown))


def _check_links(source: Path, text: str) -> list[str]:
    bad = []
    for target in _links(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (source.parent / path).resolve() if path else source
        if not dest.exists():
            bad.append(f"{source.name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md":
            rel = dest.relative_to(DOCS).as_posix() if DOCS in dest.parents else None
            body = _page(rel) if rel else dest.read_text()
            if anchor not in _anchors(body):
                bad.append(f"{source.name}: {target} (no such heading)")
    return bad


def test_internal_links_resolve():
    bad = _check_links(ROOT / "README.md", README)
    for rel in _pages():
        bad += _check_links(DOCS / rel, _page(rel))
    assert not bad, bad


def test_the_site_needs_no_network_at_view_time():
    assert MKDOCS["theme"]["font"] is False, "theme.font must be false: no Google Fonts"
    for rel in _pages():
        text = (DOCS / rel).read_text()
        assert "```mermaid" not in text, f"{rel}: Mermaid loads a script from a CDN; draw a static SVG"
        assert not re.search(r"<script[^>]+src=[\"']https?:", text), rel
    assert not MKDOCS.get("extra_javascript"), "no extra scripts"


# --- the README is a front door ----------------------------------------------------------------------


def test_readme_is_a_front_door():
    assert len(README.splitlines()) <= 150, "README.md is the front door: at most 150 lines; move detail to docs/"
    for way in ("streamlit run app.py", "privrisk demo", "privrisk experiment", "docs/trainer.md"):
        assert way in README, way
    assert "mkdocs serve" in README, "the README says how to build and serve the docs"
    assert "CC BY 4.0" in README and "Face Research Lab London Set" in README
    linked = {p.partition("#")[0] for p in _links(README) if p.startswith("docs/")}
    assert len(linked) >= 8, linked


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    test_cmd = next(b for b in blocks if b.strip().endswith("pytest"))
    assert test_cmd.strip() in CI
    fast = re.search(r"`(python3 -m uv run --locked pytest -m [^`]+)`", README).group(1)
    assert fast in CI and CI.index(fast) < CI.index(test_cmd.strip()), "CI runs the fast lane before the full suite"
    demo_cmd = next(b for b in blocks if "privrisk demo" in b)
    assert demo_cmd.strip().startswith("python3 -m pip install")


def test_ci_builds_the_docs_strictly_before_the_fast_lane():
    build = "python3 -m uv run --locked mkdocs build --strict"
    fast = 'python3 -m uv run --locked pytest -m "not model and not browser and not slow"'
    assert build in CI and CI.index(build) < CI.index(fast)


@pytest.mark.slow
def test_the_site_builds_strictly_and_offline(tmp_path):
    site = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    settings = (site / "reference" / "settings" / "index.html").read_text()
    for name, _default, _help in HOOKS.setting_rows("ExperimentConfig"):
        assert f"<code>{name}</code>" in settings, name
    cli = (site / "reference" / "cli" / "index.html").read_text()
    for words, _sub, _summary in HOOKS.commands(build_parser()):
        assert f"privrisk {words}" in cli, words
    assert "<svg" in (site / "assets" / "stage-flow.svg").read_text()
    for page in site.rglob("*.html"):
        html = page.read_text()
        assert not re.search(r"<script[^>]+src=\"https?:", html), page
        assert "fonts.googleapis" not in html and 'class="mermaid"' not in html, page


# --- examples that run -------------------------------------------------------------------------------

LIBRARY_EXAMPLE = re.search(r"```python\n(.*?)```", (DOCS / "reference" / "api.md").read_text(), re.S).group(1)


def test_library_example_uses_only_the_public_api():
    import privrisk

    used = set(re.findall(r"privrisk\.(\w+)", LIBRARY_EXAMPLE))
    assert used and used <= set(privrisk.__all__), used - set(privrisk.__all__)
    assert "from privrisk" not in LIBRARY_EXAMPLE and "import privrisk." not in LIBRARY_EXAMPLE


@pytest.mark.model
def test_library_example_runs(tmp_path, monkeypatch, shared_cache_dir):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PRIVRISK_CACHE_DIR", shared_cache_dir)
    block = LIBRARY_EXAMPLE.replace("/tmp/privrisk-g", str(tmp_path / "g")).replace(
        "/tmp/privrisk-run", str(tmp_path / "run")
    )
    exec(compile(block, "docs/reference/api.md (library example)", "exec"), {})
    assert (tmp_path / "run" / "results.json").is_file() and (tmp_path / "g").is_dir()
