"""Stage 2, retrieve: top candidates per query from dense, BM25, or both fused by reciprocal rank."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from hnmine.io.files import read_parquet
from hnmine.encode import EncoderSpec, encode_cached, encoder_key
from hnmine.errors import OptionError, RunDirError
from hnmine.io.atomic import write_parquet
from hnmine.progress import Reporter
from hnmine.retrievers import check_retriever, needs_bm25, needs_dense
from hnmine.retrievers import bm25 as bm25_mod
from hnmine.retrievers import dense as dense_mod
from hnmine.retrievers.fusion import RRF_K
from hnmine.rundir import RunDir, StageOutcome, stage_key
from hnmine.stages.candidates import CANDIDATE_SCHEMA, build_candidates  # noqa: F401 (CANDIDATE_SCHEMA: re-exported)

@dataclass(frozen=True)
class RetrieveOptions:
    retriever: str = "dense"
    max_depth: int = 200
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    query_prompt: str | None = None
    query_prompt_name: str | None = None
    rrf_k: int = RRF_K
    nprobe: int | None = None
    min_recall: float = dense_mod.MIN_RECALL
    query_embeddings: Path | None = None

    def validate(self) -> None:
        check_retriever(self.retriever)
        if self.max_depth < 1:
            raise OptionError("--max-depth must be at least 1")
        if not 0 < self.min_recall <= 1:
            raise OptionError("--min-recall must be in (0, 1]")
        if self.nprobe is not None and self.nprobe < 1:
            raise OptionError("--nprobe must be at least 1")


def _key_options(opts: RetrieveOptions) -> dict:
    from hnmine.stages.index import _user_vectors_fingerprint

    d = {"retriever": opts.retriever, "max_depth": opts.max_depth}
    if needs_dense(opts.retriever):
        if opts.query_embeddings is not None:  # the user's query vectors: nothing is encoded
            enc = {"model": opts.encoder.model, "normalize": opts.encoder.normalize}
        else:
            enc = encoder_key(opts.encoder)
        d.update(encoder=enc, query_prompt=opts.query_prompt, query_prompt_name=opts.query_prompt_name,
                 nprobe=opts.nprobe, min_recall=opts.min_recall, query_embeddings=_user_vectors_fingerprint(opts.query_embeddings))
    if opts.retriever == "hybrid":
        d["rrf_k"] = opts.rrf_k
    return d


def run_retrieve(run: RunDir, opts: RetrieveOptions, *, force: bool = False, reporter: Reporter | None = None) -> StageOutcome:
    reporter = reporter or Reporter()
    opts.validate()
    inputs = {"inputs": run.output_fingerprint("inputs"), "index": run.output_fingerprint("index")}
    key = stage_key("retrieve", _key_options(opts), inputs)
    if not force and run.up_to_date("retrieve", key):
        return run.skipped("retrieve")
    started = time.perf_counter()
    index_manifest = run.manifest("index") or {}
    idx_opts = index_manifest.get("options", {})
    if needs_dense(opts.retriever) and not idx_opts.get("dense"):
        raise RunDirError(f"{run.path}: the index has no dense part; rerun `hnmine index` with --retriever {opts.retriever}")
    if needs_bm25(opts.retriever) and not idx_opts.get("bm25"):
        raise RunDirError(f"{run.path}: the index has no BM25 part; rerun `hnmine index` with --retriever {opts.retriever}")
    if needs_dense(opts.retriever) and idx_opts.get("encoder", {}).get("model") not in (None, opts.encoder.model):
        raise OptionError(
            f"the index was built with model '{idx_opts['encoder']['model']}', not '{opts.encoder.model}'; rerun `hnmine index` with the same --model"
        )
    corpus_ids = read_parquet(run.require("inputs/corpus.parquet"), columns=["doc_id"]).column("doc_id").to_numpy(zero_copy_only=False)
    queries = read_parquet(run.require("inputs/queries.parquet"))
    qrels = read_parquet(run.require("inputs/qrels.parquet"))
    query_ids = queries.column("query_id").to_pylist()
    positives = _positives_by_query(qrels)
    # Search deep enough that every query keeps max_depth non-positive candidates, whatever its
    # number of positives (searching depth + 1 short-changes queries with several positives).
    extra = max((len(v) for v in positives.values()), default=0)
    k = opts.max_depth + extra
    lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    models = {}
    if needs_dense(opts.retriever):
        lists["dense"], plan = _dense_search(run, opts, queries, k, reporter)
        models["dense"] = index_manifest.get("models", {}).get("dense", {})
    for i, model in enumerate(m["model"] for m in idx_opts.get("candidate_models", [])):
        name = f"dense{i + 2}"
        lists[name] = _extra_dense_search(run, opts, name, model, queries, k, reporter)
        models[name] = index_manifest.get("models", {}).get(name, {})
    if needs_bm25(opts.retriever):
        bopts = bm25_mod.BM25Options(**idx_opts["bm25_options"])
        lists["bm25"] = bm25_mod.search(queries.column("text").to_pylist(), k, bopts, run / "index/bm25", len(corpus_ids), reporter=reporter,
                                        workers=opts.encoder.workers)
    table = build_candidates(query_ids, positives, corpus_ids, lists, opts.max_depth, opts.rrf_k)
    write_parquet(table, run / "candidates.parquet")
    stats = {"search_k": int(k), "queries_with_no_candidates": int(len(set(query_ids)) - len(set(table.column("query_id").to_pylist())))}
    if needs_dense(opts.retriever) and "tried" in plan:
        stats["dense_search"] = plan
        stats["ann_recall"] = plan["recall"]
    return run.finish(
        "retrieve", key, options=_key_options(opts), inputs=inputs, outputs=["candidates.parquet"],
        counts={"rows_in": queries.num_rows, "rows_out": table.num_rows}, stats=stats, started=started, models=models,
        packages=("pyarrow", "numpy", "faiss-cpu", "bm25s", "sentence-transformers", "torch"),
    )


def _positives_by_query(qrels: pa.Table) -> dict[str, set[str]]:
    pos = qrels.filter(qrels.column("is_positive"))
    out: dict[str, set[str]] = {}
    for q, d in zip(pos.column("query_id").to_pylist(), pos.column("doc_id").to_pylist()):
        out.setdefault(q, set()).add(d)
    return out


def _query_vectors(run: RunDir, opts: RetrieveOptions, queries: pa.Table, reporter: Reporter) -> np.ndarray:
    if opts.query_embeddings is not None:
        from hnmine.stages.index import load_user_vectors

        return load_user_vectors(opts.query_embeddings, queries.num_rows, normalize=opts.encoder.normalize)
    vectors, _ = encode_cached(
        queries.column("text").to_pylist(), opts.encoder, run.cache / "embeddings",
        prompt=opts.query_prompt, prompt_name=opts.query_prompt_name, reporter=reporter, description="encoding queries",
    )
    return vectors


def _dense_search(run: RunDir, opts: RetrieveOptions, queries: pa.Table, k: int, reporter: Reporter):
    folder = run / "index/dense"
    vectors = np.load(folder / "embeddings.npy", mmap_mode="r")
    info = (run.manifest("index") or {}).get("stats", {}).get("dense", {"type": "exact"})
    qv = _query_vectors(run, opts, queries, reporter)
    if qv.shape[1] != vectors.shape[1]:
        raise OptionError(f"query vectors have {qv.shape[1]} dimensions, corpus vectors {vectors.shape[1]}")
    index = dense_mod.read_ann_index(info, folder)  # one read for the plan and the search
    plan = dense_mod.plan_search(qv, vectors, min(k, 100), index_info=info, folder=folder, nprobe=opts.nprobe,
                                 min_recall=opts.min_recall, index=index, reporter=reporter)
    if plan["type"] == "ivf":
        reporter.info(f"IVF search, nprobe {plan['nprobe']} of {info['nlist']} lists: recall@{plan['k']} {plan['recall']:.3f} against exact search on a query sample")
    found = dense_mod.search(qv, vectors, k, index_info=info, folder=folder, nprobe=plan.get("nprobe"),
                             exact=plan["type"] == "exact", index=index, reporter=reporter)
    return found, plan


def _extra_dense_search(run: RunDir, opts: RetrieveOptions, name: str, model: str, queries: pa.Table, k: int, reporter: Reporter):
    """Another dense model as a candidate source; queries are encoded without prompts (they belong to the main model)."""
    from dataclasses import replace

    vectors = np.load(run / f"index/{name}/embeddings.npy", mmap_mode="r")
    qv, _ = encode_cached(queries.column("text").to_pylist(), replace(opts.encoder, model=model), run.cache / "embeddings",
                          reporter=reporter, description=f"encoding queries ({name})")
    return dense_mod.search(qv, vectors, k, index_info={"type": "exact"}, folder=run / f"index/{name}", reporter=reporter)
