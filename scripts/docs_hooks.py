"""MkDocs hook: the reference parts of the docs are generated from the code at build time.

A page asks for a generated block with a marker line, ``<!-- generated: NAME -->``; the hook replaces it
with :data:`GENERATORS` ``[NAME]()``. Each setting is still declared once (``setting(default, help)`` in
the code): the settings reference is :func:`privrisk.config.describe` of the settings classes, the CLI
reference is the argparse parser, the module table is each module's docstring and the benchmark tables are
``benchmarks/results/latest.md``. An unknown marker fails the build. ``tests/test_docs.py`` imports this file
to check the generated text; ``mkdocs.yml`` names it under ``hooks:``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "privrisk"
MARKER = re.compile(r"^<!-- generated: ([a-z_]+) -->$", re.M)

# Where each settings class may live: the refactor of issue 24 moves them into one settings module; the
# first module that has the class wins, so the reference follows the declaration wherever it is.
_SETTINGS_HOMES = (
    "privrisk.settings",
    "privrisk.config",
    "privrisk.experiment",
    "privrisk.degrade",
    "privrisk.exposure",
)


def settings_class(name: str) -> type:
    """The settings dataclass called ``name``, from whichever privrisk module declares it."""
    import pkgutil

    import privrisk

    homes = [*_SETTINGS_HOMES, *(m.name for m in pkgutil.walk_packages(privrisk.__path__, "privrisk."))]
    for module in homes:
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if isinstance(cls, type):
            return cls
    raise LookupError(f"no privrisk module declares the settings class {name}")


def cell(text: Any) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, angle brackets as entities, one line."""
    s = " ".join(str(text).split())
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _default(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        return ", ".join(v["name"] for v in value) + " (below)"
    return json.dumps(value, default=str)


def setting_rows(class_name: str) -> list[tuple[str, Any, str]]:
    """(dotted name, default, help) of every setting of a settings class, nested tables included."""
    from privrisk.config import describe

    return describe(settings_class(class_name))


def _table(rows: list[tuple[str, Any, str]], first: str) -> str:
    lines = [f"| {first} | default | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | `{cell(_default(default))}` | {cell(text)} |" for name, default, text in rows]
    return "\n".join(lines)


def _grouped(rows: list[tuple[str, Any, str]]) -> str:
    """One table per TOML table: the top-level keys first, then ``[faces]``, ``[gallery]``, ..."""
    groups: dict[str, list[tuple[str, Any, str]]] = {}
    for row in rows:
        head, dot, _ = row[0].partition(".")
        groups.setdefault(head if dot else "", []).append(row)
    parts = []
    for head, group in groups.items():
        parts.append(f"### `[{head}]`" if head else "### Top-level keys")
        parts.append(_table(group, "setting"))
    return "\n\n".join(parts)


def settings_markdown() -> str:
    """The experiment config, capture-level and exposure settings tables, and the profile fields."""
    from privrisk.exposure.sensitivity import DEFAULT_SENSITIVITY
    from privrisk.profiles import DEFAULT_VISIBILITY, FIELDS

    parts = [
        "## Experiment config (TOML)",
        "Every key is optional; a dotted name is a key inside its table (`faces.detector` is `detector` "
        "under `[faces]`). Unknown keys, wrong types and values out of range are errors naming the key. "
        "The same settings drive the CLI flags and are saved in `results.json`.",
        _grouped(setting_rows("ExperimentConfig")),
        "## Capture levels (`[[offline.levels]]`)",
        "Each `[[offline.levels]]` table is one E2 capture condition. The table gives a bare level's "
        "defaults; the default levels themselves are described under "
        "[E2's capture levels](../experiments.md#e2-capture-levels).",
        _table(setting_rows("Degradation"), "`[[offline.levels]]` key"),
        "## Exposure score (`privrisk score`)",
        _table(setting_rows("ExposureSettings"), "exposure setting"),
        "## Profile fields",
        "The fields of a profile's `visibility` object, their default sensitivity (an assumption: see "
        "[the exposure score](../exposure.md#what-is-learned-fields-and-inferences)) and the default visibility shares the "
        "synthetic profiles are drawn from (only me / friends / friends of friends / public).",
        profile_fields_table(FIELDS, DEFAULT_SENSITIVITY, DEFAULT_VISIBILITY),
    ]
    return "\n\n".join(parts)


def profile_fields_table(fields: dict, sensitivity: dict, visibility: dict) -> str:
    lines = ["| field | shown as | sensitivity | default visibility shares |", "|---|---|---|---|"]
    for name, label in fields.items():
        shares = visibility.get(name)
        shown = " / ".join(f"{s:g}" for s in shares) if shares is not None else ""
        lines.append(f"| `{name}` | {cell(label)} | {sensitivity.get(name, '')} | {shown} |")
    return "\n".join(lines)


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, Any, str]]:
    """(command words, its parser, its one-line help) for every leaf command, in the parser's order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield from commands(sub, prefix + (name,))
                else:
                    yield " ".join(prefix + (name,)), sub, helps.get(name, "")


def _option_rows(sub: argparse.ArgumentParser) -> list[str]:
    rows = []
    for a in sub._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        name = ", ".join(a.option_strings) if a.option_strings else a.metavar or a.dest
        if a.option_strings and a.nargs != 0:
            choices = "{" + ",".join(map(str, a.choices)) + "}" if a.choices else None
            name += f" {a.metavar or choices or a.dest.upper()}"
        text = (a.help or "").replace("%%", "%")
        if a.choices and "one of" not in text:
            text += f" (one of: {', '.join(map(str, a.choices))})"
        rows.append(f"| `{cell(name)}` | {cell(text)} |")
    return rows


def cli_markdown() -> str:
    """One section per command: what it does, its usage line and every argument with its help."""
    from privrisk.cli import build_parser

    parser = build_parser()
    parts = []
    for words, sub, summary in commands(parser):
        usage = " ".join(sub.format_usage().split()).removeprefix("usage: ").removeprefix(sub.prog)
        usage = f"privrisk {words}{usage}"
        parts.append(f"### `privrisk {words}`\n\n{cell(summary.replace('%%', '%'))}\n\n```text\n{usage}\n```\n")
        parts.append("| argument | meaning |\n|---|---|\n" + "\n".join(_option_rows(sub)))
    return "\n\n".join(parts)


def module_docstrings() -> list[tuple[str, str]]:
    """(dotted module name, first paragraph of its docstring) for every module of the package."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1] or ("privrisk",)
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        out.append((".".join(parts), doc.split("\n\n")[0]))
    return out


