"""Stage retrieve: the top candidates per query from dense search, BM25, and extra dense models,
fused by reciprocal rank when there are several lists (hnmine.stages.candidates)."""

from __future__ import annotations

from dataclasses import replace

from hnmine.engines import on_engine
from hnmine.options import Options
from hnmine.pipeline import Context, Stage, StageOutput
from hnmine.rundir import candidate_index


def _dense(options: Options) -> bool:
    from hnmine.retrievers import needs_dense

    return needs_dense(options.retriever)


def _bm25(options: Options) -> bool:
    from hnmine.retrievers import needs_bm25

    return needs_bm25(options.retriever)


def _list_count(options: Options) -> int:
    return int(_dense(options)) + int(_bm25(options)) + len(options.candidate_model)


def _reads(ctx: Context) -> tuple[str, ...]:
    o = ctx.options
    reads: tuple[str, ...] = ("corpus", "queries", "qrels")
    for part, wanted in (("dense_index", _dense(o)), ("bm25_index", _bm25(o))):
        if wanted:
            _require_index_part(ctx, part)
            reads += (part,)
    return reads + tuple(candidate_index(i) for i in range(2, 2 + len(o.candidate_model)))


def _require_index_part(ctx: Context, part: str) -> None:
    from hnmine.errors import RunDirError

    m = ctx.run.manifest("index")
    if m is not None and ctx.run.rel(part) not in m.outputs:
        kind = "dense" if part == "dense_index" else "BM25"
        raise RunDirError(f"{ctx.run.path}: the index has no {kind} part; rerun `hnmine index` with --retriever {ctx.options.retriever}")


def _check(options: Options) -> None:
    from pathlib import Path

    from hnmine.errors import InputError

    if options.query_embeddings is not None and not Path(options.query_embeddings).is_file():
        raise InputError(f"{options.query_embeddings}: no such file (--query-embeddings)")
    if _dense(options) and options.query_embeddings is None:
        from hnmine.encode import check_prompt_name

        check_prompt_name(options.model, options.query_prompt_name, "--query-prompt-name")


def _sources(ctx: Context) -> dict:
    from hnmine.rundir import file_hash

    o = ctx.options
    return {"file:query_embeddings": file_hash(o.query_embeddings)} if o.query_embeddings is not None and _dense(o) else {}


def _key(ctx: Context) -> dict:
    from hnmine.encode import EncoderSpec, encoder_key, model_key

    o = ctx.options
    d: dict = {"retriever": o.retriever, "max_depth": o.max_depth, "candidate_models": [model_key(m) for m in o.candidate_model]}
    if _dense(o):
        if o.query_embeddings is not None:  # the user's query vectors: nothing is encoded
            enc = {"model": o.model, "normalize": o.normalize}
        else:
            enc = encoder_key(EncoderSpec.from_options(o))
        d.update(encoder=enc, query_prompt=o.query_prompt, query_prompt_name=o.query_prompt_name, nprobe=o.nprobe, min_recall=o.min_recall)
    for m in o.candidate_model:
        d.setdefault("candidate_encoders", []).append(encoder_key(EncoderSpec.from_options(o, model=m)))
    if _list_count(o) > 1:
        d["rrf_k"] = o.rrf_k
    return d


@on_engine("retrieve")
def _work(ctx: Context) -> StageOutput:
    from hnmine.stages.candidates import build_candidates, positives_by_query

    o = ctx.options
    corpus_ids = ctx.table("corpus", ["doc_id"]).column("doc_id").to_numpy(zero_copy_only=False)
    queries = ctx.table("queries")
    positives = positives_by_query(ctx.table("qrels"))
    query_ids = queries.column("query_id").to_pylist()
    # Search deep enough that every query keeps max_depth non-positive candidates, whatever its
    # number of positives (searching depth + 1 short-changes queries with several positives).
    k = o.max_depth + max((len(v) for v in positives.values()), default=0)
    lists, models, stats = {}, {}, {"search_k": int(k)}
    if _dense(o):
        lists["dense"], plan, models["dense"] = _dense_search(ctx, queries, k)
        if "tried" in plan:
            stats.update(dense_search=plan, ann_recall=plan["recall"])
    for i, model in enumerate(o.candidate_model, start=2):
        lists[f"dense{i}"], models[f"dense{i}"] = _candidate_search(ctx, i, model, queries, k)
    if _bm25(o):
        from hnmine.retrievers import bm25

        info = ctx.run.read_json("bm25_info")
        lists["bm25"] = bm25.search(
            queries.column("text").to_pylist(),
            k,
            bm25.BM25Options(backend=info["backend"], method=info["method"]),
            ctx.run.path_of("bm25_index"),
            len(corpus_ids),
            reporter=ctx.reporter,
            workers=o.workers,
        )
    table = build_candidates(query_ids, positives, corpus_ids, lists, o.max_depth, o.rrf_k)
    stats["queries_with_no_candidates"] = len(set(query_ids)) - len(set(table.column("query_id").to_pylist()))
    return StageOutput(
        tables={"candidates": table}, counts={"rows_in": queries.num_rows, "rows_out": table.num_rows}, stats=stats, models=models
    )


