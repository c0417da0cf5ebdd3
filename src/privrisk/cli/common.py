"""What every command shares: exit codes, one ``--flag`` per setting of a settings class (declared
once in :mod:`privrisk.config`) and back, the embedding cache the flags name, and JSON / wrapped
text on stdout."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
import typing
from pathlib import Path

from ..config import from_dict

EXIT_OK, EXIT_ERROR = 0, 2


def add_settings_flags(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    """One ``--flag`` per setting of ``cls``, with its help and choices (declared once in config)."""
    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if kind not in (int, float, str):
            continue  # tables (dicts, lists) are set in config files, not flags
        group.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f"{cls.__name__}.{f.name}",
            default=None,
            type=kind if kind in (int, float) else str,
            choices=f.metadata.get("choices"),
            metavar=None if f.metadata.get("choices") else f.name.upper(),
            help=f"{f.metadata.get('help', '')} (default: {f.default})",
        )


def settings_from_args(args: argparse.Namespace, cls: type):
    """An instance of the settings class ``cls`` with the flags given on the command line (checked by config)."""
    prefix = f"{cls.__name__}."
    given = {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None}
    return from_dict(cls, given)


def embedding_cache(args):
    """The embedding cache ``--cache`` names (default: the shared one), or None with ``--no-cache``."""
    from ..embeddings import EmbeddingCache, default_cache_path

    if getattr(args, "no_cache", False):
        return None
    return EmbeddingCache(Path(args.cache) / "embeddings.sqlite" if args.cache else default_cache_path())


def embed_run(args, progress: bool):
    """How a command embeds its photos (:class:`~privrisk.embeddings.EmbedRun`): ``--cache`` /
    ``--no-cache``, ``--workers``, ``--ray``, and a progress bar when ``progress``."""
    from ..embeddings import EmbedRun

    return EmbedRun(cache=embedding_cache(args), workers=args.workers, progress=progress, ray_address=args.ray)


def print_json(data) -> None:
    """``data`` as indented JSON on stdout (what ``--json`` promises)."""
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def wrap(text: str, indent: str = "  ") -> str:
    """``text`` wrapped at 100 columns, each line indented by ``indent``."""
    return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent)
