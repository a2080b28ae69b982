"""Each stage's work on Ray. Same tables in, same tables out, same stats as the local stage.

What runs where (docs/scaling.md says the same for users):

  inputs    the local reader, on the driver (its checks are global: duplicate ids with their rows,
            judgments against the corpus); the tables it writes are what every later stage reads
  index     corpus shards (actors); encoding by an actor pool holding the model, each unique text
            once, into the embedding cache's chunks; BM25 from blocks with global statistics. The IVF
            index of a large corpus, user vectors and extra candidate models: the local code, on the driver
  retrieve  query batches through a Ray Data pipeline: each batch searched in every corpus shard and
            the shards' lists merged (dense), searched in the memory-mapped BM25 index, fused by the
            local build_candidates; parts written by the workers, streamed into candidates.parquet
  score     blocks of candidates scored by dot products of the index's vectors (the local dot_scores);
            the positives retrieval missed found from the positive rows only. A cross-encoder or another
            teacher model: the local code, on the driver
  filter    query partitions filtered by the local selection core, one partition per task, with the
            texts and vectors of its documents only. Random negatives and judgments: the local code
  export    query partitions turned into examples by the local formats, streamed into the training file

The driver holds per-query and per-term data (query ids, positives, partition offsets, the BM25
vocabulary), never the corpus embeddings, the candidate table or the scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hnmine.pipeline import Context, StageOutput

QUERY_BATCH = 1024  # queries per retrieve task (hnmine.retrievers.dense.QUERY_BATCH: the same faiss calls)
SCORE_ROWS = 1 << 18  # candidate rows per score task
PARTITION_ROWS = 1 << 17  # scores rows per filter/export partition (whole queries)


def stage_work(stage: str, ctx: Context, local_work) -> StageOutput:
    from hnmine.engines.ray.session import unwrapped

    work: Any = {"index": _index, "retrieve": _retrieve, "score": _score, "filter": _filter, "export": _export}.get(stage)
    reason = "its checks are global" if work is None else _left_to_driver(stage, ctx)
    if reason:
        ctx.reporter.info(f"ray: the {stage} stage runs on the driver ({reason})")
        return local_work(ctx)
    try:
        return work(ctx, local_work)
    except Exception as exc:  # a worker's hnmine error is the user's one-line message
        inner = unwrapped(exc)
        if inner is not exc:
            raise inner from None
        raise
    finally:
        _close_corpus(ctx)


def _left_to_driver(stage: str, ctx: Context) -> str | None:
    """Why a stage runs its local implementation on the driver, or None when Ray runs it."""
    o = ctx.options
    if o.candidate_model and stage in ("index", "retrieve"):
        return "--candidate-model"
    if stage == "index":
        return None
    if stage == "retrieve":
        from hnmine.retrievers import needs_bm25, needs_dense

        if needs_dense(o.retriever) and ctx.run.read_json("dense_info").get("type") != "exact":
            return "IVF index: searched with the local code"
        if needs_bm25(o.retriever) and ctx.run.read_json("bm25_info").get("backend") != "bm25s":
            return "--bm25-backend rank-bm25"
        return None
    if stage == "filter":
        from hnmine.stages import filter as filter_stage

        if filter_stage.filter_options(o).random_negatives:
            return "--random-negatives draws from the whole corpus"
        if filter_stage.judgments(ctx) is not None:
            return "judgments"
        if filter_stage.below_min_relevance(ctx).num_rows:
            return "judgments graded relevant below --min-relevance"
        if filter_stage.same_text_queries(ctx.table("queries", ["query_id", "text"])):
            return "queries with the same text share their positives"
        if o.relabel:
            return "--relabel compares each query's candidates with its positives"
        if o.method == "auto":
            return "--method auto calibrates on every query at once"
    return None


def _actor_map(items: list[dict], actor, args: tuple):
    """A Ray dataset of `items`, one per block, each passed alone to an `actor(*args)` of a pool of one
    actor per cluster CPU (at most one per item): the pattern of every stage's parallel work."""
    import ray.data

    from hnmine.engines.ray.session import cluster_cpus

    return ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
        actor,
        fn_constructor_args=args,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=max(1, min(cluster_cpus(), len(items)))),
        num_cpus=1,
    )


# ------------------------------------------------------------------------------------------------ shards


def _corpus(ctx: Context, vectors: bool):
    """The corpus shards of this stage (started once, stopped when the stage ends)."""
    from hnmine.encode import EncoderSpec
    from hnmine.engines.ray.corpus import Corpus
    from hnmine.engines.ray.parts import num_rows
    from hnmine.engines.ray.session import cluster_cpus

    key = "ray_corpus_vectors" if vectors else "ray_corpus"
    if key not in ctx.memo:
        path = ctx.run.path_of("corpus")
        threads = EncoderSpec.from_options(ctx.options).resolved_threads()
        ctx.memo[key] = Corpus(path, num_rows(path), cluster_cpus(), ctx.run.path_of("embeddings") if vectors else None, threads=threads)
    return ctx.memo[key]


def _close_corpus(ctx: Context) -> None:
    for key in ("ray_corpus", "ray_corpus_vectors"):
        corpus = ctx.memo.pop(key, None)
        if corpus is not None:
            corpus.close()


