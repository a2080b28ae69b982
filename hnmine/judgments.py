"""Judgments: verdicts on (query, document) pairs that the next filter obeys; the table and the rule.

One table and one rule, shared by the people who review suspects (`hnmine review`, source
"human") and by automatic relabelling (source "teacher"), and open to qrels files from elsewhere
(source = the file's name; hnmine.judgment_files reads them). Columns (hnmine.schemas.JUDGMENTS_SCHEMA):

    query_id   string   as written, never type-inferred ("001" stays "001")
    doc_id     string
    relevance  int32    > 0 relevant, <= 0 not relevant
    source     string   "human", "teacher", or the name of the file it came from
    time       string   ISO 8601 UTC ("" when a file gave none)
    query_text_sha256, doc_text_sha256
               string   the texts a person judged (text_sha256; null for files and the teacher): a verdict
                        whose query or document text has changed since is set aside, never applied

The rule, in one place (`fold_judgments`): one verdict per (query, document); a person's beats any
other source, any other source beats the teacher's, and within one source the latest wins.
`apply_judgments` is what the filter does with them: relevant pairs become positives (so never
negatives), not-relevant ones are never dropped as suspected false negatives. A run's own verdicts
(the review journal and `judgments.parquet`) are hnmine.journal's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pyarrow as pa

from hnmine.schemas import JUDGMENTS_SCHEMA

if TYPE_CHECKING:
    import numpy as np

HUMAN = "human"
TEACHER = "teacher"
RELEVANT, NOT_RELEVANT = 1, 0

# Which source wins for one pair: a person over any file, any file over the teacher.
_PRIORITY_HUMAN, _PRIORITY_OTHER, _PRIORITY_TEACHER = 2, 1, 0


def now_utc() -> str:
    """The time a verdict is made: ISO 8601, UTC, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def empty_judgments() -> pa.Table:
    return JUDGMENTS_SCHEMA.empty_table()


def judgments_table(rows: Iterable[dict]) -> pa.Table:
    """A judgments table from dicts with the schema's keys (the text hashes may be left out)."""
    rows = list(rows)
    return pa.table({f.name: [r.get(f.name) for r in rows] for f in JUDGMENTS_SCHEMA}, schema=JUDGMENTS_SCHEMA)


