"""Filter stage: from teacher-scored candidates to kept negatives, dropped candidates and a
per-query summary (docs/tables.md: negatives.parquet, dropped.parquet, query_summary.parquet).

Pure numpy + pyarrow: no model is loaded here. Near-duplicate detection uses vectors handed in by
the caller (`doc_vectors`), typically the embedding cache of the index stage.

Per query:
  1. reference score s(p): min (default), mean or max of the teacher scores of its positives;
  2. candidates: the non-positive rows with retrieval rank <= depth, ranked by teacher score
     (descending; ties broken by retrieval rank, then doc_id) -> teacher rank 1..n;
  3. rules, first match wins, in the order of the reasons of docs/tables.md (see
     hnmine.methods.rules): known_positive, same_text_as_positive, near_duplicate_of_positive,
     outside_rank_window, above_max_score, below_min_score, within_margin_of_positive,
     within_relative_margin_of_positive;
  4. look deeper: fewer than num_negatives eligible -> depth += depth_step (up to max_depth or
     the deepest rank the query has) and redo steps 2-3;
  5. the sampler picks num_negatives of the eligible ones (eligible, not drawn -> not_sampled;
     with sampling "top" the unused eligible ones are not dropped);
  6. random negatives (STAR): random_negatives more, uniform over the corpus outside the query's
     rows in `scores` and never a positive, a same-text or a near-duplicate of one.

Same text: title and text are joined with a space, Unicode NFC-normalised, every run of
whitespace (Unicode separators included) collapsed to one space, and trimmed; the comparison is
case-sensitive (a copy of a passage keeps its casing; case variants are left to the
near-duplicate rule).

Randomness: no generator objects. Every random choice is a counter-based hash (SplitMix64) of
a per-query 64-bit seed, itself SHA-256 of (seed, purpose, query_id), and a counter; results
depend neither on query order nor on batching nor on input row order (hnmine.methods.samplers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hnmine.errors import InputError, MissingColumn
from hnmine.methods import DEFAULT_METHOD, effective_options, get_sampler, resolve_options
from hnmine.methods.samplers import draw, query_seed, uniform01
from hnmine.methods.rules import (
    KNOWN_POSITIVE,
    NEAR_DUPLICATE,
    NOT_SAMPLED,
    OUTSIDE_RANK_WINDOW,
    REASON_CODE,
    REASONS,
    SAME_TEXT,
    outside_rank_window,
    score_reasons,
)

__all__ = [
    "DEFAULT_METHOD",
    "DROPPED_SCHEMA",
    "FilterOptions",
    "FilterResult",
    "NEGATIVES_SCHEMA",
    "QUERY_SUMMARY_SCHEMA",
    "STATUSES",
    "effective_options",
    "filter_candidates",
    "resolve_options",
    "text_keys",
]


@dataclass(frozen=True)
class FilterOptions:
    method: str = DEFAULT_METHOD  # registry name
    num_negatives: int = 5
    depth: int = 50  # initial candidate depth (by retrieval rank, column `rank`)
    depth_step: int | None = None  # look-deeper step; None = depth
    max_depth: int | None = None  # cap; None = everything in the scores table
    min_negatives: int = 1  # query "exported" iff n_negatives >= this
    range_min: int | None = None  # rank window on teacher rank (1-based, inclusive)
    range_max: int | None = None
    max_score: float | None = None
    min_score: float | None = None
    margin: float | None = None  # absolute: keep n when s(n) < s(p) - margin
    relative_margin: float | None = None  # keep n when s(n) < s(p) - abs(s(p))*relative_margin
    sampling: str | None = None  # None = method's default
    sample_pool: int | None = None  # sampled top-k pool size (NV-Retriever k=10)
    temperature: float | None = None
    simans_a: float | None = None  # default 0.5
    simans_b: float | None = None  # default 0.0
    positive_reference: str = "min"  # min|mean|max over the query's positives' teacher scores
    dedup_threshold: float | None = 0.95  # cosine to any positive >= this -> near duplicate
    random_negatives: int = 0  # STAR: extra negatives drawn uniformly from the corpus
    seed: int = 42


@dataclass
class FilterResult:
    negatives: pa.Table
    dropped: pa.Table
    query_summary: pa.Table
    stats: dict


NEGATIVES_SCHEMA = pa.schema([
    ("query_id", pa.string()),
    ("doc_id", pa.string()),
    ("rank", pa.int32()),
    ("retrieval_rank", pa.int32()),
    ("teacher_score", pa.float32()),
    ("positive_score", pa.float32()),
    ("source", pa.string()),
    ("is_random", pa.bool_()),
    ("method", pa.string()),
])

DROPPED_SCHEMA = pa.schema([
    ("query_id", pa.string()),
    ("doc_id", pa.string()),
    ("rank", pa.int32()),
    ("retrieval_rank", pa.int32()),
    ("teacher_score", pa.float32()),
    ("positive_score", pa.float32()),
    ("source", pa.string()),
    ("reason", pa.string()),
])

QUERY_SUMMARY_SCHEMA = pa.schema([
    ("query_id", pa.string()),
    ("n_positives", pa.int32()),
    ("positive_score", pa.float32()),
    ("n_candidates", pa.int32()),
    ("depth_used", pa.int32()),
    ("n_negatives", pa.int32()),
    ("shortfall", pa.int32()),
    ("exported", pa.bool_()),
    ("status", pa.string()),
])

STATUSES = ("ok", "short", "no_candidates", "no_positive")
_OK, _SHORT, _NO_CANDIDATES, _NO_POSITIVE = range(4)

SCORES_COLUMNS = ("query_id", "doc_id", "rank", "source", "is_positive", "teacher_score")
CORPUS_COLUMNS = ("doc_id", "text")

_NO_RANK = np.iinfo(np.int32).max  # positives that retrieval missed (rank null)
_CHUNK_ROWS = 32768  # rows per batch of near-duplicate vector look-ups
_KP = REASON_CODE[KNOWN_POSITIVE]
_ST = REASON_CODE[SAME_TEXT]
_ND = REASON_CODE[NEAR_DUPLICATE]
_WIN = REASON_CODE[OUTSIDE_RANK_WINDOW]
_NS = REASON_CODE[NOT_SAMPLED]


# --------------------------------------------------------------------------------------------
# helpers


def text_keys(titles: pa.Array, texts: pa.Array) -> pa.Array:
    """Normalised title + text used by the same-text rule: title and text joined with a space,
    Unicode NFC, every run of whitespace collapsed to one space, trimmed; case-sensitive.

    Equivalent to Python's `" ".join(unicodedata.normalize("NFC", title + " " + text).split())`.
    """
    titles = pc.fill_null(titles, "")
    texts = pc.fill_null(texts, "")
    joined = pc.binary_join_element_wise(titles, texts, " ")
    joined = pc.utf8_normalize(joined, form="NFC")
    words = pc.utf8_split_whitespace(joined)
    return pc.utf8_trim_whitespace(pc.binary_join(words, " "))


def _sorted_contains(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Elementwise: x[i] is in the sorted array."""
    if sorted_values.size == 0:
        return np.zeros(x.shape, dtype=bool)
    i = np.minimum(np.searchsorted(sorted_values, x), sorted_values.size - 1)
    return sorted_values[i] == x