def _scratch(ctx: Context, name: str) -> Path:
    """A folder for one stage's parts: in the run directory (every node sees it), removed when the stage ends."""
    folder = ctx.run.path / ".hnmine-ray" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _drop_scratch(ctx: Context) -> None:
    import shutil

    shutil.rmtree(ctx.run.path / ".hnmine-ray", ignore_errors=True)


# ------------------------------------------------------------------------------------------------ index


def _index(ctx: Context, local_work) -> StageOutput:
    from hnmine.stages import index as index_stage

    o, run = ctx.options, ctx.run
    from hnmine.engines.ray.parts import num_rows

    n_docs = num_rows(run.path_of("corpus"))  # from the file's metadata: no column read
    out = StageOutput(counts={"rows_in": n_docs, "rows_out": n_docs})
    if index_stage.needs_dense(o):
        out.stats["dense"], out.models["dense"] = _dense_index(ctx, n_docs)
    if index_stage.needs_bm25(o):
        from hnmine.io.atomic import write_json

        options = index_stage.bm25_options(o)
        folder = run.path_of("bm25_index")
        if options.backend == "bm25s":
            from hnmine.engines.ray.bm25 import build_ray

            info = build_ray(run.path_of("corpus"), n_docs, options, folder, _scratch(ctx, "bm25"), reporter=ctx.reporter)
        else:
            from hnmine.encode import doc_texts
            from hnmine.retrievers import bm25

            corpus = run.read_table("corpus", ["title", "text"])
            info = bm25.build(
                doc_texts(corpus.column("title").to_pylist(), corpus.column("text").to_pylist()), options, folder, reporter=ctx.reporter
            )
        write_json(info, run.path_of("bm25_info"))
        out.stats["bm25"] = info
    _drop_scratch(ctx)
    return out


def _corpus_digest(ctx: Context) -> tuple[str, int]:
    """texts_digest of the corpus's model texts, streamed from the table (never all in memory)."""
    import pyarrow.parquet as pq

    from hnmine.encode import doc_texts
    from hnmine.engines.ray.encode import stream_digest

    pf = pq.ParquetFile(ctx.run.path_of("corpus"))
    batches = (
        doc_texts(b.column("title").to_pylist(), b.column("text").to_pylist())
        for b in pf.iter_batches(batch_size=65536, columns=["title", "text"])
    )
    return stream_digest(batches)


def encode_corpus(ctx: Context, spec, prompt, prompt_name, description: str):
    import ray

    from hnmine.engines.ray.encode import encode_cached_ray

    corpus = _corpus(ctx, vectors=False)

    def lengths() -> np.ndarray:
        return np.concatenate(ray.get([s.text_lengths.remote(spec) for s in corpus.shards]))

    n = int(corpus.bounds[-1])
    return encode_cached_ray(
        n,
        _corpus_digest(ctx),
        lengths,
        spec,
        ctx.run.path_of("embedding_cache"),
        corpus=corpus,
        prompt=prompt,
        prompt_name=prompt_name,
        reporter=ctx.reporter,
        description=description,
    )


def _dense_index(ctx: Context, n_docs: int) -> tuple[dict, dict]:
    from hnmine.stages.index import dense_index

    o = ctx.options
    return dense_index(ctx, n_docs, lambda spec: encode_corpus(ctx, spec, o.corpus_prompt, o.corpus_prompt_name, "encoding corpus")[1])


# ------------------------------------------------------------------------------------------------ retrieve


def query_vectors_source(ctx: Context, queries) -> dict:
    """Where workers read query vectors: the cache file of the encoded queries, or the user's file."""
    from hnmine.encode import EncoderSpec, text_lengths
    from hnmine.engines.ray.encode import encode_cached_ray, stream_digest

    o = ctx.options
    if o.query_embeddings is not None:
        from hnmine.io.vectors import open_user_vectors

        open_user_vectors(o.query_embeddings, queries.num_rows, f"the run's queries table ({ctx.run.path_of('queries')})")  # the shape, now
        return {"user": str(o.query_embeddings), "normalize": o.normalize, "n": queries.num_rows}
    spec = EncoderSpec.from_options(o)
    texts = queries.column("text").to_pylist()
    _, key = encode_cached_ray(
        len(texts),
        stream_digest([texts]),
        lambda: text_lengths(texts, spec),
        spec,
        ctx.run.path_of("embedding_cache"),
        texts=texts,
        prompt=o.query_prompt,
        prompt_name=o.query_prompt_name,
        reporter=ctx.reporter,
        description="encoding queries",
    )
    return {"cache": str(ctx.run.path_of("embedding_cache") / f"{key}.npy")}


def read_query_vectors(source: dict, start: int, stop: int) -> np.ndarray:
    if "cache" in source:
        return np.array(np.load(source["cache"], mmap_mode="r")[start:stop], dtype=np.float32)
    from hnmine.io.vectors import checked_block, open_user_vectors

    vectors = open_user_vectors(Path(source["user"]), source["n"])
    return checked_block(vectors, start, Path(source["user"]), source["normalize"], stop=stop)


