"""Where the consenting sample data is.

The project ships the London face set (102 consenting adults, a neutral and a smiling photo each,
CC BY 4.0) with its manifests, attribution and measured curves in ``sample_data/``. In a checkout
that folder sits at the top of the repository; in an installed wheel the build puts it inside the
package (``privrisk/sample_data``), where :mod:`importlib.resources` finds it. Either way, the demo
runs with nothing beside the project. ``$PRIVRISK_DATASET_DIR`` or ``--images DIR`` point the
sample manifests at another copy of the images.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import ManifestError

__all__ = ["ATTRIBUTION", "ATTRIBUTION_URL", "dataset_dir", "sample_data_dir", "sample_file", "sample_manifest"]

ATTRIBUTION = (
    "Faces: DeBruine, L., & Jones, B. (2017). Face Research Lab London Set (Version 5). "
    "figshare. https://doi.org/10.6084/m9.figshare.5047666.v5 - CC BY 4.0"
)
ATTRIBUTION_URL = "https://doi.org/10.6084/m9.figshare.5047666.v5"

_MARKER = "london_neutral.csv"


def _candidate_dirs() -> list[Path]:
    """Where ``sample_data/`` may be: inside the installed package, then the checkout's top level."""
    places = []
    packaged = resources.files("privrisk") / "sample_data"
    if isinstance(packaged, Path):  # a normal install; a zipped one has no real folder to read from
        places.append(packaged)
    places.append(Path(__file__).resolve().parents[2] / "sample_data")
    return list(dict.fromkeys(places))


def sample_data_dir() -> Path:
    """The ``sample_data/`` folder: manifests, images, attribution and the measured curves."""
    places = _candidate_dirs()
    for place in places:
        if (place / _MARKER).is_file():
            return place
    raise ManifestError(
        f"sample data not found (looked in {', '.join(map(str, places))}); "
        "reinstall privrisk or run it from a checkout of the project"
    )


def sample_file(name: str) -> Path:
    """A file shipped in ``sample_data/`` (e.g. ``identification_curves.json``)."""
    return sample_data_dir() / name


def sample_manifest(kind: str) -> Path:
    """Path of the sample manifest for ``kind`` ('neutral' or 'smiling')."""
    if kind not in ("neutral", "smiling"):
        raise ValueError(f"kind must be 'neutral' or 'smiling', not {kind!r}")
    return sample_data_dir() / f"london_{kind}.csv"


def dataset_dir(override: str | os.PathLike | None = None) -> Path:
    """The sample images' folder: ``override``, else ``$PRIVRISK_DATASET_DIR``, else the shipped
    ``sample_data/``. An override that does not hold the set is an error, never silently ignored."""
    if override:
        candidates, why = [Path(override)], "the folder given"
    elif os.environ.get("PRIVRISK_DATASET_DIR"):
        candidates, why = [Path(os.environ["PRIVRISK_DATASET_DIR"])], "PRIVRISK_DATASET_DIR"
    else:
        candidates, why = _candidate_dirs(), "the shipped sample data"
    candidates = list(dict.fromkeys(candidates))
    for c in candidates:
        if (c / "subjects.csv").is_file() and (c / "neutral").is_dir():
            return c
    raise ManifestError(
        f"sample images not found in {why} (looked in {', '.join(map(str, candidates))}: no subjects.csv "
        f"and neutral/ there); set PRIVRISK_DATASET_DIR to a copy of the London face set ({ATTRIBUTION_URL})"
    )
