"""Stage index: dense embeddings of the corpus (+ a faiss IVF index when it is large), and/or BM25.

Each index folder carries an `info.json` that says what it holds (model, revision, dtype, prompt,
normalisation, search type): the retrieve and score stages read that hand-off, never this stage's key.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from hnmine.options import Options
from hnmine.pipeline import Context, Stage, StageOutput
from hnmine.run_layout import candidate_index


def needs_dense(options: Options) -> bool:
    """Dense vectors are built for dense retrieval, and for a bi-encoder teacher (which reuses them)."""
    from hnmine.retrievers import needs_dense as retriever_needs_dense
    from hnmine.teachers import teacher_specs

    return retriever_needs_dense(options.retriever) or any(t.kind == "bi-encoder" for t in teacher_specs(options))


def needs_bm25(options: Options) -> bool:
    from hnmine.retrievers import needs_bm25 as retriever_needs_bm25

    return retriever_needs_bm25(options.retriever)


def bm25_options(options: Options):
    from hnmine.retrievers.bm25 import BM25Options

    return BM25Options(backend=options.bm25_backend, method=options.bm25_method)


def _writes(options: Options) -> tuple[str, ...]:
    out: tuple[str, ...] = ("dense_index",) if needs_dense(options) else ()
    out += ("bm25_index",) if needs_bm25(options) else ()
    return out + tuple(candidate_index(i) for i in range(2, 2 + len(options.candidate_model)))


def _check(options: Options) -> None:
    from hnmine.teachers import check_models_found

    check_models_found(options)
    from hnmine.errors import InputError
    from hnmine.inference.spec import EncoderSpec

    if needs_dense(options) or options.candidate_model:
        EncoderSpec.from_options(options).validate()
    if needs_dense(options) and options.corpus_embeddings is None:
        from hnmine.inference.models import check_prompt_name

        check_prompt_name(options.model, options.corpus_prompt_name, "--corpus-prompt-name")
    if options.corpus_embeddings is not None and not Path(options.corpus_embeddings).is_file():
        raise InputError(f"{options.corpus_embeddings}: no such file (--corpus-embeddings)")


def _sources(ctx: Context) -> dict:
    from hnmine.io.hashing import file_hash

    o = ctx.options
    return {"file:corpus_embeddings": file_hash(o.corpus_embeddings)} if o.corpus_embeddings is not None and needs_dense(o) else {}


def _key(ctx: Context) -> dict:
    from hnmine.inference.models import model_key, resolve_model
    from hnmine.inference.spec import EncoderSpec, encoder_key

    o = ctx.options
    spec = EncoderSpec.from_options(o)
    d: dict = {"dense": needs_dense(o), "bm25": needs_bm25(o)}
    if d["dense"] and o.corpus_embeddings is not None:
        # The user's vectors stand for the model: nothing is encoded, so no dtype is resolved (no torch).
        d.update(encoder={"model": o.model, "normalize": o.normalize}, exact_max_docs=o.exact_max_docs)
    elif d["dense"]:
        d.update(
            encoder=encoder_key(spec),
            corpus_prompt=o.corpus_prompt,
            corpus_prompt_name=o.corpus_prompt_name,
            exact_max_docs=o.exact_max_docs,
        )
    if d["bm25"]:
        d["bm25_options"] = bm25_options(o)
    if o.candidate_model:
        d["candidate_models"] = [
            {"model": model_key(m), "revision": resolve_model(m)[1], "dtype": replace(spec, model=m).resolved_dtype()}
            for m in o.candidate_model
        ]
    return d


def _work(ctx: Context) -> StageOutput:
    from hnmine.inference.batching import doc_texts

    o = ctx.options
    corpus = ctx.table("corpus", ["doc_id", "title", "text"])
    texts = doc_texts(corpus.column("title").to_pylist(), corpus.column("text").to_pylist())
    out = StageOutput(counts={"rows_in": corpus.num_rows, "rows_out": corpus.num_rows})
    if needs_dense(o):
        out.stats["dense"], out.models["dense"] = _dense_index(ctx, texts)
    for i, model in enumerate(o.candidate_model, start=2):
        out.models[f"dense{i}"] = _candidate_index(ctx, texts, i, model)
    if needs_bm25(o):
        from hnmine.io.atomic import write_json
        from hnmine.retrievers import bm25

        folder = ctx.run.path_of("bm25_index")
        info = bm25.build(texts, bm25_options(o), folder, reporter=ctx.reporter)
        write_json(info, ctx.run.path_of("bm25_info"))
        out.stats["bm25"] = info
    return out


def _dense_index(ctx: Context, texts: list[str]) -> tuple[dict, dict]:
    """Encode the corpus into the embedding cache (its chunks are parts: hnmine.inference.cache) or take the
    user's vectors; build the search index; write its info.json hand-off."""
    import numpy as np

    from hnmine.inference.models import resolve_model
    from hnmine.inference.spec import EncoderSpec, dtype_record
    from hnmine.io.atomic import write_json
    from hnmine.retrievers import dense

    o, run = ctx.options, ctx.run
    n_docs = len(texts)
    spec = EncoderSpec.from_options(o)
    folder = run.path_of("dense_index")
    folder.mkdir(parents=True, exist_ok=True)
    target = run.path_of("embeddings")
    name, revision = resolve_model(o.model)
    model = {"name": o.model, "path": name, "revision": revision}
    if o.corpus_embeddings is not None:  # checked and normalised block by block (bounded memory)
        from hnmine.io.hashing import file_hash
        from hnmine.io.vectors import save_user_vectors

        save_user_vectors(
            o.corpus_embeddings, n_docs, target, normalize=o.normalize, rows_of=f"the run's corpus table ({run.path_of('corpus')})"
        )
        embedding_key = "user:" + file_hash(o.corpus_embeddings)
        user_vectors = True
    else:
        from hnmine.inference.cache import encode_cached

        _, embedding_key = encode_cached(
            texts,
            spec,
            run.path_of("embedding_cache"),
            prompt=o.corpus_prompt,
            prompt_name=o.corpus_prompt_name,
            reporter=ctx.reporter,
            description="encoding corpus",
            executor=ctx.executor,
        )
        link_or_copy(run.path_of("embedding_cache") / f"{embedding_key}.npy", target)
        model.update(dtype_record(spec))
        user_vectors = False
    info = dense.build_index(np.load(target, mmap_mode="r"), folder, exact_max_docs=o.exact_max_docs, reporter=ctx.reporter)
    info.update(
        embedding_key=embedding_key,
        user_vectors=user_vectors,
        model=o.model,
        revision=revision,
        dtype=model.get("dtype"),
        normalize=o.normalize,
        max_length=o.max_length,
        batch_size=o.batch_size,
        corpus_prompt=o.corpus_prompt,
        corpus_prompt_name=o.corpus_prompt_name,
        backend=None if user_vectors else spec.backend_for(),
    )
    write_json(info, run.path_of("dense_info"))
    return info, model


