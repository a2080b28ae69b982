"""--engine ray against --engine local: the same tables, the same export, reused across engines.

One small Ray (2 CPUs, 500 MB object store, no dashboard, logs in a temporary folder) is started in
this process for the module and stopped after it; hnmine uses a Ray that is already running and
leaves it running. The corpus is cut into two shards wherever it has more than 1,024 documents, and
BM25 blocks, score blocks and filter partitions are made small, so merging is exercised on small data.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pyarrow as pa
import pytest

from tests.conftest import ROOT, SHARED_DATA
from tests.ray_helpers import assert_same_tables, run_both, sha

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'hnmine[ray]'; make setup installs it)")


@pytest.fixture(scope="module")
def small_ray():
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


@pytest.fixture
def small_parts(monkeypatch):
    from hnmine.engines.ray import bm25, stages

    monkeypatch.setattr(bm25, "BLOCK_ROWS", 500)
    monkeypatch.setattr(stages, "SCORE_ROWS", 7000)
    monkeypatch.setattr(stages, "PARTITION_ROWS", 9000)


def test_merged_shard_lists_are_the_single_search():
    """Per query, the shards' top-k merged = faiss's exact search over the whole corpus (ids, order, score
    bits), with both of faiss's kernels. Exact duplicates tie inside the lists (listed larger row first,
    as faiss does); where duplicates tie for the k-th place, which of them faiss keeps depends on its heap,
    so there only the scores are compared."""
    import faiss

    from hnmine.engines.ray.corpus import merge_topk, shard_ranges

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = np.concatenate(
        [x[10:20] + 0.05 * rng.standard_normal((10, 32)).astype(np.float32), rng.standard_normal((1014, 32)).astype(np.float32)]
    )
    for duplicates in (False, True):
        if duplicates:
            x[4000:4010] = x[10:20]
        for k in (5, 101):
            for queries in (q[:7], q):  # faiss's two kernels (fewer than 20 queries, and BLAS)
                want_scores, want_ids = faiss.knn(queries, x, k, metric=faiss.METRIC_INNER_PRODUCT)
                for workers in (2, 3):
                    parts = []
                    for a, b in shard_ranges(len(x), workers):
                        d, i = faiss.knn(queries, np.ascontiguousarray(x[a:b]), k, metric=faiss.METRIC_INNER_PRODUCT)
                        parts.append((i + a, d))
                    ids, scores = merge_topk(parts, k)
                    assert np.array_equal(scores, want_scores)
                    above_last = scores > scores[:, -1:]  # not tied with the k-th score
                    assert np.array_equal(ids[above_last], want_ids[above_last])
                    if not duplicates:
                        assert np.array_equal(ids, want_ids)


def test_shards_are_aligned_to_faiss_blocks():
    from hnmine.engines.ray.corpus import ALIGN, shard_ranges

    for n, w in ((1, 4), (1400, 2), (5183, 2), (10**6, 7)):
        ranges = shard_ranges(n, w)
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a % ALIGN == 0 for a, _ in ranges) and all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:]))


def test_a_table_written_in_parts_is_the_same_bytes(tmp_path, monkeypatch):
    from hnmine.engines.ray import parts
    from hnmine.io.atomic import write_parquet

    monkeypatch.setattr(parts, "ROW_GROUP", 1000)  # write_table's row groups, scaled down with the writer's
    table = pa.table({"a": pa.array(np.arange(3500)), "s": pa.array([f"q{i % 97}" for i in range(3500)])})
    import pyarrow.parquet as pq

    pq.write_table(table, tmp_path / "whole.parquet", compression="zstd", row_group_size=1000)
    pieces = [table.slice(0, 10), table.slice(10, 1990), table.slice(2000, 1), table.slice(2001)]
    parts.write_parquet_from(pieces, tmp_path / "parts.parquet", table.schema)
    assert sha(tmp_path / "whole.parquet") == sha(tmp_path / "parts.parquet")
    write_parquet(table.slice(0, 0), tmp_path / "empty-local.parquet")
    parts.write_parquet_from([], tmp_path / "empty-ray.parquet", table.schema)
    assert sha(tmp_path / "empty-local.parquet") == sha(tmp_path / "empty-ray.parquet")


def test_sample_data_gives_the_same_tables_with_the_bundled_model(sample_run, small_ray, tmp_path):
    """Encoding in the actor pool, sharded search, scoring, filter and export: every table the same bytes."""
    from hnmine.options import make_options
    from hnmine.pipeline import mine

    run = tmp_path / "ray"
    result = mine(run, make_options({"data": ROOT / "sample_data"}), engine="ray")
    assert [o.skipped for o in result.outcomes] == [False] * 6
    assert_same_tables(sample_run, run)
    assert sha(sample_run / "index/dense/embeddings.npy") == sha(run / "index/dense/embeddings.npy")


@pytest.mark.parametrize("name", ["cranfield", "scifact"])
def test_shared_collections_give_the_same_tables(name, small_ray, small_parts, tmp_path):
    """Cranfield and SciFact with vectors from a fixed seed, hybrid retrieval (BM25 built from blocks
    with global statistics): the same candidates, scores, negatives and export."""
    data = SHARED_DATA / name
    if not data.exists():
        pytest.skip(f"{data} is not here (../shared/data)")
    split = {"cranfield": "test", "scifact": "train"}[name]
    local, ray_run = run_both(data, tmp_path, {"split": split, "retriever": "hybrid", "max_depth": 100, "depth": 30})
    assert_same_tables(local, ray_run)
    import pyarrow.parquet as pq

    assert pq.read_table(local / "negatives.parquet").num_rows > 0


def test_a_run_of_one_engine_is_reused_by_the_other(small_ray, small_parts, tmp_path):
    """Nothing changed: every stage skipped on the other engine (Ray not even used); a filter option
    changed on Ray over a local run: filter and export only, the same bytes as the local engine's."""
    from hnmine.options import make_options
    from hnmine.pipeline import mine

    data = SHARED_DATA / "cranfield"
    if not data.exists():
        pytest.skip(f"{data} is not here (../shared/data)")
    local, ray_run = run_both(data, tmp_path, {"split": "test", "retriever": "hybrid", "max_depth": 60, "depth": 30})
    from tests.ray_helpers import seeded_vectors  # noqa: F401  (the vectors are the run's own files)

    vectors = {"corpus_embeddings": tmp_path / "vectors/corpus_emb.npy", "query_embeddings": tmp_path / "vectors/query_emb.npy"}
    base = {"data": data, "split": "test", "retriever": "hybrid", "max_depth": 60, "depth": 30, **vectors}
    again = mine(ray_run, make_options(base), engine="local")
    assert all(o.skipped for o in again.outcomes)
    again = mine(local, make_options(base), engine="ray")
    assert all(o.skipped for o in again.outcomes)
    changed = {**base, "method": "topk-percpos"}
    other = tmp_path / "local-percpos"
    shutil.copytree(local, other)
    on_ray = mine(local, make_options(changed), engine="ray")
    assert [o.stage for o in on_ray.outcomes if not o.skipped] == ["filter", "export"]
    mine(other, make_options(changed))
    assert_same_tables(other, local)


def test_an_unknown_engine_lists_the_valid_ones(tmp_path):
    from hnmine.errors import UnknownName
    from hnmine.options import make_options
    from hnmine.pipeline import mine

    with pytest.raises(UnknownName, match=r"unknown engine 'spark' \(valid: local, ray\)"):
        mine(tmp_path / "run", make_options({"data": ROOT / "sample_data"}), engine="spark")
    assert not (tmp_path / "run").exists()


def test_help_and_local_runs_do_not_import_ray():
    import subprocess
    import sys

    code = (
        "import sys; from typer.testing import CliRunner; from hnmine.cli import app; "
        "r = CliRunner().invoke(app, ['mine', '--help']); assert '--engine' in r.output and '--ray-address' in r.output; "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
