"""The shape of the library: dependencies run one way, no module reaches into another's privates,
and ``import privrisk`` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "src" / "privrisk"


def _modules() -> dict[str, ast.Module]:
    """Every module of the package by its dotted name inside it ('experiment', 'stages.scaling'); a
    subpackage's ``__init__`` goes by the subpackage's name, the package's own by '__init__'."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if len(parts) > 1 and parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = ast.parse(path.read_text(), filename=str(path))
    return out


def _target(parts: list[str], known: set[str]) -> str | None:
    """The known module that ``parts`` (a dotted path inside the package) names or lies in."""
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return None


def _imports(tree: ast.Module, known: set[str], name: str = "") -> tuple[set[str], dict[str, str]]:
    """privrisk modules a module (``name``, dotted inside the package) imports anywhere (top level or
    inside functions), and the local names bound to them."""
    is_package = bool(name) and any(k.startswith(name + ".") for k in known)  # a subpackage's __init__
    package = name.split(".") if is_package else name.split(".")[:-1]
    hits: list[str | None] = []
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            if node.module:  # from .x import y
                hits.append(_target(base + node.module.split("."), known))
            else:  # from . import x [as y]
                for a in node.names:
                    hit = _target(base + [a.name], known)
                    hits.append(hit)
                    if hit:
                        aliases[a.asname or a.name] = hit
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("privrisk."):
            hits.append(_target(node.module.split(".")[1:], known))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("privrisk."):
                    hits.append(_target(a.name.split(".")[1:], known))
    return {h for h in hits if h}, aliases


def test_no_import_cycle_lazy_or_top_level():
    trees = _modules()
    known = set(trees) - {"__init__"}
    graph = {name: _imports(tree, known, name)[0] - {name} for name, tree in trees.items() if name != "__init__"}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_cycle_detector_sees_a_lazy_cycle(tmp_path):
    """The walker above must notice an import hidden inside a function."""
    a = ast.parse("def f():\n    from .b import g\n")
    found, _ = _imports(a, {"a", "b"})
    assert found == {"b"}
    # inside a subpackage: `..` is the package, `.` the subpackage, and an __init__ is its subpackage
    known = {"a", "sub", "sub.b", "sub.c"}
    b = ast.parse("from ..a import f\nfrom .c import g\nfrom .. import a as x\n")
    assert _imports(b, known, "sub.b") == ({"a", "sub.c"}, {"x": "a"})
    init = ast.parse("def f():\n    from .b import g\n")
    assert _imports(init, known, "sub")[0] == {"sub.b"}


