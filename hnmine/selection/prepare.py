"""The rows of scores.parquet checked, looked up in the corpus and sorted for selection.

Every later step works on "sorted" rows: by query, teacher score descending, retrieval rank
(positives that retrieval missed last), doc_id. Within a query the candidate rows are then in
teacher-rank order, so a query's candidates at any depth are a filter of one contiguous slice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hnmine.errors import InputError
from hnmine.run_layout import LAYOUT
from hnmine.selection.arrays import (
    a_duplicate,
    column,
    concatenated_ranges,
    first_true,
    offsets,
    require_columns,
    string_column,
)

SCORES_COLUMNS = ("query_id", "doc_id", "rank", "source", "is_positive", "teacher_score")
CORPUS_COLUMNS = ("doc_id", "text")

NO_RANK = np.iinfo(np.int32).max  # the rank of positives that retrieval missed (rank null)

RowDescription = Callable[[int], str]  # input row -> "query 'q', doc 'd'" for error messages


@dataclass
class PreparedRows:
    """scores.parquet in sorted order, with per-query offsets and reference positive scores.

    Arrays named per row are indexed by sorted row; `source_row` maps a sorted row to its row in
    scores.parquet (whose `doc_ids` and `sources` columns are kept in input order).
    """

    query_ids: pa.Array  # query order of the outputs (queries.parquet or first appearance)
    corpus: pa.Table
    corpus_doc_ids: pa.Array
    doc_ids: pa.Array  # scores.parquet's doc_id, input order
    sources: pa.Array  # scores.parquet's source, input order
    source_row: np.ndarray
    query: np.ndarray  # index into query_ids
    rank: np.ndarray  # retrieval rank; NO_RANK for missed positives
    score32: np.ndarray  # teacher score as written
    score: np.ndarray  # the same in float64, as compared
    is_positive: np.ndarray
    corpus_row: np.ndarray  # row in the corpus; -1 for a positive missing from it
    query_start: np.ndarray  # offsets (n_queries + 1) of each query's rows
    cand_rows: np.ndarray  # non-positive rows (teacher order within a query) ...
    cand_rank: np.ndarray  # ... their retrieval ranks ...
    cand_start: np.ndarray  # ... and per-query offsets into cand_rows
    pos_rows: np.ndarray  # positive rows and their per-query offsets
    pos_start: np.ndarray
    n_positives: np.ndarray  # per query
    positive_score32: np.ndarray  # reference score s(p) per query (NaN without positives)
    positive_score: np.ndarray  # the same in float64
    judged_not_relevant: np.ndarray  # a person (or a file) judged the candidate not relevant (hnmine.judgments)
    promoted: np.ndarray  # a positive by a verdict (judged relevant, or --relabel), not (only) by the qrels
    excluded_code: np.ndarray  # per row: the reason code of a pair that may never be a negative (-1: none)
    excluded_keys: np.ndarray  # sorted query * n_corpus + corpus row of every such pair (the random draws skip them)
    above_percentile: np.ndarray  # per row: some teacher scored it above its --max-score-percentile threshold

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    @property
    def n_corpus(self) -> int:
        return len(self.corpus_doc_ids)

    def positives_of(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, index into `queries`) of every positive of `queries`, grouped by query."""
        first = self.pos_start[queries]
        count = self.pos_start[queries + 1] - first
        rows = self.pos_rows[concatenated_ranges(first, count)]
        return rows, np.repeat(np.arange(queries.size), count)

    def candidates_of(self, query: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows in teacher order, retrieval ranks) of one query's candidates at every depth."""
        lo, hi = self.cand_start[query], self.cand_start[query + 1]
        return self.cand_rows[lo:hi], self.cand_rank[lo:hi]


