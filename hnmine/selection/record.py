"""Bookkeeping of the selection: what each query kept and dropped, at which depth."""

from __future__ import annotations

import numpy as np

from hnmine.methods.rules import KNOWN_POSITIVE, REASON_CODE
from hnmine.selection.prepare import PreparedRows
from hnmine.selection.reasons import NOT_DROPPED

# The teacher rank recorded for a dropped known positive: positives have none (written as null).
NO_TEACHER_RANK = 0


class SelectionRecord:
    """Kept and dropped rows (sorted-row indices, with teacher ranks and reason codes), and per
    query: the depth used, the candidates within it and the hard negatives kept.

    Queries that are never recorded (no positive) keep the initial depth and the number of
    candidates within it.
    """

    def __init__(self, rows: PreparedRows, depth: int) -> None:
        self.rows = rows
        nq = rows.n_queries
        self.depth_used = np.full(nq, depth, dtype=np.int64)
        within = rows.cand_rank <= depth
        self.n_candidates = np.bincount(rows.query[rows.cand_rows[within]], minlength=nq).astype(np.int64)
        self.n_hard = np.zeros(nq, dtype=np.int64)
        self.negative_rows: list[np.ndarray] = []
        self.negative_rank: list[np.ndarray] = []  # teacher ranks
        self.dropped_rows: list[np.ndarray] = []
        self.dropped_rank: list[np.ndarray] = []  # NO_TEACHER_RANK for known positives
        self.dropped_code: list[np.ndarray] = []
        self.spare_rows: list[np.ndarray] = []  # --max-negative-reuse: eligible, not kept, in the sampler's order
        self.spare_rank: list[np.ndarray] = []  # teacher ranks
        self.spare_order: list[np.ndarray] = []  # place in the query's draw order
        self.spare_dropped: list[np.ndarray] = []  # recorded as dropped (not_sampled)

    def add(
        self,
        queries: np.ndarray,
        depth: int,
        cand_rows: np.ndarray,
        teacher_rank: np.ndarray,
        code: np.ndarray,
        chosen: np.ndarray,
        spare: np.ndarray | None = None,
    ) -> None:
        """Record the outcome of `queries` (sorted, each recorded once), all at `depth`.

        cand_rows, teacher_rank, code  every candidate of those queries within their depth,
                                       with its teacher rank and reason code (NOT_DROPPED:
                                       eligible, kept or unused)
        chosen                         the kept ones, a mask over cand_rows
        spare                          per row, its place in the sampler's order if it is a spare (-1: not)
        The queries' retrieved known positives within their depth are recorded as dropped.
        """
        query = self.rows.query[cand_rows]
        self.depth_used[queries] = depth
        self.n_candidates[queries] = _count_per_query(query, queries)
        self.n_hard[queries] = _count_per_query(query[chosen], queries)
        self.negative_rows.append(cand_rows[chosen])
        self.negative_rank.append(teacher_rank[chosen])
        dropped = code != NOT_DROPPED
        self.dropped_rows.append(cand_rows[dropped])
        self.dropped_rank.append(teacher_rank[dropped])
        self.dropped_code.append(code[dropped])
        if spare is not None:
            is_spare = spare >= 0
            self.spare_rows.append(cand_rows[is_spare])
            self.spare_rank.append(teacher_rank[is_spare])
            self.spare_order.append(spare[is_spare])
            self.spare_dropped.append(dropped[is_spare])
        known = self._known_positives_within(queries, depth)
        self.dropped_rows.append(known)
        self.dropped_rank.append(np.full(known.size, NO_TEACHER_RANK, np.int64))
        self.dropped_code.append(np.full(known.size, REASON_CODE[KNOWN_POSITIVE], np.int8))

    def _known_positives_within(self, queries: np.ndarray, depth: int) -> np.ndarray:
        """The positive rows of `queries` (sorted) with a retrieval rank within `depth`."""
        rows = self.rows
        if queries.size == 0:
            return np.zeros(0, dtype=np.int64)
        # the positives of queries[0]..queries[-1], less those of queries not recorded here
        prow = rows.pos_rows[rows.pos_start[queries[0]] : rows.pos_start[queries[-1] + 1]]
        prow = prow[rows.rank[prow] <= depth]
        recorded = queries[np.minimum(np.searchsorted(queries, rows.query[prow]), queries.size - 1)]
        return prow[recorded == rows.query[prow]]


def _count_per_query(query: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """How many of `query` (values among the sorted `queries`) are each of `queries`."""
    if queries.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.bincount(np.searchsorted(queries, query), minlength=queries.size)