def text_sha256(text: str) -> str:
    """What a verdict records of a text it judged (a query's text; a document's title and text joined)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _priority(source: str) -> int:
    if source == HUMAN:
        return _PRIORITY_HUMAN
    return _PRIORITY_TEACHER if source == TEACHER else _PRIORITY_OTHER


def fold_judgments(*tables: pa.Table) -> pa.Table:
    """One verdict per (query, document) from any number of judgments tables: a person's beats any
    other source, any other beats the teacher's; within a source the latest `time` wins, and among
    equal times the later row. Rows come out in the order their winning verdict was first seen."""
    best: dict[tuple[str, str], tuple[tuple, dict]] = {}
    n = 0
    for table in tables:
        for row in table.select(JUDGMENTS_SCHEMA.names).to_pylist():
            key = (row["query_id"], row["doc_id"])
            rank = (_priority(row["source"] or ""), row["time"] or "", n)
            n += 1
            if key not in best or rank >= best[key][0]:
                best[key] = (rank, row)
    return judgments_table(row for _, row in best.values())


def merge_source(table: pa.Table, replacement: pa.Table, source: str = HUMAN) -> pa.Table:
    """`table` with its rows of `source` replaced by `replacement` (other sources kept as they are)."""
    import pyarrow.compute as pc

    others = table.filter(pc.invert(pc.equal(table.column("source"), source)))
    return pa.concat_tables([others, replacement.cast(JUDGMENTS_SCHEMA)])


def judged_texts(queries: pa.Table, corpus: pa.Table, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
    """{(query, document): (query text, document title and text joined)} for the pairs whose ids are in the
    tables: the texts a person sees when judging a pair, which a verdict is tied to."""
    import pyarrow.compute as pc

    from hnmine.formats import joined_text

    pairs = list(pairs)
    qids = pa.array(sorted({q for q, _ in pairs}), pa.string())
    dids = pa.array(sorted({d for _, d in pairs}), pa.string())
    q_rows = queries.filter(pc.is_in(pc.cast(queries.column("query_id"), pa.string()), value_set=qids))
    d_rows = corpus.filter(pc.is_in(pc.cast(corpus.column("doc_id"), pa.string()), value_set=dids))
    q_text = dict(zip(q_rows.column("query_id").to_pylist(), q_rows.column("text").to_pylist()))
    titles = d_rows.column("title").to_pylist() if "title" in d_rows.column_names else [""] * d_rows.num_rows
    d_text = {
        d: joined_text(t or "", x or "") for d, t, x in zip(d_rows.column("doc_id").to_pylist(), titles, d_rows.column("text").to_pylist())
    }
    return {(q, d): (q_text[q] or "", d_text[d]) for q, d in pairs if q in q_text and d in d_text}


def set_aside_changed(table: pa.Table, queries: pa.Table, corpus: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(verdicts to apply, verdicts set aside): a verdict that recorded the texts it judged is set aside when
    the run's query or document text is no longer that text (the run's inputs were replaced or edited), so
    it is never applied to another text. Verdicts without recorded texts (files, the teacher) are kept."""
    import numpy as np

    qsha, dsha = table.column("query_text_sha256").to_pylist(), table.column("doc_text_sha256").to_pylist()
    recorded = [i for i in range(table.num_rows) if qsha[i] is not None or dsha[i] is not None]
    if not recorded:
        return table, table.slice(0, 0)
    qids, dids = table.column("query_id").to_pylist(), table.column("doc_id").to_pylist()
    texts = judged_texts(queries, corpus, [(qids[i], dids[i]) for i in recorded])
    changed = np.zeros(table.num_rows, bool)
    for i in recorded:
        now = texts.get((qids[i], dids[i]))
        if now is not None and (
            (qsha[i] is not None and qsha[i] != text_sha256(now[0])) or (dsha[i] is not None and dsha[i] != text_sha256(now[1]))
        ):
            changed[i] = True
    return table.filter(pa.array(~changed)), table.filter(pa.array(changed))


def set_aside_message(set_aside: pa.Table) -> str:
    """What a warning says of verdicts set aside (the first named)."""
    first = f"query '{set_aside.column('query_id')[0]}', document '{set_aside.column('doc_id')[0]}'"
    return f"{set_aside.num_rows} review verdict(s) set aside: the query or document text they judged has changed since (first: {first})"


def apply_judgments(scores: pa.Table, judgments: pa.Table) -> tuple[pa.Table, dict]:
    """Apply judgments to the scores table (pure: neither input is changed).

    Returns `(scores, info)`:
    - `scores` with judged-relevant pairs (relevance > 0) marked `is_positive = True`, so the filter
      treats them as positives and never as negatives, and two columns added: `judged` (the
      verdict's source, null where the pair was not judged) and `judged_relevance` (int32, null
      where not judged);
    - `info["unscored_positives"]`: judged-relevant pairs absent from `scores` (not candidates of this
      run, so the teacher never scored them), as a judgments table;
    - `info["not_relevant"]`: judged not-relevant pairs (relevance <= 0) present in `scores` and not
      known positives, as a judgments table: the filter must never drop these as suspected false
      negatives;
    - `info["counts"]`: what the judgments did, per source (`by_source`) and summed over `human`
      and `automatic` (every other source): `new_positives`, `already_positive`,
      `unscored_positives`, `not_relevant`, `not_relevant_known_positive`, `not_in_run`.

    Judgments are folded first (`fold_judgments`). A not-relevant verdict on a known positive is
    counted (`not_relevant_known_positive`) but does not demote it: the qrels stay the authority on
    positives, and the filter never drops a positive as a suspect anyway.
    """
    import numpy as np
    import pyarrow.compute as pc

    from hnmine.errors import MissingColumn

    for name in ("query_id", "doc_id", "is_positive"):
        if name not in scores.column_names:
            raise MissingColumn("scores", name, list(scores.column_names))
    folded = fold_judgments(judgments)
    row_of = _score_rows_of(scores, folded)
    relevance = folded.column("relevance").to_numpy().astype(np.int64)
    sources = folded.column("source").to_pylist()
    present = row_of >= 0
    was_positive = np.asarray(pc.fill_null(scores.column("is_positive"), False).to_numpy(zero_copy_only=False), bool)
    positive_before = np.zeros(folded.num_rows, bool)
    positive_before[present] = was_positive[row_of[present]]

    is_positive = was_positive.copy()
    is_positive[row_of[present & (relevance > 0)]] = True
    out = _with_verdict_columns(scores, is_positive, row_of[present], np.asarray(sources, dtype=object)[present], relevance[present])
    counts = _judgment_counts(relevance, present, positive_before, sources, folded.num_rows)
    return out, {
        "unscored_positives": folded.filter(pa.array((relevance > 0) & ~present)),
        "not_relevant": folded.filter(pa.array((relevance <= 0) & present & ~positive_before)),
        "counts": counts,
    }


