"""The filter's three output tables (their schemas: hnmine.schemas) and its stats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from hnmine.coverage import full_queries
from hnmine.methods.rules import REASONS
from hnmine.schemas import DROPPED_SCHEMA, NEGATIVES_SCHEMA, QUERY_SUMMARY_SCHEMA
from hnmine.selection.options import FilterOptions
from hnmine.selection.prepare import NO_RANK, PreparedRows
from hnmine.selection.random_negatives import RandomNegatives
from hnmine.selection.record import NO_TEACHER_RANK, SelectionRecord

# all_candidates_positive: retrieval found candidates, and every one became a positive by a verdict
# (--relabel, a judgment): no_candidates would say retrieval found none.
STATUSES = ("ok", "short", "no_candidates", "no_positive", "all_candidates_positive")
_OK, _SHORT, _NO_CANDIDATES, _NO_POSITIVE, _ALL_POSITIVE = range(len(STATUSES))


@dataclass
class FilterResult:
    negatives: pa.Table
    dropped: pa.Table
    query_summary: pa.Table
    stats: dict[str, Any]
    # With --max-negative-reuse, until hnmine.selection.reuse has applied the cap: per query, the eligible
    # candidates not kept, in the order the sampler would take them (SPARE_SCHEMA); None otherwise.
    spare: pa.Table | None = None


def build_result(
    rows: PreparedRows, opts: FilterOptions, record: SelectionRecord, random: RandomNegatives | None, near_duplicate_check: str
) -> FilterResult:
    """The tables and stats of a finished selection (`random`: None without random negatives)."""
    n_random = random.n_random if random is not None else np.zeros(rows.n_queries, np.int64)
    n_negatives = record.n_hard + n_random
    shortfall = np.maximum(0, opts.num_negatives + opts.random_negatives - n_negatives)
    status = np.full(rows.n_queries, _OK, dtype=np.int64)
    status[shortfall > 0] = _SHORT
    status[record.n_candidates == 0] = _NO_CANDIDATES
    promoted = np.bincount(rows.query[rows.promoted & (rows.rank != NO_RANK)], minlength=rows.n_queries) > 0
    status[(record.n_candidates == 0) & promoted] = _ALL_POSITIVE
    status[rows.n_positives == 0] = _NO_POSITIVE
    dropped, dropped_code = _dropped_table(rows, record)
    summary = _summary_table(rows, record, n_negatives, shortfall, status, opts.min_negatives)
    code_counts = np.bincount(dropped_code.astype(np.int64), minlength=len(REASONS))
    stats: dict[str, Any] = {f"dropped_{r}": int(code_counts[i]) for i, r in enumerate(REASONS)}
    stats.update(
        {
            "queries_full": int(np.count_nonzero(full_queries(shortfall))),
            "queries_short": int(np.count_nonzero(shortfall > 0)),
            "queries_without_negatives": int(np.count_nonzero(n_negatives == 0)),
            "negatives_total": int(n_negatives.sum()),
            "random_negatives_total": int(n_random.sum()),
            "queries_total": int(rows.n_queries),
            "queries_exported": int(np.count_nonzero(n_negatives >= opts.min_negatives)),
            "queries_no_positive": int(np.count_nonzero(status == _NO_POSITIVE)),
            "queries_no_candidates": int(np.count_nonzero(status == _NO_CANDIDATES)),
            "queries_all_candidates_positive": int(np.count_nonzero(status == _ALL_POSITIVE)),
            "queries_looked_deeper": int(np.count_nonzero(record.depth_used > opts.depth)),
            "candidates_considered": int(record.n_candidates[rows.n_positives > 0].sum()),
            "near_duplicate_check": near_duplicate_check,
        }
    )
    spare = _spare_table(rows, record) if opts.max_negative_reuse is not None else None
    return FilterResult(_negatives_table(rows, record, random, opts.method), dropped, summary, stats, spare)


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _with_nulls(values: np.ndarray, null: np.ndarray, typ: pa.DataType) -> pa.Array:
    return pa.array(values, type=typ, mask=null)


def _negatives_table(rows: PreparedRows, record: SelectionRecord, random: RandomNegatives | None, method: str) -> pa.Table:
    """Per query (query order): the hard negatives by teacher rank, then the random ones in draw
    order (null rank, retrieval rank and teacher score)."""
    hard = _concat(record.negative_rows, np.int64)
    hard_rank = _concat(record.negative_rank, np.int64)
    rand_q = _concat(random.query, np.int64) if random is not None else np.zeros(0, np.int64)
    rand_doc = _concat(random.corpus_row, np.int64) if random is not None else np.zeros(0, np.int64)
    query = np.concatenate([rows.query[hard], rand_q])
    is_random = np.concatenate([np.zeros(hard.size, bool), np.ones(rand_q.size, bool)])
    within = np.concatenate([hard_rank, np.arange(rand_q.size)])
    perm = np.lexsort((within, is_random, query))
    take = pa.array(perm)
    null = is_random[perm]
    zeros = np.zeros(rand_q.size, np.int64)
    source_row = rows.source_row[hard]

    def hard_then_random(hard_values: pa.Array, random_values: pa.Array) -> pa.Array:
        return pa.concat_arrays([hard_values, random_values]).take(take)

    return pa.table(
        {
            "query_id": rows.query_ids.take(pa.array(query[perm])),
            "doc_id": hard_then_random(rows.doc_ids.take(pa.array(source_row)), rows.corpus_doc_ids.take(pa.array(rand_doc))),
            "rank": _with_nulls(np.concatenate([hard_rank, zeros])[perm].astype(np.int32), null, pa.int32()),
            "retrieval_rank": _with_nulls(np.concatenate([rows.rank[hard], zeros])[perm].astype(np.int32), null, pa.int32()),
            "teacher_score": _with_nulls(np.concatenate([rows.score32[hard], np.zeros(rand_q.size, np.float32)])[perm], null, pa.float32()),
            "positive_score": pa.array(rows.positive_score32[query[perm]], pa.float32()),
            "source": hard_then_random(rows.sources.take(pa.array(source_row)), pa.repeat(pa.scalar("random", pa.string()), rand_q.size)),
            "is_random": pa.array(null, pa.bool_()),
            "method": pa.repeat(pa.scalar(method, pa.string()), query.size),
        },
        schema=NEGATIVES_SCHEMA,
    )


# The spares of a selection (FilterResult.spare): the columns of negatives.parquet a spare keeps if it becomes
# one, its place in the sampler's order, and whether dropped.parquet holds it as not_sampled.
SPARE_SCHEMA = pa.schema(
    [f for f in DROPPED_SCHEMA if f.name != "reason"] + [pa.field("order", pa.int64()), pa.field("not_sampled", pa.bool_())]
)


def _spare_table(rows: PreparedRows, record: SelectionRecord) -> pa.Table:
    """Per query (query order), its spares in the sampler's order (SPARE_SCHEMA)."""
    spare = _concat(record.spare_rows, np.int64)
    teacher_rank = _concat(record.spare_rank, np.int64)
    order = _concat(record.spare_order, np.int64)
    not_sampled = _concat(record.spare_dropped, bool)
    perm = np.lexsort((order, rows.query[spare]))
    spare, teacher_rank, order, not_sampled = spare[perm], teacher_rank[perm], order[perm], not_sampled[perm]
    source_row = rows.source_row[spare]
    return pa.table(
        {
            "query_id": rows.query_ids.take(pa.array(rows.query[spare])),
            "doc_id": rows.doc_ids.take(pa.array(source_row)),
            "rank": pa.array(teacher_rank.astype(np.int32), pa.int32()),
            "retrieval_rank": pa.array(rows.rank[spare].astype(np.int32), pa.int32()),
            "teacher_score": pa.array(rows.score32[spare], pa.float32()),
            "positive_score": pa.array(rows.positive_score32[rows.query[spare]], pa.float32()),
            "source": rows.sources.take(pa.array(source_row)),
            "order": pa.array(order, pa.int64()),
            "not_sampled": pa.array(not_sampled, pa.bool_()),
        },
        schema=SPARE_SCHEMA,
    )


