"""Progress reporting is a parameter: stages receive a Reporter; the CLI picks rich-on-stderr or silence."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator


class Reporter:
    """Silent reporter: the default for library calls and --quiet."""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        yield lambda n=1: None

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass


class CollectingReporter(Reporter):
    """Keeps messages; used by tests."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.warnings: list[str] = []

    def info(self, message: str) -> None:
        self.messages.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


class RichReporter(Reporter):
    """Progress bars and messages on stderr, so stdout stays clean for pipes."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        ) as bar:
            task_id = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task_id, n)

    def info(self, message: str) -> None:
        self.console.print(message, highlight=False, soft_wrap=True)  # one message, one line (no wrapping at 80 columns)

    def warn(self, message: str) -> None:
        from rich.markup import escape

        # Escaped: a warning quotes user data (ids, paths), which may hold "[...]".
        self.console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True)