def _query_vectors(ctx: Context, queries, info: dict):
    from hnmine.encode import EncoderSpec, encode_cached

    o = ctx.options
    if o.query_embeddings is not None:
        from hnmine.io.vectors import load_user_vectors

        return load_user_vectors(
            o.query_embeddings, queries.num_rows, normalize=o.normalize, rows_of=f"the run's queries table ({ctx.run.path_of('queries')})"
        )
    vectors, _ = encode_cached(
        queries.column("text").to_pylist(),
        EncoderSpec.from_options(o),
        ctx.run.path_of("embedding_cache"),
        prompt=o.query_prompt,
        prompt_name=o.query_prompt_name,
        reporter=ctx.reporter,
        description="encoding queries",
    )
    return vectors


def _dense_search(ctx: Context, queries, k: int):
    import numpy as np

    from hnmine.errors import OptionError
    from hnmine.retrievers import dense

    o, run = ctx.options, ctx.run
    info = run.read_json("dense_info")
    if info.get("model") != o.model:
        raise OptionError(
            f"the index was built with model '{info.get('model')}', not '{o.model}'; rerun `hnmine index` with the same --model"
        )
    vectors = np.load(run.path_of("embeddings"), mmap_mode="r")
    qv = _query_vectors(ctx, queries, info)
    if qv.shape[1] != vectors.shape[1]:
        raise OptionError(f"query vectors have {qv.shape[1]} dimensions, corpus vectors {vectors.shape[1]}")
    folder = run.path_of("dense_index")
    index = dense.read_ann_index(info, folder)  # one read for the plan and the search
    plan = dense.plan_search(
        qv,
        vectors,
        min(k, 100),
        index_info=info,
        folder=folder,
        nprobe=o.nprobe,
        min_recall=o.min_recall,
        index=index,
        reporter=ctx.reporter,
    )
    if plan["type"] == "ivf":
        ctx.reporter.info(
            f"IVF search, nprobe {plan['nprobe']} of {info['nlist']} lists: recall@{plan['k']} {plan['recall']:.3f} "
            f"against exact search on a query sample"
        )
    found = dense.search(
        qv,
        vectors,
        k,
        index_info=info,
        folder=folder,
        nprobe=plan.get("nprobe"),
        exact=plan["type"] == "exact",
        index=index,
        reporter=ctx.reporter,
    )
    model = {k2: info.get(k2) for k2 in ("model", "revision", "dtype")}
    return found, plan, model


def _candidate_search(ctx: Context, i: int, model: str, queries, k: int):
    """Another dense model as a candidate source; queries are encoded without prompts (they belong to the main model)."""
    import numpy as np

    from hnmine.encode import EncoderSpec, dtype_record, encode_cached
    from hnmine.retrievers import dense

    folder = ctx.run.path_of(candidate_index(i))
    vectors = np.load(folder / "embeddings.npy", mmap_mode="r")
    spec = EncoderSpec.from_options(ctx.options, model=model)
    qv, _ = encode_cached(
        queries.column("text").to_pylist(),
        spec,
        ctx.run.path_of("embedding_cache"),
        reporter=ctx.reporter,
        description=f"encoding queries (dense{i})",
    )
    found = dense.search(qv, vectors, k, index_info={"type": "exact"}, folder=folder, reporter=ctx.reporter)
    return found, {"name": model, **dtype_record(replace(spec))}


STAGE = Stage(
    name="retrieve",
    command="retrieve",
    makes=("candidates.parquet",),
    reads=_reads,
    writes=lambda o: ("candidates",),
    key=_key,
    work=_work,
    sources=_sources,
    check=_check,
    packages=("pyarrow", "numpy", "faiss-cpu", "bm25s", "sentence-transformers", "torch"),
)
