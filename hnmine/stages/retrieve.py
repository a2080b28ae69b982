"""Stage retrieve: the top candidates per query from dense search, BM25, and extra dense models,
fused by reciprocal rank when there are several lists (hnmine.stages.candidates)."""

from __future__ import annotations

from hnmine.options import Options
from hnmine.pipeline import Context, Stage, StageOutput
from hnmine.run_layout import candidate_index


def _dense(options: Options) -> bool:
    from hnmine.retrievers import needs_dense

    return needs_dense(options.retriever)


def _bm25(options: Options) -> bool:
    from hnmine.retrievers import needs_bm25

    return needs_bm25(options.retriever)


def _list_count(options: Options) -> int:
    return int(_dense(options)) + int(_bm25(options)) + len(options.candidate_model)


def _premined(options: Options) -> bool:
    """A pre-mined dataset's lists are the candidates (hnmine.retrievers.premined): nothing is searched."""
    return options.premined is not None


def _reads(ctx: Context) -> tuple[str, ...]:
    o = ctx.options
    if _premined(o):
        from hnmine.retrievers.premined import check_the_runs_file

        check_the_runs_file(ctx.run, o.premined)
        return ("premined", "qrels")
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
    from hnmine.teachers import check_models_found

    check_models_found(options)
    from pathlib import Path

    from hnmine.errors import InputError

    if _premined(options):
        return
    if options.query_embeddings is not None and not Path(options.query_embeddings).is_file():
        raise InputError(f"{options.query_embeddings}: no such file (--query-embeddings)")
    if _dense(options) and options.query_embeddings is None:
        from hnmine.inference.models import check_prompt_name

        check_prompt_name(options.model, options.query_prompt_name, "--query-prompt-name")


def _sources(ctx: Context) -> dict:
    from hnmine.io.hashing import file_hash

    o = ctx.options
    if _premined(o):
        return {}
    return {"file:query_embeddings": file_hash(o.query_embeddings)} if o.query_embeddings is not None and _dense(o) else {}


def _key(ctx: Context) -> dict:
    from hnmine.inference.models import model_key
    from hnmine.inference.spec import EncoderSpec, encoder_key

    o = ctx.options
    if _premined(o):
        return {"retriever": "premined"}
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


QUERY_BATCH = 1024  # queries per part: the batch of one faiss call (hnmine.retrievers.dense)


def _work(ctx: Context) -> StageOutput:
    import pyarrow as pa

    from hnmine.inference.spec import EncoderSpec
    from hnmine.parts import Layout, Parts
    from hnmine.stages.candidates import positives_by_query

    o = ctx.options
    if _premined(o):
        return _premined_work(ctx)
    queries = ctx.table("queries")
    positives = positives_by_query(ctx.table("qrels"))
    query_ids = queries.column("query_id").to_pylist()
    # Search deep enough that every query keeps max_depth non-positive candidates, whatever its
    # number of positives (searching depth + 1 short-changes queries with several positives).
    k = o.max_depth + max((len(v) for v in positives.values()), default=0)
    models: dict = {}
    stats: dict = {"search_k": int(k)}
    lists: dict[str, dict] = {}  # what a worker needs to search each candidate list (see hold_searchers)
    if _dense(o):
        lists["dense"], plan, models["dense"] = _dense_list(ctx, queries, k)
        if "tried" in plan:
            stats.update(dense_search=plan, ann_recall=plan["recall"])
    for i, model in enumerate(o.candidate_model, start=2):
        lists[f"dense{i}"], models[f"dense{i}"] = _candidate_list(ctx, i, model, queries)
    if _bm25(o):
        info = ctx.run.read_json("bm25_info")
        lists["bm25"] = {"kind": "bm25", "folder": str(ctx.run.path_of("bm25_index")), "backend": info["backend"], "method": info["method"]}
    threads = EncoderSpec.from_options(o).resolved_threads()  # faiss's sums depend on its thread count
    shared = {
        "threads": threads,
        "lists": lists,
        "corpus": str(ctx.run.path_of("corpus")),
        "query_ids": query_ids,
        "texts": queries.column("text").to_pylist() if "bm25" in lists else None,
        "positives": positives,
        "k": int(k),
        "max_depth": o.max_depth,
        "rrf_k": o.rrf_k,
    }
    items = [{"start": a, "stop": min(a + QUERY_BATCH, len(query_ids))} for a in range(0, len(query_ids), QUERY_BATCH)]
    # Several processes only when asked (--workers): each holds its own copy of the indexes, and searches
    # with the run's thread count (--threads, else the CPUs shared out), on any executor.
    layout = Layout(devices=("cpu",) * o.workers, threads=threads)
    step = Parts("retrieving", items, retrieve_batch, shared, hold_searchers, lambda item: item["stop"] - item["start"], layout)
    parts = list(ctx.executor.map(step, ctx.reporter))
    from hnmine.stages.candidates import CANDIDATE_SCHEMA

    table = pa.concat_tables(parts) if parts else CANDIDATE_SCHEMA.empty_table()
    stats["queries_with_no_candidates"] = len(set(query_ids)) - len(set(table.column("query_id").to_pylist()))
    return StageOutput(
        tables={"candidates": table}, counts={"rows_in": queries.num_rows, "rows_out": table.num_rows}, stats=stats, models=models
    )


