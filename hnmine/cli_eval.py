"""`hnmine eval`: measure one or several runs against judgments, one row per run.

Thin: its options are declared in hnmine.command_options (EvalOptions) and the command is made from them
by hnmine.cli_options.helper_command. It reads the qrels file (hnmine.io.inputs.read_qrels, or
hnmine.judgment_files.read_judgments for the qrels text `hnmine review --export` writes), calls
hnmine.evaluate.compare_runs and prints. Named hnmine errors propagate; the main CLI turns them into a one-line message and exit 2.
Heavy libraries (pyarrow, rich) are imported inside the command so `hnmine --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from hnmine.cli_options import helper_command
from hnmine.command_options import EvalOptions, one_output_format

# (header, key, format) of the summary table, in column order.
COLUMNS = [
    ("run", "run", "s"),
    ("method", "method", "s"),
    ("FN rate", "false_negative_rate", "pct"),
    ("coverage", "coverage", "pct"),
    ("negatives", "negatives_total", "int"),
    ("hardness", "hardness", "f3"),
    ("mean rank", "mean_rank", "f1"),
    ("seconds", "seconds", "f1"),
]


def evaluate(o: EvalOptions) -> None:
    from hnmine.evaluate import compare_runs
    from hnmine.terminal_text import dumps

    one_output_format(o)
    table = _read_qrels(o.qrels, o.min_relevance) if o.qrels is not None else None
    results = compare_runs(list(o.runs), qrels=table, hidden=o.hidden, min_relevance=o.min_relevance)
    if o.json:
        typer.echo(dumps(results, indent=2))
        return
    if o.markdown:
        typer.echo(markdown_table(results))
        return
    _print_rich(results)


def _read_qrels(path: Path, min_relevance: int):
    """Judgments from a table file (Parquet, JSONL, CSV, TSV, by its extension); under any other name
    (`judged.qrels`, `qrels.test.txt`) the qrels text `hnmine review --export` writes, BEIR (with its
    header) or TREC (`qid 0 docid rel`)."""
    from hnmine.errors import InputError
    from hnmine.io.files import detect_format

    try:
        detect_format(path)
    except InputError:
        from hnmine.judgment_files import read_judgments

        return read_judgments(path)
    from hnmine.io.inputs import read_qrels
    from hnmine.io.locate import InputSpec

    return read_qrels(InputSpec(min_relevance=min_relevance), path)


def format_value(value, fmt: str) -> str:
    """A cell as text; a run's name or method with its control characters as visible escapes."""
    from hnmine.terminal_text import visible

    if value is None:
        return "–"
    if fmt == "pct":
        return f"{100 * value:.1f}%"
    if fmt == "int":
        return f"{value:,}"
    if fmt == "f3":
        return f"{value:.3f}"
    if fmt == "f1":
        return f"{value:.1f}"
    return visible(value)


def markdown_table(results: list[dict]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(h for h, _, _ in COLUMNS) + " |"]
    lines.append("| " + " | ".join("---" if f == "s" else "---:" for _, _, f in COLUMNS) + " |")
    for r in results:
        lines.append("| " + " | ".join(cell(format_value(r.get(k), f)) for _, k, f in COLUMNS) + " |")
    return "\n".join(lines)


def _print_rich(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from hnmine.terminal_text import visible

    table = Table(show_header=True, header_style="bold")
    for header, _, fmt in COLUMNS:
        table.add_column(header, justify="left" if fmt == "s" else "right", no_wrap=True)
    for r in results:
        table.add_row(*(Text(format_value(r.get(k), f)) for _, k, f in COLUMNS))  # run names and methods are not markup
    out = Console()
    if not out.is_terminal:
        out = Console(width=1000)  # piped: never fold a run name or a number
    out.print(table)
    # Notes go to stderr so stdout holds only the table; one line each, never folded at the terminal's width.
    for r in results:
        for note in r.get("notes", []):
            typer.echo(visible(f"{r['run']}: {note}"), err=True)


eval_command = helper_command("eval", "Measure runs: false-negative rate, coverage, hardness, mean rank, time.", evaluate, EvalOptions)
