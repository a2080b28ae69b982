"""Progress reporting is a parameter: stages receive a Reporter; the CLI picks rich-on-stderr or silence.

Messages are plain text: they quote user data (paths, ids, model names) that may hold `[`, so the
rich reporter never reads them as markup, or control characters, which it shows as visible escapes
(hnmine.terminal_text), so a hostile id cannot retitle or clear the terminal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from hnmine.terminal_text import visible


class Reporter:
    """Silent reporter: the default for library calls and --quiet."""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        def advance(n: int = 1) -> None:
            return None

        yield advance

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def stage_line(self, stage: str, message: str) -> None:
        pass


class RichReporter(Reporter):
    """Progress bars and messages on stderr, so stdout stays clean for pipes."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        with Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        ) as bar:
            task_id = bar.add_task(visible(description), total=total)

            def advance(n: int = 1) -> None:
                bar.advance(task_id, n)

            yield advance

    def _print(self, *parts: tuple[str, str]) -> None:
        from rich.text import Text

        # one message, one line (no wrapping at 80 columns); Text is never parsed as markup
        self.console.print(Text.assemble(*parts), soft_wrap=True)

    def info(self, message: str) -> None:
        self._print((visible(message), ""))

    def warn(self, message: str) -> None:
        self._print(("warning: ", "yellow"), (visible(message), ""))

    def stage_line(self, stage: str, message: str) -> None:
        self._print((f"{visible(stage):<8} ", "bold"), (visible(message), ""))
