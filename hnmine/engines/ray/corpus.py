"""The corpus in shards: row ranges of inputs/corpus.parquet, each held by one actor.

A shard holds its rows' doc ids, titles and texts and, for dense search, their vectors (read from the
index's embeddings file): an actor's memory is its shard, whatever the corpus size. The driver and
the other stages' workers ask the shards for what they need (texts of some rows, the rows of some
ids, a search), never for the whole corpus.

Dense search is sharded: every shard searches each query batch against its own vectors (faiss exact
search, the local engine's kernel) and the shards' top-k lists are merged per query by `merge_topk`:
best score first, of equal scores the smaller rows kept and listed larger first: the order faiss gives the local engine's
single search (tests/test_ray_engine.py checks the merge against it). One case differs: documents
with bit-identical scores (exact duplicates) competing for the k-th place. Which of them faiss keeps
there depends on the order its heap met them in, which no sharding can reproduce; the merge keeps the
smaller rows (what faiss does for fewer than 20 queries). Shard boundaries
are multiples of 1,024 rows, where faiss cuts its own blocks of the corpus, so every score is computed
by the same kernel call shape, bit for bit the score of the local search.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ALIGN = 1024  # faiss's exact search computes the corpus in blocks of 1,024 rows
MAX_SHARD_ROWS = 4 * 1024 * 1024  # 6 GiB of 384-d float32 vectors: one GPU's or one node's share at most


def shard_ranges(n_rows: int, n_workers: int, max_rows: int = MAX_SHARD_ROWS) -> list[tuple[int, int]]:
    """Row ranges: about one per worker, each a multiple of ALIGN rows (the last one shorter), at most max_rows."""
    if n_rows == 0:
        return []
    per = -(-n_rows // max(1, n_workers))
    per = min(max(ALIGN, -(-per // ALIGN) * ALIGN), max(ALIGN, max_rows // ALIGN * ALIGN))
    return [(a, min(a + per, n_rows)) for a in range(0, n_rows, per)]


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the k best of the shards' lists (ids are corpus rows, -1 padding): score descending,
    of equal scores the smaller rows are kept and listed larger row first (what faiss's exact search
    does for inner products). Returns (ids int64, scores float32), padded with -1 / -inf."""
    ids = np.concatenate([p[0] for p in parts], axis=1).astype(np.int64, copy=False)
    scores = np.concatenate([p[1] for p in parts], axis=1).astype(np.float32, copy=False)
    valid = ids >= 0
    key_score = np.where(valid, -scores.astype(np.float64), np.inf)  # padding sorts last
    # faiss keeps the first rows it meets among equal scores (the smaller rows) ...
    chosen = np.lexsort((np.where(valid, ids, np.iinfo(np.int64).max), key_score), axis=-1)[:, :k]
    ids, scores, valid, key_score = (np.take_along_axis(a, chosen, axis=1) for a in (ids, scores, valid, key_score))
    # ... and lists equal scores larger row first
    order = np.lexsort((np.where(valid, -ids, np.iinfo(np.int64).max), key_score), axis=-1)
    out_ids = np.take_along_axis(ids, order, axis=1)
    out_scores = np.take_along_axis(scores, order, axis=1)
    out_ids[~np.take_along_axis(valid, order, axis=1)] = -1
    if out_ids.shape[1] < k:  # fewer documents than k in all shards together
        pad = k - out_ids.shape[1]
        out_ids = np.pad(out_ids, ((0, 0), (0, pad)), constant_values=-1)
        out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return out_ids, out_scores