def _candidate_index(ctx: Context, texts: list[str], i: int, model_name: str) -> dict:
    """Another dense model as a candidate source: the corpus encoded once (cached like the main one)."""
    from hnmine.inference.cache import encode_cached
    from hnmine.inference.models import resolve_model
    from hnmine.inference.spec import EncoderSpec, dtype_record
    from hnmine.io.atomic import write_json

    run = ctx.run
    spec = EncoderSpec.from_options(ctx.options, model=model_name)
    _, embedding_key = encode_cached(
        texts, spec, run.path_of("embedding_cache"), reporter=ctx.reporter, description=f"encoding corpus (dense{i})", executor=ctx.executor
    )
    folder = run.path_of(candidate_index(i))
    folder.mkdir(parents=True, exist_ok=True)
    link_or_copy(run.path_of("embedding_cache") / f"{embedding_key}.npy", folder / "embeddings.npy")
    name, revision = resolve_model(model_name)
    record = dtype_record(spec)
    write_json(
        {"type": "exact", "model": model_name, "revision": revision, "dtype": record["dtype"], "embedding_key": embedding_key},
        folder / "info.json",
    )
    return {"name": model_name, "path": name, "revision": revision, **record}


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link the cached vectors into the index (no copy on the same filesystem)."""
    if dst.exists() and os.path.samefile(src, dst):
        return  # already linked: renaming a link over itself is a no-op that would leave the temporary name behind
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            import shutil

            shutil.copyfile(src, tmp)  # another filesystem: a copy (which a full disk may refuse)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


STAGE = Stage(
    name="index",
    reads=lambda ctx: ("corpus",),
    writes=_writes,
    key=_key,
    work=_work,
    sources=_sources,
    check=_check,
    packages=("pyarrow", "numpy", "faiss-cpu", "bm25s", "rank-bm25", "sentence-transformers", "torch", "transformers"),
)
