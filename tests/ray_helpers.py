"""Helpers for the Ray engine's tests: data with precomputed vectors, runs of both engines, table comparison."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from conftest import RUN_TABLES  # the module pytest loaded: `tests.conftest` would run it a second time

from hnmine.options import make_options
from hnmine.runner import mine


@contextlib.contextmanager
def small_local_ray() -> Iterator[None]:
    """One small Ray in this process (2 CPUs, 500 MB object store, no dashboard, logs in a temporary folder),
    stopped after; hnmine uses a Ray that is already running and leaves it running."""
    import ray

    temp = tempfile.mkdtemp(prefix="hnr-")  # short: Ray's socket paths must stay under 108 bytes
    env = {k: v for k, v in os.environ.items() if k.startswith(("HF_", "HNMINE_", "TOKENIZERS_"))}
    ray.init(
        num_cpus=2,
        object_store_memory=500 * 2**20,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=temp,
        runtime_env={"env_vars": env},
    )
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def seeded_vectors(run: Path, data: Path, folder: Path, seed: int, dim: int = 48, **extra) -> dict:
    """Vectors one per row of the run's corpus and queries tables, from a fixed seed (no model needed):
    each query near its first positive, so retrieval finds something."""
    mine(run, make_options({"data": data, **extra}), stages=["inputs"])
    corpus = pq.read_table(run / "inputs/corpus.parquet", columns=["doc_id"]).column("doc_id").to_pylist()
    queries = pq.read_table(run / "inputs/queries.parquet", columns=["query_id"]).column("query_id").to_pylist()
    qrels = pq.read_table(run / "inputs/qrels.parquet")
    rng = np.random.default_rng(seed)
    docs = rng.standard_normal((len(corpus), dim)).astype(np.float32)
    row = {d: i for i, d in enumerate(corpus)}
    first = {}
    for q, d, pos in zip(*(qrels.column(c).to_pylist() for c in ("query_id", "doc_id", "is_positive"))):
        if pos and d in row:
            first.setdefault(q, row[d])
    qv = rng.standard_normal((len(queries), dim)).astype(np.float32)
    for i, q in enumerate(queries):
        if q in first:
            qv[i] = docs[first[q]] + 1.5 * qv[i]
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "corpus_emb.npy", docs)
    np.save(folder / "query_emb.npy", qv)
    return {"corpus_embeddings": folder / "corpus_emb.npy", "query_embeddings": folder / "query_emb.npy"}


def run_both(data: Path, tmp: Path, values: dict, seed: int = 7) -> tuple[Path, Path]:
    """The same options with the local and the Ray engine, each in a fresh run directory."""
    local, ray_run = tmp / "local", tmp / "ray"
    vectors = seeded_vectors(local, data, tmp / "vectors", seed, **{k: v for k, v in values.items() if k in ("split",)})
    options = make_options({"data": data, **vectors, **values})
    mine(local, options)
    mine(ray_run, options, engine="ray")
    return local, ray_run


def assert_same_tables(a: Path, b: Path, export: str = "export/triplet.parquet") -> None:
    """Every table and the export: the same bytes (the Ray engine writes the local engine's row groups)."""
    for rel in (*RUN_TABLES, export):
        if (Path(a) / rel).exists() or (Path(b) / rel).exists():
            ta, tb = pq.read_table(Path(a) / rel) if rel.endswith(".parquet") else None, None
            if rel.endswith(".parquet"):
                tb = pq.read_table(Path(b) / rel)
                assert ta.schema == tb.schema, rel
                for col in ta.column_names:
                    assert ta.column(col).equals(tb.column(col)), f"{rel}: column {col} differs"
            assert sha(Path(a) / rel) == sha(Path(b) / rel), rel
