"""privrisk: how findable are you from your face?

Data flows one way, one module a stage::

    images -> faces -> embeddings -> index / gallery -> matching -> metrics -> exposure -> report

The public API is the dozen verbs below; each is imported on first use (PEP 562), so
``import privrisk`` loads no model, no FAISS and no plotting, starts no work and never exits::

    import privrisk

    gallery = privrisk.build_gallery(privrisk.read_manifest("sample_data/london_neutral.csv"), "/tmp/g")
    with privrisk.open_gallery("/tmp/g") as g:
        print(privrisk.match(g, ["sample_data/smiling/001.jpg"], k=3)[0].best)

Everything else lives in the stage modules (``privrisk.metrics``, ``privrisk.index``, ...).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> (module, attribute); attribute "Gallery.open" means a classmethod
_API = {
    "load_image": ("images", "load_image"),
    "embed": ("embeddings", "embed_batch"),
    "read_manifest": ("manifest", "read_manifest"),
    "build_gallery": ("gallery", "build_gallery"),
    "open_gallery": ("gallery", "Gallery.open"),
    "match": ("matching", "match_images"),
    "load_config": ("experiment", "load_config"),
    "run_experiment": ("experiment", "run_experiment"),
    "calibrate": ("tailmodel", "calibrate_manifest"),
    "load_profile": ("profiles", "load_profile"),
    "score": ("exposure.scoring", "score"),
    "top_changes": ("exposure.changes", "top_changes"),
    "identification_curves": ("exposure.curves", "IdentificationCurves.shipped"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _API[name]
    except KeyError:
        raise AttributeError(f"module 'privrisk' has no attribute {name!r}") from None
    value: Any = importlib.import_module(f".{module_name}", __name__)
    for part in attribute.split("."):
        value = getattr(value, part)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
