"""Choosing each query's hard negatives: the depth loop and the sampler.

Most queries have enough eligible candidates at the initial depth; `select_queries` does those
vectorised, many queries at once. A query left short looks deeper, one query at a time
(`look_deeper`). Both paths apply the rules through CandidateReasons.codes, pick through
`_choose` and record through SelectionRecord.add, so they differ only in how many queries and
depths they handle at once: `look_deeper` gives any query the outcome `select_queries` gives it
(tests/test_filter_properties.py compares the two on every query).
"""

from __future__ import annotations

import numpy as np

from hnmine.errors import OptionError
from hnmine.methods import get_sampler
from hnmine.methods.rules import NOT_SAMPLED, REASON_CODE
from hnmine.methods.samplers import draw_order, query_seed
from hnmine.selection.arrays import offsets
from hnmine.selection.options import FilterOptions
from hnmine.selection.prepare import PreparedRows
from hnmine.selection.reasons import NOT_DROPPED, CandidateReasons
from hnmine.selection.record import SelectionRecord


class Selector:
    """Selection for one filter run: prepared rows, their reason codes, the effective options."""

    def __init__(self, rows: PreparedRows, reasons: CandidateReasons, opts: FilterOptions) -> None:
        if opts.sampling is None or opts.depth_step is None:  # a caller's mistake, not a user's
            raise OptionError("selection needs effective options (hnmine.methods.resolve_options)")
        self.rows = rows
        self.reasons = reasons
        self.opts = opts
        self.depth_step: int = opts.depth_step
        self.sampler = get_sampler(opts.sampling)
        self.sample_seed = np.zeros(rows.n_queries, dtype=np.uint64)
        if self.sampler.log_weights is not None:  # only a random sampler needs seeds
            self.sample_seed = np.array([query_seed(opts.seed, "sample", q) for q in rows.query_ids.to_pylist()], np.uint64)

    def new_record(self) -> SelectionRecord:
        return SelectionRecord(self.rows, self.opts.depth)

    def select_queries(self, first: int, last: int, record: SelectionRecord) -> None:
        """Queries first..last-1 with positives, vectorised at the initial depth; those left
        short that could look deeper go through `look_deeper`."""
        rows, opts = self.rows, self.opts
        depth, n = opts.depth, last - first
        lo, hi = rows.cand_start[first], rows.cand_start[last]
        cand, cand_rank = rows.cand_rows[lo:hi], rows.cand_rank[lo:hi]
        cand_query = rows.query[cand] - first  # 0..n-1
        has_positive = rows.n_positives[first:last] > 0
        within = (cand_rank <= depth) & has_positive[cand_query]
        in_depth, query = cand[within], cand_query[within]  # grouped by query, teacher order
        teacher_rank = np.arange(1, in_depth.size + 1) - offsets(query, n)[query]
        code = self.reasons.codes(in_depth, teacher_rank)
        n_eligible = np.bincount(query[code == NOT_DROPPED], minlength=n)
        can_look_deeper = self._depth_cap(cand_rank, cand_query, n) > depth
        short = has_positive & (n_eligible < opts.num_negatives) & can_look_deeper
        done = has_positive & ~short
        keep = done[query]
        in_depth, teacher_rank, code = in_depth[keep], teacher_rank[keep], code[keep]
        chosen, spare = self._choose(in_depth, code)
        record.add(first + np.flatnonzero(done), depth, in_depth, teacher_rank, code, chosen, spare)
        for i in np.flatnonzero(short).tolist():
            self.look_deeper(first + i, record)

    def look_deeper(self, query: int, record: SelectionRecord) -> None:
        """One query (with positives), from the initial depth: while fewer than num_negatives
        candidates are eligible, depth += depth_step, up to max_depth or the deepest rank the
        query has; then pick. Any query may be sent here."""
        opts = self.opts
        cand, cand_rank = self.rows.candidates_of(query)
        deepest = int(cand_rank.max()) if cand.size else opts.depth
        cap = deepest if opts.max_depth is None else min(deepest, opts.max_depth)
        depth = opts.depth
        while True:
            in_depth = cand[cand_rank <= depth]
            teacher_rank = np.arange(1, in_depth.size + 1)
            code = self.reasons.codes(in_depth, teacher_rank)
            if np.count_nonzero(code == NOT_DROPPED) >= opts.num_negatives or depth >= cap:
                break
            depth = min(depth + self.depth_step, cap)
        chosen, spare = self._choose(in_depth, code)
        record.add(np.array([query]), depth, in_depth, teacher_rank, code, chosen, spare)

    def _depth_cap(self, cand_rank: np.ndarray, cand_query: np.ndarray, n: int) -> np.ndarray:
        """How deep each of n queries can look: its deepest retrieval rank (0 without
        candidates), capped at max_depth."""
        deepest = np.zeros(n, dtype=np.int64)
        np.maximum.at(deepest, cand_query, cand_rank)
        return deepest if self.opts.max_depth is None else np.minimum(deepest, self.opts.max_depth)

    def _choose(self, cand_rows: np.ndarray, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The kept ones among candidate rows grouped by query (teacher order): the first
        num_negatives eligible, or the sampler's num_negatives where more are eligible. A
        sampler other than `top` marks the eligible ones it did not draw NOT_SAMPLED (in `code`).

        Also, with --max-negative-reuse, the spares: eligible ones not kept that the sampler would take next
        (their place in that order; -1 for the others), from which hnmine.selection.reuse replaces a negative
        the cap takes away.
        """
        n = self.opts.num_negatives
        eligible = np.flatnonzero(code == NOT_DROPPED)
        chosen = np.zeros(code.size, dtype=bool)
        spare = np.full(code.size, -1, dtype=np.int64)
        if eligible.size <= n:  # no query has more than n eligible (a short query): keep all
            chosen[eligible] = True
            return chosen, spare
        query = self.rows.query[cand_rows[eligible]]
        first_of_query = np.flatnonzero(np.concatenate([[True], query[1:] != query[:-1]]))
        count = np.diff(np.append(first_of_query, query.size))
        position = np.arange(query.size) - np.repeat(first_of_query, count)  # among eligible
        chosen[eligible] = position < n
        drawn = np.repeat(count, count) > n
        keep_spares = self.opts.max_negative_reuse is not None
        if drawn.any() and self.sampler.name != "top":
            order = self._draw(query[drawn], position[drawn], cand_rows[eligible[drawn]])
            picked = (order >= 0) & (order < n)
            chosen[eligible[drawn]] = picked
            code[eligible[drawn][~picked]] = REASON_CODE[NOT_SAMPLED]
            if keep_spares:
                spare[eligible[drawn]] = np.where(order >= n, order, -1)
        elif keep_spares:
            spare[eligible] = np.where(position >= n, position, -1)
        return chosen, spare

    def _draw(self, query: np.ndarray, position: np.ndarray, cand_rows: np.ndarray) -> np.ndarray:
        """The sampler's order of the eligible `cand_rows` (grouped by query, teacher order): hnmine.methods.samplers.draw_order."""
        rows = self.rows
        return draw_order(
            self.sampler,
            query,
            position,
            rows.score[cand_rows],
            rows.positive_score[query],
            self.sample_seed[query],
            self.opts,
            lambda q: str(rows.query_ids[int(q)]),
        )
