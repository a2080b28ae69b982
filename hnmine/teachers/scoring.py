"""Teacher scores of (query, document) pairs: the missed positives added, bi-encoder dot products over
cached vectors, and the ensemble's standardisation. Pure functions over arrays and tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hnmine.errors import RunDirError
from hnmine.schemas import CANDIDATE_SCHEMA


def standardise(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return (values - values.mean()) / (std if std > 0 else 1.0)


def add_missed_positives(candidates: pa.Table, qrels: pa.Table) -> pa.Table:
    """Append a row per (query, positive) that retrieval did not return, so every positive is scored."""
    pos = qrels.filter(qrels.column("is_positive")).select(["query_id", "doc_id"])
    pos = pos.append_column("_order", pa.array(np.arange(pos.num_rows, dtype=np.int64)))
    # An anti-join in Arrow: no Python tuple per candidate (10 million of them at scale); qrels order kept.
    missed = pos.join(candidates.select(["query_id", "doc_id"]), keys=["query_id", "doc_id"], join_type="left anti")
    missed = missed.sort_by("_order")
    missed_q, missed_d = missed.column("query_id").to_pylist(), missed.column("doc_id").to_pylist()
    n = len(missed_q)
    extra = pa.table(
        {
            "query_id": pa.array(missed_q, pa.string()),
            "doc_id": pa.array(missed_d, pa.string()),
            "rank": pa.nulls(n, pa.int32()),
            "score": pa.nulls(n, pa.float32()),
            "source": pa.array(["qrels"] * n, pa.string()),
            "is_positive": pa.array([True] * n, pa.bool_()),
            "dense_score": pa.nulls(n, pa.float32()),
            "bm25_score": pa.nulls(n, pa.float32()),
        },
        schema=CANDIDATE_SCHEMA,
    )
    return pa.concat_tables([candidates.cast(CANDIDATE_SCHEMA), extra])


def rows_of(values: pa.ChunkedArray, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Row of each value in `ids` (every value is there: candidates come from the corpus and queries)."""
    rows = pc.index_in(values, value_set=ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)
    if rows.null_count:
        missing = values.filter(pc.is_null(rows))[0]
        raise RunDirError(f"the candidates name '{missing}', which is not in the run's inputs; rerun the retrieve stage")
    return rows.to_numpy(zero_copy_only=False).astype(np.int64)


def dot_scores(table: pa.Table, query_vectors: np.ndarray, query_ids, doc_vectors: np.ndarray, doc_ids) -> np.ndarray:
    """query_vectors[row of query] · doc_vectors[row of doc] for every row of `table`, in bounded memory."""
    if query_vectors.shape[1] != doc_vectors.shape[1]:
        from hnmine.errors import ModelError

        raise ModelError(f"query vectors have {query_vectors.shape[1]} dimensions, document vectors {doc_vectors.shape[1]}")
    qi = rows_of(table.column("query_id"), query_ids)
    di = rows_of(table.column("doc_id"), doc_ids)
    out = np.empty(table.num_rows, dtype=np.float32)
    step = 1 << 16  # gather and dot in blocks
    for s in range(0, table.num_rows, step):
        out[s : s + step] = np.einsum("ij,ij->i", np.asarray(query_vectors[qi[s : s + step]]), np.asarray(doc_vectors[di[s : s + step]]))
    return out
