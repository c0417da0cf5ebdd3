"""The ``privrisk`` argument parser: the flags every command shares and each command group's
subcommands (their settings flags come from :mod:`privrisk.config`). The docs' CLI reference is
generated from :func:`build_parser`."""

from __future__ import annotations

import argparse

from .. import __version__
from .experiments import add_calibrate_command, add_run_commands
from .exposure import add_exposure_commands
from .gallery import add_gallery_commands, add_match_command
from .photos import add_photo_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privrisk",
        description="How findable are you from your face? "
        "Face-matching experiments and exposure scores on consenting data.",
    )
    parser.add_argument("--version", action="version", version=f"privrisk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common, embed = _shared_flags()
    add_gallery_commands(sub, common, embed)
    add_match_command(sub, common, embed)
    add_run_commands(sub, common, embed)
    add_calibrate_command(sub, common, embed)
    add_photo_commands(sub, common, embed)
    add_exposure_commands(sub, common)
    return parser


def _shared_flags() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """Parent parsers: output flags every command takes, and the embedding flags."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars")

    embed = argparse.ArgumentParser(add_help=False)
    embed.add_argument(
        "--cache", metavar="DIR", help="embedding cache folder (default: $PRIVRISK_CACHE_DIR or ~/.cache/privrisk)"
    )
    embed.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    embed.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    embed.add_argument(
        "--ray", metavar="ADDRESS", default=None, help="embed on the Ray cluster at ADDRESS (host:port, or 'local')"
    )
    return common, embed
