"""Check that moving the README into the docs site lost nothing (issue 24).

Reads the old README from a git revision and checks (1) that every one of its headings maps to a docs
page that exists, and (2) that every fact-like token in it (every number, and every `code` span) still
appears in the new README or a docs page, with the pages' generated blocks expanded as the site shows
them. Prints what is missing and exits 1 if anything is.

    python3 -m uv run --locked python scripts/check_docs_migration.py [REV]   # REV: default 1a177a8
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: old README heading -> the page(s) its content now lives in
MOVED = {
    "privrisk": ["index.md", "../README.md"],
    "Quickstart": ["index.md", "../README.md"],
    "What the demo measured (2 cores, 2026-11-22, seed 2011)": ["experiments.md"],
    "How far to trust these numbers": ["experiments.md"],
    "The experiments": ["experiments.md", "reference/formats.md"],
    "Demographic differentials": ["differentials.md"],
    "E4 countermeasures: what protects a public photo": ["countermeasures.md", "self-check.md"],
    "Command line": ["reference/cli.md", "calibrate.md"],
    "Consent manifests": ["reference/formats.md"],
    "Library": ["reference/api.md", "architecture.md"],
    "Configuration": ["reference/settings.md", "experiments.md"],
    "Exposure score": ["exposure.md", "reference/formats.md", "reference/settings.md"],
    "Benchmarks": ["benchmarks.md"],
    "Scale out: clusters and galleries beyond memory": ["scale-out.md"],
    "The app": ["self-check.md", "trainer.md", "experiments.md"],
    "Under the hood: the stack's known traps": ["architecture.md"],
    "Sample data and attribution": ["index.md", "../README.md"],
    "Tests": ["tests.md"],
    "Status": ["status.md"],
}


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tokens(text: str) -> set[str]:
    code = set(re.findall(r"`([^`\n]+)`", text))
    numbers = set(re.findall(r"(?<![\w.])\d[\d,]*(?:\.\d+)?%?", text))
    return code | numbers


def main(rev: str = "1a177a8") -> int:
    old = subprocess.run(["git", "show", f"{rev}:README.md"], cwd=ROOT, capture_output=True, text=True, check=True)
    old_text = old.stdout.replace("\\|", "|")
    problems = []
    headings = re.findall(r"^#{1,3} (.+)$", re.sub(r"^```.*?^```", "", old_text, flags=re.S | re.M), re.M)
    for heading in headings:
        pages = MOVED.get(heading)
        if not pages:
            problems.append(f"heading not mapped to a page: {heading!r}")
            continue
        for page in pages:
            if not (DOCS / page).is_file():
                problems.append(f"{heading!r} -> {page}: no such page")
    hooks = _hooks()
    new_text = (ROOT / "README.md").read_text() + "".join(
        hooks.expand(p.read_text(), p.name) for p in sorted(DOCS.rglob("*.md"))
    )
    new_plain = new_text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("\\|", "|")
    missing = sorted(t for t in _tokens(old_text) if t not in new_plain)
    problems += [f"token of the old README found nowhere in the docs: {t!r}" for t in missing]
    for line in problems:
        print(line)
    print(f"{len(headings)} headings, {len(_tokens(old_text))} tokens checked; {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
