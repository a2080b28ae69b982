"""The schemas of the run's tables, in one place: what each stage writes and each reader may expect.

docs/tables.md describes each table (docs/finetune.md the fine-tune results); tests/test_docs.py ties the
docs to these schemas, and a finished run's tables to them. `SCHEMAS` maps each table's name in
hnmine.run_layout.LAYOUT to its schema. A scores table holds one more float32 column per teacher of an
ensemble (`teacher_<name>`), beyond SCORES_SCHEMA.
"""

from __future__ import annotations

import pyarrow as pa

CORPUS_SCHEMA = pa.schema([("doc_id", pa.string()), ("title", pa.string()), ("text", pa.string())])
QUERIES_SCHEMA = pa.schema([("query_id", pa.string()), ("text", pa.string())])
QRELS_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_id", pa.string()),
        ("relevance", pa.int32()),
        ("is_positive", pa.bool_()),
    ]
)
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
SCORES_SCHEMA = CANDIDATE_SCHEMA.append(pa.field("teacher_score", pa.float32()))
# A pre-mined dataset's lists (--premined), as the inputs stage read them: what the retrieve stage makes
# the candidates of, and the file's scores (null where it has none).
PREMINED_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_id", pa.string()),
        ("rank", pa.int32()),
        ("score", pa.float32()),
        ("is_positive", pa.bool_()),
    ]
)

# columns shared by negatives.parquet and dropped.parquet
_SELECTED_FIELDS = [
    ("query_id", pa.string()),
    ("doc_id", pa.string()),
    ("rank", pa.int32()),
    ("retrieval_rank", pa.int32()),
    ("teacher_score", pa.float32()),
    ("positive_score", pa.float32()),
    ("source", pa.string()),
]
NEGATIVES_SCHEMA = pa.schema(_SELECTED_FIELDS + [("is_random", pa.bool_()), ("method", pa.string())])
DROPPED_SCHEMA = pa.schema(_SELECTED_FIELDS + [("reason", pa.string())])
QUERY_SUMMARY_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("n_positives", pa.int32()),
        ("positive_score", pa.float32()),
        ("n_candidates", pa.int32()),
        ("depth_used", pa.int32()),
        ("n_negatives", pa.int32()),
        ("shortfall", pa.int32()),
        ("exported", pa.bool_()),
        ("status", pa.string()),
    ]
)
POSITIVES_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_id", pa.string()),
        ("teacher_score", pa.float32()),
        ("origin", pa.string()),
    ]
)
JUDGMENTS_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_id", pa.string()),
        ("relevance", pa.int32()),
        ("source", pa.string()),
        ("time", pa.string()),
        ("query_text_sha256", pa.string()),
        ("doc_text_sha256", pa.string()),
    ]
)
# One row per (arm, seed) of `hnmine finetune` (docs/finetune.md).
FINETUNE_RESULTS_SCHEMA = pa.schema(
    [
        ("arm", pa.string()),
        ("kind", pa.string()),  # untrained, in-batch, mined
        ("source", pa.string()),  # the run directory or training file (null for the baselines)
        ("seed", pa.int64()),  # null for the untrained model
        ("ndcg_at_10", pa.float64()),
        ("recall_at_100", pa.float64()),
        ("mrr_at_10", pa.float64()),
        ("train_pairs", pa.int64()),  # (anchor, positive) pairs the arm has
        ("train_rows", pa.int64()),  # rows trained on (pairs with enough negatives)
        ("pairs_left_out", pa.int64()),  # pairs with fewer than `negatives` hard negatives
        ("negatives", pa.int64()),  # hard negatives per row (0 for in-batch)
        ("steps", pa.int64()),
        ("epochs", pa.float64()),
        ("max_steps", pa.int64()),
        ("batch_size", pa.int64()),
        ("learning_rate", pa.float64()),
        ("warmup_ratio", pa.float64()),
        ("loss", pa.string()),
        ("batch_sampler", pa.string()),
        ("precision", pa.string()),  # training precision (null for the untrained model)
        ("model", pa.string()),
        ("model_revision", pa.string()),
        ("max_length", pa.int64()),
        ("device", pa.string()),
        ("threads", pa.int64()),  # torch threads: the same seed gives the same model only with the same count
        ("eval_data", pa.string()),
        ("eval_split", pa.string()),
        ("eval_queries", pa.int64()),
        ("eval_documents", pa.int64()),
        ("eval_dtype", pa.string()),
        ("train_seconds", pa.float64()),
        ("eval_seconds", pa.float64()),
        ("hnmine_version", pa.string()),
        ("finished_at", pa.string()),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "corpus": CORPUS_SCHEMA,
    "queries": QUERIES_SCHEMA,
    "qrels": QRELS_SCHEMA,
    "hidden_qrels": QRELS_SCHEMA,
    "premined": PREMINED_SCHEMA,
    "candidates": CANDIDATE_SCHEMA,
    "scores": SCORES_SCHEMA,
    "negatives": NEGATIVES_SCHEMA,
    "dropped": DROPPED_SCHEMA,
    "query_summary": QUERY_SUMMARY_SCHEMA,
    "positives": POSITIVES_SCHEMA,
    "judgments": JUDGMENTS_SCHEMA,
    "finetune_results": FINETUNE_RESULTS_SCHEMA,
}