def _column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _string_column(table: pa.Table, name: str) -> pa.Array:
    col = _column(table, name)
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    return col


def _require(table: pa.Table, label: str, columns: tuple[str, ...]) -> None:
    for c in columns:
        if c not in table.column_names:
            raise MissingColumn(label, c, list(table.column_names))


def _normalise_rows(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return v / norms


def _first(mask: pa.Array) -> int:
    """Index of the first true value of a boolean array."""
    return int(np.argmax(mask.to_numpy(zero_copy_only=False)))


def _a_duplicate(values: pa.Array) -> str:
    vc = pc.value_counts(values)
    return pc.filter(vc.field("values"), pc.greater(vc.field("counts"), 1))[0].as_py()


def _offsets(sorted_group: np.ndarray, n: int) -> np.ndarray:
    """Start offsets (n + 1) of groups 0..n-1 in an array sorted by group."""
    return np.concatenate([[0], np.cumsum(np.bincount(sorted_group, minlength=n))]).astype(np.int64)


def _sort_order(qidx, t32, rank, is_pos, dcol) -> np.ndarray:
    """Row order: query, teacher score descending, retrieval rank (missed positives last), doc_id.

    Fast path: one argsort of a packed 64-bit key (query | descending score bits | rank). When
    the key does not fit, or two rows other than missed positives tie on it, a full lexsort
    with doc_id as the last key.
    """
    n = qidx.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    missed = rank == _NO_RANK
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


# --------------------------------------------------------------------------------------------
# the stage


class _Filter:
    """One filter run. Row arrays are in "sorted" order: by query, teacher score descending,
    retrieval rank (missed positives last), doc_id; `orig` maps a sorted row to its row in
    `scores`."""

    def __init__(self, scores, corpus, opts, doc_vectors, query_ids, progress):
        self.opts = opts
        self.sampler = get_sampler(opts.sampling)
        self.doc_vectors = doc_vectors if opts.dedup_threshold is not None else None
        self.progress = progress
        self._prepare(scores, corpus, query_ids)

    # ---- preparation (vectorised over every row) ----

    def _prepare(self, scores: pa.Table, corpus: pa.Table, query_ids) -> None:
        opts = self.opts
        _require(scores, "scores.parquet", SCORES_COLUMNS)
        _require(corpus, "corpus.parquet", CORPUS_COLUMNS)

        qcol = _string_column(scores, "query_id")
        dcol = _string_column(scores, "doc_id")
        for name, col in (("query_id", qcol), ("doc_id", dcol)):
            if col.null_count:
                row = _first(col.is_null())
                raise InputError(f"scores.parquet: null {name} in row {row}")

        if query_ids is None:
            qarr = pc.unique(qcol)  # order of first appearance
        else:
            qarr = pa.array([str(q) for q in query_ids], pa.string())
            if len(pc.unique(qarr)) != len(qarr):
                raise InputError(f"query_ids: query '{_a_duplicate(qarr)}' appears twice")
        self.qarr = qarr
        self.nq = nq = len(qarr)
        qidx_arr = pc.index_in(qcol, value_set=qarr)
        if qidx_arr.null_count:
            row = _first(qidx_arr.is_null())
            raise InputError(f"scores.parquet: query '{qcol[row]}' is not among the queries")
        qidx = qidx_arr.to_numpy(zero_copy_only=False).astype(np.int64)

        def where(row: int) -> str:
            return f"query '{qcol[row]}', doc '{dcol[row]}'"

        pos_col = _column(scores, "is_positive")
        if pos_col.null_count:
            raise InputError(f"scores.parquet: is_positive is null ({where(_first(pos_col.is_null()))})")
        is_pos = pos_col.to_numpy(zero_copy_only=False).astype(bool)

        rank_col = pc.cast(_column(scores, "rank"), pa.int64())
        rank_null = rank_col.is_null().to_numpy(zero_copy_only=False)
        bad = rank_null & ~is_pos
        if bad.any():
            raise InputError(
                f"scores.parquet: candidate without a rank ({where(int(np.argmax(bad)))}); only "
                f"positives that retrieval missed may have a null rank")
        rank = rank_col.fill_null(_NO_RANK).to_numpy().astype(np.int64)
        bad = rank < 1
        if bad.any():
            row = int(np.argmax(bad))
            raise InputError(f"scores.parquet: rank {rank[row]} < 1 ({where(row)})")

        t_col = pc.cast(_column(scores, "teacher_score"), pa.float32())
        t32 = t_col.to_numpy(zero_copy_only=False).astype(np.float32)  # null -> NaN
        bad = ~np.isfinite(t32)
        if bad.any():
            row = int(np.argmax(bad))
            value = "null" if t_col[row].as_py() is None else str(t32[row])
            raise InputError(f"scores.parquet: teacher_score is {value} ({where(row)})")
        t32 = t32 + np.float32(0.0)  # -0.0 -> 0.0: equal scores sort as equal

        # corpus look-up: every candidate must be a corpus document (catches -1 / padding ids)
        cdoc = _string_column(corpus, "doc_id")
        if cdoc.null_count:
            raise InputError(f"corpus.parquet: null doc_id in row {_first(cdoc.is_null())}")
        self.ncorpus = len(cdoc)
        if len(pc.unique(cdoc)) != len(cdoc):
            raise InputError(f"corpus.parquet: doc_id '{_a_duplicate(cdoc)}' appears twice")
        cidx = pc.index_in(dcol, value_set=cdoc).fill_null(-1).to_numpy().astype(np.int64)
        bad = (cidx < 0) & ~is_pos
        if bad.any():
            raise InputError(
                f"scores.parquet: candidate is not in the corpus ({where(int(np.argmax(bad)))})")

        order = _sort_order(qidx, t32, rank, is_pos, dcol)
        self._check_duplicates(qidx, cidx, dcol, where)

        self.orig = order
        self.qidx = qidx[order]
        self.rank = rank[order]
        self.t32 = t32[order]
        self.t64 = self.t32.astype(np.float64)
        self.is_pos = is_pos[order]
        self.cidx = cidx[order]
        self.dcol = dcol
        self.scol = _string_column(scores, "source")
        self.cdoc = cdoc
        self.corpus = corpus
        self.starts = _offsets(self.qidx, nq)
        # candidate (non-positive) and positive rows, each with per-query offsets
        self.cand_rows = np.flatnonzero(~self.is_pos)
        self.cand_rank = self.rank[self.cand_rows]
        self.cand_starts = _offsets(self.qidx[self.cand_rows], nq)
        self.pos_rows = np.flatnonzero(self.is_pos)
        self.pos_starts = _offsets(self.qidx[self.pos_rows], nq)

        # reference positive score per query (rounded to float32: the value recorded is the
        # value compared against)
        pq = self.qidx[self.pos_rows]
        pt = self.t64[self.pos_rows]
        self.npos = np.diff(self.pos_starts)
        if opts.positive_reference == "min":
            ref = np.full(nq, np.inf)
            np.minimum.at(ref, pq, pt)
        elif opts.positive_reference == "max":
            ref = np.full(nq, -np.inf)
            np.maximum.at(ref, pq, pt)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                ref = np.bincount(pq, weights=pt, minlength=nq) / self.npos
        ref[self.npos == 0] = np.nan
        self.ref32 = ref.astype(np.float32)
        self.ref = self.ref32.astype(np.float64)

        # structural reasons: known positive, same text; near duplicate filled in lazily
        self.struct = np.full(len(order), -1, dtype=np.int8)
        self.struct[self.is_pos] = _KP
        self._same_text()
        self.neardup_known = np.zeros(len(order), dtype=bool)
        # the score rules do not depend on depth: once for every row
        with np.errstate(invalid="ignore"):
            self.score_reason = score_reasons(self.t64, self.ref[self.qidx], opts)

    def _check_duplicates(self, qidx, cidx, dcol, where) -> None:
        """A (query, doc) pair twice is an input error (it would make the output depend on row
        order, and could yield the same negative twice)."""
        if qidx.size < 2:
            return
        in_corpus = cidx >= 0
        key = qidx[in_corpus] * max(self.ncorpus, 1) + cidx[in_corpus]
        key.sort()
        dup = np.flatnonzero(key[1:] == key[:-1])
        if dup.size:
            k = key[dup[0]]
            row = int(np.flatnonzero(in_corpus)[np.argmax(qidx[in_corpus] * max(self.ncorpus, 1)
                                                         + cidx[in_corpus] == k)])
            raise InputError(f"scores.parquet: the same row twice ({where(row)})")
        seen = set()
        for row in np.flatnonzero(~in_corpus).tolist():  # positives missing from the corpus
            pair = (int(qidx[row]), dcol[row].as_py())
            if pair in seen:
                raise InputError(f"scores.parquet: the same row twice ({where(row)})")
            seen.add(pair)

    def _same_text(self) -> None:
        """Flag candidates whose normalised title + text equals one of their query's positives'."""
        used = np.zeros(self.ncorpus, dtype=bool)
        used[self.cidx[self.cidx >= 0]] = True
        docs = np.flatnonzero(used)
        group = np.full(self.ncorpus, -1, dtype=np.int64)
        if docs.size:
            group[docs] = pc.dictionary_encode(self._keys(docs)).indices.to_numpy().astype(np.int64)
        rgroup = np.where(self.cidx >= 0, group[np.maximum(self.cidx, 0)], -1)
        prow = self.pos_rows[rgroup[self.pos_rows] >= 0]
        if prow.size == 0:
            return
        # only candidates whose text is some positive's text need the exact (query, text) test
        is_pos_group = np.zeros(int(group.max()) + 1, dtype=bool)
        is_pos_group[rgroup[prow]] = True
        cand = self.cand_rows
        cg = rgroup[cand]
        maybe = cand[(cg >= 0) & is_pos_group[np.maximum(cg, 0)]]
        if maybe.size == 0:
            return
        # compare each such candidate with its own query's positives (a table padded to the
        # most positives any query has), or by (query, text) keys when that table is too big
        pq = self.qidx[prow]
        poff = _offsets(pq, self.nq)
        width = int(np.diff(poff).max())
        if self.nq * width <= 20_000_000:
            pg = np.full((self.nq, width), -2, dtype=np.int64)
            pg[pq, np.arange(prow.size) - poff[pq]] = rgroup[prow]
            hit = (pg[self.qidx[maybe]] == rgroup[maybe][:, None]).any(axis=1)
        else:
            ng = int(group.max()) + 1
            hit = np.isin(self.qidx[maybe] * ng + rgroup[maybe], pq * ng + rgroup[prow])
        self.struct[maybe[hit]] = _ST

    def _keys(self, docs: np.ndarray) -> pa.Array:
        sub = self.corpus.take(pa.array(docs, pa.int64()))
        titles = (_string_column(sub, "title") if "title" in sub.column_names
                  else pa.nulls(len(sub), pa.string()))
        return text_keys(titles, _string_column(sub, "text"))

    # ---- near duplicates (lazy, batched) ----

    def _vectors(self, cidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sorted unique corpus indices, their L2-normalised vectors), one doc_vectors call."""
        uniq = np.unique(cidx)
        ids = self.cdoc.take(pa.array(uniq, pa.int64())).to_pylist()
        vecs = np.asarray(self.doc_vectors(ids))
        if vecs.ndim != 2 or vecs.shape[0] != len(ids):
            raise InputError(
                f"doc_vectors returned an array of shape {vecs.shape} for {len(ids)} documents "
                f"(expected {len(ids)} x d)")
        return uniq, _normalise_rows(vecs)

    def _positives_of(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, index into `queries`) of the positives of `queries` that are corpus documents,
        grouped by query."""
        ps, pe = self.pos_starts[queries], self.pos_starts[queries + 1]
        cnt = pe - ps
        total = int(cnt.sum())
        within = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        prow = self.pos_rows[np.repeat(ps, cnt) + within]
        owner = np.repeat(np.arange(queries.size), cnt)
        keep = self.cidx[prow] >= 0
        return prow[keep], owner[keep]

    def _max_cosine(self, cidx: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Per element: the highest cosine between corpus doc cidx[i] and a positive of query
        q[i] (-inf when the query has none). One doc_vectors call; row-wise dot products
        against a table of each query's positives (one product per query when a query has
        many positives)."""
        best = np.full(cidx.size, -np.inf)
        if cidx.size == 0:
            return best
        uq, qloc = np.unique(q, return_inverse=True)
        prow, owner = self._positives_of(uq)
        if prow.size == 0:
            return best
        uniq, vecs = self._vectors(np.concatenate([cidx, self.cidx[prow]]))
        cv = vecs[np.searchsorted(uniq, cidx)]
        pvi = np.searchsorted(uniq, self.cidx[prow])
        off = _offsets(owner, uq.size)
        count = np.diff(off)
        heavy = count > 16
        width = int(count[~heavy].max()) if (~heavy).any() else 0
        if width:
            table = np.full((uq.size, width), -1, dtype=np.int64)
            light = ~heavy[owner]
            table[owner[light], (np.arange(prow.size) - off[owner])[light]] = pvi[light]
            for w in range(width):
                idx = table[qloc, w]
                has = idx >= 0
                if has.any():
                    sims = np.einsum("ij,ij->i", cv[has], vecs[idx[has]])
                    best[has] = np.maximum(best[has], sims)
        for i in np.flatnonzero(heavy).tolist():
            members = np.flatnonzero(qloc == i)
            pv = vecs[pvi[off[i]:off[i + 1]]]
            best[members] = (cv[members] @ pv.T).max(axis=1)
        return best

    def _near_dup_rows(self, rows: np.ndarray) -> None:
        """Compute the near-duplicate flag of candidate `rows` (sorted order) not done yet."""
        rows = rows[~self.neardup_known[rows]]
        if rows.size == 0:
            return
        self.neardup_known[rows] = True
        hit = rows[self._max_cosine(self.cidx[rows], self.qidx[rows]) >= self.opts.dedup_threshold]
        self.struct[hit[self.struct[hit] < 0]] = _ND

    # ---- the per-query loop ----

    def run(self) -> FilterResult:
        opts = self.opts
        nq = self.nq
        self.depth_used = np.full(nq, opts.depth, dtype=np.int64)
        self.n_cand = np.zeros(nq, dtype=np.int64)
        self.n_hard = np.zeros(nq, dtype=np.int64)
        self.n_rand = np.zeros(nq, dtype=np.int64)
        self.out_neg: list[np.ndarray] = []  # sorted rows of kept hard negatives
        self.out_neg_tr: list[np.ndarray] = []  # their teacher ranks
        self.out_drop: list[np.ndarray] = []
        self.out_drop_tr: list[np.ndarray] = []  # 0 for known positives (rank null)
        self.out_drop_code: list[np.ndarray] = []
        self.rand_q: list[np.ndarray] = []
        self.rand_c: list[np.ndarray] = []
        qids = self.qarr.to_pylist()
        self.sample_seed = np.zeros(nq, dtype=np.uint64)
        if self.sampler.log_weights is not None:
            self.sample_seed = np.array([query_seed(opts.seed, "sample", x) for x in qids], np.uint64)
        if opts.random_negatives > 0:
            self.random_seed = np.array([query_seed(opts.seed, "random", x) for x in qids], np.uint64)
            self.corpus_order = pc.sort_indices(self.cdoc).to_numpy().astype(np.int64)

        q = 0
        while q < nq:
            # a chunk of queries holding about _CHUNK_ROWS rows
            q_end = int(np.searchsorted(self.starts, self.starts[q] + _CHUNK_ROWS, side="right")) - 1
            q_end = min(max(q_end, q + 1), nq)
            self._chunk(q, q_end)
            if opts.random_negatives > 0:
                todo = np.arange(q, q_end)[self.npos[q:q_end] > 0]
                if todo.size:
                    rq, rc = self._random_negatives(todo)
                    self.rand_q.append(rq)
                    self.rand_c.append(rc)
                    self.n_rand += np.bincount(rq, minlength=nq)
            if self.progress is not None:
                self.progress(q_end - q)
            q = q_end
        return self._tables()

    # when True, every query goes through the per-query path (tests compare both paths)
    _per_query_only = False

    def _draw(self, segment, position, rows, queries) -> np.ndarray:
        """The sampler's picks among eligible `rows` (grouped by query, teacher order)."""
        return draw(self.sampler, segment, position, self.t64[rows], self.ref[queries],
                    self.sample_seed[queries], self.opts.num_negatives, self.opts,
                    lambda s: str(self.qarr[int(queries[np.argmax(segment == s)])]))

    def _chunk(self, q: int, q_end: int) -> None:
        """Queries q..q_end-1 at the initial depth, vectorised; queries that must look deeper go
        through the per-query path."""
        opts = self.opts
        N = opts.num_negatives
        depth0 = opts.depth
        cs, ce = int(self.cand_starts[q]), int(self.cand_starts[q_end])
        rows = self.cand_rows[cs:ce]
        crank = self.cand_rank[cs:ce]
        cq = self.qidx[rows] - q  # query within the chunk
        nchunk = q_end - q
        has_pos_q = self.npos[q:q_end] > 0
        ind = (crank <= depth0) & has_pos_q[cq]
        if self.doc_vectors is not None:
            self._near_dup_rows(rows[ind & (self.struct[rows] < 0)])

        seg = self.cand_starts[q:q_end + 1] - cs  # segment offsets within the chunk
        c = np.cumsum(ind)
        before = np.concatenate([[0], c])[seg[:-1]]  # ind count before each query's segment
        trank = c - before[cq]
        code = self.struct[rows]
        code = np.where(code >= 0, code, self.score_reason[rows])
        if opts.range_min is not None or opts.range_max is not None:
            win = (self.struct[rows] < 0) & outside_rank_window(trank, opts.range_min, opts.range_max)
            code[win] = _WIN
        elig = ind & (code < 0)
        n_elig = np.bincount(cq[elig], minlength=nchunk)
        n_ind = np.bincount(cq[ind], minlength=nchunk)
        # the deepest rank each query has (for look-deeper)
        nonempty = seg[1:] > seg[:-1]
        deepest = np.zeros(nchunk, dtype=np.int64)
        if nonempty.any():
            deepest[nonempty] = np.maximum.reduceat(crank, seg[:-1][nonempty])
        cap = deepest if opts.max_depth is None else np.minimum(deepest, opts.max_depth)

        slow = has_pos_q & (n_elig < N) & (cap > depth0)
        if self._per_query_only:
            slow = has_pos_q.copy()
        done = has_pos_q & ~slow
        self.n_cand[q:q_end] = np.where(has_pos_q, n_ind,
                                        np.bincount(cq[crank <= depth0], minlength=nchunk))

        # the first N eligible by teacher rank, or the sampler's N when there are more
        fr = done[cq]
        ecum = np.cumsum(elig)
        position = ecum - np.concatenate([[0], ecum])[seg[:-1]][cq] - 1  # among eligible
        chosen = fr & elig & (position < N)
        sample_q = done & (n_elig > N)
        sr = sample_q[cq] & elig
        if sr.any() and self.sampler.name != "top":
            picked = self._draw(cq[sr], position[sr], rows[sr], self.qidx[rows[sr]])
            chosen[sr] = picked
            code[np.flatnonzero(sr)[~picked]] = _NS
        self.out_neg.append(rows[chosen])
        self.out_neg_tr.append(trank[chosen])
        self.n_hard[q:q_end][done] = np.minimum(n_elig, N)[done]
        dropped = fr & ind & (code >= 0)
        self.out_drop.append(rows[dropped])
        self.out_drop_tr.append(trank[dropped])
        self.out_drop_code.append(code[dropped])
        ps, pe = int(self.pos_starts[q]), int(self.pos_starts[q_end])
        prow = self.pos_rows[ps:pe]
        prow = prow[(self.rank[prow] <= depth0) & done[self.qidx[prow] - q]]
        self.out_drop.append(prow)
        self.out_drop_tr.append(np.zeros(prow.size, np.int64))
        self.out_drop_code.append(np.full(prow.size, _KP, np.int8))

        for i in np.flatnonzero(slow).tolist():
            self._query(q + i)

    def _query(self, qi: int) -> None:
        """One query (with positives): look deeper while short, then pick."""
        opts = self.opts
        N = opts.num_negatives
        depth0 = opts.depth
        cs, ce = self.cand_starts[qi], self.cand_starts[qi + 1]
        cand = self.cand_rows[cs:ce]  # teacher order
        crank = self.cand_rank[cs:ce]
        deepest = int(crank.max()) if cand.size else depth0
        cap = deepest if opts.max_depth is None else min(deepest, opts.max_depth)
        d = depth0
        while True:
            rows = cand[crank <= d]
            k = rows.size
            if self.doc_vectors is not None:
                self._near_dup_rows(rows)
            trank = np.arange(1, k + 1)
            code = self.struct[rows]
            code = np.where(code >= 0, code, self.score_reason[rows])
            if opts.range_min is not None or opts.range_max is not None:
                win = (self.struct[rows] < 0) & outside_rank_window(trank, opts.range_min, opts.range_max)
                code[win] = _WIN
            elig = np.flatnonzero(code < 0)
            if elig.size >= N or d >= cap:
                break
            d = min(d + opts.depth_step, cap)
        self.depth_used[qi] = d
        self.n_cand[qi] = k
        if elig.size > N:
            picked = self._draw(np.zeros(elig.size, np.int64), np.arange(elig.size), rows[elig],
                                np.full(elig.size, qi))
            chosen = elig[picked]
            if self.sampler.name != "top":
                code[elig[~picked]] = _NS
        else:
            chosen = elig
        self.out_neg.append(rows[chosen])
        self.out_neg_tr.append(trank[chosen])
        self.n_hard[qi] = chosen.size
        dropped = np.flatnonzero(code >= 0)
        self.out_drop.append(rows[dropped])
        self.out_drop_tr.append(trank[dropped])
        self.out_drop_code.append(code[dropped])
        prow = self.pos_rows[self.pos_starts[qi]:self.pos_starts[qi + 1]]
        prow = prow[self.rank[prow] <= d]
        self.out_drop.append(prow)
        self.out_drop_tr.append(np.zeros(prow.size, np.int64))
        self.out_drop_code.append(np.full(prow.size, _KP, np.int8))

    # ---- random negatives (STAR) ----

    def _random_negatives(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """random_negatives docs for each of `queries` (with positives): uniform without
        replacement over the corpus minus the query's rows in `scores`, never with the same
        text as one of its positives nor (with vectors) a near duplicate of one.

        Draw j of a query is the corpus doc at position floor(u_j * |corpus|) in doc_id order,
        u_j a hash of (seed, query id, j); rejected and repeated draws are skipped. A query with
        few docs left to draw from (tiny corpora) or still short after many rounds takes the
        rest in a hashed order instead. Returns (query, corpus index) pairs in draw order.
        """
        K = self.opts.random_negatives
        nc = self.ncorpus
        # excluded (query, doc) keys: every row of the query in `scores`
        cnt = self.starts[queries + 1] - self.starts[queries]
        within = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        allrows = np.repeat(self.starts[queries], cnt) + within
        allrows = allrows[self.cidx[allrows] >= 0]
        excluded = np.sort(self.qidx[allrows] * nc + self.cidx[allrows])
        got_q: list[np.ndarray] = []
        got_c: list[np.ndarray] = []
        need = np.full(queries.size, K, dtype=np.int64)
        remaining = nc - np.bincount(np.searchsorted(queries, self.qidx[allrows]), minlength=queries.size)
        small = (remaining <= 4 * K + 64) | (2 * remaining < nc)
        counter = np.zeros(queries.size, dtype=np.int64)
        active = np.flatnonzero(~small & (need > 0))
        for _ in range(32):
            if active.size == 0:
                break
            m = 2 * need[active] + 4
            owner = np.repeat(active, m)
            j = counter[owner] + (np.arange(int(m.sum())) - np.repeat(np.cumsum(m) - m, m))
            counter[active] += m
            u = uniform01(self.random_seed[queries[owner]], j)
            docs = self.corpus_order[np.minimum((u * nc).astype(np.int64), nc - 1)]
            taken = self._accept_random(queries, owner, docs, excluded, got_q, got_c, need)
            excluded = np.sort(np.concatenate([excluded, taken]))
            active = active[need[active] > 0]
        # the rest: every doc still allowed, in a hashed order
        for i in np.flatnonzero(need > 0).tolist():
            qi = int(queries[i])
            lo, hi = np.searchsorted(excluded, [qi * nc, (qi + 1) * nc])
            free = np.flatnonzero(~np.isin(self.corpus_order, excluded[lo:hi] - qi * nc))
            if free.size == 0:
                continue
            noise = uniform01(np.full(free.size, self.random_seed[qi], np.uint64), (1 << 40) + free)
            pool = self.corpus_order[free[np.argsort(noise, kind="stable")]]
            owner = np.full(pool.size, i, dtype=np.int64)
            self._accept_random(queries, owner, pool, excluded, got_q, got_c, need)
        if not got_q:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(got_q), np.concatenate(got_c)

    def _accept_random(self, queries, owner, docs, excluded, got_q, got_c, need) -> np.ndarray:
        """Keep, per query and in draw order, the first need[owner] acceptable `docs`; append
        them to got_q/got_c, lower `need`; return their (query, doc) keys."""
        nc = self.ncorpus
        qi = queries[owner]
        key = qi * nc + docs
        ok = ~_sorted_contains(excluded, key)
        # first occurrence of a (query, doc) among these draws
        _, first = np.unique(key, return_index=True)
        once = np.zeros(key.size, dtype=bool)
        once[first] = True
        ok &= once
        if ok.any():
            ok[np.flatnonzero(ok)[~self._text_ok(qi[ok], docs[ok])]] = False
        if ok.any() and self.doc_vectors is not None:
            idx = np.flatnonzero(ok)
            ok[idx[self._max_cosine(docs[idx], qi[idx]) >= self.opts.dedup_threshold]] = False
        # first need[owner] survivors per query, in draw order (owner is grouped)
        okc = np.cumsum(ok)
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        base = np.concatenate([[0], okc])[starts]
        seg_of = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, owner.size]))
        take = ok & (okc - base[seg_of] <= need[owner])
        got_q.append(qi[take])
        got_c.append(docs[take])
        np.subtract.at(need, owner[take], 1)
        return key[take]

    def _text_ok(self, q: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """Per element: corpus doc docs[i] does not have the text of a positive of query q[i]."""
        uq, qloc = np.unique(q, return_inverse=True)
        prow, owner = self._positives_of(uq)
        if prow.size == 0:
            return np.ones(q.size, dtype=bool)
        udocs, dloc = np.unique(docs, return_inverse=True)
        pdocs = self.cidx[prow]
        keys = pc.dictionary_encode(pa.concat_arrays([self._keys(udocs), self._keys(pdocs)]))
        codes = keys.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        dcode, pcode = codes[:udocs.size][dloc], codes[udocs.size:]
        width = int(np.bincount(owner).max())
        table = np.full((uq.size, width), -1, dtype=np.int64)
        off = _offsets(owner, uq.size)
        table[owner, np.arange(prow.size) - off[owner]] = pcode
        return ~(table[qloc] == dcode[:, None]).any(axis=1)

    # ---- output tables ----

    def _tables(self) -> FilterResult:
        opts = self.opts
        nq = self.nq
        cat = lambda xs, dt: np.concatenate(xs).astype(dt, copy=False) if xs else np.zeros(0, dt)  # noqa: E731

        def masked(values: np.ndarray, mask: np.ndarray, typ) -> pa.Array:
            return pa.array(values, type=typ, mask=mask)

        # negatives: per query, hard ones by teacher rank, then random ones in draw order
        h_rows = cat(self.out_neg, np.int64)
        h_tr = cat(self.out_neg_tr, np.int64)
        r_c = cat(self.rand_c, np.int64)
        r_q = cat(self.rand_q, np.int64)
        qall = np.concatenate([self.qidx[h_rows], r_q])
        is_rand = np.concatenate([np.zeros(h_rows.size, bool), np.ones(r_q.size, bool)])
        # within a query: hard ones by teacher rank, then random ones in draw order
        within = np.concatenate([h_tr, np.arange(r_q.size)])
        perm = np.lexsort((within, is_rand, qall))
        orig_h = self.orig[h_rows]
        take = pa.array(perm)

        def mix(hard: pa.Array, rand: pa.Array) -> pa.Array:
            return pa.concat_arrays([hard, rand]).take(take)

        rmask = is_rand[perm]
        zeros_i = np.zeros(r_q.size, np.int64)
        negatives = pa.table({
            "query_id": self.qarr.take(pa.array(qall[perm])),
            "doc_id": mix(self.dcol.take(pa.array(orig_h)), self.cdoc.take(pa.array(r_c))),
            "rank": masked(np.concatenate([h_tr, zeros_i])[perm].astype(np.int32), rmask, pa.int32()),
            "retrieval_rank": masked(np.concatenate([self.rank[h_rows], zeros_i])[perm].astype(np.int32),
                                     rmask, pa.int32()),
            "teacher_score": masked(np.concatenate([self.t32[h_rows], np.zeros(r_q.size, np.float32)])[perm],
                                    rmask, pa.float32()),
            "positive_score": pa.array(self.ref32[qall[perm]], pa.float32()),
            "source": mix(self.scol.take(pa.array(orig_h)),
                          pa.repeat(pa.scalar("random", pa.string()), r_q.size)),
            "is_random": pa.array(rmask, pa.bool_()),
            "method": pa.repeat(pa.scalar(opts.method, pa.string()), qall.size),
        }, schema=NEGATIVES_SCHEMA)

        # dropped: per query, retrieved known positives by retrieval rank, then candidates by
        # teacher rank
        d_rows = cat(self.out_drop, np.int64)
        d_tr = cat(self.out_drop_tr, np.int64)
        d_code = cat(self.out_drop_code, np.int8)
        kp = d_tr == 0
        perm = np.lexsort((np.where(kp, self.rank[d_rows], d_tr), ~kp, self.qidx[d_rows]))
        d_rows, d_tr, d_code = d_rows[perm], d_tr[perm], d_code[perm]
        orig_d = self.orig[d_rows]
        dropped = pa.table({
            "query_id": self.qarr.take(pa.array(self.qidx[d_rows])),
            "doc_id": self.dcol.take(pa.array(orig_d)),
            "rank": masked(d_tr.astype(np.int32), d_tr == 0, pa.int32()),
            "retrieval_rank": pa.array(self.rank[d_rows].astype(np.int32), pa.int32()),
            "teacher_score": pa.array(self.t32[d_rows], pa.float32()),
            "positive_score": pa.array(self.ref32[self.qidx[d_rows]], pa.float32()),
            "source": self.scol.take(pa.array(orig_d)),
            "reason": pa.array(REASONS, pa.string()).take(pa.array(d_code.astype(np.int64))),
        }, schema=DROPPED_SCHEMA)

        n_neg = self.n_hard + self.n_rand
        target = opts.num_negatives + opts.random_negatives
        shortfall = np.maximum(0, target - n_neg)
        status = np.full(nq, _OK, dtype=np.int64)
        status[shortfall > 0] = _SHORT
        status[self.n_cand == 0] = _NO_CANDIDATES
        status[self.npos == 0] = _NO_POSITIVE
        exported = n_neg >= opts.min_negatives
        summary = pa.table({
            "query_id": self.qarr,
            "n_positives": pa.array(self.npos.astype(np.int32), pa.int32()),
            "positive_score": masked(np.nan_to_num(self.ref32), self.npos == 0, pa.float32()),
            "n_candidates": pa.array(self.n_cand.astype(np.int32), pa.int32()),
            "depth_used": pa.array(self.depth_used.astype(np.int32), pa.int32()),
            "n_negatives": pa.array(n_neg.astype(np.int32), pa.int32()),
            "shortfall": pa.array(shortfall.astype(np.int32), pa.int32()),
            "exported": pa.array(exported, pa.bool_()),
            "status": pa.array(STATUSES, pa.string()).take(pa.array(status)),
        }, schema=QUERY_SUMMARY_SCHEMA)

        code_counts = np.bincount(d_code.astype(np.int64), minlength=len(REASONS))
        stats: dict = {f"dropped_{r}": int(code_counts[i]) for i, r in enumerate(REASONS)}
        stats.update({
            "queries_full": int(np.count_nonzero(shortfall == 0)),
            "queries_short": int(np.count_nonzero(shortfall > 0)),
            "queries_without_negatives": int(np.count_nonzero(n_neg == 0)),
            "negatives_total": int(n_neg.sum()),
            "random_negatives_total": int(self.n_rand.sum()),
            "queries_total": int(nq),
            "queries_exported": int(np.count_nonzero(exported)),
            "queries_no_positive": int(np.count_nonzero(status == _NO_POSITIVE)),
            "queries_no_candidates": int(np.count_nonzero(status == _NO_CANDIDATES)),
            "queries_looked_deeper": int(np.count_nonzero(self.depth_used > opts.depth)),
            "candidates_considered": int(self.n_cand[self.npos > 0].sum()),
            "near_duplicate_check": (
                "disabled" if opts.dedup_threshold is None
                else "skipped: no embeddings" if self.doc_vectors is None
                else f"cosine >= {opts.dedup_threshold:g}"),
        })
        return FilterResult(negatives, dropped, summary, stats)


def filter_candidates(
    scores: pa.Table,
    corpus: pa.Table,
    options: FilterOptions,
    doc_vectors: Callable[[list[str]], np.ndarray] | None = None,
    query_ids: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> FilterResult:
    """Choose the negatives of every query; see the module docstring and docs/tables.md.

    scores       scores.parquet (query_id, doc_id, rank, source, is_positive, teacher_score, ...)
    corpus       corpus.parquet (doc_id, title, text): same-text rule and random negatives
    options      FilterOptions; method defaults are merged in (resolve_options)
    doc_vectors  doc ids -> L2-normalised float32 vectors (n x d) for the near-duplicate rule;
                 None skips that rule (stats["near_duplicate_check"] says so)
    query_ids    query order (queries.parquet), queries without rows included; None = order of
                 first appearance in `scores`
    progress     called with the number of queries finished since the last call

    Raises OptionError / UnknownName for bad options, InputError for bad rows (null ids, a
    non-finite teacher score, a candidate missing from the corpus, a (query, doc) pair twice).
    """
    opts = resolve_options(options)
    return _Filter(scores, corpus, opts, doc_vectors, query_ids, progress).run()
