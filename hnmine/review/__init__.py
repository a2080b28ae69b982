"""Review suspected false negatives in the terminal and record verdicts (`hnmine review`).

    session = ReviewSession.open("runs/mine", Filters(reason="kept"))   # no terminal needed
    ReviewApp(session).run()                                            # the full-screen app

The verdicts themselves live in `hnmine.judgments` (the table, the rule, `apply_judgments`, shared with
automatic relabelling), `hnmine.journal` (the journal and `judgments.parquet`) and `hnmine.judgment_files`
(qrels export). Textual is imported only by `ReviewApp`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Filters", "ReviewSession", "ReviewApp"]

_WHERE = {"Filters": "hnmine.review.session", "ReviewSession": "hnmine.review.session", "ReviewApp": "hnmine.review.app"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'hnmine.review' has no attribute {name!r}")