class CorpusShard:
    """One shard's rows (an actor: `ray.remote(CorpusShard)`)."""

    def __init__(self, corpus_path: str, start: int, stop: int, embeddings_path: str | None = None, threads: int = 1):
        import pandas as pd

        from hnmine.engines.ray.parts import read_rows
        from hnmine.engines.ray.session import quiet_ray_logging

        quiet_ray_logging()
        self.start, self.stop = start, stop
        table = read_rows(Path(corpus_path), start, stop, ["doc_id", "title", "text"])
        self.doc_ids = table.column("doc_id").combine_chunks()
        self.titles = table.column("title").to_pylist()
        self.bodies = table.column("text").to_pylist()
        self.index = pd.Index(self.doc_ids.to_pylist())
        self.vectors: np.ndarray | None = None
        if embeddings_path is not None:
            self.vectors = np.ascontiguousarray(np.load(embeddings_path, mmap_mode="r")[start:stop], dtype=np.float32)
        self.threads = threads

    def ready(self) -> int:
        return self.stop - self.start

    # -- lookups --------------------------------------------------------------------------------

    def model_texts(self, rows: np.ndarray) -> list[str]:
        """The text a model sees ('title text', hnmine.encode.doc_texts) of global rows of this shard."""
        from hnmine.encode import doc_texts

        local = np.asarray(rows, dtype=np.int64) - self.start
        return doc_texts([self.titles[i] for i in local], [self.bodies[i] for i in local])

    def ids(self, rows: np.ndarray):
        import pyarrow as pa

        return self.doc_ids.take(pa.array(np.asarray(rows, dtype=np.int64) - self.start))

    def find(self, doc_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(positions in doc_ids found here, their global rows)."""
        local = self.index.get_indexer(doc_ids)
        hit = np.flatnonzero(local >= 0)
        return hit, local[hit].astype(np.int64) + self.start

    def documents(self, rows: np.ndarray) -> dict:
        local = np.asarray(rows, dtype=np.int64) - self.start
        return {
            "doc_id": self.doc_ids.take(local).to_pylist(),
            "title": [self.titles[i] for i in local],
            "text": [self.bodies[i] for i in local],
        }

    def text_lengths(self, spec) -> np.ndarray:
        """What the encoding order sorts by, for this shard's texts (hnmine.encode.text_lengths)."""
        from hnmine.encode import doc_texts, text_lengths

        return text_lengths(doc_texts(self.titles, self.bodies), spec)

    # -- dense search -----------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of this shard for each query (faiss exact inner product), ids as global rows."""
        import faiss

        assert self.vectors is not None, "a shard started without vectors cannot search"
        faiss.omp_set_num_threads(self.threads)
        k = min(k, self.stop - self.start)
        d, i = faiss.knn(np.ascontiguousarray(queries, dtype=np.float32), self.vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
        i = i.astype(np.int64)
        i[i >= 0] += self.start
        return i, d


class Corpus:
    """The driver's handle on the shards: lookups by row or id, routed to the shards that hold them."""

    def __init__(
        self,
        corpus_path: Path,
        n_rows: int,
        n_workers: int,
        embeddings_path: Path | None = None,
        threads: int = 1,
        max_rows: int = MAX_SHARD_ROWS,
    ):
        import ray

        self.ranges = shard_ranges(n_rows, n_workers, max_rows)
        self.bounds = np.array([a for a, _ in self.ranges] + [n_rows], dtype=np.int64)
        actor: Any = ray.remote(CorpusShard)
        self.shards: list[Any] = [
            actor.options(num_cpus=0).remote(str(corpus_path), a, b, str(embeddings_path) if embeddings_path else None, threads)
            for a, b in self.ranges
        ]
        ray.get([s.ready.remote() for s in self.shards])

    def close(self) -> None:
        import ray

        for s in self.shards:
            ray.kill(s)
        self.shards = []

    def by_shard(self, rows: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(shard, positions into rows) for each shard holding some of `rows`."""
        shard_of = np.searchsorted(self.bounds, rows, side="right") - 1
        return [(int(s), np.flatnonzero(shard_of == s)) for s in np.unique(shard_of)]


def lookup_rows(shards, doc_ids: list[str]) -> np.ndarray:
    """Global corpus row of each id (-1 where no shard holds it): every shard is asked (ids are not partitioned by value)."""
    import ray

    rows = np.full(len(doc_ids), -1, dtype=np.int64)
    for hit, found in ray.get([s.find.remote(doc_ids) for s in shards]):
        rows[hit] = found
    return rows


def rows_to(shards, bounds: np.ndarray, rows: np.ndarray, method: str, *args) -> list:
    """Call `method(rows_of_shard, *args)` on the shards holding `rows`; results per shard with positions."""
    import ray

    shard_of = np.searchsorted(bounds, rows, side="right") - 1
    calls = []
    for s in np.unique(shard_of):
        pos = np.flatnonzero(shard_of == s)
        calls.append((pos, getattr(shards[int(s)], method).remote(rows[pos], *args)))
    return [(pos, ray.get(ref)) for pos, ref in calls]


def model_texts(shards, bounds: np.ndarray, rows: np.ndarray) -> list[str]:
    out: list = [None] * len(rows)
    for pos, texts in rows_to(shards, bounds, rows, "model_texts"):
        for p, t in zip(pos.tolist(), texts):
            out[p] = t
    return out


def doc_ids_of(shards, bounds: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Doc ids (numpy object array of str) of global rows."""
    out = np.empty(len(rows), dtype=object)
    for pos, ids in rows_to(shards, bounds, rows, "ids"):
        out[pos] = np.asarray(ids.to_pylist(), dtype=object)
    return out


def documents_of(shards, bounds: np.ndarray, rows: np.ndarray):
    """A corpus table (doc_id, title, text) of global rows, in the order given."""
    import pyarrow as pa

    cols: dict[str, list] = {"doc_id": [None] * len(rows), "title": [None] * len(rows), "text": [None] * len(rows)}
    for pos, docs in rows_to(shards, bounds, rows, "documents"):
        for name in cols:
            for p, v in zip(pos.tolist(), docs[name]):
                cols[name][p] = v
    return pa.table({name: pa.array(v, pa.string()) for name, v in cols.items()})
