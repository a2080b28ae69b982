"""`ReviewSession`: the state of one walk through a run's suspected false negatives.

No user interface here, so the walk can be tested and driven without a terminal: which suspects
(the report's, in the report's order, narrowed by reason, query and minimum Δ), where the cursor is,
and what the reviewer decided. Every verdict goes to the run's journal first (`JudgmentLog`), then
into `judgments.parquet`; a session opened on a run that has a journal resumes at the first
suspect without a human verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from hnmine.errors import InputError, OptionError
from hnmine.journal import JudgmentLog, run_verdicts
from hnmine.judgments import HUMAN, NOT_RELEVANT, RELEVANT

DEFAULT_TOP = 100
ALL_SUSPECTS = 2**62  # build_report's `top` when a query filter must see every suspect


@dataclass
class Filters:
    """Which suspects to walk: the report's top `top` (all of them with a query filter), only
    those with `reason`, of `query_id`, with Δ >= `min_gap`."""

    top: int | None = None
    reason: str | None = None
    query_id: str | None = None
    min_gap: float | None = None

    def describe(self) -> str:
        bits = []
        if self.reason:
            bits.append(f"reason {self.reason}")
        if self.query_id is not None:
            bits.append(f"query {self.query_id}")
        if self.min_gap is not None:
            bits.append(f"Δ ≥ {self.min_gap:+.3f}")
        return ", ".join(bits) or "all reasons"


@dataclass
class ReviewSession:
    run_dir: Path
    filters: Filters
    suspects: list[dict]
    considered: int
    log: JudgmentLog
    cursor: int = 0
    skipped: set = field(default_factory=set)
    other_verdicts: dict = field(default_factory=dict)  # (q, d) -> (relevance, source): teacher, files
    # (q, d) -> (query, document text hashes) of a person's verdict set aside: its texts changed since, so
    # it is no verdict here until the pair is judged again (hnmine.journal.run_verdicts)
    set_aside: dict = field(default_factory=dict)
    _positives: dict = field(default_factory=dict)

    @classmethod
    def open(cls, run_dir: str | Path, filters: Filters | None = None) -> ReviewSession:
        """Load the suspects (`build_report`) and the verdicts so far; the cursor goes to the first
        suspect without a human verdict."""
        from hnmine.report import build_report

        run_dir = Path(run_dir)
        filters = filters or Filters()
        if filters.top is not None and filters.top < 1:
            raise OptionError(f"--top must be 1 or more, not {filters.top}")
        if filters.min_gap is not None and not math.isfinite(filters.min_gap):  # nan passes no suspect, -inf every one
            raise OptionError(f"--min-gap must be a finite number, got {filters.min_gap}")
        # A query's suspects can sit anywhere in the report's order, so a query filter looks at all.
        top = ALL_SUSPECTS if filters.query_id is not None and filters.top is None else (filters.top or DEFAULT_TOP)
        report = build_report(run_dir, top=top, reason=filters.reason)
        rows = report["suspects"]["rows"]
        if filters.query_id is not None:
            rows = [r for r in rows if r["query_id"] == filters.query_id]
        if filters.min_gap is not None:
            rows = [r for r in rows if r["delta"] is not None and r["delta"] >= filters.min_gap]
        if filters.reason is not None:
            filters.reason = report["suspects"]["reason"]  # the table's spelling
        log = JudgmentLog(run_dir)
        if log.path.is_file():
            log.save()  # a session killed after its last verdict may not have rewritten the table
        holding, set_aside = run_verdicts(run_dir)
        others = {}
        for r in holding.to_pylist():
            if r["source"] != HUMAN:
                others[(r["query_id"], r["doc_id"])] = (r["relevance"], r["source"])
        aside = {(r["query_id"], r["doc_id"]): (r["query_text_sha256"], r["doc_text_sha256"]) for r in set_aside.to_pylist()}
        session = cls(
            run_dir=run_dir,
            filters=filters,
            suspects=rows,
            considered=report["suspects"]["considered"],
            log=log,
            other_verdicts=others,
            set_aside=aside,
        )
        session.cursor = session.first_unjudged()
        return session

    # -- what there is ------------------------------------------------------------------------

    @property
    def current(self) -> dict | None:
        return self.suspects[self.cursor] if self.suspects else None

    def key(self, i: int | None = None) -> tuple[str, str]:
        row = self.suspects[self.cursor if i is None else i]
        return row["query_id"], row["doc_id"]

    def verdicts(self) -> dict[tuple[str, str], int]:
        """{(query, document): relevance} of the reviewer's verdicts that hold (set-aside ones left out)."""
        out = {}
        for r in self.log.latest().to_pylist():
            key = (r["query_id"], r["doc_id"])
            if self.set_aside.get(key) != (r["query_text_sha256"], r["doc_text_sha256"]):
                out[key] = r["relevance"]
        return out

    def verdict_of(self, i: int | None = None) -> tuple[int, str] | None:
        """(relevance, source) of a suspect: the reviewer's own verdict first, else another source's."""
        if not self.suspects:
            return None
        key = self.key(i)
        mine = self.verdicts().get(key)
        return (mine, HUMAN) if mine is not None else self.other_verdicts.get(key)

    def first_unjudged(self, start: int = 0) -> int:
        verdicts = self.verdicts()
        for i in range(start, len(self.suspects)):
            if self.key(i) not in verdicts:
                return i
        return min(start, max(0, len(self.suspects) - 1))

    def progress(self) -> dict:
        verdicts = self.verdicts()
        mine = [verdicts.get(self.key(i)) for i in range(len(self.suspects))]
        return {
            "position": self.cursor + 1 if self.suspects else 0,
            "total": len(self.suspects),
            "relevant": sum(1 for v in mine if v is not None and v > 0),
            "not_relevant": sum(1 for v in mine if v is not None and v <= 0),
            "skipped": sum(1 for i, v in enumerate(mine) if v is None and self.key(i) in self.skipped),
            "left": sum(1 for v in mine if v is None),
        }

    def positives(self, query_id: str) -> list[dict]:
        """The query's known positives with teacher scores and retrieval ranks (`inspect_query`),
        read once per query."""
        if query_id not in self._positives:
            from hnmine.report import inspect_query

            self._positives[query_id] = inspect_query(self.run_dir, query_id=query_id)["positives"]
        return self._positives[query_id]

    # -- moving -------------------------------------------------------------------------------

    def move(self, step: int) -> bool:
        """Go `step` suspects on (or back); False at either end."""
        target = self.cursor + step
        if not self.suspects or not 0 <= target < len(self.suspects):
            return False
        self.cursor = target
        return True

    def jump(self, target: str) -> int:
        """Go to the first suspect of query `target`, or to suspect number `#N`; returns its index.
        A query of the run without a suspect here raises `InputError` naming it."""
        target = target.strip()
        if target.startswith("#") and target[1:].isdigit():
            n = int(target[1:])
            if not 1 <= n <= len(self.suspects):
                raise OptionError(f"suspect #{n} is not in this list (1 to {len(self.suspects)})")
            self.cursor = n - 1
            return self.cursor
        for i, row in enumerate(self.suspects):
            if row["query_id"] == target:
                self.cursor = i
                return i
        raise InputError(f"query '{target}' has no suspect in this list")

    # -- deciding -----------------------------------------------------------------------------

    def mark(self, relevant: bool) -> dict:
        """Record the reviewer's verdict on the current suspect (on disk when this returns), then
        move to the next suspect."""
        if not self.suspects:
            raise OptionError("no suspect to judge")
        q, d = self.key()
        entry = self.log.judge(q, d, RELEVANT if relevant else NOT_RELEVANT, texts=self._judged_texts(q, d))
        self.log.save()
        self.skipped.discard((q, d))
        self.move(1)
        return entry

    def _judged_texts(self, query_id: str, doc_id: str) -> tuple[str, str] | None:
        """The query's and the document's texts in the run now: what the verdict is tied to."""
        from hnmine.judgments import judged_texts
        from hnmine.rundir import RunDir

        run = RunDir(self.run_dir)
        queries = run.read_table("queries", where=("query_id", [query_id]))
        corpus = run.read_table("corpus", where=("doc_id", [doc_id]))
        return judged_texts(queries, corpus, [(query_id, doc_id)]).get((query_id, doc_id))

    def close(self) -> None:
        """The review ends: its verdicts may be undone by a later session."""
        self.log.close()

    def skip(self) -> None:
        """No verdict: remember it was seen, and move on."""
        if self.suspects:
            self.skipped.add(self.key())
            self.move(1)

    def undo(self) -> dict | None:
        """Withdraw the most recent verdict (this session's or an ended one's) and go back to
        its suspect when it is in this list. Returns the withdrawn verdict, or None."""
        entry = self.log.undo()
        if entry is None:
            return None
        self.log.save()
        for i in range(len(self.suspects)):
            if self.key(i) == (entry["query_id"], entry["doc_id"]):
                self.cursor = i
                break
        return entry
