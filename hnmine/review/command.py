"""`hnmine review`: thin command over `hnmine.review` and `hnmine.judgments`.

Its options are declared in hnmine.command_options (ReviewOptions) and the command is made from them by
hnmine.cli_options.helper_command; the main CLI registers it beside `report` and `inspect`. Named hnmine
errors propagate and become a one-line message and exit code 2 there. Textual and pyarrow are imported
inside the functions, so `hnmine --help` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hnmine.cli_options import helper_command
from hnmine.command_options import ReviewOptions


def review(o: ReviewOptions) -> None:
    from hnmine.errors import OptionError
    from hnmine.terminal_text import visible

    assert o.run is not None  # RUN is required (hnmine.cli_options.check_given)
    if o.export is not None:
        chosen = o.suspect_filters()
        if chosen:
            raise OptionError(
                f"{', '.join(chosen)} chooses suspects to review; --export writes every judgment of the run, so it takes none of them"
            )
        _export(o.run, o.export, o.qrels_format)
        return
    from hnmine.review.session import Filters, ReviewSession

    session = ReviewSession.open(o.run, Filters(top=o.top, reason=o.reason, query_id=o.query, min_gap=o.min_gap))
    if not session.suspects:
        raise OptionError(f"no suspected false negatives in {o.run} match ({session.filters.describe()})")
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


def _export(run: Path, export: Path, qrels_format: str) -> None:
    """Every judgment of the run, as a qrels file."""
    from hnmine.journal import run_verdicts
    from hnmine.judgment_files import export_qrels
    from hnmine.judgments import set_aside_message
    from hnmine.rundir import RunDir
    from hnmine.terminal_text import visible

    RunDir(run).check_is_run()
    verdicts, set_aside = run_verdicts(run)
    n = export_qrels(verdicts, export, qrels_format)
    if set_aside.num_rows:  # written as qrels, a verdict would judge the text that replaced the one it judged
        print(f"warning: {visible(set_aside_message(set_aside))}; not exported", file=sys.stderr)
    print(f"wrote {n:,} judgment(s) to {visible(export)} ({visible(qrels_format)} qrels)", file=sys.stderr)


review_command = helper_command(
    "review",
    "Judge suspected false negatives one by one (r relevant, n not relevant, s skip, u undo);\n"
    "verdicts go to RUN/judgments.parquet for the next filter.",
    review,
    ReviewOptions,
)
