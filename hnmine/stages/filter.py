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

Randomness: every query gets its own generator seeded from (seed, purpose, query_id) through
SHA-256, so results depend neither on query order nor on batching nor on input row order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hnmine.errors import InputError, MissingColumn
from hnmine.methods import DEFAULT_METHOD, effective_options, get_sampler, resolve_options
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


def query_rng(seed: int, purpose: str, query_id: str) -> np.random.Generator:
    """A generator that depends only on (seed, purpose, query_id)."""
    digest = hashlib.sha256(f"{seed}\x1f{purpose}\x1f{query_id}".encode("utf-8")).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


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

    def _query_positives(self, qi: int) -> np.ndarray:
        """Sorted rows of query qi's positives that are corpus documents."""
        p = self.pos_rows[self.pos_starts[qi]:self.pos_starts[qi + 1]]
        return p[self.cidx[p] >= 0]

    def _near_dup_rows(self, rows: np.ndarray, queries) -> None:
        """Compute the near-duplicate flag of candidate `rows` (sorted order) of `queries`: one
        vector look-up for all of them and those queries' positives, one product per query."""
        rows = rows[~self.neardup_known[rows]]
        if rows.size == 0:
            return
        self.neardup_known[rows] = True
        pos = [self._query_positives(int(q)) for q in queries]
        pos_rows = np.concatenate(pos) if pos else np.zeros(0, np.int64)
        if pos_rows.size == 0:
            return
        uniq, vecs = self._vectors(np.concatenate([self.cidx[rows], self.cidx[pos_rows]]))
        thr = self.opts.dedup_threshold
        rq = self.qidx[rows]
        lo = np.searchsorted(rq, queries, side="left")
        hi = np.searchsorted(rq, queries, side="right")
        for i, p in enumerate(pos):
            if lo[i] == hi[i] or p.size == 0:
                continue
            r = rows[lo[i]:hi[i]]
            cv = vecs[np.searchsorted(uniq, self.cidx[r])]
            pv = vecs[np.searchsorted(uniq, self.cidx[p])]
            hit = r[(cv @ pv.T).max(axis=1) >= thr]
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
        self.rand_q: list[int] = []
        self.rand_c: list[np.ndarray] = []

        q = 0
        while q < nq:
            # a chunk of queries holding about _CHUNK_ROWS rows
            q_end = int(np.searchsorted(self.starts, self.starts[q] + _CHUNK_ROWS, side="right")) - 1
            q_end = min(max(q_end, q + 1), nq)
            self._chunk(q, q_end)
            if opts.random_negatives > 0:
                todo = [qi for qi in range(q, q_end) if self.npos[qi] > 0]
                for qi, docs in zip(todo, self._random_negatives(todo)):
                    self.rand_q.append(qi)
                    self.rand_c.append(docs)
                    self.n_rand[qi] = docs.size
            if self.progress is not None:
                self.progress(q_end - q)
            q = q_end
        return self._tables()

    # when True, every query goes through the per-query path (tests compare both paths)
    _per_query_only = False

    def _chunk(self, q: int, q_end: int) -> None:
        """Queries q..q_end-1 at the initial depth, vectorised; queries that must look deeper or
        sample go through the per-query path."""
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
            need = rows[ind & (self.struct[rows] < 0)]
            qs = np.arange(q, q_end)[has_pos_q]
            self._near_dup_rows(need, qs)

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
        sample = has_pos_q & ~slow & (n_elig > N) & (self.sampler.name != "top")
        if self._per_query_only:
            slow = has_pos_q.copy()
            sample[:] = False
        fast_q = has_pos_q & ~slow & ~sample
        self.n_cand[q:q_end] = n_ind
        self.n_cand[q:q_end][~has_pos_q] = np.bincount(cq[crank <= depth0], minlength=nchunk)[~has_pos_q]

        # fast queries: the first N eligible by teacher rank
        fr = fast_q[cq]
        ecum = np.cumsum(elig)
        ebefore = np.concatenate([[0], ecum])[seg[:-1]]
        chosen = fr & elig & (ecum - ebefore[cq] <= N)
        self.out_neg.append(rows[chosen])
        self.out_neg_tr.append(trank[chosen])
        self.n_hard[q:q_end][fast_q] = np.minimum(n_elig, N)[fast_q]
        dropped = fr & ind & (code >= 0)
        self.out_drop.append(rows[dropped])
        self.out_drop_tr.append(trank[dropped])
        self.out_drop_code.append(code[dropped])
        ps, pe = int(self.pos_starts[q]), int(self.pos_starts[q_end])
        prow = self.pos_rows[ps:pe]
        prow = prow[(self.rank[prow] <= depth0) & fast_q[self.qidx[prow] - q]]
        self.out_drop.append(prow)
        self.out_drop_tr.append(np.zeros(prow.size, np.int64))
        self.out_drop_code.append(np.full(prow.size, _KP, np.int8))

        for i in np.flatnonzero(slow | sample).tolist():
            self._query(q + i)

    def _query(self, qi: int) -> None:
        """One query (with positives): look deeper while short, then sample."""
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
                self._near_dup_rows(rows, [qi])
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
            qid = self.qarr[qi].as_py()
            picked = self.sampler.fn(self.t64[rows[elig]], N, float(self.ref[qi]), opts,
                                     lambda: query_rng(opts.seed, "sample", qid), qid)
            chosen = elig[picked]
            if self.sampler.name != "top":
                keep = np.zeros(k, dtype=bool)
                keep[chosen] = True
                code[(code < 0) & ~keep] = _NS
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

    def _random_negatives(self, queries: list[int]) -> list[np.ndarray]:
        """random_negatives docs per query, uniform over the corpus minus the query's rows in
        `scores`, never with the same text as a positive nor (with vectors) a near duplicate of
        one. Per query the draws depend only on (seed, query id): rounds are batched across
        queries only for the look-ups."""
        K = self.opts.random_negatives
        if self._corpus_order is None:  # canonical order: independent of corpus row order
            self._corpus_order = pc.sort_indices(self.cdoc).to_numpy().astype(np.int64)
        states = []
        all_pos = []
        for qi in queries:
            a, b = int(self.starts[qi]), int(self.starts[qi + 1])
            c = self.cidx[a:b]
            prow = self._query_positives(qi)
            all_pos.append(self.cidx[prow])
            states.append({"seen": set(c[c >= 0].tolist()), "prow": prow, "chosen": [],
                           "rng": query_rng(self.opts.seed, "random", self.qarr[qi].as_py())})
        pdocs = np.concatenate(all_pos) if all_pos else np.zeros(0, np.int64)
        pkeys = self._keys(pdocs).to_pylist() if pdocs.size else []
        at = 0
        for s, p in zip(states, all_pos):
            s["pkeys"] = set(pkeys[at:at + p.size])
            at += p.size
        while True:
            active = [s for s in states if len(s["chosen"]) < K and len(s["seen"]) < self.ncorpus]
            if not active:
                break
            drawn = [self._draw(s, K - len(s["chosen"])) for s in active]
            flat = np.concatenate(drawn)
            if flat.size == 0:
                continue
            keys = self._keys(flat).to_pylist()
            at = 0
            for s, d in zip(active, drawn):
                ok = np.array([k not in s["pkeys"] for k in keys[at:at + d.size]], dtype=bool)
                at += d.size
                s["pending"] = d[ok] if d.size else d
            if self.doc_vectors is not None:
                with_pos = [s for s in active if s["pending"].size and s["prow"].size]
                if with_pos:
                    uniq, vecs = self._vectors(np.concatenate(
                        [s["pending"] for s in with_pos] + [self.cidx[s["prow"]] for s in with_pos]))
                    for s in with_pos:
                        cv = vecs[np.searchsorted(uniq, s["pending"])]
                        pv = vecs[np.searchsorted(uniq, self.cidx[s["prow"]])]
                        s["pending"] = s["pending"][(cv @ pv.T).max(axis=1) < self.opts.dedup_threshold]
            for s in active:
                s["chosen"].extend(s["pending"].tolist())
        return [np.array(s["chosen"], dtype=np.int64) for s in states]

    _corpus_order: np.ndarray | None = None

    def _draw(self, s: dict, need: int) -> np.ndarray:
        """Up to `need` corpus docs this query has not seen, uniformly without replacement."""
        rng, seen = s["rng"], s["seen"]
        remaining = self.ncorpus - len(seen)
        if remaining <= 4 * need + 64 or 2 * remaining < self.ncorpus:
            # few docs left: enumerate them (in doc_id order) and shuffle
            seen_arr = np.fromiter(seen, np.int64, len(seen))
            pool = self._corpus_order[~np.isin(self._corpus_order, seen_arr)]
            draws = pool[rng.permutation(pool.size)[:need]]
        else:
            draws = self._corpus_order[rng.integers(0, self.ncorpus, size=2 * need + 8)]
        out = []
        for c in draws.tolist():
            if len(out) == need:
                break
            if c not in seen:
                seen.add(c)
                out.append(c)
        return np.array(out, dtype=np.int64)

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
        r_q = (np.repeat(np.array(self.rand_q, np.int64), [c.size for c in self.rand_c])
               if self.rand_c else np.zeros(0, np.int64))
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
