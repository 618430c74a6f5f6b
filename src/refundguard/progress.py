"""Progress bars for long steps, silent in logs, pipes and with ``--quiet``.

A bar is drawn on stderr with rich only when stderr is a terminal and progress is not
switched off (``refundguard --quiet ...`` sets ``REFUNDGUARD_QUIET=1``; setting it
yourself works too). Otherwise nothing at all is written, so logs of DVC stages, CI jobs
and cron runs stay free of control characters.

Usage::

    from refundguard import progress

    with progress.bar("scoring", total=n_rows) as advance:
        for chunk in chunks:
            ...
            advance(len(chunk))

    for item in progress.track(items, "sentiment", total=len(items)):
        ...

``advance.done`` holds the count reached, whether or not a bar is shown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

ENV_QUIET = "REFUNDGUARD_QUIET"
_TRUE = frozenset({"1", "true", "yes", "on"})

T = TypeVar("T")


def quiet() -> bool:
    """Whether progress output is switched off (``REFUNDGUARD_QUIET`` is 1, true, yes or on).

    Returns:
        True when quiet.
    """
    return os.environ.get(ENV_QUIET, "").strip().lower() in _TRUE


def enabled(stream: TextIO | None = None) -> bool:
    """Whether a bar would be drawn: not quiet, and the stream is a terminal.

    Args:
        stream: Where the bar goes; stderr by default.

    Returns:
        True if a bar is drawn.
    """
    if quiet():
        return False
    out = sys.stderr if stream is None else stream
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        # No isatty, or a closed stream (pytest's capture after a test ends).
        return False


class Advance:
    """Counts progress and moves the bar, if one is drawn.

    Attributes:
        done: Units of work counted so far.
    """

    def __init__(self, update: Callable[[float], None] | None = None) -> None:
        self.done: float = 0
        self._update = update

    def __call__(self, n: float = 1) -> None:
        """Count ``n`` more units of work.

        Args:
            n: Units just finished.
        """
        self.done += n
        if self._update is not None:
            self._update(n)


@contextmanager
def bar(
    description: str, total: float | None = None, *, stream: TextIO | None = None
) -> Iterator[Advance]:
    """A progress bar for the block; yields the function that advances it.

    Args:
        description: Short name of the step ("scoring").
        total: Units of work in all, or None if unknown (the bar then just counts).
        stream: Where to draw; stderr by default. Nothing is written unless
            :func:`enabled` says so for this stream.

    Yields:
        An :class:`Advance`: call it with the units just finished.
    """
    if not enabled(stream):
        yield Advance()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=sys.stderr if stream is None else stream)
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console) as prog:
        task = prog.add_task(description, total=total)
        yield Advance(lambda n: prog.advance(task, n))


def track(
    items: Iterable[T],
    description: str,
    total: float | None = None,
    *,
    stream: TextIO | None = None,
) -> Iterator[T]:
    """Yield the items, advancing a bar by one per item.

    Args:
        items: What to iterate over.
        description: Short name of the step.
        total: Number of items; taken from ``len(items)`` when it has one.
        stream: Where to draw; stderr by default.

    Yields:
        The items, unchanged and in order.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(description, total, stream=stream) as advance:
        for item in items:
            yield item
            advance(1)
