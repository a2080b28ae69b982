"""Stage 3, score: a teacher scores every (query, candidate) and (query, positive) pair.

A bi-encoder teacher that is the retriever's model reuses the index's vectors and the cached query
vectors: scoring is then a dot product per pair, with no model call. Several teachers form an
ensemble: each teacher's scores are standardised (z-scores over all pairs), then averaged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hnmine.io.files import read_parquet
from hnmine.encode import EncoderSpec, backend_key, doc_texts, dtype_record, encode_cached, resolve_model
from hnmine.errors import ModelError
from hnmine.io.atomic import write_parquet
from hnmine.progress import Reporter
from hnmine.rundir import RunDir, StageOutcome, stage_key
from hnmine.stages.retrieve import CANDIDATE_SCHEMA
from hnmine.teachers import TeacherSpec


@dataclass(frozen=True)
class ScoreOptions:
    teachers: tuple[TeacherSpec, ...] = ()  # empty: a bi-encoder teacher with the encoder's model
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    query_prompt: str | None = None
    query_prompt_name: str | None = None
    corpus_prompt: str | None = None
    corpus_prompt_name: str | None = None
    query_embeddings: Path | None = None  # the vectors retrieval used for queries, when the user brought them

    def effective_teachers(self) -> tuple[TeacherSpec, ...]:
        return self.teachers or (TeacherSpec("bi-encoder", self.encoder.model),)


def _runs_model(run: RunDir, t: TeacherSpec, opts: ScoreOptions) -> bool:
    """False only for the default teacher scoring with vectors the user brought for both sides."""
    if t.kind != "bi-encoder" or opts.query_embeddings is None or t.model != opts.encoder.model:
        return True
    index_opts = (run.manifest("index") or {}).get("options", {})
    return index_opts.get("corpus_embeddings") is None or index_opts.get("encoder", {}).get("model") != t.model


def _key_options(run: RunDir, opts: ScoreOptions) -> dict:
    from hnmine.stages.index import _user_vectors_fingerprint

    teachers = []
    for t in opts.effective_teachers():
        entry = {"kind": t.kind, "model": t.model, "revision": resolve_model(t.model)[1]}
        if _runs_model(run, t, opts):  # `auto` is resolved only where a model runs (it may time the model)
            entry["dtype"] = opts.encoder.resolved_dtype(t.kind, t.model)
        teachers.append(entry)
    enc = {k: v for k, v in vars(opts.encoder).items() if k not in ("device", "workers", "threads", "model", "dtype", "backend")}
    enc.update(backend_key(opts.encoder))  # nothing for torch: its keys stay what they were
    return {"teachers": teachers, "encoder": enc, "query_prompt": opts.query_prompt, "query_prompt_name": opts.query_prompt_name,
            "corpus_prompt": opts.corpus_prompt, "corpus_prompt_name": opts.corpus_prompt_name,
            "query_embeddings": _user_vectors_fingerprint(opts.query_embeddings)}


def run_score(run: RunDir, opts: ScoreOptions, *, force: bool = False, reporter: Reporter | None = None) -> StageOutcome:
    reporter = reporter or Reporter()
    inputs = {"inputs": run.output_fingerprint("inputs"), "retrieve": run.output_fingerprint("retrieve")}
    teachers = opts.effective_teachers()
    if any(t.kind == "bi-encoder" for t in teachers) and (run / "index/dense/embeddings.npy").exists():
        inputs["index"] = run.output_fingerprint("index")
    key = stage_key("score", _key_options(run, opts), inputs)
    if not force and run.up_to_date("score", key):
        return run.skipped("score")
    started = time.perf_counter()
    candidates = read_parquet(run.require("candidates.parquet"))
    qrels = read_parquet(run.require("inputs/qrels.parquet"))
    table = add_missed_positives(candidates, qrels)
    queries = read_parquet(run.require("inputs/queries.parquet"))
    corpus = read_parquet(run.require("inputs/corpus.parquet"))
    raw: dict[str, np.ndarray] = {}
    models = {}
    for t in teachers:
        if t.kind == "bi-encoder":
            raw[t.label] = _bi_encoder_scores(run, t, opts, table, queries, corpus, reporter)
        else:
            raw[t.label] = _cross_encoder_scores(t, opts, table, queries, corpus, reporter)
        bad = ~np.isfinite(raw[t.label])
        if bad.any():
            i = int(np.argmax(bad))
            raise ModelError(
                f"teacher '{t.model}' gave a non-finite score for query {table['query_id'][i]} and document {table['doc_id'][i]} (try --dtype float32)"
            )
        models[t.label] = {"kind": t.kind, "name": t.model, "revision": resolve_model(t.model)[1]}
        if _runs_model(run, t, opts):
            models[t.label].update(dtype_record(opts.encoder, t.kind, t.model))
    if len(raw) == 1:
        combined = next(iter(raw.values()))
    else:
        combined = np.mean([standardise(v) for v in raw.values()], axis=0).astype(np.float32)
        for label, values in raw.items():
            table = table.append_column(f"teacher_{label}", pa.array(values, pa.float32()))
    table = table.append_column("teacher_score", pa.array(combined, pa.float32()))
    write_parquet(table, run / "scores.parquet")
    pos = table.filter(table.column("is_positive"))
    stats = {
        "pairs_scored": table.num_rows,
        "positive_pairs": pos.num_rows,
        "positives_not_retrieved": int(pc.sum(pc.equal(table.column("source"), "qrels")).as_py() or 0),
        "teachers": list(raw),
    }
    return run.finish(
        "score", key, options=_key_options(run, opts), inputs=inputs, outputs=["scores.parquet"],
        counts={"rows_in": candidates.num_rows, "rows_out": table.num_rows}, stats=stats, started=started, models=models,
        packages=("pyarrow", "numpy", "sentence-transformers", "torch", "transformers"),
    )


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


def _row_index(ids: list[str]) -> dict[str, int]:
    return {x: i for i, x in enumerate(ids)}


def _rows_of(values: pa.ChunkedArray, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Row of each value in `ids` (every value is there: candidates come from the corpus and queries)."""
    rows = pc.index_in(values, value_set=ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)
    if rows.null_count:
        from hnmine.errors import RunDirError

        missing = values.filter(pc.is_null(rows))[0]
        raise RunDirError(f"the candidates name '{missing}', which is not in the run's inputs; rerun the retrieve stage")
    return rows.to_numpy(zero_copy_only=False).astype(np.int64)


