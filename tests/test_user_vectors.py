"""Vectors the user brings (--corpus-embeddings / --query-embeddings): every stage runs without a model.

The default teacher scores with the same vectors retrieval used, so with both sides given no model is
loaded at all. Checked in a subprocess where importing torch, transformers or sentence-transformers fails.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES, write_beir

BLOCKED_RUN = """
import sys
for name in ("torch", "transformers", "sentence_transformers"):
    sys.modules[name] = None  # any import of these now raises ImportError
from hnmine.cli import app
sys.argv = ["hnmine", *sys.argv[1:]]
app()
"""


def _vectors(tmp_path, dim: int = 16):
    rng = np.random.default_rng(7)
    docs = rng.normal(size=(len(TINY_DOCS), dim)).astype(np.float32)
    queries = rng.normal(size=(len(TINY_QUERIES), dim)).astype(np.float32)
    # make each query close to its positive, so the rules have something to do
    for row, (_, d, _) in enumerate(TINY_QRELS):
        queries[row] = docs[[x["_id"] for x in TINY_DOCS].index(d)] + 0.3 * queries[row]
    np.save(tmp_path / "corpus.npy", docs)
    np.save(tmp_path / "queries.npy", queries)
    return docs, queries


def _blocked(args: list, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKED_RUN, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("retriever", ["dense", "hybrid"])
def test_mine_with_user_vectors_loads_no_model(tmp_path, retriever):
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    docs, queries = _vectors(tmp_path)
    run = tmp_path / "run"
    result = _blocked(
        [
            "mine",
            data,
            "--out",
            run,
            "--corpus-embeddings",
            tmp_path / "corpus.npy",
            "--query-embeddings",
            tmp_path / "queries.npy",
            "--retriever",
            retriever,
            "--num-negatives",
            "2",
            "--method",
            "naive",
            "--json",
        ]
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [s["stage"] for s in summary["stages"]] == ["inputs", "index", "retrieve", "score", "filter", "export"]

    # teacher scores are the cosine of the user's vectors, computed here by hand
    scores = pq.read_table(run / "scores.parquet").to_pylist()
    dn = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    doc_row = {d["_id"]: i for i, d in enumerate(TINY_DOCS)}
    query_row = {q["_id"]: i for i, q in enumerate(TINY_QUERIES)}
    assert scores
    for r in scores:
        expected = float(qn[query_row[r["query_id"]]] @ dn[doc_row[r["doc_id"]]])
        assert r["teacher_score"] == pytest.approx(expected, abs=1e-5)
    assert (run / "export/triplet.parquet").exists()


def test_score_stage_alone_takes_query_vectors(tmp_path):
    """`hnmine score --query-embeddings` (as a stage command in a script) reuses the given vectors."""
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    _vectors(tmp_path)
    run = tmp_path / "run"
    ce, qe = tmp_path / "corpus.npy", tmp_path / "queries.npy"
    for argv in (["index", data, "--corpus-embeddings", ce], ["retrieve", "--query-embeddings", qe], ["score", "--query-embeddings", qe]):
        result = _blocked([*argv, "--out", run, "--quiet"])
        assert result.returncode == 0, (argv, result.stderr)
    manifest = json.loads((run / "manifests/score.json").read_text())
    assert manifest["inputs"]["file:query_embeddings"]  # the vectors' fingerprint keys the stage


def test_changed_query_vectors_rerun_score(tmp_path):
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    _, queries = _vectors(tmp_path)
    run = tmp_path / "run"
    args = [
        "mine",
        data,
        "--out",
        run,
        "--corpus-embeddings",
        tmp_path / "corpus.npy",
        "--query-embeddings",
        tmp_path / "queries.npy",
        "--json",
    ]
    assert _blocked(args).returncode == 0
    before = pq.read_table(run / "scores.parquet").column("teacher_score").to_pylist()
    np.save(tmp_path / "queries.npy", -queries)
    result = _blocked(args)
    assert result.returncode == 0, result.stderr
    skipped = {s["stage"]: s["skipped"] for s in json.loads(result.stdout)["stages"]}
    assert skipped["index"] and not skipped["retrieve"] and not skipped["score"]
    after = pq.read_table(run / "scores.parquet").column("teacher_score").to_pylist()
    assert before != after


def test_parquet_vectors_equal_npy_vectors(tmp_path):
    import pyarrow as pa

    from hnmine.io.vectors import load_user_vectors, save_user_vectors

    rng = np.random.default_rng(1)
    v = rng.normal(size=(70, 5)).astype(np.float32)
    np.save(tmp_path / "v.npy", v)
    pq.write_table(pa.table({"id": list(range(70)), "emb": pa.array(v.tolist(), pa.list_(pa.float32()))}), tmp_path / "v.parquet")
    a = load_user_vectors(tmp_path / "v.npy", 70, normalize=True)
    b = load_user_vectors(tmp_path / "v.parquet", 70, normalize=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, rtol=1e-6)
    save_user_vectors(tmp_path / "v.parquet", 70, tmp_path / "out.npy", normalize=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), a)


def test_blockwise_check_names_the_bad_row(tmp_path, monkeypatch):
    from hnmine.errors import InputError
    from hnmine.io import vectors

    monkeypatch.setattr(vectors, "_BLOCK", 4)  # several blocks on a small array
    v = np.ones((10, 3), dtype=np.float32)
    v[6, 1] = np.inf
    np.save(tmp_path / "v.npy", v)
    with pytest.raises(InputError, match=r"v.npy: holds non-finite values \(row 7\)"):
        vectors.save_user_vectors(tmp_path / "v.npy", 10, tmp_path / "out.npy", normalize=True)
    assert not (tmp_path / "out.npy").exists() and not list(tmp_path.glob(".out.npy*"))


@pytest.mark.parametrize(
    "case, message",
    [
        ("ragged", "row 2 of column 'emb' has 2 values, row 1 has 3"),
        ("null", "row 3 of column 'emb' has no vector"),
        ("two columns", "expected one list column of vectors, found 2"),
    ],
)
def test_bad_parquet_vectors_are_one_line_errors(tmp_path, case, message):
    import pyarrow as pa
    from typer.testing import CliRunner

    from hnmine.cli import app

    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    n = len(TINY_DOCS)
    rows = [[1.0, 2.0, 3.0] for _ in range(n)]
    cols = {"emb": rows}
    if case == "ragged":
        rows[1] = [1.0, 2.0]
    elif case == "null":
        rows[2] = None
    else:
        cols["other"] = rows
    path = tmp_path / "v.parquet"
    pq.write_table(pa.table(cols), path)
    result = CliRunner().invoke(app, ["index", str(data), "--out", str(tmp_path / "run"), "--corpus-embeddings", str(path), "--quiet"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_ivf_search_through_the_cli_records_its_plan(tmp_path):
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    _vectors(tmp_path)
    run = tmp_path / "run"
    result = _blocked(
        [
            "mine",
            data,
            "--out",
            run,
            "--corpus-embeddings",
            tmp_path / "corpus.npy",
            "--query-embeddings",
            tmp_path / "queries.npy",
            "--exact-max-docs",
            "5",
            "--quiet",
        ]
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads((run / "manifests/retrieve.json").read_text())["stats"]
    assert stats["dense_search"]["type"] == "ivf" and stats["ann_recall"] == 1.0
    assert json.loads((run / "manifests/index.json").read_text())["stats"]["dense"]["type"] == "ivf"
