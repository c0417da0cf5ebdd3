"""Progress reporting for long work: a bar with an ETA on a terminal, a callback in the app, or nothing.

Every long loop in privrisk takes ``progress``: ``True`` for a bar on stderr (tqdm, with rate and
ETA; silent when stderr is not a terminal, so logs and CI output stay clean), ``False`` for
nothing, or a callable ``(done, total)`` (the app's progress widget). :func:`reporter` turns that
into one function to call with the number of items just finished.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "reporter"]

#: What ``progress`` arguments accept.
Progress = bool | Callable[[int, int], None]


def reporter(progress: Progress, total: int, desc: str, unit: str = "it") -> Callable[..., None]:
    """A function ``report(n, close=False)``: ``n`` more items done; ``close`` ends the bar."""
    done = [0]
    bar = None
    if progress is True:
        from tqdm.auto import tqdm  # noqa: PLC0415 - keep `import privrisk` light

        # disable=None: no bar when stderr is not a TTY (CI, pipes, log files)
        bar = tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None, dynamic_ncols=True)

    def report(n: int, close: bool = False) -> None:
        done[0] += n
        if bar is not None:
            bar.update(n)
            if close:
                bar.close()
        elif callable(progress) and (n or close):
            progress(done[0], total)

    return report