def _index_vectors_reusable(run: RunDir, t: TeacherSpec, opts: ScoreOptions) -> bool:
    """Whether the index's document vectors are what this teacher would compute.

    Vectors the user brought (--corpus-embeddings) stand for the index's model: the default teacher
    scores with them, as retrieval did, instead of encoding the corpus again.
    """
    if not (run / "index/dense/embeddings.npy").exists():
        return False
    index_opts = (run.manifest("index") or {}).get("options", {})
    enc = index_opts.get("encoder", {})
    if enc.get("model") != t.model:
        return False
    if index_opts.get("corpus_embeddings") is not None:
        return True
    return (
        index_opts.get("corpus_prompt") == opts.corpus_prompt
        and index_opts.get("corpus_prompt_name") == opts.corpus_prompt_name
        and enc.get("max_length") == opts.encoder.max_length
        and enc.get("dtype") == opts.encoder.resolved_dtype()
        and enc.get("backend", "torch") == opts.encoder.backend
    )


def _bi_encoder_scores(run: RunDir, t: TeacherSpec, opts: ScoreOptions, table: pa.Table, queries: pa.Table, corpus: pa.Table, reporter: Reporter) -> np.ndarray:
    spec = replace(opts.encoder, model=t.model)
    if opts.query_embeddings is not None and t.model == opts.encoder.model:
        from hnmine.stages.index import load_user_vectors

        qv = load_user_vectors(opts.query_embeddings, queries.num_rows, normalize=opts.encoder.normalize)
    else:
        qv, _ = encode_cached(queries.column("text").to_pylist(), spec, run.cache / "embeddings", prompt=opts.query_prompt,
                              prompt_name=opts.query_prompt_name, reporter=reporter, description="encoding queries (teacher)")
    q_ids = queries.column("query_id")
    doc_ids = corpus.column("doc_id").to_pylist()
    if _index_vectors_reusable(run, t, opts):
        dv = np.load(run / "index/dense/embeddings.npy", mmap_mode="r")
        d_ids = corpus.column("doc_id")
    else:
        needed = sorted(pc.unique(table.column("doc_id")).to_pylist())
        pos = _row_index(doc_ids)
        titles, texts = corpus.column("title").to_pylist(), corpus.column("text").to_pylist()
        needed_texts = doc_texts([titles[pos[d]] for d in needed], [texts[pos[d]] for d in needed])
        dv, _ = encode_cached(needed_texts, spec, run.cache / "embeddings", prompt=opts.corpus_prompt,
                              prompt_name=opts.corpus_prompt_name, reporter=reporter, description="encoding documents (teacher)")
        d_ids = pa.array(needed, pa.string())
    if qv.shape[1] != dv.shape[1]:
        raise ModelError(f"query vectors have {qv.shape[1]} dimensions, document vectors {dv.shape[1]}")
    qi = _rows_of(table.column("query_id"), q_ids)
    di = _rows_of(table.column("doc_id"), d_ids)
    out = np.empty(table.num_rows, dtype=np.float32)
    step = 1 << 16  # bounded memory: gather and dot in blocks
    for s in range(0, table.num_rows, step):
        out[s : s + step] = np.einsum("ij,ij->i", np.asarray(qv[qi[s : s + step]]), np.asarray(dv[di[s : s + step]]))
    return out


def _cross_encoder_scores(t: TeacherSpec, opts: ScoreOptions, table: pa.Table, queries: pa.Table, corpus: pa.Table, reporter: Reporter) -> np.ndarray:
    from hnmine.teachers.cross_encoder import score_pairs_with_model

    q_text = dict(zip(queries.column("query_id").to_pylist(), queries.column("text").to_pylist()))
    full = doc_texts(corpus.column("title").to_pylist(), corpus.column("text").to_pylist())
    d_text = dict(zip(corpus.column("doc_id").to_pylist(), full))
    return score_pairs_with_model(
        t.model,
        [q_text[q] for q in table.column("query_id").to_pylist()],
        [d_text[d] for d in table.column("doc_id").to_pylist()],
        device=opts.encoder.device,
        max_length=opts.encoder.max_length,
        batch_size=opts.encoder.batch_size,
        dtype=opts.encoder.resolved_dtype("cross-encoder", t.model),
        workers=opts.encoder.workers,
        threads=opts.encoder.threads,
        reporter=reporter,
    )
