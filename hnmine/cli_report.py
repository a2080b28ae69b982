"""`hnmine report` and `hnmine inspect`: thin commands over `hnmine.report`.

Their options are declared in hnmine.command_options (ReportOptions, InspectOptions); the commands are
made from them by hnmine.cli_options.helper_command, and the main CLI registers them. Library errors
(`HnmineError`) propagate; the main CLI turns them into a one-line message and exit code 2. Heavy
imports happen inside the functions, so `--help` stays instant.
"""

from __future__ import annotations

import sys

from hnmine.cli_options import helper_command
from hnmine.command_options import InspectOptions, ReportOptions


def report(o: ReportOptions) -> None:
    from hnmine.report import build_report
    from hnmine.terminal_text import visible

    assert o.run is not None  # RUN is required (hnmine.cli_options.check_given)
    report = build_report(o.run, top=o.top, reason=o.reason, per_query=o.per_query, include_points=o.html is not None)
    if o.html is not None:
        from hnmine.report import render_html

        render_html(report, o.html)
        print(f"wrote {visible(o.html)}", file=sys.stderr)
    report.pop("points", None)
    if o.json:
        _print_json(report)
    elif o.html is None:
        from hnmine.report import render_report

        render_report(report)


def inspect(o: InspectOptions) -> None:
    from hnmine.report import inspect_query

    assert o.run is not None
    data = inspect_query(o.run, query_id=o.query_id, query_text=o.query)
    if o.json:
        _print_json(data)
    else:
        from hnmine.report import render_inspect

        render_inspect(data)


def _print_json(data: dict) -> None:
    from hnmine.terminal_text import dumps

    # characters as themselves; only the control characters a terminal would obey as \u escapes
    sys.stdout.write(dumps(data, indent=2) + "\n")


report_command = helper_command(
    "report", "Report on a run: stages, coverage, score distributions, drop reasons, suspected false negatives.", report, ReportOptions
)
inspect_command = helper_command(
    "inspect", "One query's whole story: its positives and every candidate, kept or dropped and why.", inspect, InspectOptions
)
