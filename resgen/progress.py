"""Progress of long work (parity of a deep preset, the benchmark suite), shown on a terminal only.

`steps` draws a rich progress bar on stderr when stderr is a terminal, and clears it when the work is
done; in a pipe, a file or a CI log it writes nothing at all, so piped and JSON output carry only
results. The work reports each step it starts by calling the function `steps` yields.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import IO

Step = Callable[[str], None]


def quiet(_step: str) -> None:
    """The step reporter of work that shows no progress."""


def on_terminal(stream: IO[str] | None = None) -> bool:
    """Whether `stream` (stderr by default) is a terminal a person watches."""
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream is no terminal
        return False


@contextlib.contextmanager
def steps(title: str, total: int, *, stream: IO[str] | None = None) -> Iterator[Step]:
    """Yield a function that reports the step being started: "title: step", with a bar of `total`
    steps and the time elapsed, on `stream` (stderr) if it is a terminal; otherwise `quiet`."""
    if not on_terminal(stream):
        yield quiet
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr if stream is None else stream, force_terminal=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(title, total=total)
        started = [0]

        def step(what: str) -> None:
            bar.update(task, completed=min(started[0], total), description=f"{title}: {what}")
            started[0] += 1

        yield step
        bar.update(task, completed=total)
