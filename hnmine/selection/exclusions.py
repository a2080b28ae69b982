"""Pairs that may never be negatives although the scores do not mark them positive.

Two query ids with the same text are one question asked twice: a document that is the positive of one
must not be the negative of the other, or the training data holds the same anchor text with that
document once as a positive and once as a negative (a contradiction no loss can learn). Query texts
are compared as the same-text rule compares documents (hnmine.methods.rules.text_keys: Unicode NFC,
whitespace collapsed, case kept).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from hnmine.methods.rules import SAME_TEXT_QUERY_POSITIVE, text_keys
from hnmine.selection.arrays import string_column

EXCLUDED_SCHEMA = pa.schema([("query_id", pa.string()), ("doc_id", pa.string()), ("reason", pa.string())])


def same_text_groups(queries: pa.Table) -> list[list[str]]:
    """The query ids of every text that two or more queries share, in table order."""
    if queries.num_rows < 2:
        return []
    keys = text_keys(pa.nulls(queries.num_rows, pa.string()), string_column(queries, "text")).to_pylist()
    by_text: dict[str, list[str]] = {}
    for query_id, key in zip(string_column(queries, "query_id").to_pylist(), keys):
        by_text.setdefault(key, []).append(query_id)
    return [ids for ids in by_text.values() if len(ids) > 1]


def same_text_query_positives(queries: pa.Table, positives: pa.Table) -> pa.Table:
    """(query_id, doc_id, reason) for each query and each positive of another query with the same text
    that is not a positive of its own (`positives`: query_id, doc_id)."""
    groups = same_text_groups(queries)
    if not groups or positives.num_rows == 0:
        return EXCLUDED_SCHEMA.empty_table()
    members = pa.array(sorted({q for group in groups for q in group}), pa.string())
    pos = positives.filter(pc.is_in(string_column(positives, "query_id"), value_set=members))
    own: dict[str, set[str]] = {}
    for q, d in zip(string_column(pos, "query_id").to_pylist(), string_column(pos, "doc_id").to_pylist()):
        own.setdefault(q, set()).add(d)
    rows: dict[str, list[str]] = {"query_id": [], "doc_id": []}
    for group in groups:
        shared = sorted(set().union(*(own.get(q, set()) for q in group)))
        for q in group:
            for d in shared:
                if d not in own.get(q, ()):
                    rows["query_id"].append(q)
                    rows["doc_id"].append(d)
    reason = [SAME_TEXT_QUERY_POSITIVE] * len(rows["query_id"])
    return pa.table({**rows, "reason": reason}, schema=EXCLUDED_SCHEMA)
