"""The ``privrisk`` command: parses options, calls the library, prints results.

Library errors (:class:`~privrisk.errors.PrivriskError`) become one line on stderr and exit
code 2; nothing here matches, scores or measures on its own. The parser is built in
:mod:`~privrisk.cli.parser`; each command group has its module (:mod:`~privrisk.cli.gallery`,
:mod:`~privrisk.cli.experiments`, :mod:`~privrisk.cli.photos`, :mod:`~privrisk.cli.exposure`).
"""

from __future__ import annotations

import os
import sys

from ..errors import PrivriskError
from .common import EXIT_ERROR, EXIT_OK
from .parser import build_parser

__all__ = ["EXIT_ERROR", "EXIT_OK", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` names (default: the process's arguments) and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PrivriskError as exc:
        print(f"privrisk: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("privrisk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the edge: one line, the traceback only on request
        if os.environ.get("PRIVRISK_DEBUG"):
            raise
        print(
            f"privrisk: internal error: {type(exc).__name__}: {exc} (set PRIVRISK_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
