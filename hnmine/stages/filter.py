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
    """Normalised title + text used by the same-text rule (see the module docstring)."""
    titles = pc.fill_null(titles, "")
    texts = pc.fill_null(texts, "")
    joined = pc.binary_join_element_wise(titles, texts, " ")
    joined = pc.utf8_normalize(joined, form="NFC")
    joined = pc.replace_substring_regex(joined, pattern=r"[\s\p{Z}]+", replacement=" ")
    return pc.utf8_trim_whitespace(joined)


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


# --------------------------------------------------------------------------------------------
# the stage


class _Filter:
    """One filter run; arrays are in "sorted" order: by query, teacher score desc, retrieval rank,
    doc_id. `orig` maps a sorted row back to its row in `scores`."""

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
                row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                raise InputError(f"scores.parquet: null {name} in row {row}")

        if query_ids is None:
            qarr = pc.unique(qcol)  # first-appearance order
        else:
            qarr = pa.array([str(q) for q in query_ids], pa.string())
            if len(pc.unique(qarr)) != len(qarr):
                dup = pc.filter(pc.value_counts(qarr).field("values"),
                                pc.greater(pc.value_counts(qarr).field("counts"), 1))[0]
                raise InputError(f"query_ids: query '{dup}' appears twice")
        self.qarr = qarr
        self.nq = nq = len(qarr)
        qidx = pc.index_in(qcol, value_set=qarr)
        if qidx.null_count:
            row = int(np.flatnonzero(qidx.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"scores.parquet: query '{qcol[row]}' is not among the queries")
        qidx = qidx.to_numpy().astype(np.int64)

        pos_col = _column(scores, "is_positive")
        if pos_col.null_count:
            row = int(np.flatnonzero(pos_col.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(
                f"scores.parquet: is_positive is null for query '{qcol[row]}', doc '{dcol[row]}'")
        is_pos = pos_col.to_numpy(zero_copy_only=False).astype(bool)

        rank_col = pc.cast(_column(scores, "rank"), pa.int64())
        rank_null = rank_col.is_null().to_numpy(zero_copy_only=False)
        bad = rank_null & ~is_pos
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"scores.parquet: candidate without a rank (query '{qcol[row]}', doc '{dcol[row]}'); "
                f"only positives that retrieval missed may have a null rank")
        rank = rank_col.fill_null(_NO_RANK).to_numpy().astype(np.int64)
        if (rank < 1).any():
            row = int(np.flatnonzero(rank < 1)[0])
            raise InputError(f"scores.parquet: rank {rank[row]} < 1 (query '{qcol[row]}', doc '{dcol[row]}')")

        t_col = pc.cast(_column(scores, "teacher_score"), pa.float32())
        t32 = t_col.to_numpy(zero_copy_only=False).astype(np.float32)  # nulls -> NaN
        bad = ~np.isfinite(t32)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = "null" if t_col[row].as_py() is None else str(t32[row])
            raise InputError(
                f"scores.parquet: teacher_score is {value} for query '{qcol[row]}', doc '{dcol[row]}'")

        # corpus look-up; a candidate must be a corpus document (catches -1 / padding ids)
        cdoc = _string_column(corpus, "doc_id")
        if cdoc.null_count:
            raise InputError("corpus.parquet: null doc_id")
        self.ncorpus = len(cdoc)
        if len(pc.unique(cdoc)) != len(cdoc):
            vc = pc.value_counts(cdoc)
            dup = pc.filter(vc.field("values"), pc.greater(vc.field("counts"), 1))[0]
            raise InputError(f"corpus.parquet: doc_id '{dup}' appears twice")
        cidx_arr = pc.index_in(dcol, value_set=cdoc)
        cidx = cidx_arr.fill_null(-1).to_numpy().astype(np.int64)
        bad = (cidx < 0) & ~is_pos
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"scores.parquet: candidate doc '{dcol[row]}' (query '{qcol[row]}') is not in the corpus")

        # doc_id order for tie-breaks; duplicate (query, doc) rows are an error
        denc = pc.dictionary_encode(dcol)
        dict_order = pc.sort_indices(denc.dictionary).to_numpy()
        dict_code = np.empty(len(dict_order), dtype=np.int64)
        dict_code[dict_order] = np.arange(len(dict_order))
        doc_code = dict_code[denc.indices.to_numpy().astype(np.int64)] if len(dcol) else np.zeros(0, np.int64)

        order = np.lexsort((doc_code, rank, -t32.astype(np.float64), qidx))
        pair = qidx[order] * max(len(dict_order), 1) + doc_code[order]
        pair_sorted = np.sort(pair)
        dup = np.flatnonzero(pair_sorted[1:] == pair_sorted[:-1])
        if dup.size:
            key = pair_sorted[dup[0]]
            row = order[int(np.flatnonzero(pair == key)[0])]
            raise InputError(
                f"scores.parquet: query '{qcol[row]}' has doc '{dcol[row]}' twice")

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

        counts = np.bincount(self.qidx, minlength=nq)
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

        # reference positive score per query (float32, as recorded in the tables)
        pq = self.qidx[self.is_pos]
        pt = self.t64[self.is_pos]
        self.npos = np.bincount(pq, minlength=nq).astype(np.int64)
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

        # structural reasons: known positive, same text as a positive; near-dup filled lazily
        self.struct = np.full(len(order), -1, dtype=np.int8)
        self.struct[self.is_pos] = _KP
        self._same_text()
        self.neardup_known = np.zeros(len(order), dtype=bool)
        # score rules do not depend on depth: once for every row
        with np.errstate(invalid="ignore"):
            self.score_reason = score_reasons(self.t64, self.ref[self.qidx], opts)

    def _same_text(self) -> None:
        """Text group per corpus doc (those referenced, or the whole corpus for random draws)."""
        opts = self.opts
        if opts.random_negatives > 0:
            docs = np.arange(self.ncorpus, dtype=np.int64)
        else:
            docs = np.unique(self.cidx[self.cidx >= 0])
        self.group = np.full(self.ncorpus, -1, dtype=np.int64)
        if docs.size:
            sub = self.corpus.take(pa.array(docs))
            titles = (_string_column(sub, "title") if "title" in sub.column_names
                      else pa.nulls(len(sub), pa.string()))
            keys = text_keys(titles, _string_column(sub, "text"))
            self.group[docs] = pc.dictionary_encode(keys).indices.to_numpy().astype(np.int64)
        rgroup = np.where(self.cidx >= 0, self.group[np.maximum(self.cidx, 0)], -1)
        ngroups = int(self.group.max()) + 1 if self.group.size else 0
        valid = rgroup >= 0
        key = self.qidx * max(ngroups, 1) + rgroup
        pos_keys = np.unique(key[self.is_pos & valid])
        same = valid & ~self.is_pos & np.isin(key, pos_keys)
        self.struct[same] = _ST

    # ---- near duplicates (lazy, batched) ----

    def _vectors(self, cidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sorted unique corpus indices, their normalised vectors)."""
        uniq = np.unique(cidx)
        ids = self.cdoc.take(pa.array(uniq)).to_pylist()
        vecs = np.asarray(self.doc_vectors(ids))
        if vecs.ndim != 2 or vecs.shape[0] != len(ids):
            raise InputError(
                f"doc_vectors returned shape {vecs.shape} for {len(ids)} documents (expected n x d)")
        vecs = _normalise_rows(vecs)
        return uniq, vecs

    def _near_dup_rows(self, rows: np.ndarray, queries: np.ndarray) -> None:
        """Compute the near-duplicate flag of candidate `rows` (sorted indices), one vector look-up
        for all of them and the positives of `queries`."""
        rows = rows[~self.neardup_known[rows]]
        if rows.size == 0 or self.doc_vectors is None:
            self.neardup_known[rows] = True
            return
        pos_rows = np.concatenate([
            np.arange(self.starts[q], self.starts[q + 1])[self.is_pos[self.starts[q]:self.starts[q + 1]]]
            for q in queries])
        pos_rows = pos_rows[self.cidx[pos_rows] >= 0]
        uniq, vecs = self._vectors(np.concatenate([self.cidx[rows], self.cidx[pos_rows]]))
        thr = self.opts.dedup_threshold
        rq = self.qidx[rows]
        pq = self.qidx[pos_rows]
        # rows and pos_rows are both sorted by query: split into per-query runs
        r_bounds = np.searchsorted(rq, queries, side="left"), np.searchsorted(rq, queries, side="right")
        p_bounds = np.searchsorted(pq, queries, side="left"), np.searchsorted(pq, queries, side="right")
        for i in range(len(queries)):
            ra, rb = r_bounds[0][i], r_bounds[1][i]
            pa_, pb = p_bounds[0][i], p_bounds[1][i]
            if ra == rb or pa_ == pb:
                continue
            cv = vecs[np.searchsorted(uniq, self.cidx[rows[ra:rb]])]
            pv = vecs[np.searchsorted(uniq, self.cidx[pos_rows[pa_:pb]])]
            hit = (cv @ pv.T).max(axis=1) >= thr
            sub = rows[ra:rb][hit]
            sub = sub[self.struct[sub] < 0]
            self.struct[sub] = _ND
        self.neardup_known[rows] = True

    # ---- the per-query loop ----

    def run(self) -> FilterResult:
        opts = self.opts
        nq = self.nq
        depth_step = opts.depth_step or opts.depth
        N = opts.num_negatives
        sampling_drops = self.sampler.name != "top"

        self.depth_used = np.full(nq, opts.depth, dtype=np.int64)
        self.n_cand = np.zeros(nq, dtype=np.int64)
        self.n_hard = np.zeros(nq, dtype=np.int64)
        self.n_rand = np.zeros(nq, dtype=np.int64)
        neg_rows: list[np.ndarray] = []
        neg_tranks: list[np.ndarray] = []
        drop_rows: list[np.ndarray] = []
        drop_tranks: list[np.ndarray] = []
        drop_codes: list[np.ndarray] = []
        rand_q: list[int] = []
        rand_c: list[np.ndarray] = []

        q = 0
        while q < nq:
            # a chunk of queries holding about _CHUNK_ROWS rows
            q_end = int(np.searchsorted(self.starts, self.starts[q] + _CHUNK_ROWS, side="right"))
            q_end = min(max(q_end - 1, q + 1), nq)
            chunk = np.arange(q, q_end)
            if self.doc_vectors is not None:
                a, b = self.starts[q], self.starts[q_end]
                r = np.arange(a, b)
                m = (~self.is_pos[a:b]) & (self.rank[a:b] <= opts.depth) & (self.struct[a:b] < 0) \
                    & (self.npos[self.qidx[a:b]] > 0)
                self._near_dup_rows(r[m], chunk[self.npos[chunk] > 0])
            chunk_rand: list[int] = []
            for qi in chunk:
                qi = int(qi)
                a, b = int(self.starts[qi]), int(self.starts[qi + 1])
                cand = a + np.flatnonzero(~self.is_pos[a:b])  # teacher order
                crank = self.rank[cand]
                if self.npos[qi] == 0:
                    self.n_cand[qi] = int(np.count_nonzero(crank <= opts.depth))
                    continue
                cap = int(crank.max()) if cand.size else opts.depth
                if opts.max_depth is not None:
                    cap = min(cap, opts.max_depth)
                d = opts.depth
                while True:
                    rows = cand[crank <= d]
                    k = rows.size
                    trank = np.arange(1, k + 1, dtype=np.int64)
                    if self.doc_vectors is not None and not self.neardup_known[rows].all():
                        self._near_dup_rows(rows, np.array([qi]))
                    code = self.struct[rows].copy()
                    free = code < 0
                    if opts.range_min is not None or opts.range_max is not None:
                        win = free & outside_rank_window(trank, opts.range_min, opts.range_max)
                        code[win] = _WIN
                        free &= ~win
                    code[free] = self.score_reason[rows[free]]
                    elig = np.flatnonzero(code < 0)
                    if elig.size >= N or d >= cap:
                        break
                    d = min(d + depth_step, cap)
                self.depth_used[qi] = d
                self.n_cand[qi] = k
                if elig.size > N:
                    qid = self.qarr[qi].as_py()
                    picked = self.sampler.fn(
                        self.t64[rows[elig]], N, float(self.ref[qi]), opts,
                        lambda qid=qid: query_rng(opts.seed, "sample", qid), qid)
                    chosen = elig[picked]
                    if sampling_drops:
                        rest = np.setdiff1d(elig, chosen, assume_unique=True)
                        code[rest] = _NS
                else:
                    chosen = elig
                neg_rows.append(rows[chosen])
                neg_tranks.append(trank[chosen])
                self.n_hard[qi] = chosen.size
                # dropped: retrieved positives within depth (by retrieval rank), then candidates
                prow = a + np.flatnonzero(self.is_pos[a:b] & (self.rank[a:b] <= d))
                prow = prow[np.argsort(self.rank[prow], kind="stable")]
                dmask = code >= 0
                drop_rows.append(np.concatenate([prow, rows[dmask]]))
                drop_tranks.append(np.concatenate([np.zeros(prow.size, np.int64), trank[dmask]]))
                drop_codes.append(np.concatenate([np.full(prow.size, _KP, np.int8), code[dmask]]))
                if opts.random_negatives > 0:
                    chunk_rand.append(qi)
            if chunk_rand:
                for qi, docs in zip(chunk_rand, self._random_negatives(chunk_rand)):
                    rand_q.append(qi)
                    rand_c.append(docs)
                    self.n_rand[qi] = docs.size
            if self.progress is not None:
                self.progress(int(q_end - q))
            q = q_end

        return self._tables(neg_rows, neg_tranks, drop_rows, drop_tranks, drop_codes, rand_q, rand_c)

    # ---- random negatives (STAR) ----

    def _random_negatives(self, queries: list[int]) -> list[np.ndarray]:
        """K docs per query, uniform over the corpus minus the query's rows in scores, minus docs
        with the same text as a positive or (with vectors) a near-duplicate of one."""
        K = self.opts.random_negatives
        if self._corpus_order is None:
            self._corpus_order = pc.sort_indices(self.cdoc).to_numpy().astype(np.int64)
        states = []
        for qi in queries:
            a, b = int(self.starts[qi]), int(self.starts[qi + 1])
            seen = set(self.cidx[a:b][self.cidx[a:b] >= 0].tolist())
            prow = a + np.flatnonzero(self.is_pos[a:b])
            prow = prow[self.cidx[prow] >= 0]
            pgroups = set(self.group[self.cidx[prow]].tolist()) - {-1}
            rng = query_rng(self.opts.seed, "random", self.qarr[qi].as_py())
            states.append({"qi": qi, "seen": seen, "pgroups": pgroups, "prow": prow, "rng": rng,
                           "chosen": [], "pending": []})
        # draw by text until each query has K candidates, then check near-duplicates in one go
        while True:
            active = [s for s in states if len(s["chosen"]) + len(s["pending"]) < K
                      and len(s["seen"]) < self.ncorpus]
            for s in active:
                self._draw(s, K - len(s["chosen"]) - len(s["pending"]))
            pending = [s for s in states if s["pending"]]
            if not pending:
                break
            if self.doc_vectors is None:
                for s in pending:
                    s["chosen"].extend(s["pending"])
                    s["pending"] = []
                continue
            docs = np.concatenate([np.array(s["pending"], np.int64) for s in pending]
                                  + [self.cidx[s["prow"]] for s in pending])
            uniq, vecs = self._vectors(docs)
            for s in pending:
                pend = np.array(s["pending"], np.int64)
                if s["prow"].size:
                    cv = vecs[np.searchsorted(uniq, pend)]
                    pv = vecs[np.searchsorted(uniq, self.cidx[s["prow"]])]
                    ok = (cv @ pv.T).max(axis=1) < self.opts.dedup_threshold
                else:
                    ok = np.ones(pend.size, bool)
                s["chosen"].extend(pend[ok].tolist())
                s["pending"] = []
        return [np.array(s["chosen"], dtype=np.int64) for s in states]

    _corpus_order: np.ndarray | None = None

    def _draw(self, s: dict, need: int) -> None:
        """Add up to `need` text-accepted docs to s["pending"], drawing uniformly without
        replacement from the corpus docs not yet seen by this query."""
        rng, seen = s["rng"], s["seen"]
        remaining = self.ncorpus - len(seen)
        if remaining <= 4 * need + 64 or 2 * remaining < self.ncorpus:
            # few docs left: enumerate them (in doc_id order) and shuffle
            pool = self._corpus_order[~np.isin(self._corpus_order, np.fromiter(seen, np.int64, len(seen)))]
            draws = pool[rng.permutation(pool.size)]
        else:
            draws = self._corpus_order[rng.integers(0, self.ncorpus, size=2 * need + 8)]
        for c in draws.tolist():
            if need == 0:
                break
            if c in seen:
                continue
            seen.add(c)
            if self.group[c] in s["pgroups"]:
                continue
            s["pending"].append(c)
            need -= 1

    # ---- output tables ----

    def _tables(self, neg_rows, neg_tranks, drop_rows, drop_tranks, drop_codes, rand_q, rand_c):
        opts = self.opts
        nq = self.nq
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731

        # negatives: per query, hard ones by teacher rank, then random ones in draw order
        h_rows = cat(neg_rows, np.int64)
        h_tr = cat(neg_tranks, np.int64)
        h_q = self.qidx[h_rows]
        r_c = cat(rand_c, np.int64)
        r_q = np.repeat(np.array(rand_q, np.int64), [c.size for c in rand_c]) if rand_c else np.zeros(0, np.int64)
        qall = np.concatenate([h_q, r_q])
        is_rand = np.concatenate([np.zeros(h_q.size, bool), np.ones(r_q.size, bool)])
        perm = np.lexsort((np.arange(qall.size), is_rand, qall))  # stable within each part
        orig_h = self.orig[h_rows]

        def mix(hard: pa.Array, rand: pa.Array) -> pa.Array:
            return pa.concat_arrays([hard, rand]).take(pa.array(perm))

        def masked(values: np.ndarray, mask: np.ndarray, typ) -> pa.Array:
            return pa.array(values, type=typ, mask=mask)

        ranks_all = np.concatenate([h_tr, np.zeros(r_q.size, np.int64)])[perm]
        rrank_all = np.concatenate([self.rank[h_rows], np.zeros(r_q.size, np.int64)])[perm]
        tscore_all = np.concatenate([self.t32[h_rows], np.zeros(r_q.size, np.float32)])[perm]
        rmask = is_rand[perm]
        negatives = pa.table({
            "query_id": self.qarr.take(pa.array(qall[perm])),
            "doc_id": mix(self.dcol.take(pa.array(orig_h)), self.cdoc.take(pa.array(r_c))),
            "rank": masked(ranks_all.astype(np.int32), rmask, pa.int32()),
            "retrieval_rank": masked(rrank_all.astype(np.int32), rmask, pa.int32()),
            "teacher_score": masked(tscore_all, rmask, pa.float32()),
            "positive_score": pa.array(self.ref32[qall[perm]], pa.float32()),
            "source": mix(self.scol.take(pa.array(orig_h)), pa.repeat(pa.scalar("random", pa.string()), r_q.size)),
            "is_random": pa.array(rmask, pa.bool_()),
            "method": pa.repeat(pa.scalar(opts.method, pa.string()), qall.size),
        }, schema=NEGATIVES_SCHEMA)

        d_rows = cat(drop_rows, np.int64)
        d_tr = cat(drop_tranks, np.int64)
        d_code = cat(drop_codes, np.int8)
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