def test_no_private_access_across_modules():
    trees = _modules()
    known = set(trees) - {"__init__"}
    offences = []
    for name, tree in trees.items():
        _, aliases = _imports(tree, known, name)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
                offences += [
                    f"{name}: from .{node.module} import {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offences.append(f"{name}: {node.value.id}.{node.attr}")
    assert not offences, offences


def test_import_privrisk_is_light():
    code = (
        "import sys, privrisk; heavy = [m for m in ('dlib', 'faiss', 'cv2', 'streamlit', 'matplotlib', "
        "'face_recognition', 'scipy') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(ROOT))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"import privrisk loaded: {out.stdout.strip()}"


def test_public_api_names_resolve_lazily():
    code = (
        "import sys, privrisk; assert 'privrisk.gallery' not in sys.modules; "
        "names = [n for n in privrisk.__all__ if n != '__version__']; "
        "assert all(callable(getattr(privrisk, n)) for n in names), names; "
        "assert set(names) <= set(dir(privrisk)); print(len(names))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(ROOT))
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 11
    import privrisk

    try:
        privrisk.no_such_verb  # noqa: B018
    except AttributeError as exc:
        assert "no_such_verb" in str(exc)
    else:
        raise AssertionError("unknown names must raise AttributeError")


# --- size rules (issue 24): across all of src/, checked with ast ------------------------------------------

MAX_LINES = 60  # a function longer than this does more than one thing
MAX_PARAMETERS = 6  # more than this, and a parameter object is clearer
MAX_MODULE_LINES = 800  # a module longer than this mixes roles


def _parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> int:
    """Positional-only, ordinary and keyword-only parameters, plus one each for ``*args`` and
    ``**kwargs``; a method's leading ``self`` or ``cls`` is not counted."""
    a = node.args
    positional = [x.arg for x in (*a.posonlyargs, *a.args)]
    if method and positional and positional[0] in ("self", "cls"):
        positional = positional[1:]
    return len(positional) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)


def _function_sizes(tree: ast.Module) -> dict[str, tuple[int, int]]:
    """(lines, parameters) of every function and method by qualified name. Lines run from ``def`` to
    the last line of the body (decorators aside, docstring and nested functions included)."""
    out = {}

    def visit(node, prefix, in_class):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", True)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                out[name] = (child.end_lineno - child.lineno + 1, _parameter_count(child, in_class))
                visit(child, name + ".", False)

    visit(tree, "", False)
    return out


def _sizes() -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Lines and parameters of every function in src/privrisk, and lines of every module."""
    lines, params, modules = {}, {}, {}
    for module, tree in _modules().items():
        path = PACKAGE / (module.replace(".", "/") + ".py")
        if not path.exists():  # a subpackage's __init__
            path = PACKAGE / module.replace(".", "/") / "__init__.py"
        modules[module] = len(path.read_text().splitlines())
        for name, (n_lines, n_params) in _function_sizes(tree).items():
            lines[f"{module}.{name}"], params[f"{module}.{name}"] = n_lines, n_params
    return lines, params, modules


def _rule_breaches(measured: dict[str, int], limit: int, what: str) -> list[str]:
    """Every name whose size is over ``limit``, with its size."""
    return [f"{name}: {size} {what} (at most {limit})" for name, size in sorted(measured.items()) if size > limit]


def test_size_rules_hold_across_src():
    """No function over 60 lines or 6 parameters and no module over 800 lines, anywhere in the package
    (issue 24 brought the last offenders under the rules; there is no allowlist)."""
    lines, params, modules = _sizes()
    breaches = (
        _rule_breaches(lines, MAX_LINES, "lines")
        + _rule_breaches(params, MAX_PARAMETERS, "parameters")
        + _rule_breaches(modules, MAX_MODULE_LINES, "lines in the module")
    )
    assert not breaches, "size rules (tests/test_architecture.py):\n" + "\n".join(breaches)


def test_function_sizes_are_measured():
    tree = ast.parse(
        "def f(a, /, b, *args, c, **kw):\n"
        + "    x = 1\n" * 70
        + "class C:\n    def g(self, a):\n        return 1\n\n    @classmethod\n    def h(cls):\n"
        + "        def inner(self):\n            return 1\n        return inner\n"
    )
    assert _function_sizes(tree) == {"f": (71, 5), "C.g": (2, 1), "C.h": (4, 0), "C.h.inner": (2, 1)}


def test_rule_breaches_name_only_what_is_over_the_limit():
    assert _rule_breaches({"a": 61, "b": 60, "c": 7}, 60, "lines") == ["a: 61 lines (at most 60)"]
    assert [b.split(":")[0] for b in _rule_breaches({"z": 90, "a": 70}, 60, "lines")] == ["a", "z"]


def test_pairwise_distances_equal_the_dense_form_in_bounded_blocks():
    import numpy as np

    from privrisk.index import pairwise_distances

    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        a, b = rng.normal(size=(37, 128)).astype(dtype), rng.normal(size=(53, 128)).astype(dtype)
        dense = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0))
        # a block of one row (53 x 128 x 8 bytes), of a few rows, and all at once: the same numbers
        for block in (1, 5 * 53 * 128 * 8, 10**9):
            got = pairwise_distances(a, b, block_bytes=block)
            assert got.dtype == dense.dtype and got.shape == (37, 53)
            assert np.array_equal(got, dense)
    assert pairwise_distances(np.zeros((0, 128)), np.ones((4, 128))).shape == (0, 4)


def test_no_dense_all_pairs_difference_arrays_outside_the_index():
    """Every probe x gallery x 128 difference array goes through index.pairwise_distances (blocked)."""
    import re

    pattern = re.compile(r"\[:, None, :\] - \w[\w.]*\[None, :, :\]")
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "src" / "privrisk").rglob("*.py")
        if p.name != "index.py" and pattern.search(p.read_text())
    ]
    assert not offenders
