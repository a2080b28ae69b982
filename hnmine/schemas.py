"""The schemas of the run's tables, in one place (docs/tables.md describes each; tests/test_docs.py ties the two)."""

from __future__ import annotations

import pyarrow as pa

CANDIDATE_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_id", pa.string()),
        ("rank", pa.int32()),
        ("score", pa.float32()),
        ("source", pa.string()),
        ("is_positive", pa.bool_()),
        ("dense_score", pa.float32()),
        ("bm25_score", pa.float32()),
    ]
)
