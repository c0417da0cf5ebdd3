"""Docs that cannot drift: every command and setting is in the README; CI runs the README's test command."""

import argparse
import re

import pytest

from helpers import ROOT
from privrisk.cli import build_parser
from privrisk.config import describe
from privrisk.degrade import Degradation
from privrisk.experiment import ExperimentConfig
from privrisk.exposure import DEFAULT_SENSITIVITY, ExposureSettings
from privrisk.profiles import FIELDS

README = (ROOT / "README.md").read_text()


def _commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, prefix + (name,))
                if not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield " ".join(prefix + (name,))


def test_every_cli_command_is_documented():
    commands = sorted(set(_commands(build_parser())))
    assert len(commands) >= 7
    for command in commands:
        assert f"privrisk {command}" in README, command


def test_every_setting_is_documented():
    for cls in (ExperimentConfig, Degradation, ExposureSettings):
        for name, _default, help_text in describe(cls):
            assert f"`{name}`" in README, name
            assert help_text in README, name


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    test_cmd = next(b for b in blocks if b.strip().endswith("pytest"))
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd.strip() in ci
    fast = re.search(r"`(python3 -m uv run --locked pytest -m [^`]+)`", README).group(1)
    assert fast in ci and ci.index(fast) < ci.index(test_cmd.strip()), "CI runs the fast lane before the full suite"
    demo_cmd = next(b for b in blocks if "privrisk demo" in b)
    assert demo_cmd.strip().startswith("python3 -m pip install")


def test_every_profile_field_and_sensitivity_is_documented():
    for field, sensitivity in DEFAULT_SENSITIVITY.items():
        assert f"| `{field}` | {FIELDS[field]} | {sensitivity} |" in README, field


def test_readme_library_example_uses_only_the_public_api():
    block = re.search(r"## Library\n.*?```python\n(.*?)```", README, re.S).group(1)
    import privrisk

    used = set(re.findall(r"privrisk\.(\w+)", block))
    assert used and used <= set(privrisk.__all__), used - set(privrisk.__all__)
    assert "from privrisk" not in block and "import privrisk." not in block


@pytest.mark.model
def test_readme_library_example_runs(tmp_path, monkeypatch, shared_cache_dir):
    block = re.search(r"## Library\n.*?```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PRIVRISK_CACHE_DIR", shared_cache_dir)
    block = block.replace("/tmp/privrisk-g", str(tmp_path / "g")).replace("/tmp/privrisk-run", str(tmp_path / "run"))
    exec(compile(block, "README.md (library example)", "exec"), {})
    assert (tmp_path / "run" / "results.json").is_file() and (tmp_path / "g").is_dir()