def prepare_rows(
    scores: pa.Table,
    corpus: pa.Table,
    query_ids: Sequence[str] | None,
    positive_reference: str,
    excluded: pa.Table | None = None,
    score_thresholds: dict[str, float] | None = None,
) -> PreparedRows:
    """Check scores.parquet and corpus.parquet (InputError / MissingColumn), then sort.

    `excluded`: (query_id, doc_id, reason) pairs that may never be negatives, whether they are candidates
    (dropped with `reason`) or not (never drawn as random negatives); pairs of other queries or documents
    are ignored. `score_thresholds`: per teacher column, the --max-score-percentile threshold
    (hnmine.selection.percentile)."""
    require_columns(scores, LAYOUT["scores"], SCORES_COLUMNS)
    require_columns(corpus, LAYOUT["corpus"], CORPUS_COLUMNS)
    qcol, dcol = _ids(scores)
    qarr, qidx = _query_index(qcol, query_ids)

    def where(row: int) -> str:
        return f"query '{qcol[row]}', doc '{dcol[row]}'"

    is_pos = _is_positive(scores, where)
    rank = _retrieval_rank(scores, is_pos, where)
    t32 = _teacher_scores(scores, where)
    cdoc, cidx = _corpus_rows(corpus, dcol, is_pos, where)
    order = sort_order(qidx, t32, rank, is_pos, dcol)
    _check_duplicates(qidx, cidx, dcol, len(cdoc), where)

    qidx, is_pos, t32, rank = qidx[order], is_pos[order], t32[order], rank[order]
    excluded_keys, excluded_codes = _excluded_pairs(excluded, qarr, cdoc)
    excluded_code = _row_codes(qidx * len(cdoc) + cidx[order], excluded_keys, excluded_codes, (cidx[order] >= 0) & ~is_pos)
    cand_rows, pos_rows = np.flatnonzero(~is_pos), np.flatnonzero(is_pos)
    nq = len(qarr)
    pos_start = offsets(qidx[pos_rows], nq)
    n_positives = np.diff(pos_start)
    ref32 = _reference_scores(qidx[pos_rows], t32[pos_rows].astype(np.float64), n_positives, positive_reference)
    return PreparedRows(
        query_ids=qarr,
        corpus=corpus,
        corpus_doc_ids=cdoc,
        doc_ids=dcol,
        sources=string_column(scores, "source"),
        source_row=order,
        query=qidx,
        rank=rank,
        score32=t32,
        score=t32.astype(np.float64),
        is_positive=is_pos,
        corpus_row=cidx[order],
        query_start=offsets(qidx, nq),
        cand_rows=cand_rows,
        cand_rank=rank[cand_rows],
        cand_start=offsets(qidx[cand_rows], nq),
        pos_rows=pos_rows,
        pos_start=pos_start,
        n_positives=n_positives,
        positive_score32=ref32,
        positive_score=ref32.astype(np.float64),
        judged_not_relevant=_judged_not_relevant(scores)[order],
        promoted=_judged_relevant(scores)[order] & is_pos,
        excluded_code=excluded_code,
        excluded_keys=excluded_keys,
        above_percentile=_above_percentile(scores, score_thresholds)[order],
    )


def _above_percentile(scores: pa.Table, thresholds: dict[str, float] | None) -> np.ndarray:
    from hnmine.selection.percentile import above_thresholds

    return above_thresholds(scores, thresholds) if thresholds else np.zeros(scores.num_rows, dtype=bool)


def _excluded_pairs(excluded: pa.Table | None, qarr: pa.Array, cdoc: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(sorted pair keys query * n_corpus + corpus row, the reason code of each) of the excluded pairs of
    this run's queries and corpus documents; the first reason of a pair listed twice wins."""
    from hnmine.methods.rules import REASON_CODE

    if excluded is None or excluded.num_rows == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int8)
    q = pc.index_in(string_column(excluded, "query_id"), value_set=qarr)
    d = pc.index_in(string_column(excluded, "doc_id"), value_set=cdoc)
    known = pc.and_(pc.is_valid(q), pc.is_valid(d)).to_numpy(zero_copy_only=False)
    reasons = string_column(excluded, "reason").to_pylist()
    codes = np.array([REASON_CODE[r] for r in reasons], np.int8)[known]
    keys = q.to_numpy(zero_copy_only=False)[known].astype(np.int64) * len(cdoc) + d.to_numpy(zero_copy_only=False)[known].astype(np.int64)
    keys, first = np.unique(keys, return_index=True)
    return keys, codes[first]


