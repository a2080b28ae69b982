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


CRANFIELD = {"split": "test", "retriever": "hybrid", "max_depth": 100, "depth": 30}


@pytest.fixture(scope="module")
def cranfield_runs(small_ray, tmp_path_factory):
    """Cranfield with vectors from a fixed seed and hybrid retrieval, by each engine (small parts on Ray)."""
    from hnmine.engines.ray import bm25, stages

    data = SHARED_DATA / "cranfield"
    if not data.exists():
        pytest.skip(f"{data} is not here (../shared/data)")
    tmp = tmp_path_factory.mktemp("cranfield")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bm25, "BLOCK_ROWS", 500)
        mp.setattr(stages, "SCORE_ROWS", 7000)
        mp.setattr(stages, "PARTITION_ROWS", 9000)
        local, ray_run = run_both(data, tmp, CRANFIELD)
    return data, tmp, local, ray_run


def test_cranfield_gives_the_same_tables(cranfield_runs):
    """BM25 built from three blocks with global statistics, two corpus shards, several score blocks and
    filter partitions: the same candidates, scores, negatives and export."""
    import pyarrow.parquet as pq

    _, _, local, ray_run = cranfield_runs
    assert_same_tables(local, ray_run)
    assert pq.read_table(local / "negatives.parquet").num_rows > 0


def test_scifact_gives_the_same_tables(small_ray, small_parts, tmp_path):
    data = SHARED_DATA / "scifact"
    if not data.exists():
        pytest.skip(f"{data} is not here (../shared/data)")
    local, ray_run = run_both(data, tmp_path, {"split": "train", "retriever": "hybrid", "max_depth": 50, "depth": 30})
    assert_same_tables(local, ray_run)


def test_a_run_of_one_engine_is_reused_by_the_other(cranfield_runs, small_parts, tmp_path):
    """Nothing changed: every stage skipped on the other engine; a filter option changed on Ray over a
    local run: filter and export only, the same bytes as the local engine's."""
    from hnmine.options import make_options
    from hnmine.pipeline import mine

    data, tmp, local, ray_run = cranfield_runs
    vectors = {"corpus_embeddings": tmp / "vectors/corpus_emb.npy", "query_embeddings": tmp / "vectors/query_emb.npy"}
    base = {"data": data, **CRANFIELD, **vectors}
    assert all(o.skipped for o in mine(ray_run, make_options(base), engine="local").outcomes)
    assert all(o.skipped for o in mine(local, make_options(base), engine="ray").outcomes)
    changed = {**base, "method": "topk-percpos"}
    on_ray, on_local = tmp_path / "on-ray", tmp_path / "on-local"
    shutil.copytree(local, on_ray)
    shutil.copytree(local, on_local)
    result = mine(on_ray, make_options(changed), engine="ray")
    assert [o.stage for o in result.outcomes if not o.skipped] == ["filter", "export"]
    mine(on_local, make_options(changed))
    assert_same_tables(on_local, on_ray)
    # --relabel: the filter runs on the driver (it compares each query's candidates with its positives),
    # the export on Ray reads the promoted positives from positives.parquet, as the local one does.
    relabel = {**changed, "relabel": True, "relabel_margin": -0.05}
    result = mine(on_ray, make_options(relabel), engine="ray")
    assert [o.stage for o in result.outcomes if not o.skipped] == ["filter", "export"]
    mine(on_local, make_options(relabel))
    import pyarrow.parquet as pq

    assert "relabelled" in pq.read_table(on_ray / "positives.parquet").column("origin").to_pylist()
    assert_same_tables(on_local, on_ray)


def test_cross_encoder_and_ensemble_teachers_agree_within_the_tolerance(sample_run, small_ray, tmp_path):
    """A cross-encoder in the actor pool, with the index's bi-encoder as an ensemble: candidates the same
    bytes; each pair's batch differs from the local run's (length-sorted per block, not over the whole
    table), so scores agree within the reproducibility contract's tolerance and the negatives are the same."""
    import pyarrow.parquet as pq
    import torch
    from sentence_transformers import CrossEncoder

    from hnmine.encode import resolve_model
    from hnmine.options import make_options
    from hnmine.pipeline import mine
    from hnmine.reproducibility import score_tolerance

    torch.manual_seed(0)
    ce_dir = tmp_path / "ce"
    CrossEncoder(resolve_model("all-MiniLM-L6-v2")[0], num_labels=1, device="cpu").save(str(ce_dir))
    values = {
        "data": ROOT / "sample_data",
        "max_depth": 5,
        "method": "naive",
        "depth": 5,
        "teacher": (f"cross-encoder:{ce_dir}", "bi-encoder:all-MiniLM-L6-v2"),
    }
    runs = {}
    for engine in ("local", "ray"):
        runs[engine] = tmp_path / engine
        shutil.copytree(sample_run, runs[engine])  # the index is reused: retrieve, score, filter and export run
        mine(runs[engine], make_options(values), engine=engine)
    assert sha(runs["local"] / "candidates.parquet") == sha(runs["ray"] / "candidates.parquet")
    a, b = (pq.read_table(runs[e] / "scores.parquet") for e in ("local", "ray"))
    assert a.column_names == b.column_names and a.num_rows == b.num_rows
    assert a.select(["query_id", "doc_id"]).equals(b.select(["query_id", "doc_id"]))
    ce = [c for c in a.column_names if c.startswith("teacher_cross")][0]
    x, y = a.column(ce).to_numpy(), b.column(ce).to_numpy()
    assert np.abs(x - y).max() <= score_tolerance("bfloat16") * max(1.0, np.abs(x).max())
    na, nb = (pq.read_table(runs[e] / "negatives.parquet", columns=["query_id", "doc_id"]) for e in ("local", "ray"))
    assert na.equals(nb)


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
