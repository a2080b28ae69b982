"""Random negatives (STAR): more negatives drawn uniformly from the corpus.

For each query with positives: `count` documents, uniform without replacement over the corpus
minus the query's rows in scores.parquet and its excluded pairs (a document judged relevant, a positive
of a query with the same text), never with the same text as one of its positives nor
(with vectors) a near duplicate of one.

Draw j of a query is the corpus document at position floor(u_j * |corpus|) in doc_id order, u_j
a hash of (seed, query id, j) (hnmine.methods.samplers.uniform01); rejected and repeated draws
are skipped. A query with few documents left to draw from (tiny corpora), or still short after
_ROUNDS rounds, takes the rest in a hashed order instead. Nothing depends on query order,
batching or corpus row order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow.compute as pc

from hnmine.methods.rules import near_duplicate_of_positive
from hnmine.methods.samplers import query_seed, uniform01
from hnmine.selection.arrays import (
    concatenated_ranges,
    positions_in_segments,
    sorted_contains,
)
from hnmine.selection.prepare import PreparedRows
from hnmine.selection.structural import CosineToPositives, has_text_of_a_positive

_ROUNDS = 32  # rounds of hashed draws before a short query takes the rest in hashed order
_REST_COUNTER = 1 << 40  # counters of the "rest" order, far from those of the draws


@dataclass
class _Draws:
    """The state of one `RandomNegatives.draw` call (queries: sorted query indices)."""

    queries: np.ndarray
    need: np.ndarray  # still to draw, per query
    excluded: np.ndarray  # sorted (query * n_corpus + corpus row) keys that may not be drawn
    query: list[np.ndarray] = field(default_factory=list)  # accepted draws, in draw order
    corpus_row: list[np.ndarray] = field(default_factory=list)


class RandomNegatives:
    """Random negatives of a filter run, accumulated over calls of `draw`."""

    def __init__(self, rows: PreparedRows, count: int, seed: int, cosine: CosineToPositives | None, dedup_threshold: float | None) -> None:
        self.rows = rows
        self.count = count
        self.cosine = cosine
        self.dedup_threshold = dedup_threshold
        self.seed = np.array([query_seed(seed, "random", q) for q in rows.query_ids.to_pylist()], np.uint64)
        self.corpus_order = pc.sort_indices(rows.corpus_doc_ids).to_numpy().astype(np.int64)
        self.query: list[np.ndarray] = []  # (query, corpus row) pairs, in draw order
        self.corpus_row: list[np.ndarray] = []
        self.n_random = np.zeros(rows.n_queries, dtype=np.int64)

    def draw(self, queries: np.ndarray) -> None:
        """Draw the random negatives of `queries` (sorted query indices, with positives)."""
        if queries.size == 0:
            return
        rows, nc = self.rows, self.rows.n_corpus
        # every row of the query in scores.parquet is excluded
        first = rows.query_start[queries]
        own = concatenated_ranges(first, rows.query_start[queries + 1] - first)
        own = own[rows.corpus_row[own] >= 0]
        # every pair that may never be a negative (a judged-relevant document, a positive of a query with the
        # same text) is excluded too: the keys of other queries never match a draw of these
        taken = np.concatenate([rows.query[own] * nc + rows.corpus_row[own], rows.excluded_keys])
        state = _Draws(queries, np.full(queries.size, self.count, dtype=np.int64), np.sort(taken))
        remaining = nc - np.bincount(np.searchsorted(queries, rows.query[own]), minlength=queries.size)
        few_left = (remaining <= 4 * self.count + 64) | (2 * remaining < nc)
        self._hashed_rounds(state, np.flatnonzero(~few_left & (state.need > 0)))
        for i in np.flatnonzero(state.need > 0).tolist():
            self._rest_in_hashed_order(state, i)
        if state.query:
            self.query.append(np.concatenate(state.query))
            self.corpus_row.append(np.concatenate(state.corpus_row))
            np.add.at(self.n_random, self.query[-1], 1)

    def _hashed_rounds(self, state: _Draws, active: np.ndarray) -> None:
        """Draw 2 * need + 4 per active query and round, until none needs more (or _ROUNDS)."""
        nc = self.rows.n_corpus
        counter = np.zeros(state.queries.size, dtype=np.int64)
        for _ in range(_ROUNDS):
            if active.size == 0:
                break
            m = 2 * state.need[active] + 4
            owner = np.repeat(active, m)
            j = counter[owner] + positions_in_segments(m)
            counter[active] += m
            u = uniform01(self.seed[state.queries[owner]], j)
            docs = self.corpus_order[np.minimum((u * nc).astype(np.int64), nc - 1)]
            taken = self._accept(state, owner, docs)
            state.excluded = np.sort(np.concatenate([state.excluded, taken]))
            active = active[state.need[active] > 0]

    def _rest_in_hashed_order(self, state: _Draws, i: int) -> None:
        """Query number i of the call: every document it may still get, in a hashed order."""
        nc = self.rows.n_corpus
        q = int(state.queries[i])
        lo, hi = np.searchsorted(state.excluded, [q * nc, (q + 1) * nc])
        free = np.flatnonzero(~np.isin(self.corpus_order, state.excluded[lo:hi] - q * nc))
        if free.size == 0:
            return
        noise = uniform01(np.full(free.size, self.seed[q], np.uint64), _REST_COUNTER + free)
        pool = self.corpus_order[free[np.argsort(noise, kind="stable")]]
        self._accept(state, np.full(pool.size, i, dtype=np.int64), pool)

    def _accept(self, state: _Draws, owner: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """Keep, per query and in draw order, the first need[owner] acceptable `docs` (owner:
        query number in the call, grouped); record them, lower `need`; return their keys."""
        query = state.queries[owner]
        key = query * self.rows.n_corpus + docs
        ok = ~sorted_contains(state.excluded, key)
        _, first = np.unique(key, return_index=True)  # first occurrence among these draws
        once = np.zeros(key.size, dtype=bool)
        once[first] = True
        ok &= once
        if ok.any():
            idx = np.flatnonzero(ok)
            ok[idx[has_text_of_a_positive(self.rows, query[idx], docs[idx])]] = False
        if ok.any() and self.cosine is not None:
            idx = np.flatnonzero(ok)
            cosine = self.cosine.max_cosine(query[idx], docs[idx])
            ok[idx[near_duplicate_of_positive(cosine, self.dedup_threshold)]] = False
        # the first need[owner] survivors per query, in draw order
        ok_count = np.cumsum(ok)
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        before = np.concatenate([[0], ok_count])[starts]
        segment = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, owner.size]))
        take = ok & (ok_count - before[segment] <= state.need[owner])
        state.query.append(query[take])
        state.corpus_row.append(docs[take])
        np.subtract.at(state.need, owner[take], 1)
        return key[take]