class RetrieveBatch:
    """One query batch: every list searched, fused by the local build_candidates, written as a part."""

    def __init__(self, plan: dict, shards, bounds, queries_ref, positives_ref):
        from hnmine.engines.ray.session import quiet_ray_logging

        quiet_ray_logging()
        self.plan, self.shards, self.bounds = plan, shards, bounds
        self.queries_ref, self.positives_ref = queries_ref, positives_ref
        self.bm25: Any = None

    def __call__(self, batch: dict) -> dict:
        import ray

        from hnmine.engines.ray.corpus import doc_ids_of, merge_topk
        from hnmine.engines.ray.parts import write_part
        from hnmine.stages.candidates import build_candidates

        p = self.plan
        queries = ray.get(self.queries_ref[0])
        positives_all = ray.get(self.positives_ref[0])
        rows_out, with_candidates = [], []
        for b, start, stop in zip(batch["batch"].tolist(), batch["start"].tolist(), batch["stop"].tolist()):
            query_ids = queries["query_id"][start:stop]
            lists = {}
            if p["dense"]:
                qv = read_query_vectors(p["vectors"], start, stop)
                parts = ray.get([s.search.remote(qv, p["k"]) for s in self.shards])
                lists["dense"] = merge_topk(parts, min(p["k"], p["n_docs"]))
            if p["bm25"]:
                from hnmine.retrievers import bm25

                if self.bm25 is None:
                    self.bm25 = bm25.SparseBM25(Path(p["bm25_folder"]))
                k = min(p["k"], p["n_docs"])
                ids = np.full((stop - start, k), -1, dtype=np.int64)
                scores = np.zeros((stop - start, k), dtype=np.float32)
                for row, q in enumerate(bm25.tokenize(queries["text"][start:stop], p["stopwords"])):
                    ids[row], scores[row] = self.bm25.top_k(q, k)
                lists["bm25"] = (ids, scores)
            # The batch's documents only: build_candidates needs ids of the rows it names, in corpus order.
            found = np.unique(np.concatenate([ids[ids >= 0] for ids, _ in lists.values()]))
            sub_ids = doc_ids_of(self.shards, self.bounds, found)
            sub_lists = {name: (np.where(ids >= 0, np.searchsorted(found, ids), -1), s) for name, (ids, s) in lists.items()}
            positives = {q: positives_all[q] for q in query_ids if q in positives_all}
            table = build_candidates(query_ids, positives, sub_ids, sub_lists, p["max_depth"], p["rrf_k"])
            write_part(table, Path(p["parts"]), b)
            rows_out.append(table.num_rows)
            with_candidates.append(len(set(table.column("query_id").to_pylist())))
        return {
            "batch": batch["batch"],
            "rows": np.array(rows_out),
            "queries": batch["stop"] - batch["start"],
            "with_candidates": np.array(with_candidates),
        }


def _retrieve(ctx: Context, local_work) -> StageOutput:
    import ray
    import ray.data

    from hnmine.engines.ray.parts import parts_in_order, row_ranges, write_parquet_from
    from hnmine.retrievers import needs_bm25, needs_dense
    from hnmine.stages.candidates import CANDIDATE_SCHEMA, positives_by_query

    o, run = ctx.options, ctx.run
    queries = ctx.table("queries")
    positives = positives_by_query(ctx.table("qrels"))
    k = o.max_depth + max((len(v) for v in positives.values()), default=0)
    dense, lexical = needs_dense(o.retriever), needs_bm25(o.retriever)
    corpus = _corpus(ctx, vectors=dense)
    n_docs = int(corpus.bounds[-1])
    plan: dict = {"dense": dense, "bm25": lexical, "k": int(k), "n_docs": n_docs, "max_depth": o.max_depth, "rrf_k": o.rrf_k}
    models, stats = {}, {"search_k": int(k)}
    if dense:
        plan["vectors"], models["dense"] = _dense_query_side(ctx, queries)
    if lexical:
        info = run.read_json("bm25_info")
        from hnmine.retrievers.bm25 import BM25Options

        plan.update(
            bm25_folder=str(run.path_of("bm25_index")), stopwords=BM25Options(backend=info["backend"], method=info["method"]).stopwords
        )
    scratch = _scratch(ctx, "retrieve")
    plan["parts"] = str(scratch)
    query_ids = queries.column("query_id").to_pylist()
    queries_ref = [ray.put({"query_id": query_ids, "text": queries.column("text").to_pylist()})]
    positives_ref = [ray.put(positives)]
    batches = row_ranges(len(query_ids), QUERY_BATCH)

    items = [{"batch": i, "start": a, "stop": b} for i, (a, b) in enumerate(batches)]
    ds = _actor_map(items, RetrieveBatch, (plan, corpus.shards, corpus.bounds, queries_ref, positives_ref))
    no_candidates = 0
    with ctx.reporter.task("retrieving (ray)", total=len(query_ids)) as advance:
        for row in ds.iter_rows():
            no_candidates += int(row["queries"]) - int(row["with_candidates"])
            advance(int(row["queries"]))
    rows = write_parquet_from(parts_in_order(scratch, len(batches)), run.path_of("candidates"), CANDIDATE_SCHEMA)
    stats["queries_with_no_candidates"] = no_candidates
    _drop_scratch(ctx)
    return StageOutput(counts={"rows_in": queries.num_rows, "rows_out": rows}, stats=stats, models=models)


