"""Progress bars for long steps (replay, demo, bench): drawn on a terminal only."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextlib.contextmanager
def progress_bar(
    description: str, total: float | None = None, *, console: Console | None = None
) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr for a long step; yields ``update(done, total=None)``.

    Draws nothing when stderr is not a terminal (CI logs, pipes), where the callers'
    own lines are the record.
    """
    console = console or Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total)

        def update(done: float, total: float | None = None) -> None:
            progress.update(task, completed=done, total=total)

        yield update
