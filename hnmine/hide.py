"""The hidden-positive protocol: keep one known positive per query, hide the others.

For a query with several relevant documents, mining sees only one of them; the rest are written to
`inputs/hidden_qrels.parquet`. `hnmine eval --hidden` then counts how many mined negatives are
hidden relevant documents: a direct measure of the false-negative rate (docs/tables.md).

Which positive is kept: the one with the highest relevance grade; among equally graded ones, a
seeded random choice. The choice for a query depends only on (seed, query_id) and the set of its
tied documents, never on row order, so shuffling the qrels file changes nothing.
"""

from __future__ import annotations

import hashlib
import random

import pyarrow as pa

from hnmine.errors import InputError, MissingColumn

QRELS_COLUMNS = ("query_id", "doc_id", "relevance", "is_positive")


def query_rng(seed: int, query_id: str) -> random.Random:
    """A random generator for one query, from sha256 of (seed, query_id): independent of other queries."""
    digest = hashlib.sha256(f"{int(seed)}\x00{query_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def choose_kept(seed: int, query_id: str, graded: dict[str, int]) -> str:
    """The doc id kept as the known positive among `graded` (doc id -> relevance), non-empty."""
    best = max(graded.values())
    tied = sorted(d for d, r in graded.items() if r == best)
    if len(tied) == 1:
        return tied[0]
    return query_rng(seed, query_id).choice(tied)


def hide_positives(qrels: pa.Table, seed: int, min_relevance: int = 1) -> tuple[pa.Table, pa.Table]:
    """Split normalised qrels into (kept_qrels, hidden_qrels), both with the input's columns.

    qrels          query_id, doc_id, relevance (int), is_positive (recomputed here as
                   relevance >= min_relevance, so both tables agree with `min_relevance`)
    seed           seeds the tie-break between equally graded positives
    min_relevance  a row is a positive when relevance >= min_relevance

    Every query with at least one positive keeps exactly one positive document (the best graded);
    its other positives go to `hidden_qrels`. Non-positive rows stay in `kept_qrels`. Rows keep
    their input order inside each table. Raises MissingColumn / InputError for a malformed table.
    """
    for col in ("query_id", "doc_id", "relevance"):
        if col not in qrels.column_names:
            raise MissingColumn("qrels", col, qrels.column_names)
    qids = qrels.column("query_id").to_pylist()
    dids = qrels.column("doc_id").to_pylist()
    rels = qrels.column("relevance").to_pylist()
    for row, (q, d, r) in enumerate(zip(qids, dids, rels), start=1):
        if q is None or d is None or r is None:
            raise InputError(f"qrels: row {row}: null query_id, doc_id or relevance")

    # Per query: doc id -> best grade among its positive rows.
    graded: dict[str, dict[str, int]] = {}
    for q, d, r in zip(qids, dids, rels):
        if r >= min_relevance:
            docs = graded.setdefault(q, {})
            if r > docs.get(d, r - 1):
                docs[d] = r
    kept_doc = {q: choose_kept(seed, q, docs) for q, docs in graded.items()}

    is_pos = [r >= min_relevance for r in rels]
    # A positive row is kept when it names the chosen document (a duplicated judgment of that
    # document stays with it); every other positive row is hidden.
    hide_mask = [p and kept_doc[q] != d for q, d, p in zip(qids, dids, is_pos)]

    table = qrels
    is_pos_arr = pa.array(is_pos, pa.bool_())
    if "is_positive" in table.column_names:
        table = table.set_column(table.column_names.index("is_positive"), "is_positive", is_pos_arr)
    else:
        table = table.append_column("is_positive", is_pos_arr)
    if pa.types.is_integer(table.schema.field("relevance").type) and table.schema.field("relevance").type != pa.int32():
        table = table.set_column(table.column_names.index("relevance"), "relevance", table.column("relevance").cast(pa.int32()))
    hide_arr = pa.array(hide_mask, pa.bool_())
    keep_arr = pa.array([not h for h in hide_mask], pa.bool_())
    return table.filter(keep_arr), table.filter(hide_arr)