def _dense_query_side(ctx: Context, queries) -> tuple:
    """The query vectors' source (checked against the index's model and dimension) and the dense model's record."""
    from hnmine.errors import OptionError

    o, run = ctx.options, ctx.run
    info = run.read_json("dense_info")
    if info.get("model") != o.model:
        raise OptionError(
            f"the index was built with model '{info.get('model')}', not '{o.model}'; rerun `hnmine index` with the same --model"
        )
    source = query_vectors_source(ctx, queries)
    dim = np.load(run.path_of("embeddings"), mmap_mode="r").shape[1]
    qdim = read_query_vectors(source, 0, 1).shape[1] if queries.num_rows else dim
    if qdim != dim:
        raise OptionError(f"query vectors have {qdim} dimensions, corpus vectors {dim}")
    return source, {key: info.get(key) for key in ("model", "revision", "dtype")}


# ------------------------------------------------------------------------------------------------ score


class ScoreBlock:
    """Rows [start, stop) of a table (candidates.parquet, or the missed positives) scored by every
    teacher, written as a part: bi-encoder scores by the local dot_scores, cross-encoder scores by the
    local score_pairs with the model held by this actor."""

    def __init__(self, plan: dict, shards, bounds, queries_ref):
        from hnmine.engines.ray.session import quiet_ray_logging

        quiet_ray_logging()
        self.plan, self.shards, self.bounds, self.queries_ref = plan, shards, bounds, queries_ref
        self.models: dict = {}

    def __call__(self, batch: dict) -> dict:
        import pyarrow as pa

        from hnmine.engines.ray.parts import read_rows, write_part

        p = self.plan
        n_pos, sums = [], []
        for i, path, start, stop in zip(batch["part"].tolist(), batch["path"].tolist(), batch["start"].tolist(), batch["stop"].tolist()):
            table = read_rows(Path(path), start, stop)
            raw = {t["label"]: self._scores(t, table) for t in p["teachers"]}
            if len(raw) == 1:
                table = table.append_column("teacher_score", pa.array(next(iter(raw.values())), pa.float32()))
            else:  # raw scores now; the combined score once every block's are known (mean and spread over all pairs)
                for label, values in raw.items():
                    table = table.append_column(f"teacher_{label}", pa.array(values, pa.float32()))
            write_part(table, Path(p["parts"]), i)
            n_pos.append(int(np.asarray(table.column("is_positive").to_numpy(zero_copy_only=False)).sum()))
            sums.append([[float(v.astype(np.float64).sum()), float(np.square(v.astype(np.float64)).sum())] for v in raw.values()])
        return {"part": batch["part"], "rows": batch["stop"] - batch["start"], "positives": np.array(n_pos), "sums": np.array(sums)}

    def _scores(self, teacher: dict, table) -> np.ndarray:
        from hnmine.errors import ModelError

        if teacher["kind"] == "bi-encoder":
            values = dot_rows(table, self.plan, self.shards, self.queries_ref)
        else:
            values = self._cross_encoder(teacher, table)
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise ModelError(
                f"teacher '{teacher['model']}' gave a non-finite score for query {table['query_id'][i]} and document "
                f"{table['doc_id'][i]} (try --dtype float32)"
            )
        return values

    def _cross_encoder(self, teacher: dict, table) -> np.ndarray:
        import pyarrow.compute as pc
        import ray

        from hnmine.engines.ray.corpus import lookup_rows, model_texts
        from hnmine.teachers.cross_encoder import load_cross_encoder, score_pairs

        if teacher["label"] not in self.models:
            self.models[teacher["label"]] = load_cross_encoder(teacher["model"], teacher["device"], teacher["max_length"])
        queries = ray.get(self.queries_ref[0])
        q_rows = pc.index_in(table.column("query_id"), value_set=queries.column("query_id").combine_chunks())
        q_texts = queries.column("text").take(q_rows).to_pylist()
        d_ids = pc.unique(table.column("doc_id"))
        d_rows = lookup_rows(self.shards, d_ids.to_pylist())
        texts = model_texts(self.shards, self.bounds, d_rows)
        d_texts = [texts[i] for i in pc.index_in(table.column("doc_id"), value_set=d_ids).to_numpy(zero_copy_only=False).tolist()]
        return score_pairs(
            self.models[teacher["label"]],
            q_texts,
            d_texts,
            batch_size=teacher["batch_size"],
            dtype=teacher["dtype"],
            threads=teacher["threads"],
        )


