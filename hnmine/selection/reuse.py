"""--max-negative-reuse K: no document is a negative of more than K queries.

The selection chooses each query's negatives on its own (hnmine.selection.select). This step sees every query
at once: it takes back the uses of a document beyond K and gives the queries that lost one another of their
spares (candidates eligible at the query's depth that it did not keep, in the order its sampler would have
drawn them next: teacher order for `top`).

Which queries keep an over-used document: those that rank it best (lowest teacher rank), then the first in
query order. Then, for each query left short (in query order), augmenting paths, breadth first: a free spare
if it has one (the first in its order), else a spare held by K queries one of which can move to a spare of
its own, and so on. This is Ford-Fulkerson on the flow network source → query (capacity: what the selection
kept) → document (1 per eligible pair) → sink (K): it ends at a maximum flow, so the cap leaves as many
negatives as any choice could. Where some choice keeps every query full, this one does too; a greedy pass in
query order does not (q1 takes d1, the only document of q2, although q1 had d2 free: tests/test_reuse_cap.py).
A query for which no augmenting path is found is not tried again: later paths never create one for it
(they run outside every vertex it can reach).

Deterministic: fixed orders everywhere (query order, teacher rank, the sampler's hashed order).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hnmine.coverage import full_queries
from hnmine.methods.rules import NEGATIVE_REUSE_CAP, NOT_SAMPLED
from hnmine.schemas import DROPPED_SCHEMA, NEGATIVES_SCHEMA
from hnmine.selection.arrays import offsets
from hnmine.selection.options import FilterOptions
from hnmine.selection.tables import FilterResult


class _Flow:
    """Which documents each query holds, as the augmenting paths move them; built lazily from the arrays, so
    only the queries and documents a path reaches become Python objects."""

    def __init__(self, k: int, n_queries: int, n_docs: int, neg_q, neg_d, released, spare_q, spare_d) -> None:
        self.k = k
        self.neg_d, self.neg_q, self.released = neg_d, neg_q, released
        self.neg_start = offsets(neg_q, n_queries)
        self.spare_d, self.spare_start = spare_d, offsets(spare_q, n_queries)
        self.by_doc = np.argsort(neg_d, kind="stable")
        self.doc_start = offsets(neg_d[self.by_doc], n_docs)
        self.usage = np.bincount(neg_d[~released], minlength=n_docs).tolist()
        self._holds: dict[int, dict[int, None]] = {}
        self._holders: dict[int, set[int]] = {}
        self._pool: dict[int, list[int]] = {}

    def held(self) -> dict[int, dict[int, None]]:
        """The documents of every query a path reached (the others hold what their selection kept)."""
        return self._holds

    def holds(self, q: int) -> dict[int, None]:
        if q not in self._holds:
            a, b = self.neg_start[q], self.neg_start[q + 1]
            self._holds[q] = dict.fromkeys(self.neg_d[a:b][~self.released[a:b]].tolist())
        return self._holds[q]

    def holders(self, d: int) -> set[int]:
        if d not in self._holders:
            rows = self.by_doc[self.doc_start[d] : self.doc_start[d + 1]]
            self._holders[d] = set(self.neg_q[rows[~self.released[rows]]].tolist())
        return self._holders[d]

    def pool(self, q: int) -> list[int]:
        """What the query may hold, best first: what its selection kept, then its spares."""
        if q not in self._pool:
            kept = self.neg_d[self.neg_start[q] : self.neg_start[q + 1]]
            self._pool[q] = kept.tolist() + self.spare_d[self.spare_start[q] : self.spare_start[q + 1]].tolist()
        return self._pool[q]

    def move(self, q: int, take: int | None, give: int | None) -> None:
        for d, delta in ((take, 1), (give, -1)):
            if d is None:
                continue
            holders, held = self.holders(d), self.holds(q)
            if delta > 0:
                holders.add(q)
                held[d] = None
            else:
                holders.discard(q)
                del held[d]
            self.usage[d] += delta

    def augment(self, start: int) -> bool:
        """One more document for `start` along the shortest augmenting path (breadth first, each query's pool
        in its order); False when there is none."""
        taker: dict[int, int] = {}  # document -> the query that takes it on the path
        gives: dict[int, int | None] = {start: None}  # query on the path -> the document it gives up
        queue = deque([start])
        while queue:
            u = queue.popleft()
            held = self.holds(u)
            new = [d for d in self.pool(u) if d not in held and d not in taker]
            for d in new:
                taker[d] = u
                if self.usage[d] < self.k:
                    self._apply(d, taker, gives)
                    return True
            for d in new:
                for w in sorted(self.holders(d)):
                    if w not in gives:
                        gives[w] = d
                        queue.append(w)
        return False

    def _apply(self, d: int | None, taker: dict[int, int], gives: dict[int, int | None]) -> None:
        while d is not None:
            q = taker[d]
            self.move(q, d, gives[q])
            d = gives[q]


def cap_negative_reuse(result: FilterResult, opts: FilterOptions) -> FilterResult:
    """The selection of every query with no document a negative of more than opts.max_negative_reuse queries
    (a no-op without the option); `result.spare` is used up (None in the result)."""
    k = opts.max_negative_reuse
    if k is None or result.spare is None:
        return result
    neg, spare, summary = result.negatives, result.spare, result.query_summary
    hard = pc.invert(neg.column("is_random")).to_numpy(zero_copy_only=False)
    qarr = summary.column("query_id").combine_chunks()
    docs = pc.unique(pa.chunked_array(neg.column("doc_id").chunks + spare.column("doc_id").chunks, pa.string()).combine_chunks())
    neg_q, neg_d = _codes(neg, qarr, docs)
    spare_q, spare_d = _codes(spare, qarr, docs)
    neg_rank = neg.column("rank").to_numpy(zero_copy_only=False)
    hard_rows = np.flatnonzero(hard)
    usage = np.bincount(neg_d[hard_rows], minlength=len(docs))
    stats: dict[str, Any] = {"max_negative_reuse": k, "most_uses_before": int(usage.max()) if usage.size else 0}
    if not usage.size or usage.max() <= k:
        return _finish(result, opts, None, None, stats | _counts(0, 0, 0, 0, stats["most_uses_before"]))
    # each over-used document stays with the K queries that rank it best (then query order)
    order = hard_rows[np.lexsort((neg_q[hard_rows], neg_rank[hard_rows], neg_d[hard_rows]))]
    group = np.flatnonzero(np.r_[True, neg_d[order][1:] != neg_d[order][:-1]])
    place = np.arange(order.size) - np.repeat(group, np.diff(np.r_[group, order.size]))
    released = np.zeros(neg.num_rows, dtype=bool)
    released[order[place >= k]] = True
    flow = _Flow(k, len(qarr), len(docs), neg_q[hard_rows], neg_d[hard_rows], released[hard_rows], spare_q, spare_d)
    target = np.bincount(neg_q[hard_rows], minlength=len(qarr))
    for q in np.unique(neg_q[released]).tolist():
        while len(flow.holds(q)) < target[q] and flow.augment(q):
            pass
    final = flow.held()
    nd = max(len(docs), 1)
    final_keys = np.array(sorted(q * nd + d for q, held in final.items() for d in held), np.int64)
    neg_keys, spare_keys = neg_q * nd + neg_d, spare_q * nd + spare_d
    touched = np.zeros(len(qarr), dtype=bool)
    touched[list(final)] = True
    removed = hard_rows[touched[neg_q[hard_rows]] & ~np.isin(neg_keys[hard_rows], final_keys)]
    added = np.flatnonzero(touched[spare_q] & np.isin(spare_keys, final_keys) & ~np.isin(spare_keys, neg_keys[hard_rows]))
    short = sum(1 for q, held in final.items() if len(held) < target[q])
    after = max(flow.usage) if flow.usage else 0
    return _finish(result, opts, removed, added, stats | _counts(int(np.count_nonzero(usage > k)), removed.size, added.size, short, after))


def _counts(over: int, removed: int, added: int, short: int, after: int) -> dict[str, int]:
    return {
        "documents_over_cap": over,
        "negatives_taken_back": removed,
        "negatives_replaced": added,
        "queries_short_by_cap": short,
        "most_uses_after": after,
    }


def _codes(table: pa.Table, qarr: pa.Array, docs: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    q = pc.index_in(table.column("query_id"), value_set=qarr).to_numpy(zero_copy_only=False).astype(np.int64)
    d = pc.index_in(table.column("doc_id"), value_set=docs).to_numpy(zero_copy_only=False).astype(np.int64)
    return q, d


def _finish(
    result: FilterResult, opts: FilterOptions, removed: np.ndarray | None, added: np.ndarray | None, reuse: dict[str, Any]
) -> FilterResult:
    """The tables and stats with the negatives `removed` (rows of negatives) dropped as negative_reuse_cap and
    the spares `added` (rows of spare) kept in their place."""
    stats = dict(result.stats)
    stats["negative_reuse"] = reuse
    stats[f"dropped_{NEGATIVE_REUSE_CAP}"] = 0 if removed is None else int(removed.size)
    if removed is None or added is None or (removed.size == 0 and added.size == 0):
        return dataclasses.replace(result, stats=stats, spare=None)
    neg, spare, qarr = result.negatives, result.spare, result.query_summary.column("query_id").combine_chunks()
    assert spare is not None
    taken = neg.take(pa.array(removed))
    keep = np.ones(neg.num_rows, dtype=bool)
    keep[removed] = False
    promoted = spare.take(pa.array(added))
    method = neg.column("method")[0].as_py() if neg.num_rows else ""
    new_rows = promoted.select([f.name for f in NEGATIVES_SCHEMA if f.name not in ("is_random", "method")])
    new_rows = new_rows.append_column("is_random", pa.array(np.zeros(added.size, bool), pa.bool_()))
    new_rows = new_rows.append_column("method", pa.repeat(pa.scalar(method, pa.string()), added.size))
    negatives = _in_query_order(pa.concat_tables([neg.filter(pa.array(keep)), new_rows.cast(NEGATIVES_SCHEMA)]), qarr)
    capped = taken.select([f.name for f in DROPPED_SCHEMA if f.name != "reason"])
    capped = capped.append_column("reason", pa.repeat(pa.scalar(NEGATIVE_REUSE_CAP, pa.string()), removed.size)).cast(DROPPED_SCHEMA)
    dropped = _without_pairs(result.dropped, promoted.filter(promoted.column("not_sampled")), NOT_SAMPLED)
    stats[f"dropped_{NOT_SAMPLED}"] = stats.get(f"dropped_{NOT_SAMPLED}", 0) - (result.dropped.num_rows - dropped.num_rows)
    dropped = _in_query_order(pa.concat_tables([dropped, capped]), qarr)
    summary = _summary(result.query_summary, negatives, qarr, opts)
    stats.update(_coverage_stats(summary))
    return dataclasses.replace(result, negatives=negatives, dropped=dropped, query_summary=summary, stats=stats, spare=None)


def _without_pairs(dropped: pa.Table, pairs: pa.Table, reason: str) -> pa.Table:
    """dropped.parquet less its `reason` rows of the (query_id, doc_id) `pairs`."""
    if pairs.num_rows == 0:
        return dropped
    gone = set(zip(pairs.column("query_id").to_pylist(), pairs.column("doc_id").to_pylist()))
    rows = zip(dropped.column("query_id").to_pylist(), dropped.column("doc_id").to_pylist(), dropped.column("reason").to_pylist())
    return dropped.filter(pa.array([not (r == reason and (q, d) in gone) for q, d, r in rows], pa.bool_()))


def _in_query_order(table: pa.Table, qarr: pa.Array) -> pa.Table:
    """negatives.parquet's and dropped.parquet's order: by query; within one, rows without a teacher rank
    (known positives, by retrieval rank) first, then by teacher rank (random negatives: after the mined ones)."""
    q = pc.index_in(table.column("query_id"), value_set=qarr).to_numpy(zero_copy_only=False)
    rank = table.column("rank")
    no_rank = pc.is_null(rank).to_numpy(zero_copy_only=False)
    value = np.where(no_rank, pc.fill_null(table.column("retrieval_rank"), 0).to_numpy(), pc.fill_null(rank, 0).to_numpy())
    later = ~no_rank if "reason" in table.column_names else table.column("is_random").to_numpy(zero_copy_only=False)
    return table.take(pa.array(np.lexsort((value, later, q))))


def _summary(summary: pa.Table, negatives: pa.Table, qarr: pa.Array, opts: FilterOptions) -> pa.Table:
    """query_summary.parquet with each query's count, shortfall, status and export after the cap."""
    n = np.bincount(pc.index_in(negatives.column("query_id"), value_set=qarr).to_numpy(zero_copy_only=False), minlength=len(qarr))
    shortfall = np.maximum(0, opts.num_negatives + opts.random_negatives - n)
    status = np.array(summary.column("status").to_pylist(), dtype=object)
    counted = np.isin(status, ["ok", "short"])
    status[counted] = np.where(shortfall[counted] > 0, "short", "ok")
    columns = {
        "n_negatives": pa.array(n.astype(np.int32), pa.int32()),
        "shortfall": pa.array(shortfall.astype(np.int32), pa.int32()),
        "exported": pa.array(n >= opts.min_negatives, pa.bool_()),
        "status": pa.array(status.tolist(), pa.string()),
    }
    for name, values in columns.items():
        summary = summary.set_column(summary.column_names.index(name), name, values)
    return summary


def _coverage_stats(summary: pa.Table) -> dict[str, int]:
    n = summary.column("n_negatives").to_numpy(zero_copy_only=False)
    shortfall = summary.column("shortfall").to_numpy(zero_copy_only=False)
    return {
        "queries_full": int(np.count_nonzero(full_queries(shortfall))),
        "queries_short": int(np.count_nonzero(shortfall > 0)),
        "queries_without_negatives": int(np.count_nonzero(n == 0)),
        "negatives_total": int(n.sum()),
        "queries_exported": int(np.count_nonzero(summary.column("exported").to_numpy(zero_copy_only=False))),
    }
