"""Stage 1, index: dense embeddings of the corpus (+ a faiss index when the corpus is large), and/or BM25."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hnmine.io.files import read_parquet
from hnmine.encode import EncoderSpec, doc_texts, dtype_record, encode_cached, encoder_key, resolve_model
from hnmine.errors import InputError
from hnmine.io.atomic import write_json
from hnmine.progress import Reporter
from hnmine.retrievers import bm25 as bm25_mod
from hnmine.retrievers import dense as dense_mod
from hnmine.rundir import RunDir, StageOutcome, stage_key


@dataclass(frozen=True)
class IndexOptions:
    dense: bool = True
    bm25: bool = False
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    corpus_prompt: str | None = None
    corpus_prompt_name: str | None = None
    bm25_options: bm25_mod.BM25Options = field(default_factory=bm25_mod.BM25Options)
    exact_max_docs: int = dense_mod.EXACT_MAX_DOCS
    corpus_embeddings: Path | None = None  # vectors the user already has (npy or Parquet), in corpus order
    candidate_models: tuple[str, ...] = ()  # more dense models as candidate sources (fused by RRF)


def input_fingerprints(run: RunDir) -> dict:
    # The index depends on the corpus alone: new judgments or hidden positives do not re-index.
    from hnmine.rundir import file_hash

    run.output_fingerprint("inputs")  # the inputs stage must have run
    return {"corpus": file_hash(run.require("inputs/corpus.parquet"))}


def _key_options(opts: IndexOptions) -> dict:
    d = {"dense": opts.dense, "bm25": opts.bm25}
    if opts.dense and opts.corpus_embeddings is not None:
        # The user's vectors stand for the model: nothing is encoded, so no dtype is resolved (no torch).
        d.update(encoder={"model": opts.encoder.model, "normalize": opts.encoder.normalize}, exact_max_docs=opts.exact_max_docs,
                 corpus_embeddings=_user_vectors_fingerprint(opts.corpus_embeddings))
    elif opts.dense:
        d.update(
            encoder=encoder_key(opts.encoder),
            corpus_prompt=opts.corpus_prompt,
            corpus_prompt_name=opts.corpus_prompt_name,
            exact_max_docs=opts.exact_max_docs,
            corpus_embeddings=None,
        )
    if opts.bm25:
        d["bm25_options"] = opts.bm25_options
    if opts.candidate_models:
        d["candidate_models"] = [{"model": m, "revision": resolve_model(m)[1], "dtype": replace(opts.encoder, model=m).resolved_dtype()}
                                 for m in opts.candidate_models]
    return d


def _user_vectors_fingerprint(path: Path | None) -> str | None:
    if path is None:
        return None
    from hnmine.rundir import file_hash

    if not Path(path).exists():
        raise InputError(f"{path}: no such file")
    return file_hash(path)


def run_index(run: RunDir, opts: IndexOptions, *, force: bool = False, reporter: Reporter | None = None) -> StageOutcome:
    reporter = reporter or Reporter()
    inputs = input_fingerprints(run)
    key = stage_key("index", _key_options(opts), inputs)
    if not force and run.up_to_date("index", key):
        return run.skipped("index")
    started = time.perf_counter()
    corpus = read_parquet(run.require("inputs/corpus.parquet"), columns=["doc_id", "title", "text"])
    texts = doc_texts(corpus.column("title").to_pylist(), corpus.column("text").to_pylist())
    outputs, stats, models = [], {}, {}
    if opts.dense:
        folder = run / "index/dense"
        folder.mkdir(parents=True, exist_ok=True)
        if opts.corpus_embeddings is not None:
            save_user_vectors(opts.corpus_embeddings, len(texts), folder / "embeddings.npy", normalize=opts.encoder.normalize)
            cache_key = "user:" + _user_vectors_fingerprint(opts.corpus_embeddings)
        else:
            vectors, cache_key = encode_cached(
                texts, opts.encoder, run.cache / "embeddings", prompt=opts.corpus_prompt,
                prompt_name=opts.corpus_prompt_name, reporter=reporter, description="encoding corpus",
            )
            _link_or_copy(run.cache / "embeddings" / f"{cache_key}.npy", folder / "embeddings.npy")
        info = dense_mod.build_index(np.load(folder / "embeddings.npy", mmap_mode="r"), folder, exact_max_docs=opts.exact_max_docs, reporter=reporter)
        info["embedding_key"] = cache_key
        write_json(info, folder / "info.json")
        outputs.append("index/dense")
        stats["dense"] = info
        name, revision = resolve_model(opts.encoder.model)
        models["dense"] = {"name": opts.encoder.model, "path": name, "revision": revision}
        if opts.corpus_embeddings is None:
            models["dense"].update(dtype_record(opts.encoder))
    for i, model in enumerate(opts.candidate_models, start=2):
        # Extra candidate sources: each model encodes the corpus once (cached like the main one).
        spec = replace(opts.encoder, model=model)
        _, cache_key = encode_cached(texts, spec, run.cache / "embeddings", reporter=reporter, description=f"encoding corpus (dense{i})")
        folder = run / f"index/dense{i}"
        folder.mkdir(parents=True, exist_ok=True)
        _link_or_copy(run.cache / "embeddings" / f"{cache_key}.npy", folder / "embeddings.npy")
        write_json({"type": "exact", "model": model, "embedding_key": cache_key}, folder / "info.json")
        outputs.append(f"index/dense{i}")
        name, revision = resolve_model(model)
        models[f"dense{i}"] = {"name": model, "path": name, "revision": revision, **dtype_record(spec)}
    if opts.bm25:
        folder = run / "index/bm25"
        stats["bm25"] = bm25_mod.build(texts, opts.bm25_options, folder, reporter=reporter)
        outputs.append("index/bm25")
    return run.finish(
        "index", key, options=_key_options(opts), inputs=inputs, outputs=outputs,
        counts={"rows_in": corpus.num_rows, "rows_out": corpus.num_rows}, stats=stats, started=started,
        models=models, packages=("pyarrow", "numpy", "faiss-cpu", "bm25s", "rank-bm25", "sentence-transformers", "torch", "transformers"),
    )


def _open_user_vectors(path: Path, expected_rows: int) -> np.ndarray:
    """Vectors a user brings (npy, memory-mapped; or Parquet with one list column), shape-checked."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".npy":
        try:
            vectors = np.load(path, mmap_mode="r")
        except ValueError as exc:
            raise InputError(f"{path}: not a readable .npy file ({exc})") from None
        if vectors.dtype.kind not in "fiu":
            raise InputError(f"{path}: holds {vectors.dtype} values, not numbers")
    elif path.suffix in (".parquet", ".pq"):
        vectors = _parquet_vectors(path)
    else:
        raise InputError(f"{path}: unknown embeddings format '{path.suffix}' (valid: .npy, .parquet)")
    if vectors.ndim != 2 or vectors.shape[0] != expected_rows:
        raise InputError(f"{path}: expected {expected_rows} rows of vectors (one per row, in input order), found shape {tuple(vectors.shape)}")
    return vectors


