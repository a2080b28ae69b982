"""--engine ray against --engine local: the same tables, the same export, reused across engines.

One small Ray (2 CPUs, 500 MB object store, no dashboard, logs in a temporary folder) is started in
this process for the module and stopped after it; hnmine uses a Ray that is already running and
leaves it running. The stages' parts (search batches, score blocks, filter and export partitions,
encoding chunks) are made small, so combining many parts is exercised on small data.
"""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import ROOT, SHARED_DATA
from tests.ray_helpers import assert_same_tables, run_both, sha, small_local_ray

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'hnmine[ray]'; make setup installs it)")


@pytest.fixture(scope="module")
def small_ray():
    with small_local_ray():
        yield


SMALL_PARTS = {
    "hnmine.stages.retrieve": ("QUERY_BATCH", 50),
    "hnmine.stages.score": ("SCORE_ROWS", 7000),
    "hnmine.stages.filter": ("PARTITION_ROWS", 9000),
    "hnmine.stages.export": ("EXPORT_QUERIES", 40),
    "hnmine.inference.cache": ("CHUNK", 512),
}


def use_small_parts(mp) -> None:
    """Parts made small, so the executor runs many and the stages combine many (the driver makes the items)."""
    import importlib

    for module, (name, value) in SMALL_PARTS.items():
        mp.setattr(importlib.import_module(module), name, value)


@pytest.fixture
def small_parts(monkeypatch):
    use_small_parts(monkeypatch)


def test_sample_data_gives_the_same_tables_with_the_bundled_model(sample_run, small_ray, small_parts, tmp_path):
    """Encoding in the actor pool, search, scoring, filter and export as parts: every table the same bytes."""
    from hnmine.options import make_options
    from hnmine.runner import mine

    run = tmp_path / "ray"
    result = mine(run, make_options({"data": ROOT / "sample_data"}), engine="ray")
    assert [o.skipped for o in result.outcomes] == [False] * 6
    assert_same_tables(sample_run, run)
    assert sha(sample_run / "index/dense/embeddings.npy") == sha(run / "index/dense/embeddings.npy")


CRANFIELD = {"split": "test", "retriever": "hybrid", "max_depth": 100, "depth": 30}


@pytest.fixture(scope="module")
def cranfield_runs(small_ray, tmp_path_factory):
    """Cranfield with vectors from a fixed seed and hybrid retrieval, by each engine (small parts on both)."""
    data = SHARED_DATA / "cranfield"
    if not data.exists():
        pytest.skip(f"{data} is not here (../shared/data)")
    tmp = tmp_path_factory.mktemp("cranfield")
    with pytest.MonkeyPatch.context() as mp:
        use_small_parts(mp)
        local, ray_run = run_both(data, tmp, CRANFIELD)
    return data, tmp, local, ray_run


def test_cranfield_gives_the_same_tables(cranfield_runs):
    """Many search batches, score blocks, filter and export parts: the same candidates, scores, negatives
    and export."""
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
    from hnmine.runner import mine

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
    # --relabel: the verdicts are folded where the stage runs, the selection runs as parts on Ray; the export
    # reads the promoted positives from positives.parquet, as the local one does.
    relabel = {**changed, "relabel": True, "relabel_margin": -0.05}
    result = mine(on_ray, make_options(relabel), engine="ray")
    assert [o.stage for o in result.outcomes if not o.skipped] == ["filter", "export"]
    mine(on_local, make_options(relabel))
    import pyarrow.parquet as pq

    assert "relabelled" in pq.read_table(on_ray / "positives.parquet").column("origin").to_pylist()
    assert_same_tables(on_local, on_ray)


def test_cross_encoder_and_ensemble_teachers_give_the_same_tables(sample_run, small_ray, small_parts, tmp_path):
    """A cross-encoder in the actor pool, with the index's bi-encoder as an ensemble: the same batches as the
    local run (length-sorted over the whole table, whole batches per part), so the same bytes."""
    import pyarrow.parquet as pq
    import torch
    from sentence_transformers import CrossEncoder

    from hnmine.inference.models import resolve_model
    from hnmine.options import make_options
    from hnmine.runner import mine

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
    assert_same_tables(runs["local"], runs["ray"])
    assert any(c.startswith("teacher_cross") for c in pq.read_table(runs["ray"] / "scores.parquet").column_names)


def test_an_unknown_engine_lists_the_valid_ones(tmp_path):
    from hnmine.errors import UnknownName
    from hnmine.options import make_options
    from hnmine.runner import mine

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