def _score_rows_of(scores: pa.Table, folded: pa.Table) -> np.ndarray:
    """For each folded judgment, the row of `scores` with its (query, document), or -1 if none."""
    import numpy as np
    import pyarrow.compute as pc

    def text(name: str) -> pa.ChunkedArray:
        col = scores.column(name)
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        return pc.cast(col, pa.string())

    row_of = np.full(folded.num_rows, -1, dtype=np.int64)
    if not folded.num_rows:
        return row_of
    left = pa.table({"query_id": text("query_id"), "doc_id": text("doc_id"), "__row": pa.array(np.arange(scores.num_rows, dtype=np.int64))})
    right = folded.append_column("__judgment", pa.array(np.arange(folded.num_rows, dtype=np.int64)))
    hits = left.join(right, keys=["query_id", "doc_id"], join_type="inner")
    if hits.num_rows:
        row_of[hits.column("__judgment").to_numpy()] = hits.column("__row").to_numpy()
    return row_of


def _with_verdict_columns(
    scores: pa.Table, is_positive: np.ndarray, rows: np.ndarray, sources: np.ndarray, relevance: np.ndarray
) -> pa.Table:
    """`scores` with `is_positive` replaced and `judged` / `judged_relevance` set on `rows`."""
    import numpy as np

    n = scores.num_rows
    judged_source = np.full(n, None, dtype=object)
    judged_rel = np.zeros(n, dtype=np.int32)
    judged_mask = np.zeros(n, dtype=bool)
    judged_source[rows] = sources
    judged_rel[rows] = relevance
    judged_mask[rows] = True
    out = scores.set_column(
        scores.column_names.index("is_positive"), pa.field("is_positive", pa.bool_()), pa.array(is_positive, pa.bool_())
    )
    for name, col in (
        ("judged", pa.array(judged_source.tolist(), pa.string())),
        ("judged_relevance", pa.array(judged_rel, pa.int32(), mask=~judged_mask)),
    ):
        if name in out.column_names:
            out = out.set_column(out.column_names.index(name), name, col)
        else:
            out = out.append_column(name, col)
    return out


def _judgment_counts(relevance, present, positive_before, sources: list[str], total: int) -> dict:
    """What each judgment did, per source and summed over human and automatic verdicts."""
    import numpy as np

    outcome = np.where(
        relevance > 0,
        np.where(~present, "unscored_positives", np.where(positive_before, "already_positive", "new_positives")),
        np.where(~present, "not_in_run", np.where(positive_before, "not_relevant_known_positive", "not_relevant")),
    )
    kinds = ("new_positives", "already_positive", "unscored_positives", "not_relevant", "not_relevant_known_positive", "not_in_run")
    by_source: dict[str, dict[str, int]] = {}
    for source, what in zip(sources, outcome.tolist()):
        per = by_source.setdefault(source, dict.fromkeys(kinds, 0))
        per[what] += 1
    counts: dict = {"judgments": total, "by_source": by_source}
    for group, pick in ((HUMAN, lambda s: s == HUMAN), ("automatic", lambda s: s != HUMAN)):
        counts[group] = {k: sum(per[k] for s, per in by_source.items() if pick(s)) for k in kinds}
    return counts