def _premined_work(ctx: Context) -> StageOutput:
    """The candidates of a pre-mined run: its file's lists, as the inputs stage read them."""
    from hnmine.retrievers.premined import candidates_from_premined

    premined = ctx.table("premined")
    table = candidates_from_premined(premined, ctx.table("qrels"))
    queries = ctx.table("queries", ["query_id"]).column("query_id").to_pylist()
    stats = {"retriever": "premined", "queries_with_no_candidates": len(set(queries) - set(table.column("query_id").to_pylist()))}
    models = {"candidates": {"kind": "premined", "name": str(ctx.options.premined)}}  # the report names the file
    counts = {"rows_in": premined.num_rows, "rows_out": table.num_rows}
    return StageOutput(tables={"candidates": table}, counts=counts, stats=stats, models=models)


def hold_searchers(shared: dict, device: str) -> dict:
    """What a retrieve worker holds: the corpus ids, and a searcher per candidate list (indexes in memory)."""
    from pathlib import Path

    import faiss
    import numpy as np
    import pyarrow.parquet as pq

    from hnmine.retrievers.bm25 import BM25Options, BM25Searcher
    from hnmine.retrievers.dense import DenseSearcher

    faiss.omp_set_num_threads(shared["threads"])  # the same sums in every worker as in the local run
    corpus_ids = pq.read_table(shared["corpus"], columns=["doc_id"]).column("doc_id").to_numpy(zero_copy_only=False)
    held: dict = {"corpus_ids": corpus_ids, "searchers": {}}
    for name, spec in shared["lists"].items():
        if spec["kind"] == "bm25":
            options = BM25Options(backend=spec["backend"], method=spec["method"])
            held["searchers"][name] = BM25Searcher(Path(spec["folder"]), options, len(corpus_ids))
        else:
            vectors = np.load(spec["embeddings"], mmap_mode="r")
            held["searchers"][name] = DenseSearcher(vectors, index_info=spec["info"], folder=Path(spec["folder"]), plan=spec["plan"])
    return held


def retrieve_batch(item: dict, shared: dict, held: dict):
    """One batch of queries: every list searched, fused by build_candidates (hnmine.stages.candidates)."""
    from hnmine.stages.candidates import build_candidates

    a, b = item["start"], item["stop"]
    query_ids = shared["query_ids"][a:b]
    found = {}
    for name, spec in shared["lists"].items():
        searcher = held["searchers"][name]
        if spec["kind"] == "bm25":
            found[name] = searcher.search(shared["texts"][a:b], shared["k"])
        else:
            found[name] = searcher.search(query_vectors(spec["queries"], a, b), shared["k"])
    positives = {q: shared["positives"][q] for q in query_ids if q in shared["positives"]}
    return build_candidates(query_ids, positives, held["corpus_ids"], found, shared["max_depth"], shared["rrf_k"])


def query_vectors(source: dict, start: int, stop: int):
    """Rows [start, stop) of the query vectors: from the embedding cache's file, or the user's (checked, normalised)."""
    from pathlib import Path

    import numpy as np

    if "cache" in source:
        return np.asarray(np.load(source["cache"], mmap_mode="r")[start:stop], dtype=np.float32)
    from hnmine.io.vectors import checked_block, open_user_vectors

    vectors = open_user_vectors(Path(source["user"]), source["n"])
    return checked_block(vectors, start, Path(source["user"]), source["normalize"], stop=stop)


