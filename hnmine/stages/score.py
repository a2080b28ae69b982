"""Stage score: a teacher scores every (query, candidate) and (query, positive) pair.

A bi-encoder teacher that is the retriever's model reuses the index's vectors (the index's info.json
says what they are) and the cached query vectors: scoring is then a dot product per pair. Several
teachers form an ensemble: each teacher's scores are standardised (z-scores over all pairs), then
averaged; each teacher's own scores are kept in a column.
"""

from __future__ import annotations

from hnmine.options import Options
from hnmine.pipeline import Context, Stage, StageOutput


def dense_info(ctx: Context) -> dict | None:
    m = ctx.run.manifest("index")
    if m is None or ctx.run.rel("dense_index") not in m.outputs:
        return None
    return ctx.run.read_json("dense_info")


def teachers_of(options: Options):
    from hnmine.teachers import teacher_specs

    return teacher_specs(options)


def rerank_of(options: Options):
    """The cascade's strong teacher (--rerank-teacher), or None."""
    from hnmine.teachers import rerank_spec

    return rerank_spec(options)


def _every_teacher(options: Options) -> list:
    strong = rerank_of(options)
    return list(teachers_of(options)) + ([strong] if strong is not None else [])


def reuses_index(info: dict | None, teacher, options: Options) -> bool:
    """Whether the index's document vectors are what this teacher would compute.

    Vectors the user brought (--corpus-embeddings) stand for the index's model: the default teacher
    scores with them, as retrieval did, instead of encoding the corpus again.
    """
    from hnmine.inference.spec import EncoderSpec

    if info is None or teacher.kind != "bi-encoder" or info.get("model") != teacher.model:
        return False
    if info.get("user_vectors"):
        return True
    o = options
    # Not the batch size: a bi-encoder's vector does not depend on its batch (hnmine.inference.rowwise).
    same = (info.get("corpus_prompt"), info.get("corpus_prompt_name"), info.get("max_length"), info.get("normalize"))
    spec = EncoderSpec.from_options(o, model=teacher.model)
    return (
        same == (o.corpus_prompt, o.corpus_prompt_name, o.max_length, o.normalize)
        and info.get("dtype") == spec.resolved_dtype()
        and info.get("backend", "torch") == spec.backend_for()
    )


def _user_queries(teacher, options: Options) -> bool:
    return teacher.kind == "bi-encoder" and options.query_embeddings is not None and teacher.model == options.model


def runs_model(info: dict | None, teacher, options: Options) -> bool:
    """False only for the default teacher scoring with vectors the user brought for both sides."""
    return not (_user_queries(teacher, options) and info is not None and info.get("user_vectors") and info.get("model") == teacher.model)


def _check(options: Options) -> None:
    """Before any work: every teacher model can be what it is used as."""
    from hnmine.teachers import check_models_found

    check_models_found(options)
    from hnmine.inference.cross_encoder import check_cross_encoder
    from hnmine.inference.models import check_prompt_name
    from hnmine.inference.spec import EncoderSpec

    for t in _every_teacher(options):
        if t.kind == "cross-encoder":
            check_cross_encoder(t.model, options.max_length)
        elif t.kind == "bi-encoder":
            EncoderSpec.from_options(options, model=t.model).validate()
            check_prompt_name(t.model, options.query_prompt_name, "--query-prompt-name")
            check_prompt_name(t.model, options.corpus_prompt_name, "--corpus-prompt-name")


def _reads(ctx: Context) -> tuple[str, ...]:
    reads: tuple[str, ...] = ("candidates", "qrels", "queries", "corpus")
    if any(t.kind == "bi-encoder" for t in _every_teacher(ctx.options)) and dense_info(ctx) is not None:
        reads += ("dense_index",)
    if rerank_of(ctx.options) is not None:  # the cascade runs the filter's choice (hnmine.teachers.cascade)
        from hnmine.stages import filter as filter_stage

        reads += tuple(r for r in filter_stage.STAGE.reads(ctx) if r not in reads and r != "scores")
    return reads


def _sources(ctx: Context) -> dict:
    from hnmine.io.hashing import file_hash

    o = ctx.options
    if o.query_embeddings is not None and any(_user_queries(t, o) for t in teachers_of(o)):
        return {"file:query_embeddings": file_hash(o.query_embeddings)}
    return {}


