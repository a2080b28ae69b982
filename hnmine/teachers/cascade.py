"""A teacher cascade (--rerank-teacher, --rerank-budget): the first teacher(s) score every candidate; a strong
teacher (a cross-encoder, usually) scores the known positives and, per query, only the top B candidates by the
first teacher; B doubles (up to every candidate of the query) for the queries the filter would leave short.

Where the growth lives: in the score stage, which runs the filter's own choice (hnmine.stages.filter.short_queries:
the same settings, verdicts, exclusions, thresholds and cap) on what the strong teacher has scored so far, and
scores more for the queries it leaves short, until none is short or every short one has all its candidates
scored. So scores.parquet is final when the stage ends, and the filter stage stays a pure function of it; the
price is that with a cascade the score stage's key holds the filter's settings (a filter option changed reruns
the cascade).

Safe by construction: scores.parquet holds only the pairs the strong teacher scored (the positives and each
query's budget), with `teacher_score` the strong teacher's score. A candidate outside the budget is never a
negative on the first teacher's word alone: it is not a candidate of the filter at all. Growth exists to fill.

Pure functions over arrays; the model calls are the score stage's.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# The budget when --rerank-budget is not given: a little more than the default rank window's end (shifted takes
# teacher ranks 11-15), so most queries are full without growing.
DEFAULT_BUDGET = 16


def first_ranks(table: pa.Table, first_score: np.ndarray) -> np.ndarray:
    """Per row: its 1-based rank among its query's candidates by the first teacher's score (descending; ties by
    retrieval rank, then doc_id); 0 for the known positives (the strong teacher scores them all)."""
    positive = pc.fill_null(table.column("is_positive"), False).to_numpy(zero_copy_only=False)
    query = pc.dictionary_encode(table.column("query_id")).combine_chunks().indices.to_numpy(zero_copy_only=False).astype(np.int64)
    retrieval = pc.fill_null(table.column("rank"), np.iinfo(np.int32).max).to_numpy(zero_copy_only=False).astype(np.int64)
    doc = pc.dictionary_encode(table.column("doc_id")).combine_chunks()
    doc_order = np.argsort(np.argsort(np.array(doc.dictionary.to_pylist(), dtype=object), kind="stable"))
    doc_code = doc_order[doc.indices.to_numpy(zero_copy_only=False)]
    order = np.lexsort((doc_code, retrieval, -first_score.astype(np.float64), positive, query))
    ranks = np.zeros(table.num_rows, dtype=np.int64)
    q_sorted, pos_sorted = query[order], positive[order]
    starts = np.flatnonzero(np.r_[True, q_sorted[1:] != q_sorted[:-1]])
    place = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size]))
    # within a query the candidates come first (positive False sorts first), so place + 1 is their rank
    ranks[order] = np.where(pos_sorted, 0, place + 1)
    return ranks


def within_budget(table: pa.Table, ranks: np.ndarray, budget: dict[str, int], default: int) -> np.ndarray:
    """Per row: a known positive, or a candidate whose first-teacher rank is within its query's budget."""
    query = table.column("query_id").to_pylist()
    limit = np.array([budget.get(q, default) for q in query], dtype=np.int64)
    return (ranks == 0) | (ranks <= limit)


def grow(budget: dict[str, int], short: set[str], candidates: dict[str, int], default: int) -> dict[str, int]:
    """The budgets after one round: each short query that has candidates beyond its budget gets twice as many
    (at most all of them); an empty dict when none can grow."""
    grown = {}
    for q in sorted(short):
        now = budget.get(q, default)
        if candidates.get(q, 0) > now:
            grown[q] = min(2 * now, candidates[q])
    return grown


def candidate_counts(table: pa.Table) -> dict[str, int]:
    """Per query: how many candidates (rows that are not known positives) it has."""
    cand = table.filter(pc.invert(pc.fill_null(table.column("is_positive"), False)))
    counts = cand.group_by("query_id").aggregate([([], "count_all")])
    return dict(zip(counts.column("query_id").to_pylist(), counts.column("count_all").to_pylist()))