def dot_rows(table, plan: dict, shards, queries_ref) -> np.ndarray:
    """Bi-encoder scores of a block's rows (the local dot_scores), with the vectors of that block's queries and documents only."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import ray

    from hnmine.engines.ray.corpus import lookup_rows
    from hnmine.teachers.scoring import dot_scores

    query_ids = ray.get(queries_ref[0]).column("query_id").combine_chunks()
    q_needed = pc.unique(table.column("query_id"))
    q_rows = np.asarray(pc.index_in(q_needed, value_set=query_ids).to_numpy(zero_copy_only=False), dtype=np.int64)
    qv = np.stack([read_query_vectors(plan["vectors"], r, r + 1)[0] for r in q_rows]) if len(q_rows) else np.zeros((0, 1), np.float32)
    d_needed = pc.unique(table.column("doc_id"))
    d_rows = lookup_rows(shards, d_needed.to_pylist())
    dv = np.asarray(np.load(plan["embeddings"], mmap_mode="r")[np.sort(d_rows)], dtype=np.float32)[np.argsort(np.argsort(d_rows))]
    return dot_scores(table, qv, pa.chunked_array([q_needed]), dv, pa.chunked_array([d_needed]))


def _score_teachers(ctx: Context) -> list[dict] | None:
    """What each teacher needs on a worker; None when one of them is left to the driver (a bi-encoder
    that is not the index's model: it would encode the documents again)."""
    from hnmine.encode import EncoderSpec, available_cpus
    from hnmine.stages import score as score_stage
    from hnmine.workers import worker_count

    o = ctx.options
    info = score_stage.dense_info(ctx)
    out = []
    for t in score_stage.teachers_of(o):
        if t.kind == "bi-encoder" and not score_stage.reuses_index(info, t, o):
            return None
        entry = {"kind": t.kind, "model": t.model, "label": t.label}
        if t.kind == "cross-encoder":
            entry.update(
                dtype=EncoderSpec.from_options(o, model=t.model).resolved_dtype("cross-encoder"),
                max_length=o.max_length,
                batch_size=o.batch_size,
                device="cuda" if o.device.startswith("cuda") else o.device,
                threads=o.threads or max(1, available_cpus() // worker_count(o.device, o.workers)),
            )
        out.append(entry)
    return out


def _score(ctx: Context, local_work) -> StageOutput:
    import pyarrow.parquet as pq

    from hnmine.encode import EncoderSpec, dtype_record, resolve_model
    from hnmine.engines.ray.parts import num_rows, row_ranges
    from hnmine.io.atomic import write_parquet
    from hnmine.stages import score as score_stage
    from hnmine.stages.candidates import CANDIDATE_SCHEMA
    from hnmine.teachers.scoring import add_missed_positives

    o, run = ctx.options, ctx.run
    teachers = _score_teachers(ctx)
    if teachers is None:
        ctx.reporter.info("ray: the score stage runs on the driver (a bi-encoder teacher other than the index's model)")
        return local_work(ctx)
    info = score_stage.dense_info(ctx)
    queries = ctx.table("queries")
    source = None
    if any(t["kind"] == "bi-encoder" for t in teachers):
        source = query_vectors_source(ctx, queries)  # the user's query vectors, or the cached encoded queries
    cand_path = run.path_of("candidates")
    n_cand = num_rows(cand_path)
    corpus = _corpus(ctx, vectors=False)
    scratch = _scratch(ctx, "score")
    plan = {"parts": str(scratch), "vectors": source, "embeddings": str(run.path_of("embeddings")), "teachers": teachers}
    # The positives retrieval missed: from the retrieved positives only (one row or so per query), scored like a block.
    found = pq.read_table(cand_path, filters=[("is_positive", "==", True)]).cast(CANDIDATE_SCHEMA)
    extra = add_missed_positives(found, ctx.table("qrels")).slice(found.num_rows)
    extra_path = scratch / "missed-positives.parquet"
    write_parquet(extra, extra_path)
    blocks = row_ranges(n_cand, SCORE_ROWS)
    items = [{"part": i, "path": str(cand_path), "start": a, "stop": b} for i, (a, b) in enumerate(blocks)]
    if extra.num_rows:
        items.append({"part": len(items), "path": str(extra_path), "start": 0, "stop": extra.num_rows})
    positive_pairs, sums = _score_blocks(ctx, items, plan, corpus, queries, len(teachers), n_cand + extra.num_rows)
    rows = _write_scores(run.path_of("scores"), scratch, len(items), [t["label"] for t in teachers], sums, n_cand + extra.num_rows)
    _drop_scratch(ctx)
    models = {}
    for t in score_stage.teachers_of(o):
        models[t.label] = {"kind": t.kind, "name": t.model, "revision": resolve_model(t.model)[1]}
        if score_stage.runs_model(info, t, o):
            models[t.label].update(dtype_record(EncoderSpec.from_options(o), t.kind, t.model))
    stats = {
        "pairs_scored": rows,
        "positive_pairs": positive_pairs,
        "positives_not_retrieved": extra.num_rows,
        "teachers": [t["label"] for t in teachers],
    }
    return StageOutput(counts={"rows_in": n_cand, "rows_out": rows}, stats=stats, models=models)


def _score_blocks(ctx: Context, items: list[dict], plan: dict, corpus, queries, n_teachers: int, total: int):
    """Every block scored by the actor pool; (positive pairs, each teacher's sum and sum of squares)."""
    import ray
    import ray.data

    positive_pairs = 0
    sums = np.zeros((n_teachers, 2))
    if not items:
        return positive_pairs, sums
    ds = _actor_map(items, ScoreBlock, (plan, corpus.shards, corpus.bounds, [ray.put(queries)]))
    with ctx.reporter.task("scoring (ray)", total=total) as advance:
        for row in ds.iter_rows():
            positive_pairs += int(row["positives"])
            sums += np.asarray(row["sums"], dtype=np.float64)
            advance(int(row["rows"]))
    return positive_pairs, sums


def _write_scores(target: Path, scratch: Path, n_parts: int, labels: list[str], sums: np.ndarray, n: int) -> int:
    """The scored parts streamed into scores.parquet, an ensemble's score added from the global mean and spread."""
    import pyarrow as pa

    from hnmine.engines.ray.parts import parts_in_order, write_parquet_from
    from hnmine.stages.candidates import CANDIDATE_SCHEMA

    schema = CANDIDATE_SCHEMA
    if len(labels) > 1:
        schema = pa.schema(list(CANDIDATE_SCHEMA) + [pa.field(f"teacher_{label}", pa.float32()) for label in labels])
    schema = schema.append(pa.field("teacher_score", pa.float32()))
    mean = sums[:, 0] / max(1, n)
    spread = np.sqrt(np.maximum(sums[:, 1] / max(1, n) - mean**2, 0.0))
    spread[spread == 0] = 1.0

    def tables():
        for part in parts_in_order(scratch, n_parts):
            if len(labels) > 1:  # the ensemble: the mean of each teacher's standardised score (hnmine.teachers.scoring.standardise)
                z = [
                    (part.column(f"teacher_{label}").to_numpy().astype(np.float64) - mean[j]) / spread[j] for j, label in enumerate(labels)
                ]
                part = part.append_column("teacher_score", pa.array(np.mean(z, axis=0).astype(np.float32), pa.float32()))
            yield part

    return write_parquet_from(tables(), target, schema)


# ------------------------------------------------------------------------------------------------ partitions


def _query_runs(path: Path, query_ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each query's rows are in a table written in query order (candidates, then rows of source
    'qrels' at the end): (first row, row count) per query of `query_ids`, and the rows of the tail."""
    import pyarrow.parquet as pq
    import ray

    def runs(p: str, g: int, offset: int):
        import pyarrow.parquet as pq2

        t = pq2.ParquetFile(p).read_row_group(g, columns=["query_id", "source"])
        q = t.column("query_id").to_numpy(zero_copy_only=False)
        tail = np.flatnonzero(t.column("source").to_numpy(zero_copy_only=False) == "qrels")
        head = np.setdiff1d(np.arange(len(q)), tail)
        starts = head[np.r_[True, q[head][1:] != q[head][:-1]]] if len(head) else head
        ends = np.r_[starts[1:], head[-1] + 1] if len(head) else starts
        return q[starts].tolist(), (starts + offset).tolist(), (ends - starts).tolist(), (tail + offset).tolist()

    meta = pq.ParquetFile(path).metadata
    offsets = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    task = ray.remote(runs)
    index = {q: i for i, q in enumerate(query_ids)}
    first = np.full(len(query_ids), -1, dtype=np.int64)
    count = np.zeros(len(query_ids), dtype=np.int64)
    tails = []
    for ref in [task.remote(str(path), g, int(offsets[g])) for g in range(meta.num_row_groups)]:
        qs, starts, counts, tail = ray.get(ref)
        for q, s, c in zip(qs, starts, counts):
            i = index[q]
            if first[i] < 0:
                first[i] = s
            count[i] += c
        tails.extend(tail)
    return first, count, np.array(tails, dtype=np.int64)


def _partitions(first: np.ndarray, count: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Consecutive query ranges of about `limit` rows (at least one query each)."""
    out, a, rows = [], 0, 0
    for i, c in enumerate(count.tolist()):
        if rows and rows + c > limit:
            out.append((a, i))
            a, rows = i, 0
        rows += c
    if a < len(count) or not out:
        out.append((a, len(count)))
    return out


def _rows_of(path: Path, first: np.ndarray, count: np.ndarray, tail_rows: np.ndarray, columns=None):
    """The rows of some consecutive queries: their run of candidate rows, then their rows of the tail."""
    import pyarrow as pa

    from hnmine.engines.ray.parts import read_rows

    has = first >= 0
    parts = []
    if has.any():
        a = int(first[has].min())
        b = int((first[has] + count[has]).max())
        parts.append(read_rows(path, a, b, columns))
    if len(tail_rows):
        lo, hi = int(tail_rows.min()), int(tail_rows.max()) + 1
        parts.append(read_rows(path, lo, hi, columns).take(pa.array(tail_rows - lo)))
    return pa.concat_tables(parts) if parts else read_rows(path, 0, 0, columns)


# ------------------------------------------------------------------------------------------------ filter


class FilterPartition:
    def __init__(self, plan: dict, shards, bounds, query_ids_ref, tails_ref):
        from hnmine.engines.ray.session import quiet_ray_logging

        quiet_ray_logging()
        self.plan, self.shards, self.bounds, self.query_ids_ref, self.tails_ref = plan, shards, bounds, query_ids_ref, tails_ref

    def __call__(self, batch: dict) -> dict:
        import json

        import ray

        from hnmine.engines.ray.corpus import documents_of, lookup_rows
        from hnmine.engines.ray.parts import write_part
        from hnmine.selection import filter_candidates

        p = self.plan
        query_ids = ray.get(self.query_ids_ref[0])
        tail_query, tail_rows = ray.get(self.tails_ref[0])
        out_stats = []
        for i, a, b, first, count in zip(batch["part"].tolist(), batch["a"].tolist(), batch["b"].tolist(), batch["first"], batch["count"]):
            mine = (tail_query >= a) & (tail_query < b)
            scores = _rows_of(Path(p["scores"]), np.asarray(first), np.asarray(count), tail_rows[mine])
            docs = np.unique(scores.column("doc_id").to_numpy(zero_copy_only=False)).tolist()
            rows = lookup_rows(self.shards, docs)
            known = rows >= 0
            corpus = documents_of(self.shards, self.bounds, rows[known])
            vectors = None
            if p["vectors"]:
                row_of = dict(zip(corpus.column("doc_id").to_pylist(), rows[known].tolist()))
                emb = np.load(p["embeddings"], mmap_mode="r")

                def vectors(doc_ids, emb=emb, row_of=row_of):
                    return np.asarray(emb[[row_of[d] for d in doc_ids]], dtype=np.float32)

            result = filter_candidates(scores, corpus, p["settings"], doc_vectors=vectors, query_ids=query_ids[a:b])
            for name in ("negatives", "dropped", "query_summary"):
                write_part(getattr(result, name), Path(p["parts"]), i, name)
            out_stats.append(json.dumps(result.stats))
        return {"part": batch["part"], "queries": batch["b"] - batch["a"], "stats": np.array(out_stats, dtype=object)}


def _filter(ctx: Context, local_work) -> StageOutput:
    import json

    import ray
    import ray.data

    from hnmine.engines.ray.parts import parts_in_order, write_parquet_from
    from hnmine.selection import DROPPED_SCHEMA, NEGATIVES_SCHEMA, QUERY_SUMMARY_SCHEMA
    from hnmine.stages import filter as filter_stage

    o, run = ctx.options, ctx.run
    settings = filter_stage.filter_options(o)
    query_ids = ctx.table("queries", ["query_id"]).column("query_id").to_pylist()
    scores_path = run.path_of("scores")
    first, count, tails = _query_runs(scores_path, query_ids)
    tail_query = _tail_queries(scores_path, tails, query_ids)
    parts = _partitions(first, count, PARTITION_ROWS)
    corpus = _corpus(ctx, vectors=False)
    scratch = _scratch(ctx, "filter")
    plan = {
        "scores": str(scores_path),
        "parts": str(scratch),
        "settings": settings,
        "vectors": filter_stage.uses_vectors(ctx),
        "embeddings": str(run.path_of("embeddings")),
    }
    items = [{"part": i, "a": a, "b": b, "first": first[a:b], "count": count[a:b]} for i, (a, b) in enumerate(parts)]
    refs = ([ray.put(query_ids)], [ray.put((tail_query, tails))])
    ds = _actor_map(items, FilterPartition, (plan, corpus.shards, corpus.bounds, *refs))
    stats: dict = {}
    with ctx.reporter.task("filtering (ray)", total=len(query_ids)) as advance:
        for row in ds.iter_rows():
            for key, value in json.loads(row["stats"]).items():
                stats[key] = stats.get(key, 0) + value if isinstance(value, int) else value
            advance(int(row["queries"]))
    written = {
        name: write_parquet_from(parts_in_order(scratch, len(parts), name), run.path_of(name), schema)
        for name, schema in (("negatives", NEGATIVES_SCHEMA), ("dropped", DROPPED_SCHEMA), ("query_summary", QUERY_SUMMARY_SCHEMA))
    }
    _drop_scratch(ctx)
    warnings = []
    if stats.get("queries_short"):
        negatives = ctx.table("negatives", ["query_id", "is_random"])
        warnings.append(filter_stage.shortfall_message(negatives, ctx.table("query_summary"), settings))
        ctx.reporter.warn(warnings[-1])
    return StageOutput(
        tables={"positives": _known_positives(scores_path)},
        counts={"rows_in": int(count.sum()) + len(tails), "rows_out": written["negatives"], "dropped": written["dropped"]},
        stats=stats,
        warnings=warnings,
    )


def _known_positives(scores_path: Path):
    """positives.parquet without verdicts (judgments and --relabel run on the driver): the known positives,
    in the scores' row order, as the local filter writes them."""
    import pyarrow.parquet as pq

    from hnmine.stages.filter import positives_table

    columns = ["query_id", "doc_id", "is_positive", "teacher_score"]
    return positives_table(pq.read_table(scores_path, columns=columns, filters=[("is_positive", "==", True)]))


def _tail_queries(path: Path, tails: np.ndarray, query_ids: list[str]) -> np.ndarray:
    """The query (position in query_ids) of each tail row (positives retrieval missed: a few per query at most)."""
    from hnmine.engines.ray.parts import read_rows

    if not len(tails):
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(tails.min()), int(tails.max()) + 1
    import pyarrow as pa

    q = read_rows(path, lo, hi, ["query_id"]).column("query_id").take(pa.array(tails - lo)).to_pylist()
    index = {x: i for i, x in enumerate(query_ids)}
    return np.array([index[x] for x in q], dtype=np.int64)


# ------------------------------------------------------------------------------------------------ export


class ExportPartition:
    def __init__(self, plan: dict, shards, bounds, queries_ref):
        from hnmine.engines.ray.session import quiet_ray_logging

        quiet_ray_logging()
        self.plan, self.shards, self.bounds, self.queries_ref = plan, shards, bounds, queries_ref

    def __call__(self, batch: dict) -> dict:
        import pyarrow as pa
        import pyarrow.compute as pc
        import ray

        from hnmine.engines.ray.corpus import documents_of, lookup_rows
        from hnmine.engines.ray.parts import read_rows, write_part
        from hnmine.formats import build_examples, get_format

        p = self.plan
        queries = ray.get(self.queries_ref[0])
        n_examples, short = [], []
        for i, a, b, na, nb, pa_, pb in zip(
            batch["part"].tolist(),
            batch["a"].tolist(),
            batch["b"].tolist(),
            batch["na"].tolist(),
            batch["nb"].tolist(),
            batch["pa"].tolist(),
            batch["pb"].tolist(),
        ):
            summary = read_rows(Path(p["query_summary"]), a, b)
            negatives = read_rows(Path(p["negatives"]), na, nb)
            positives = read_rows(Path(p["positives"]), pa_, pb)
            docs = pc.unique(pa.chunked_array([negatives.column("doc_id").combine_chunks(), positives.column("doc_id").combine_chunks()]))
            rows = lookup_rows(self.shards, docs.to_pylist())
            corpus = documents_of(self.shards, self.bounds, rows[rows >= 0])
            examples, _ = build_examples(
                corpus=corpus,
                queries=queries.slice(a, b - a),
                negatives=negatives,
                summary=summary,
                positives=positives,
                target=p["target"],
            )
            table = get_format(p["format"]).build(examples, p["target"], p["with_scores"])
            write_part(table, Path(p["parts"]), i)
            n_examples.append(len(examples))
            short.append(sum(1 for ex in examples if len(ex.negatives) < p["target"]))
        return {"part": batch["part"], "queries": batch["b"] - batch["a"], "examples": np.array(n_examples), "short": np.array(short)}


def _export(ctx: Context, local_work) -> StageOutput:
    from hnmine.formats import negatives_target
    from hnmine.stages.export import empty_export_message, export_file

    o, run = ctx.options, ctx.run
    summary = ctx.table("query_summary")  # one row per query, in query order
    queries = ctx.table("queries")
    target = negatives_target(summary)
    scratch = _scratch(ctx, "export")
    items, pos_path = _export_partitions(ctx, queries, scratch)
    plan = {
        "query_summary": str(run.path_of("query_summary")),
        "negatives": str(run.path_of("negatives")),
        "positives": str(pos_path),
        "parts": str(scratch),
        "target": target,
        "format": o.format,
        "with_scores": o.with_scores,
    }
    n_examples, short = _export_examples(ctx, items, plan, queries, summary.num_rows)
    rel = export_file(o)
    rows = _write_export(run.path_of(rel), scratch, len(items), o, target)
    _drop_scratch(ctx)
    stats = {"file": rel, "queries": n_examples, "negatives_per_query": target}
    if o.format == "n-tuple":
        stats["queries_left_out_short"] = short
    warnings = []
    if rows == 0:
        warnings.append(empty_export_message(ctx, range(n_examples), target))
        ctx.reporter.warn(warnings[-1])
    return StageOutput(counts={"rows_in": n_examples, "rows_out": rows}, stats=stats, warnings=warnings)


def _export_partitions(ctx: Context, queries, scratch: Path) -> tuple[list[dict], Path]:
    """Query partitions, each with its rows of query_summary, negatives and positives (all three in query
    order); the positives (a few per query, the filter's, verdicts included) in one small file."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    query_ids = queries.column("query_id").combine_chunks()
    pos = pq.read_table(ctx.run.path_of("positives"), columns=["query_id", "doc_id", "teacher_score"])
    pos = (
        pos.append_column("_q", pc.index_in(pos.column("query_id"), value_set=query_ids))
        .append_column("_i", pa.array(np.arange(pos.num_rows)))
        .sort_by([("_q", "ascending"), ("_i", "ascending")])
    )
    pos_q = pos.column("_q").to_numpy(zero_copy_only=False)
    pos_path = scratch / "positives.parquet"
    pq.write_table(pos.drop_columns(["_q", "_i"]), pos_path)
    neg_q = pc.index_in(ctx.table("negatives", ["query_id"]).column("query_id"), value_set=query_ids).to_numpy(zero_copy_only=False)
    n = queries.num_rows
    bounds = np.unique(np.r_[np.arange(0, n, PARTITION_ROWS // 64), n])
    items = []
    for i, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
        na, nb = np.searchsorted(neg_q, [a, b]).tolist()
        pa_, pb = np.searchsorted(pos_q, [a, b]).tolist()
        items.append({"part": i, "a": a, "b": b, "na": na, "nb": nb, "pa": pa_, "pb": pb})
    return items, pos_path


def _export_examples(ctx: Context, items: list[dict], plan: dict, queries, total: int) -> tuple[int, int]:
    """Every partition turned into its part of the training file; (examples, examples short of negatives)."""
    import ray
    import ray.data

    n_examples = short = 0
    if not items:
        return n_examples, short
    corpus = _corpus(ctx, vectors=False)
    ds = _actor_map(items, ExportPartition, (plan, corpus.shards, corpus.bounds, [ray.put(queries)]))
    with ctx.reporter.task("exporting (ray)", total=total) as advance:
        for row in ds.iter_rows():
            n_examples += int(row["examples"])
            short += int(row["short"])
            advance(int(row["queries"]))
    return n_examples, short


def _write_export(target_path: Path, scratch: Path, n_parts: int, o, target: int) -> int:
    """The parts streamed into the training file, one part in memory at a time; the rows written."""
    from hnmine.engines.ray.parts import num_rows, part_path, read_part, write_jsonl_from, write_parquet_from
    from hnmine.formats import get_format

    filled = [i for i in range(n_parts) if num_rows(part_path(scratch, i))]
    if not filled:
        tables = iter([get_format(o.format).build([], target, o.with_scores)])
    else:
        tables = (read_part(scratch, i) for i in filled)
    if target_path.suffix == ".jsonl":
        return write_jsonl_from(tables, target_path)
    # An empty part's list columns may have null types: every part takes the first filled part's schema.
    schema = read_part(scratch, filled[0]).schema if filled else get_format(o.format).build([], target, o.with_scores).schema
    return write_parquet_from((t.cast(schema) for t in tables), target_path, schema, one_chunk=True)
