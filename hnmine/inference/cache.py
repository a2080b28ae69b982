"""The embedding cache: vectors of a list of texts, keyed on everything that changes them.

The key holds the model and its revision, the prompt, max length, dtype, normalisation, batch size and
order, the backend, and the texts. Vectors are encoded in length-sorted chunks of CHUNK texts, each a
part run by the executor (hnmine.parts: in this process, in worker processes, or in Ray actors that
hold the model) and written atomically as it finishes, so an interrupted encode resumes where it
stopped, on either engine. Every chunk is cut into the same batches whoever runs it, so the vectors are
the same bytes for any executor and any number of workers (with the same --threads).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hnmine.inference.batching import BATCH_ORDER, encode_batches, encoding_order
from hnmine.inference.models import model_key, resolve_model
from hnmine.inference.pool import split_batches
from hnmine.inference.spec import EncoderSpec, backend_key
from hnmine.io.atomic import atomic_path, open_npy_for_writing
from hnmine.parts import Parts, run_in_process
from hnmine.progress import Reporter

CHUNK = 4096


def save_npy(array: np.ndarray, target: Path) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def saved_order(parts: Path, n: int) -> np.ndarray | None:
    """The order an interrupted encode of these texts used, when it is intact."""
    from hnmine.io.vectors import NPY_ERRORS

    try:
        order = np.load(parts / "order.npy")
    except NPY_ERRORS:
        return None
    if order.shape != (n,) or order.dtype.kind != "i" or not np.array_equal(np.sort(order), np.arange(n)):
        return None
    return order


def texts_digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    update_texts_digest(h, texts)
    return h.hexdigest()


def update_texts_digest(h, texts: Sequence[str]) -> None:
    """Feed texts to a texts_digest in order (the digest of a long list, part by part)."""
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)


def embedding_key(
    spec: EncoderSpec, prompt: str | None, prompt_name: str | None, texts: Sequence[str] | None, *, digest: tuple[str, int] | None = None
) -> str:
    """The cache key of these texts' vectors; `digest`: (texts_digest, count) when the texts are not at hand."""
    _, revision = resolve_model(spec.model)
    text_digest, n = digest if digest is not None else (texts_digest(texts or ()), len(texts or ()))
    payload = {
        "model": model_key(spec.model),
        "revision": revision,
        "prompt": prompt,
        "prompt_name": prompt_name,
        "max_length": spec.max_length,
        "dtype": spec.resolved_dtype(),
        "normalize": spec.normalize,
        # Batch composition changes the last bits of the vectors (measured up to 2e-3 in bf16).
        "batch_size": spec.batch_size,
        "batch_order": BATCH_ORDER,
        "texts": text_digest,
        "n": n,
        **backend_key(spec),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def encode_cached(
    texts: Sequence[str],
    spec: EncoderSpec,
    cache_dir: Path,
    *,
    prompt: str | None = None,
    prompt_name: str | None = None,
    reporter: Reporter | None = None,
    description: str = "encoding",
    executor: Any = None,
) -> tuple[np.ndarray, str]:
    """Embeddings (float32, memory-mapped) for `texts`, from the cache when present, else encoded by
    `executor` (None: in this process). Returns (array, key)."""
    reporter = reporter or Reporter()
    spec.validate()
    key = embedding_key(spec, prompt, prompt_name, texts)
    final = Path(cache_dir) / f"{key}.npy"
    cached = load_verified(final, len(texts))
    if cached is not None:
        return cached, key
    parts = cache_parts(cache_dir, key)
    parts.mkdir(parents=True, exist_ok=True)
    order = _encode_chunks(texts, spec, parts, prompt, prompt_name, reporter, description, executor)
    return finish_cache(parts, final, order), key


def _encode_chunks(
    texts, spec: EncoderSpec, parts: Path, prompt, prompt_name, reporter: Reporter, description: str, executor
) -> np.ndarray:
    """Encode into `parts` every chunk not already there (a resumed run skips the finished ones); the order."""
    # Length-sorted order: batches of similar length waste little padding. Chunk boundaries are fixed
    # by this order, and it is saved with the chunks, so a resumed run finds the same chunks.
    order = saved_order(parts, len(texts))
    order_saved = order is not None
    if order is None:
        from hnmine.run_layout import remove_inside

        for stale in parts.glob("chunk-*.npy"):  # made in an order no longer known: cannot be placed
            remove_inside(_cache_root(parts), stale)
        order = encoding_order(texts, spec)
    layout = spec.layout()
    items: list[dict] = []
    for c in range((len(texts) + CHUNK - 1) // CHUNK):
        idx = order[c * CHUNK : (c + 1) * CHUNK]
        if chunk_ok(chunk_file(parts, c), len(idx)):
            continue
        # With several workers a chunk is cut into pieces of whole batches, a few per worker: the same
        # batches in any piece, so the same bytes.
        workers = len(layout.devices)
        pieces = split_batches(len(idx), spec.batch_size, workers) if workers > 1 else [(0, len(idx))]
        for k, (a, b) in enumerate(pieces):
            items.append({"chunk": c, "last": k == len(pieces) - 1, "texts": [texts[i] for i in idx[a:b]]})
    step = Parts(
        label=description,
        items=items,
        run=encode_piece,
        shared={"spec": spec.for_workers(), "prompt": prompt, "prompt_name": prompt_name},
        hold=hold_encoder,
        units=lambda item: len(item["texts"]),
        layout=layout,
    )
    done: list[np.ndarray] = []
    results = executor.map(step, reporter) if executor is not None else run_in_process(step, reporter)
    for item, vectors in zip(items, results):
        done.append(vectors)
        if item["last"]:  # the chunk is whole: written atomically, its order first (nothing before a vector)
            if not order_saved:
                save_npy(order, parts / "order.npy")
                order_saved = True
            save_npy(np.concatenate(done, axis=0), chunk_file(parts, int(item["chunk"])))
            done = []
    return order


def hold_encoder(shared: dict, device: str):
    """What an encoding worker holds: the model, on its device."""
    return shared["spec"].on(device).load()


def encode_piece(item: dict, shared: dict, model) -> np.ndarray:
    """Some whole batches of a chunk through the model: their vectors."""
    return encode_batches(model, item["texts"], shared["spec"], shared["prompt"], shared["prompt_name"], lambda n=1: None)


def cache_parts(cache_dir: Path, key: str) -> Path:
    """The folder of an unfinished encode's chunks (and its order.npy).

    Its stale chunks and, once finished, the folder itself are removed: refused (before any encoding)
    when the way from the run directory to it passes through a link, which would take them elsewhere."""
    from hnmine.run_layout import refuse_link

    parts = Path(cache_dir) / f"{key}.parts"
    refuse_link(_cache_root(parts), parts)
    return parts


def _cache_root(parts: Path) -> Path:
    """The run directory of a cache's parts folder (RUN/cache/embeddings/KEY.parts: RUN); else the cache folder."""
    from hnmine.run_layout import LAYOUT

    cache = Path(LAYOUT["embedding_cache"]).parts
    folder = parts.parent
    return Path(*folder.parts[: -len(cache)]) if folder.parts[-len(cache) :] == cache else folder


def chunk_file(parts: Path, c: int) -> Path:
    return parts / f"chunk-{c:06d}.npy"


def finish_cache(parts: Path, final: Path, order: np.ndarray) -> np.ndarray:
    """Every chunk encoded: the vectors put back in text order, written with their digest; parts removed."""
    n_chunks = (len(order) + CHUNK - 1) // CHUNK
    dim = np.load(chunk_file(parts, 0), mmap_mode="r").shape[1] if n_chunks else 0
    with atomic_path(final) as tmp:
        out = open_npy_for_writing(tmp, (len(order), dim), np.float32)
        for c in range(n_chunks):
            idx = order[c * CHUNK : (c + 1) * CHUNK]
            out[idx] = np.load(chunk_file(parts, c))
        out.flush()
        del out
    # The digest is written after the vectors: a cache file without one (a killed process, an
    # older version) or whose bytes no longer match it is encoded again, never trusted.
    from hnmine.io.hashing import file_hash

    with atomic_path(_digest_path(final)) as tmp:
        tmp.write_text(file_hash(final) + "\n", encoding="utf-8")
    from hnmine.run_layout import remove_inside

    remove_inside(_cache_root(parts), parts)
    return np.load(final, mmap_mode="r")


def _digest_path(final: Path) -> Path:
    return final.with_name(final.name + ".sha256")


def load_verified(final: Path, n_rows: int) -> np.ndarray | None:
    """The cached vectors when their bytes match the recorded sha256 and their shape the texts; else None."""
    from hnmine.io.hashing import file_hash
    from hnmine.io.vectors import NPY_ERRORS

    digest = _digest_path(final)
    if not final.exists() or not digest.exists():
        return None
    try:
        if file_hash(final) != digest.read_text(encoding="utf-8").strip():
            return None
        vectors = np.load(final, mmap_mode="r")
    except NPY_ERRORS:
        return None
    if vectors.ndim != 2 or vectors.shape[0] != n_rows or vectors.dtype != np.float32:
        return None
    return vectors


def chunk_ok(chunk_file: Path, n_rows: int) -> bool:
    """A chunk of an interrupted encode is reused only when it loads whole, with the right shape."""
    if not chunk_file.exists():
        return False
    from hnmine.io.vectors import NPY_ERRORS

    try:
        vectors = np.load(chunk_file)
    except NPY_ERRORS:  # a damaged chunk is encoded again
        return False
    return vectors.ndim == 2 and vectors.shape[0] == n_rows and vectors.dtype == np.float32 and bool(np.isfinite(vectors).all())