def modules_markdown() -> str:
    lines = ["| module | role (its docstring) |", "|---|---|"]
    lines += [f"| `{name}` | {cell(doc)} |" for name, doc in module_docstrings()]
    return "\n".join(lines)


def benchmarks_markdown() -> str:
    """The last benchmark run's tables, as ``benchmarks/run.py`` wrote them."""
    return (ROOT / "benchmarks" / "results" / "latest.md").read_text(encoding="utf-8").strip()


def public_api() -> dict[str, tuple[str, str]]:
    """``privrisk``'s public names -> (module, attribute), as its lazy loader declares them."""
    import privrisk

    return dict(privrisk._API)


def api_markdown() -> str:
    """One mkdocstrings block per public verb, pointing at the function or method it stands for."""
    parts = []
    for name, (module, attribute) in public_api().items():
        parts.append(f"### `privrisk.{name}`\n\n`privrisk.{name}` is `privrisk.{module}.{attribute}`.")
        parts.append(
            f"::: privrisk.{module}.{attribute}\n    options:\n      heading_level: 4\n      show_root_toc_entry: false"
        )
    return "\n\n".join(parts)


GENERATORS: dict[str, Callable[[], str]] = {
    "settings": settings_markdown,
    "cli": cli_markdown,
    "modules": modules_markdown,
    "benchmarks": benchmarks_markdown,
    "api": api_markdown,
}


def expand(markdown: str, where: str = "") -> str:
    """``markdown`` with every generated-block marker replaced; an unknown marker is an error."""

    def one(m: re.Match) -> str:
        if m.group(1) not in GENERATORS:
            raise ValueError(f"{where}: unknown generated block {m.group(1)!r} (known: {', '.join(GENERATORS)})")
        return GENERATORS[m.group(1)]()

    return MARKER.sub(one, markdown)


_ROLE = re.compile(r":(?:class|func|mod|data|meth|attr|exc|obj):(<code>)")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: the docstrings' Sphinx roles (``:func:`x```) shown as plain code, not as ``:func:``."""
    return _ROLE.sub(r"\1", html)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: expand the page's generated blocks."""
    try:
        return expand(markdown, page.file.src_uri)
    except ValueError as exc:
        from mkdocs.exceptions import PluginError

        raise PluginError(str(exc)) from None