def _key(ctx: Context) -> dict:
    from hnmine.inference.models import model_key, resolve_model
    from hnmine.inference.spec import EncoderSpec, backend_key

    o = ctx.options
    info = dense_info(ctx)
    teachers = []
    for t in _every_teacher(o):
        if t.kind == "premined":  # a --premined file's scores: the file's hash names them (its table is the candidates')
            teachers.append({"kind": t.kind, "model": t.model})
            continue
        entry = {"kind": t.kind, "model": model_key(t.model), "revision": resolve_model(t.model)[1]}
        if runs_model(info, t, o):  # `auto` is resolved only where a model runs (it may time the model)
            spec = EncoderSpec.from_options(o, model=t.model)
            entry["dtype"] = spec.resolved_dtype(t.kind)
            entry.update(backend_key(spec, t.kind))  # nothing for torch: its keys stay what they were
        teachers.append(entry)
    key = _key_of(o, teachers)
    if rerank_of(o) is not None:  # the cascade's growth runs the filter's choice: its settings and verdicts
        from hnmine.stages import filter as filter_stage
        from hnmine.teachers.cascade import DEFAULT_BUDGET

        strong = teachers.pop()
        key["teachers"] = teachers
        key["rerank"] = {
            "teacher": strong,
            "budget": o.rerank_budget or DEFAULT_BUDGET,
            "filter": filter_stage.STAGE.key(ctx),
            "filter_sources": filter_stage.STAGE.sources(ctx),
        }
    return key


def _key_of(o: Options, teachers: list) -> dict:
    key = {
        "teachers": teachers,
        "max_length": o.max_length,
        "normalize": o.normalize,
        "query_prompt": o.query_prompt,
        "query_prompt_name": o.query_prompt_name,
        "corpus_prompt": o.corpus_prompt,
        "corpus_prompt_name": o.corpus_prompt_name,
    }
    if any(t["kind"] == "cross-encoder" for t in teachers):  # a cross-encoder's pairs are padded in batches
        key["batch_size"] = o.batch_size
    return key


SCORE_ROWS = 1 << 18  # pairs per part of a dot-product teacher


def _work(ctx: Context) -> StageOutput:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from hnmine.inference.models import resolve_model
    from hnmine.inference.spec import EncoderSpec, dtype_record
    from hnmine.teachers.scoring import add_missed_positives, standardise

    o = ctx.options
    candidates = ctx.table("candidates")
    table = add_missed_positives(candidates, ctx.table("qrels"))
    queries, corpus = ctx.table("queries"), ctx.table("corpus")
    info = dense_info(ctx)
    raw: dict[str, np.ndarray] = {}
    models = {}
    for t in _every_teacher(o):
        if t.kind == "premined":  # the file's own scores, no model
            models[t.label] = {"kind": t.kind, "name": str(o.premined), "sha256": t.model}
            continue
        models[t.label] = {"kind": t.kind, "name": t.model, "revision": resolve_model(t.model)[1]}
        if runs_model(info, t, o):
            models[t.label].update(dtype_record(EncoderSpec.from_options(o), t.kind, t.model))
    for t in teachers_of(o):
        raw[t.label] = teacher_scores(ctx, t, info, table, queries, corpus)
    if len(raw) == 1:
        combined = next(iter(raw.values()))
    else:
        combined = np.mean([standardise(v) for v in raw.values()], axis=0).astype(np.float32)
    cascade = None
    if rerank_of(o) is not None:
        from hnmine.stages.score_cascade import run_cascade

        def score(teacher, rows):
            return teacher_scores(ctx, teacher, info, rows, queries, corpus)

        table, cascade = run_cascade(ctx, table, raw, combined, rerank_of(o), score)
    else:
        if len(raw) > 1:
            for label, values in raw.items():
                table = table.append_column(f"teacher_{label}", pa.array(values, pa.float32()))
        table = table.append_column("teacher_score", pa.array(combined, pa.float32()))
    stats = {
        "pairs_scored": table.num_rows,
        "positive_pairs": int(pc.sum(table.column("is_positive")).as_py() or 0),
        "positives_not_retrieved": int(pc.sum(pc.equal(table.column("source"), "qrels")).as_py() or 0),
        "teachers": list(raw),
    }
    if cascade is not None:
        stats["cascade"] = cascade
    return StageOutput(
        tables={"scores": table}, counts={"rows_in": candidates.num_rows, "rows_out": table.num_rows}, stats=stats, models=models
    )


def teacher_scores(ctx: Context, t, info: dict | None, table, queries, corpus):
    """One teacher's scores of every row of `table` (float32), each one finite."""
    import numpy as np

    from hnmine.errors import ModelError

    if t.kind == "premined":  # a --premined file's own scores (hnmine.retrievers.premined)
        from hnmine.retrievers.premined import premined_scores

        values = premined_scores(table, str(ctx.options.premined))
    elif t.kind == "bi-encoder":
        values = _bi_encoder_scores(ctx, t, info, table, queries, corpus)
    else:
        values = _cross_encoder_scores(ctx, t, table, queries, corpus)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise ModelError(
            f"teacher '{t.model}' gave a non-finite score for query {table['query_id'][i]} and document "
            f"{table['doc_id'][i]} (try --dtype float32)"
        )
    return values


