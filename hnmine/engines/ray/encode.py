"""The embedding cache filled on Ray: an actor pool that holds the model encodes the cache's chunks.

The same cache as the local engine (hnmine.encode): the same key, the same length order (order.npy),
the same chunks of 4,096 texts, each cut into the same batches and written atomically, the same final
file and digest. So a cache made by either engine is used by the other, and an encode killed on one
resumes on the other. Lengths for the order are counted where the texts are (the corpus shards); the
texts of a chunk go from the shards to the actor that encodes it; vectors go from the actor to disk.

Each actor runs torch with the thread count a local run would use (`--threads`, else the CPUs shared
out), takes that many CPUs from Ray, or one GPU per actor with `--device cuda`; the dtype is resolved
once, on the driver, so every node encodes with the precision the key names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from hnmine.encode import CHUNK, EncoderSpec


class EncodeActor:
    """Holds the model; encodes one chunk per call and writes it (an actor of a Ray Data pool)."""

    def __init__(self, spec: EncoderSpec, prompt: str | None, prompt_name: str | None, parts: str, texts_ref=None, corpus=None):
        from hnmine.engines.ray.session import quiet_ray_logging

        quiet_ray_logging()
        self.spec, self.prompt, self.prompt_name, self.parts = spec, prompt, prompt_name, Path(parts)
        self.texts_ref, self.corpus = texts_ref, corpus  # queries: a list in the object store; documents: the shards
        self.model = None

    def _texts(self, rows: np.ndarray) -> list[str]:
        if self.corpus is not None:
            from hnmine.engines.ray.corpus import model_texts

            shards, bounds = self.corpus
            return model_texts(shards, bounds, rows)
        import ray

        texts = ray.get(self.texts_ref[0])
        return [texts[i] for i in rows.tolist()]

    def __call__(self, batch: dict) -> dict:
        from hnmine.encode import _encode_batches, chunk_file, chunk_ok, load_sentence_transformer, save_npy

        done = []
        for c, rows in zip(batch["chunk"].tolist(), batch["rows"]):
            rows = np.asarray(rows, dtype=np.int64)
            target = chunk_file(self.parts, int(c))
            if not chunk_ok(target, len(rows)):
                if self.model is None:
                    self.model = load_sentence_transformer(self.spec)
                vectors = _encode_batches(self.model, self._texts(rows), self.spec, self.prompt, self.prompt_name, lambda n=1: None)
                save_npy(vectors, target)
            done.append(len(rows))
        return {"chunk": batch["chunk"], "texts": np.array(done, dtype=np.int64)}


def pool_layout(spec: EncoderSpec) -> tuple[int, dict]:
    """(actors, Ray resources per actor): one GPU each with a cuda device, else the local run's threads in CPUs."""
    from hnmine.engines.ray.session import cluster_cpus, cluster_gpus

    if spec.device.startswith("cuda"):
        gpus = max(1, cluster_gpus())
        return max(1, min(gpus, spec.workers if spec.workers > 1 else gpus)), {"num_gpus": 1, "num_cpus": 1}
    import ray

    threads = spec.resolved_threads()  # the local run's thread count: the same batches give the same bytes
    per_node = max([int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [1])
    cpus = max(1, min(threads, per_node))  # an actor must fit on one node
    return max(1, cluster_cpus() // cpus), {"num_cpus": cpus}


def driver_spec(spec: EncoderSpec) -> EncoderSpec:
    """The spec the actors run: dtype and threads resolved here (a worker node must not choose its own)."""
    device = "cuda" if spec.device.startswith("cuda") else spec.device  # each actor sees its own GPU as cuda:0
    return replace(spec, dtype=spec.resolved_dtype(), threads=spec.resolved_threads(), device=device, workers=1)


def encode_cached_ray(
    n: int,
    digest: tuple[str, int],
    lengths,
    spec: EncoderSpec,
    cache_dir: Path,
    *,
    texts: Sequence[str] | None = None,
    corpus=None,
    prompt: str | None = None,
    prompt_name: str | None = None,
    reporter=None,
    description: str = "encoding",
) -> tuple[np.ndarray, str]:
    """hnmine.encode.encode_cached on Ray. The texts are either `texts` (a list on the driver: queries) or
    the corpus shards (`corpus`: hnmine.engines.ray.corpus.Corpus); `lengths()` gives their encoding lengths."""
    import ray
    import ray.data

    from hnmine.encode import cache_parts, embedding_key, finish_cache, load_verified, order_from_counts, save_npy, saved_order
    from hnmine.progress import Reporter

    reporter = reporter or Reporter()
    spec.validate()
    key = embedding_key(spec, prompt, prompt_name, None, digest=digest)
    final = Path(cache_dir) / f"{key}.npy"
    cached = load_verified(final, n)
    if cached is not None:
        return cached, key
    parts = cache_parts(cache_dir, key)
    parts.mkdir(parents=True, exist_ok=True)
    order = saved_order(parts, n)
    if order is None:
        for stale in parts.glob("chunk-*.npy"):
            stale.unlink()
        order = order_from_counts(lengths())
        save_npy(order, parts / "order.npy")
    n_chunks = (n + CHUNK - 1) // CHUNK
    actors, resources = pool_layout(spec)
    run_spec = driver_spec(spec)
    # Object refs go to the actors inside a list: an actor restarted after a crash gets them again
    # (Ray warns about, and cannot restore, refs given as top-level constructor arguments).
    texts_ref = [ray.put(list(texts))] if texts is not None else None
    shards = (corpus.shards, corpus.bounds) if corpus is not None else None
    items = [{"chunk": c, "rows": order[c * CHUNK : (c + 1) * CHUNK]} for c in range(n_chunks)]
    ds = ray.data.from_items(items, override_num_blocks=max(1, n_chunks)).map_batches(
        EncodeActor,
        fn_constructor_args=(run_spec, prompt, prompt_name, str(parts), texts_ref, shards),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=min(actors, max(1, n_chunks))),
        **resources,
    )
    with reporter.task(description, total=n) as advance:
        for row in ds.iter_rows():
            advance(int(row["texts"]))
    return finish_cache(parts, final, order), key


def stream_digest(texts_batches) -> tuple[str, int]:
    """texts_digest over batches of texts (hnmine.encode.update_texts_digest): (digest, count)."""
    from hnmine.encode import update_texts_digest

    h = hashlib.sha256()
    n = 0
    for texts in texts_batches:
        update_texts_digest(h, texts)
        n += len(texts)
    return h.hexdigest(), n
