"""`hnmine finetune`: fine-tune a model on runs' training data and measure it on held-out judgments.

Thin: its options are declared in hnmine.finetune.options (FinetuneCommand, FinetuneOptions) and the
command is made from them by hnmine.cli_options.helper_command; it calls
hnmine.finetune.compare.compare_arms and prints. Named hnmine errors propagate; the main CLI turns
them into a one-line message and exit 2. Heavy libraries are imported inside the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer

from hnmine.cli_options import helper_command
from hnmine.command_options import one_output_format
from hnmine.finetune.options import FinetuneCommand, FinetuneOptions


def finetune(cmd: FinetuneCommand, opts: FinetuneOptions) -> None:
    from hnmine.finetune.compare import compare_arms
    from hnmine.progress import Reporter, RichReporter

    assert cmd.eval is not None  # required (hnmine.cli_options.check_given)
    one_output_format(cmd)
    _check_results_writable(cmd.sources)
    reporter = Reporter() if cmd.quiet else RichReporter()
    result = compare_arms(
        list(cmd.sources), cmd.eval, cmd.eval_split, opts, min_relevance=cmd.min_relevance, reporter=reporter, cache_dir=cmd.cache_dir
    )
    if cmd.json:
        from hnmine.terminal_text import dumps

        typer.echo(dumps(result.as_json(), indent=2))
    elif cmd.markdown:
        from hnmine.finetune.results import markdown_table

        typer.echo(markdown_table(result.summary))
    else:
        _print_rich(result)


def _check_results_writable(sources: Sequence[Path]) -> None:
    """Each run directory among the sources gets RUN/finetune/results.parquet once every arm has trained:
    find out now that it cannot, not after the training (a probe file, created and removed)."""
    import os
    import tempfile

    from hnmine.errors import RunDirError
    from hnmine.finetune.results import RESULTS_FILE

    for source in sources:
        if not source.is_dir():
            continue  # a training file: no results are written for it
        target = source / RESULTS_FILE
        folder = target.parent if os.path.lexists(target.parent) else source
        try:
            fd, probe = tempfile.mkstemp(prefix=".hnmine-probe-", suffix=".tmp", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise RunDirError(
                f"{target}: cannot write the fine-tune results ({exc.strerror or exc}); "
                f"make the run directory writable, or give its training file instead of the run directory"
            ) from None


def _print_rich(result) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from hnmine.finetune.metrics import METRICS
    from hnmine.finetune.results import METRIC_HEADERS, format_stat
    from hnmine.terminal_text import visible

    # paths and run names as text, never markup, their control characters as visible escapes
    title = Text(visible(f"{result.eval['data']} · {result.eval['split']} · {result.eval['queries']} queries"))
    table = Table(show_header=True, header_style="bold", title=title)
    table.add_column("arm", no_wrap=True)
    table.add_column("runs", justify="right")
    for m in METRICS:
        table.add_column(METRIC_HEADERS[m], justify="right", no_wrap=True)
    for s in result.summary:
        table.add_row(Text(visible(s["arm"])), str(s["runs"]), *(format_stat(s[m]) for m in METRICS))
    out = Console()
    if not out.is_terminal:
        out = Console(width=1000)  # piped: never fold a cell
    out.print(table)
    err = Console(stderr=True)
    for path in result.results_files:
        err.print(f"results: {visible(path)}", markup=False, highlight=False)


finetune_command = helper_command(
    "finetune",
    "Fine-tune a copy of a model on each run's export, and measure it against the untrained model and in-batch-only training.",
    finetune,
    FinetuneCommand,
    FinetuneOptions,
)
