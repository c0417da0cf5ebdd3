"""Files written whole or not at all, and one stderr logger.

Every file privrisk writes (results, reports, plots, gallery indexes, shard metadata) goes through
:func:`atomic_write` or :func:`atomic_path`: the data goes to a temp file in the same folder, is
flushed to disk, and replaces the target with ``os.replace``. A crash leaves the old file or the
new one, never half of one. An error removes the temp file; a process killed outright (SIGKILL, power
loss) cannot, so the next writer into that folder calls :func:`sweep_temp_files` first.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "json_default", "read_json", "stderr_log", "sweep_temp_files"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temp path beside ``path`` for a writer that wants a file name (e.g. FAISS); on success
    the temp file is synced and moved onto ``path``; on any error it is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sweep_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the temp files :func:`atomic_path` left in ``folder`` when its process was killed
    before it could clean up (``.<name>.<random>.tmp``); returns what it removed. Only those names
    are touched, and only in ``folder`` itself."""
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.glob(".*.tmp"):
        if p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)


__all__ += ["RUN_MARKER", "claim_output_dir", "is_privrisk_run"]

RUN_MARKER = ".privrisk-run"  # the first file of every experiment output folder


def is_privrisk_run(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds a previous privrisk run: its marker file (written before anything
    else, so a run killed at any point leaves it), or a results.json that privrisk wrote (runs from
    before the marker existed)."""
    folder = Path(folder)
    if (folder / RUN_MARKER).is_file():
        return True
    try:
        with open(folder / "results.json", "rb") as fh:
            head = fh.read(1 << 24)  # the key is near the top; a stranger's huge file is not read whole
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and b'"privrisk_version"' in head


def claim_output_dir(folder: str | os.PathLike, *, overwrite: bool = False, what: str = "experiment") -> Path:
    """Make ``folder`` ready to receive a run's outputs and mark it as a privrisk run.

    A missing or empty folder is created and marked; a folder holding a previous privrisk run is
    resumed or overwritten (a killed run resumes to the same results). Any other non-empty folder
    raises :class:`~privrisk.errors.OutputNotEmpty` unless ``overwrite`` is true."""
    from .errors import OutputNotEmpty  # noqa: PLC0415

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputNotEmpty(folder, "is a file, not a folder")
    if folder.is_dir() and not overwrite and not is_privrisk_run(folder):
        try:
            first = next(iter(sorted(p.name for p in folder.iterdir())), None)
        except OSError as exc:
            raise OutputNotEmpty(folder, f"cannot list the folder ({exc.strerror or exc})") from None
        if first is not None:
            raise OutputNotEmpty(
                folder,
                f"not empty and not a previous privrisk run (it holds {first!r}); choose an empty folder "
                "or pass --force (overwrite=True) to write into it anyway",
            )
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / RUN_MARKER
    if not marker.is_file():
        # not atomic on purpose: only the name matters, and a run killed while writing it must leave the
        # marker (even empty), not a temp file that would make its folder look like someone else's
        with open(marker, "w", encoding="utf-8") as fh:
            fh.write(f"privrisk {what} output folder; safe to resume or overwrite\n")
    return folder


def read_json(path: str | os.PathLike, what: str):
    """The JSON in ``path``; a missing, unreadable or malformed file raises
    :class:`~privrisk.errors.ConfigError` naming the file, ``what`` it should be and the reason."""
    import json  # noqa: PLC0415

    from .errors import ConfigError  # noqa: PLC0415

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON file ({exc})") from None


def json_default(value):
    """``json.dumps(default=...)`` for numpy scalars and arrays (anything else becomes its text)."""
    import numpy as np  # noqa: PLC0415

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def stderr_log(message: str) -> None:
    """One progress line on stderr, prefixed so it stands apart from results on stdout."""
    print(f"[privrisk] {message}", file=sys.stderr, flush=True)