def _bi_encoder_scores(ctx: Context, t, info: dict | None, table, queries, corpus):
    """Dot products of query and document vectors, in parts of rows: the index's vectors when they are this
    teacher's, else the documents the table names encoded with it (through the embedding cache)."""
    import numpy as np
    import pyarrow.compute as pc

    from hnmine.inference.batching import doc_texts
    from hnmine.inference.cache import encode_cached
    from hnmine.inference.spec import EncoderSpec
    from hnmine.parts import Parts
    from hnmine.stages.retrieve import query_vector_source

    o = ctx.options
    spec = EncoderSpec.from_options(o, model=t.model)
    queries_source, _ = query_vector_source(ctx, queries, spec, o.query_prompt, o.query_prompt_name, "encoding queries (teacher)")
    if reuses_index(info, t, o):
        docs, doc_ids = str(ctx.run.path_of("embeddings")), corpus.column("doc_id").to_pylist()
    else:  # only the documents the table names
        needed = pc.unique(table.column("doc_id")).sort()
        picked = corpus.take(pc.index_in(needed, value_set=corpus.column("doc_id").combine_chunks()))
        texts = doc_texts(picked.column("title").to_pylist(), picked.column("text").to_pylist())
        _, key = encode_cached(
            texts,
            spec,
            ctx.run.path_of("embedding_cache"),
            prompt=o.corpus_prompt,
            prompt_name=o.corpus_prompt_name,
            reporter=ctx.reporter,
            description="encoding documents (teacher)",
            executor=ctx.executor,
        )
        docs, doc_ids = str(ctx.run.path_of("embedding_cache") / f"{key}.npy"), needed.to_pylist()
    shared = {"queries": queries_source, "query_ids": queries.column("query_id").to_pylist(), "docs": docs, "doc_ids": doc_ids}
    q, d = table.column("query_id").to_pylist(), table.column("doc_id").to_pylist()
    items = [{"query_ids": q[a : a + SCORE_ROWS], "doc_ids": d[a : a + SCORE_ROWS]} for a in range(0, table.num_rows, SCORE_ROWS)]
    step = Parts("scoring", items, dot_part, shared, hold_vectors, lambda item: len(item["query_ids"]))
    parts = list(ctx.executor.map(step, ctx.reporter))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def hold_vectors(shared: dict, device: str) -> dict:
    """What a dot-product worker holds: the query vectors, the document vectors (memory-mapped), their ids."""
    import numpy as np
    import pyarrow as pa

    from hnmine.stages.retrieve import query_vectors

    n = len(shared["query_ids"])
    return {
        "queries": query_vectors(shared["queries"], 0, n),
        "query_ids": pa.array(shared["query_ids"], pa.string()),
        "docs": np.load(shared["docs"], mmap_mode="r"),
        "doc_ids": pa.array(shared["doc_ids"], pa.string()),
    }


def dot_part(item: dict, shared: dict, held: dict):
    import pyarrow as pa

    from hnmine.teachers.scoring import dot_scores

    rows = pa.table({"query_id": pa.array(item["query_ids"], pa.string()), "doc_id": pa.array(item["doc_ids"], pa.string())})
    return dot_scores(rows, held["queries"], held["query_ids"], held["docs"], held["doc_ids"])


def _cross_encoder_scores(ctx: Context, t, table, queries, corpus):
    from hnmine.inference.batching import doc_texts
    from hnmine.inference.cross_encoder import score_all
    from hnmine.inference.spec import EncoderSpec

    o = ctx.options
    q_text = dict(zip(queries.column("query_id").to_pylist(), queries.column("text").to_pylist()))
    full = doc_texts(corpus.column("title").to_pylist(), corpus.column("text").to_pylist())
    d_text = dict(zip(corpus.column("doc_id").to_pylist(), full))
    spec = EncoderSpec.from_options(o, model=t.model)
    return score_all(
        t.model,
        [q_text[x] for x in table.column("query_id").to_pylist()],
        [d_text[x] for x in table.column("doc_id").to_pylist()],
        max_length=o.max_length,
        batch_size=o.batch_size,
        dtype=spec.resolved_dtype("cross-encoder"),
        layout=spec.layout(),
        executor=ctx.executor,
        reporter=ctx.reporter,
    )


STAGE = Stage(
    name="score",
    reads=_reads,
    writes=lambda o: ("scores",),
    key=_key,
    work=_work,
    sources=_sources,
    check=_check,
    packages=("pyarrow", "numpy", "sentence-transformers", "torch", "transformers"),
)
