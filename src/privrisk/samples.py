"""Where the consenting sample data is: the manifests in ``sample_data/`` and the images they
point to (``../shared/datasets/london-faces`` beside the project, or ``$PRIVRISK_DATASET_DIR``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ManifestError

ATTRIBUTION = ("Faces: DeBruine, L., & Jones, B. (2017). Face Research Lab London Set (Version 5). "
               "figshare. https://doi.org/10.6084/m9.figshare.5047666.v5 - CC BY 4.0")
ATTRIBUTION_URL = "https://doi.org/10.6084/m9.figshare.5047666.v5"

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def sample_data_dir() -> Path:
    """The project's ``sample_data/`` folder (manifests and attribution)."""
    for base in (_PROJECT_ROOT, Path.cwd()):
        if (base / "sample_data" / "london_neutral.csv").is_file():
            return base / "sample_data"
    raise ManifestError("sample_data/ not found; run privrisk from a checkout of the project")


def sample_manifest(kind: str) -> Path:
    """Path of the sample manifest for ``kind`` ('neutral' or 'smiling')."""
    if kind not in ("neutral", "smiling"):
        raise ValueError(f"kind must be 'neutral' or 'smiling', not {kind!r}")
    return sample_data_dir() / f"london_{kind}.csv"


def dataset_dir(override: str | os.PathLike | None = None) -> Path:
    """The sample images' folder: ``override``, ``$PRIVRISK_DATASET_DIR``, or
    ``../shared/datasets/london-faces`` next to the project (or the current directory)."""
    candidates = []
    if override:
        candidates.append(Path(override))
    elif os.environ.get("PRIVRISK_DATASET_DIR"):
        candidates.append(Path(os.environ["PRIVRISK_DATASET_DIR"]))
    else:
        for base in (_PROJECT_ROOT, Path.cwd()):
            candidates.append(base.parent / "shared" / "datasets" / "london-faces")
    for c in candidates:
        if (c / "subjects.csv").is_file():
            return c
    raise ManifestError(
        f"sample dataset not found (looked in {', '.join(map(str, candidates))}); set PRIVRISK_DATASET_DIR "
        f"to the London face set folder (download: {ATTRIBUTION_URL})")
