"""Embedding on a Ray cluster: the same pure function as the local path, spread over many machines.

:func:`embed_on_ray` sends batches of image paths to Ray tasks; each task runs the embedding
function it is given (``embed_batch`` passes :func:`privrisk.embeddings.embed_image`) in a Ray
worker process, which loads the face model once, and returns one result per image. This module
imports nothing from :mod:`privrisk.embeddings`: the dependency runs one way. Use it through
``embed_batch(..., workers=Workers(ray_address=...))``, which answers cached images first and caches what comes
back, so an interrupted cluster job resumes where it stopped.

Images are read by the workers: on a real cluster every node needs the same paths (shared
storage) and privrisk installed (or a Ray ``runtime_env``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .config import FaceSettings

#: ``embed(path, model, settings) -> result``: what each Ray task runs for each image.
EmbedFn = Callable[[str, Any, FaceSettings], Any]


def _embed_paths(paths: Sequence[str], settings: FaceSettings, embed: EmbedFn):
    from .models import load_face_model

    model = load_face_model(settings)  # once per Ray worker process
    return [embed(p, model, settings) for p in paths]


def connect(address: str):
    """Join the Ray cluster at ``address`` (``host:port``, or 'local' for a new one on this machine)."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        from .errors import PrivriskError

        raise PrivriskError("the cluster path needs Ray: install privrisk with the 'cluster' extra") from exc
    if not ray.is_initialized():
        ray.init(
            address=None if address == "local" else address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    return ray


def embed_on_ray(
    paths: Sequence[str],
    settings: FaceSettings,
    address: str,
    embed: EmbedFn,
    *,
    batch_size: int = 8,
    on_result: Callable[[int, Any], None] | None = None,  # Any: what ``embed`` returns
) -> list:
    """Embed ``paths`` with ``embed`` on the Ray cluster at ``address``; results in input order.

    ``on_result(i, result)`` is called as each result arrives (the caller caches and reports). At
    most two batches per CPU of the cluster are in flight at a time."""
    ray = connect(address)
    remote = ray.remote(num_cpus=1)(_embed_paths)
    batches = [list(range(s, min(s + batch_size, len(paths)))) for s in range(0, len(paths), batch_size)]
    window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    results: list = [None] * len(paths)
    pending: dict = {}
    queue = iter(batches)

    def submit() -> bool:
        batch = next(queue, None)
        if batch is None:
            return False
        pending[remote.remote([str(paths[i]) for i in batch], settings, embed)] = batch
        return True

    while len(pending) < window and submit():
        pass
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            batch = pending.pop(ref)
            for i, result in zip(batch, ray.get(ref)):
                results[i] = result
                if on_result is not None:
                    on_result(i, result)
            submit()
    return results
