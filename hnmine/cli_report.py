"""`hnmine report` and `hnmine inspect`: thin commands over `hnmine.report`.

The main CLI registers them with `app.command("report")(report_command)` and
`app.command("inspect")(inspect_command)`. Library errors (`HnmineError`) propagate; the main CLI
turns them into a one-line message and exit code 2. Heavy imports happen inside the commands, so
`--help` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def report_command(
    run: Annotated[Path, typer.Argument(help="Run directory (the --out of `hnmine mine`).", show_default=False)],
    top: Annotated[int, typer.Option("--top", min=0, help="How many suspected false negatives to list.")] = 20,
    per_query: Annotated[
        int,
        typer.Option(
            "--per-query", min=0, help="At most this many suspects of one query (0: no limit); a query's suspects are listed together."
        ),
    ] = 3,
    reason: Annotated[
        Optional[str],
        typer.Option("--reason", help="List only suspects with this drop reason, or 'kept' for kept negatives."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout, for scripts.")] = False,
    html: Annotated[
        Optional[Path],
        typer.Option("--html", help="Also write a self-contained HTML page with plots to this file.", dir_okay=False, show_default=False),
    ] = None,
) -> None:
    """Report on a run: stages, coverage, score distributions, drop reasons, suspected false negatives."""
    from hnmine.report import build_report
    from hnmine.terminal_text import visible

    report = build_report(run, top=top, reason=reason, per_query=per_query, include_points=html is not None)
    if html is not None:
        from hnmine.report import render_html

        render_html(report, html)
        print(f"wrote {visible(html)}", file=sys.stderr)
    report.pop("points", None)
    if json_:
        _print_json(report)
    elif html is None:
        from hnmine.report import render_report

        render_report(report)


def inspect_command(
    run: Annotated[Path, typer.Argument(help="Run directory.", show_default=False)],
    query_id: Annotated[Optional[str], typer.Argument(help="The query's id (or use --query).", show_default=False)] = None,
    query: Annotated[Optional[str], typer.Option("--query", help="Find the query whose text contains this (case-insensitive).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the query's story as JSON on stdout.")] = False,
) -> None:
    """One query's whole story: its positives and every candidate, kept or dropped and why."""
    from hnmine.report import inspect_query

    data = inspect_query(run, query_id=query_id, query_text=query)
    if json_:
        _print_json(data)
    else:
        from hnmine.report import render_inspect

        render_inspect(data)


def _print_json(data: dict) -> None:
    from hnmine.terminal_text import dumps

    # characters as themselves; only the control characters a terminal would obey as \u escapes
    sys.stdout.write(dumps(data, indent=2) + "\n")
