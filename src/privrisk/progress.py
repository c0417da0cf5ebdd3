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
    state = {"done": 0, "bar": None}
    if progress is True:
        from tqdm.auto import tqdm  # noqa: PLC0415 - keep `import privrisk` light

        # disable=None: no bar when stderr is not a TTY (CI, pipes, log files)
        state["bar"] = tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None, dynamic_ncols=True)

    def report(n: int, close: bool = False) -> None:
        state["done"] += n
        if state["bar"] is not None:
            state["bar"].update(n)
            if close:
                state["bar"].close()
        elif callable(progress) and (n or close):
            progress(state["done"], total)

    return report