def _row_codes(row_keys: np.ndarray, keys: np.ndarray, codes: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Per row: the reason code of its pair among `keys` (only where `eligible`), else -1."""
    out = np.full(row_keys.size, -1, np.int8)
    if keys.size == 0 or row_keys.size == 0:
        return out
    at = np.minimum(np.searchsorted(keys, row_keys), keys.size - 1)
    hit = eligible & (keys[at] == row_keys)
    out[hit] = codes[at[hit]]
    return out


def _judged_not_relevant(scores: pa.Table) -> np.ndarray:
    """Rows whose optional `judged_relevance` (hnmine.judgments.apply_judgments) is 0 or less."""
    if "judged_relevance" not in scores.column_names:
        return np.zeros(scores.num_rows, dtype=bool)
    col = pc.cast(column(scores, "judged_relevance"), pa.int64())
    return pc.fill_null(pc.less_equal(col, 0), False).to_numpy(zero_copy_only=False).astype(bool)


def _judged_relevant(scores: pa.Table) -> np.ndarray:
    """Rows whose optional `judged_relevance` is above 0: positives by a verdict (hnmine.judgments)."""
    if "judged_relevance" not in scores.column_names:
        return np.zeros(scores.num_rows, dtype=bool)
    col = pc.cast(column(scores, "judged_relevance"), pa.int64())
    return pc.fill_null(pc.greater(col, 0), False).to_numpy(zero_copy_only=False).astype(bool)


def _ids(scores: pa.Table) -> tuple[pa.Array, pa.Array]:
    qcol = string_column(scores, "query_id")
    dcol = string_column(scores, "doc_id")
    for name, col in (("query_id", qcol), ("doc_id", dcol)):
        if col.null_count:
            raise InputError(f"scores.parquet: null {name} in row {first_true(col.is_null())}")
    return qcol, dcol


def _query_index(qcol: pa.Array, query_ids: Sequence[str] | None) -> tuple[pa.Array, np.ndarray]:
    """(the output's query order, each row's index into it)."""
    if query_ids is None:
        qarr = pc.unique(qcol)  # order of first appearance
    else:
        qarr = pa.array([str(q) for q in query_ids], pa.string())
        if len(pc.unique(qarr)) != len(qarr):
            raise InputError(f"query_ids: query '{a_duplicate(qarr)}' appears twice")
    qidx = pc.index_in(qcol, value_set=qarr)
    if qidx.null_count:
        row = first_true(qidx.is_null())
        raise InputError(f"scores.parquet: query '{qcol[row]}' is not among the queries")
    return qarr, qidx.to_numpy(zero_copy_only=False).astype(np.int64)


def _is_positive(scores: pa.Table, where: RowDescription) -> np.ndarray:
    col = column(scores, "is_positive")
    if col.null_count:
        raise InputError(f"scores.parquet: is_positive is null ({where(first_true(col.is_null()))})")
    return col.to_numpy(zero_copy_only=False).astype(bool)


def _retrieval_rank(scores: pa.Table, is_pos: np.ndarray, where: RowDescription) -> np.ndarray:
    """Ranks (int64), NO_RANK for positives that retrieval missed; only those may be null."""
    col = pc.cast(column(scores, "rank"), pa.int64())
    bad = col.is_null().to_numpy(zero_copy_only=False) & ~is_pos
    if bad.any():
        raise InputError(
            f"scores.parquet: candidate without a rank ({where(int(np.argmax(bad)))}); only "
            f"positives that retrieval missed may have a null rank"
        )
    rank = col.fill_null(NO_RANK).to_numpy().astype(np.int64)
    bad = rank < 1
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(f"scores.parquet: rank {rank[row]} < 1 ({where(row)})")
    return rank


def _teacher_scores(scores: pa.Table, where: RowDescription) -> np.ndarray:
    """Teacher scores as float32, every one finite."""
    col = pc.cast(column(scores, "teacher_score"), pa.float32())
    t32 = col.to_numpy(zero_copy_only=False).astype(np.float32)  # null -> NaN
    bad = ~np.isfinite(t32)
    if bad.any():
        row = int(np.argmax(bad))
        value = "null" if col[row].as_py() is None else str(t32[row])
        raise InputError(f"scores.parquet: teacher_score is {value} ({where(row)})")
    return t32 + np.float32(0.0)  # -0.0 -> 0.0: equal scores sort as equal


def _corpus_rows(corpus: pa.Table, dcol: pa.Array, is_pos: np.ndarray, where: RowDescription) -> tuple[pa.Array, np.ndarray]:
    """(corpus doc ids, each scores row's corpus row or -1). Every candidate must be a corpus
    document: that catches ANN padding ids such as -1."""
    cdoc = string_column(corpus, "doc_id")
    if cdoc.null_count:
        raise InputError(f"corpus.parquet: null doc_id in row {first_true(cdoc.is_null())}")
    if len(pc.unique(cdoc)) != len(cdoc):
        raise InputError(f"corpus.parquet: doc_id '{a_duplicate(cdoc)}' appears twice")
    cidx = pc.index_in(dcol, value_set=cdoc).fill_null(-1).to_numpy().astype(np.int64)
    bad = (cidx < 0) & ~is_pos
    if bad.any():
        raise InputError(f"scores.parquet: candidate is not in the corpus ({where(int(np.argmax(bad)))})")
    return cdoc, cidx


def _check_duplicates(qidx: np.ndarray, cidx: np.ndarray, dcol: pa.Array, n_corpus: int, where: RowDescription) -> None:
    """A (query, doc) pair twice is an input error (it would make the output depend on row
    order, and could yield the same negative twice)."""
    if qidx.size < 2:
        return
    in_corpus = np.flatnonzero(cidx >= 0)
    key = qidx[in_corpus] * max(n_corpus, 1) + cidx[in_corpus]
    sorted_key = np.sort(key)
    dup = np.flatnonzero(sorted_key[1:] == sorted_key[:-1])
    if dup.size:
        row = int(in_corpus[np.argmax(key == sorted_key[dup[0]])])
        raise InputError(f"scores.parquet: the same row twice ({where(row)})")
    seen = set()
    for row in np.flatnonzero(cidx < 0).tolist():  # positives missing from the corpus
        pair = (int(qidx[row]), dcol[row].as_py())
        if pair in seen:
            raise InputError(f"scores.parquet: the same row twice ({where(row)})")
        seen.add(pair)


def _reference_scores(pos_query: np.ndarray, pos_score: np.ndarray, n_positives: np.ndarray, reference: str) -> np.ndarray:
    """s(p) per query: min, mean or max of its positives' teacher scores, NaN without one;
    rounded to float32, so the value written is the value compared against."""
    nq = n_positives.size
    if reference == "min":
        ref = np.full(nq, np.inf)
        np.minimum.at(ref, pos_query, pos_score)
    elif reference == "max":
        ref = np.full(nq, -np.inf)
        np.maximum.at(ref, pos_query, pos_score)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            ref = np.bincount(pos_query, weights=pos_score, minlength=nq) / n_positives
    ref[n_positives == 0] = np.nan
    return ref.astype(np.float32)


def sort_order(qidx: np.ndarray, t32: np.ndarray, rank: np.ndarray, is_pos: np.ndarray, dcol: pa.Array) -> np.ndarray:
    """Row order: query, teacher score descending, retrieval rank (missed positives last), doc_id.

    Fast path: one argsort of a packed 64-bit key (query | descending score bits | rank). When
    the key does not fit, or two rows other than missed positives tie on it, a full lexsort
    with doc_id as the last key.
    """
    n = qidx.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    missed = rank == NO_RANK
    r = np.where(missed, (int(rank[~missed].max()) + 1) if (~missed).any() else 1, rank)
    rbits = int(r.max()).bit_length()
    qbits = max(int(qidx.max()).bit_length(), 1)
    if qbits + 32 + rbits <= 63:
        # float32 bits -> int64 in float order, then reversed to [0, 2^32) for "descending"
        key = t32.view(np.int32).astype(np.int64)
        flip = key >> 31
        flip &= 0x7FFFFFFF
        key ^= flip
        np.subtract(0x7FFFFFFF, key, out=key)
        key <<= rbits
        key |= r
        key |= qidx.astype(np.int64) << (32 + rbits)
        order = np.argsort(key, kind="stable")
        k = key[order]
        tie = k[1:] == k[:-1]
        if not tie.any():
            return order
        m = missed[order]
        if not (tie & ~(m[1:] & m[:-1])).any():
            return order
    enc = pc.dictionary_encode(dcol)
    dict_order = pc.sort_indices(enc.dictionary).to_numpy()
    dict_code = np.empty(len(dict_order), dtype=np.int64)
    dict_code[dict_order] = np.arange(len(dict_order))
    doc_code = dict_code[enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
    return np.lexsort((doc_code, r, -t32.astype(np.float64), qidx))