def _parquet_vectors(path: Path) -> np.ndarray:
    import pyarrow.compute as pc

    table = read_parquet(path)
    cols = [c for c in table.column_names if str(table.schema.field(c).type).startswith(("list", "fixed_size_list", "large_list"))]
    if len(cols) != 1:
        raise InputError(f"{path}: expected one list column of vectors, found {len(cols)} (columns: {', '.join(table.column_names)})")
    column = table.column(cols[0]).combine_chunks()
    if column.null_count:
        raise InputError(f"{path}: row {int(np.argmax(column.is_null().to_numpy(zero_copy_only=False))) + 1} of column '{cols[0]}' has no vector")
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.argmax(lengths != lengths[0]))
        raise InputError(f"{path}: row {row + 1} of column '{cols[0]}' has {lengths[row]} values, row 1 has {lengths[0]}")
    # Flattened in Arrow: no Python float per value (a million 384-d vectors would be 384 million).
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return flat.reshape(len(column), int(lengths[0]) if len(lengths) else 0)


_BLOCK = 65536  # rows checked and normalised at a time: memory stays bounded whatever the corpus size


def _checked_block(vectors: np.ndarray, start: int, path: Path, normalize: bool) -> np.ndarray:
    block = np.array(vectors[start : start + _BLOCK], dtype=np.float32)
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        raise InputError(f"{path}: holds non-finite values (row {start + int(np.argmin(finite)) + 1})")
    if normalize:
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        block /= norms
    return block


def load_user_vectors(path: Path, expected_rows: int, *, normalize: bool) -> np.ndarray:
    """User vectors in memory (query vectors), checked and normalised."""
    vectors = _open_user_vectors(path, expected_rows)
    out = np.empty(vectors.shape, dtype=np.float32)
    for start in range(0, len(vectors), _BLOCK):
        out[start : start + _BLOCK] = _checked_block(vectors, start, Path(path), normalize)
    return out


def save_user_vectors(path: Path, expected_rows: int, target: Path, *, normalize: bool) -> None:
    """User vectors (corpus vectors) checked, normalised and written to `target` block by block."""
    from hnmine.io.atomic import atomic_path

    vectors = _open_user_vectors(path, expected_rows)
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=vectors.shape)
        for start in range(0, len(vectors), _BLOCK):
            out[start : start + _BLOCK] = _checked_block(vectors, start, Path(path), normalize)
        out.flush()
        del out


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link the cached vectors into the index (no copy on the same filesystem)."""
    if dst.exists() and os.path.samefile(src, dst):
        return  # already linked: renaming a link over itself is a no-op that would leave the temporary name behind
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        import shutil

        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def dense_info(run: RunDir) -> dict | None:
    p = run / "index/dense/info.json"
    return json.loads(p.read_text()) if p.exists() else None