def query_vector_source(ctx: Context, queries, spec, prompt, prompt_name, description: str) -> tuple[dict, int]:
    """Where workers read the query vectors (the encoded queries' cache file, or the user's file), and their width."""
    from hnmine.inference.cache import encode_cached

    o = ctx.options
    if o.query_embeddings is not None and spec.model == o.model:
        from hnmine.io.vectors import open_user_vectors

        vectors = open_user_vectors(o.query_embeddings, queries.num_rows, f"the run's queries table ({ctx.run.path_of('queries')})")
        source = {"user": str(o.query_embeddings), "n": queries.num_rows, "normalize": o.normalize}
        return source, int(vectors.shape[1]) if vectors.ndim == 2 else 0
    vectors, key = encode_cached(
        queries.column("text").to_pylist(),
        spec,
        ctx.run.path_of("embedding_cache"),
        prompt=prompt,
        prompt_name=prompt_name,
        reporter=ctx.reporter,
        description=description,
        executor=ctx.executor,
    )
    return {"cache": str(ctx.run.path_of("embedding_cache") / f"{key}.npy")}, int(vectors.shape[1])


def _dense_list(ctx: Context, queries, k: int) -> tuple[dict, dict, dict]:
    """The main dense list: its query vectors, and the search plan (exact, or IVF with the nprobe that reaches
    --min-recall on a query sample: a step that sees the whole index, here)."""
    import numpy as np

    from hnmine.errors import OptionError
    from hnmine.inference.spec import EncoderSpec
    from hnmine.retrievers import dense

    o, run = ctx.options, ctx.run
    info = run.read_json("dense_info")
    if info.get("model") != o.model:
        raise OptionError(
            f"the index was built with model '{info.get('model')}', not '{o.model}'; rerun `hnmine index` with the same --model"
        )
    vectors = np.load(run.path_of("embeddings"), mmap_mode="r")
    source, width = query_vector_source(ctx, queries, EncoderSpec.from_options(o), o.query_prompt, o.query_prompt_name, "encoding queries")
    if queries.num_rows and width != vectors.shape[1]:
        raise OptionError(f"query vectors have {width} dimensions, corpus vectors {vectors.shape[1]}")
    folder = run.path_of("dense_index")
    plan: dict = {"type": "exact"}
    if info["type"] == "ivf":
        qv = query_vectors(source, 0, queries.num_rows)
        plan = dense.plan_search(
            qv, vectors, min(k, 100), index_info=info, folder=folder, nprobe=o.nprobe, min_recall=o.min_recall, reporter=ctx.reporter
        )
        if plan["type"] == "ivf":
            ctx.reporter.info(
                f"IVF search, nprobe {plan['nprobe']} of {info['nlist']} lists: recall@{plan['k']} {plan['recall']:.3f} "
                f"against exact search on a query sample"
            )
    entry = {
        "kind": "dense",
        "queries": source,
        "embeddings": str(run.path_of("embeddings")),
        "info": info,
        "folder": str(folder),
        "plan": plan,
    }
    return entry, plan, {key: info.get(key) for key in ("model", "revision", "dtype")}


def _candidate_list(ctx: Context, i: int, model: str, queries) -> tuple[dict, dict]:
    """Another dense model as a candidate source; queries are encoded without prompts (they belong to the main model)."""
    from hnmine.inference.spec import EncoderSpec, dtype_record

    folder = ctx.run.path_of(candidate_index(i))
    spec = EncoderSpec.from_options(ctx.options, model=model)
    source, _ = query_vector_source(ctx, queries, spec, None, None, f"encoding queries (dense{i})")
    entry = {
        "kind": "dense",
        "queries": source,
        "embeddings": str(folder / "embeddings.npy"),
        "info": {"type": "exact"},
        "folder": str(folder),
        "plan": {"type": "exact"},
    }
    return entry, {"name": model, **dtype_record(spec)}


STAGE = Stage(
    name="retrieve",
    reads=_reads,
    writes=lambda o: ("candidates",),
    key=_key,
    work=_work,
    sources=_sources,
    check=_check,
    packages=("pyarrow", "numpy", "faiss-cpu", "bm25s", "sentence-transformers", "torch"),
)