def _dropped_table(rows: PreparedRows, record: SelectionRecord) -> tuple[pa.Table, np.ndarray]:
    """(dropped.parquet, its reason codes): per query, the retrieved known positives by
    retrieval rank, then the dropped candidates by teacher rank."""
    drop = _concat(record.dropped_rows, np.int64)
    teacher_rank = _concat(record.dropped_rank, np.int64)
    code = _concat(record.dropped_code, np.int8)
    positive = teacher_rank == NO_TEACHER_RANK
    perm = np.lexsort((np.where(positive, rows.rank[drop], teacher_rank), ~positive, rows.query[drop]))
    drop, teacher_rank, code = drop[perm], teacher_rank[perm], code[perm]
    source_row = rows.source_row[drop]
    table = pa.table(
        {
            "query_id": rows.query_ids.take(pa.array(rows.query[drop])),
            "doc_id": rows.doc_ids.take(pa.array(source_row)),
            "rank": _with_nulls(teacher_rank.astype(np.int32), teacher_rank == NO_TEACHER_RANK, pa.int32()),
            "retrieval_rank": pa.array(rows.rank[drop].astype(np.int32), pa.int32()),
            "teacher_score": pa.array(rows.score32[drop], pa.float32()),
            "positive_score": pa.array(rows.positive_score32[rows.query[drop]], pa.float32()),
            "source": rows.sources.take(pa.array(source_row)),
            "reason": pa.array(REASONS, pa.string()).take(pa.array(code.astype(np.int64))),
        },
        schema=DROPPED_SCHEMA,
    )
    return table, code


def _summary_table(
    rows: PreparedRows, record: SelectionRecord, n_negatives: np.ndarray, shortfall: np.ndarray, status: np.ndarray, min_negatives: int
) -> pa.Table:
    no_positive = rows.n_positives == 0
    return pa.table(
        {
            "query_id": rows.query_ids,
            "n_positives": pa.array(rows.n_positives.astype(np.int32), pa.int32()),
            "positive_score": _with_nulls(np.nan_to_num(rows.positive_score32), no_positive, pa.float32()),
            "n_candidates": pa.array(record.n_candidates.astype(np.int32), pa.int32()),
            "depth_used": pa.array(record.depth_used.astype(np.int32), pa.int32()),
            "n_negatives": pa.array(n_negatives.astype(np.int32), pa.int32()),
            "shortfall": pa.array(shortfall.astype(np.int32), pa.int32()),
            "exported": pa.array(n_negatives >= min_negatives, pa.bool_()),
            "status": pa.array(STATUSES, pa.string()).take(pa.array(status)),
        },
        schema=QUERY_SUMMARY_SCHEMA,
    )
