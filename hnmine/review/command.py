"""`hnmine review`: thin command over `hnmine.review` and `hnmine.judgments`.

The main CLI registers it beside `report` and `inspect`; named hnmine errors propagate and become
a one-line message and exit code 2 there. Textual and pyarrow are imported inside the command,
so `hnmine --help` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def review_command(
    run: Annotated[Path, typer.Argument(help="Run directory (the --out of `hnmine mine`).", show_default=False)],
    top: Annotated[
        Optional[int],
        typer.Option(
            "--top", min=1, help="Walk the report's first N suspects (default 100; every suspect with --query).", show_default=False
        ),
    ] = None,
    reason: Annotated[
        Optional[str],
        typer.Option("--reason", help="Only suspects with this drop reason, or 'kept' for kept negatives."),
    ] = None,
    query: Annotated[Optional[str], typer.Option("--query", help="Only the suspects of this query id.")] = None,
    min_gap: Annotated[
        Optional[float],
        typer.Option("--min-gap", help="Only suspects with Δ (teacher score − positive score) at least this."),
    ] = None,
    export: Annotated[
        Optional[Path],
        typer.Option(
            "--export", help="Do not open the app: write the run's judgments to this qrels file.", dir_okay=False, show_default=False
        ),
    ] = None,
    qrels_format: Annotated[
        str, typer.Option("--qrels-format", help="Format of --export: beir (TSV with header) or trec (qid 0 docid rel).")
    ] = "beir",
) -> None:
    """Judge suspected false negatives one by one (r relevant, n not relevant, s skip, u undo);
    verdicts go to RUN/judgments.parquet for the next filter."""
    from hnmine.errors import OptionError
    from hnmine.terminal_text import visible

    if export is not None:
        from hnmine.journal import run_verdicts
        from hnmine.judgment_files import export_qrels
        from hnmine.judgments import set_aside_message
        from hnmine.rundir import RunDir

        chosen = [
            flag for flag, value in (("--top", top), ("--reason", reason), ("--query", query), ("--min-gap", min_gap)) if value is not None
        ]
        if chosen:
            raise OptionError(
                f"{', '.join(chosen)} chooses suspects to review; --export writes every judgment of the run, so it takes none of them"
            )
        RunDir(run).check_is_run()
        verdicts, set_aside = run_verdicts(run)
        n = export_qrels(verdicts, export, qrels_format)
        if set_aside.num_rows:  # written as qrels, a verdict would judge the text that replaced the one it judged
            print(f"warning: {visible(set_aside_message(set_aside))}; not exported", file=sys.stderr)
        print(f"wrote {n:,} judgment(s) to {visible(export)} ({visible(qrels_format)} qrels)", file=sys.stderr)
        return
    from hnmine.review.session import Filters, ReviewSession

    session = ReviewSession.open(run, Filters(top=top, reason=reason, query_id=query, min_gap=min_gap))
    if not session.suspects:
        raise OptionError(f"no suspected false negatives in {run} match ({session.filters.describe()})")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise OptionError("hnmine review needs a terminal (stdin and stdout); to write the judgments as qrels use --export FILE")
    from hnmine.review.app import ReviewApp

    try:
        ReviewApp(session).run()
    finally:
        session.close()
    p = session.progress()
    print(
        f"{p['relevant']} relevant, {p['not_relevant']} not relevant, {p['left']} of {p['total']} left; "
        f"verdicts in {visible(session.log.judgments_path)}",
        file=sys.stderr,
    )
