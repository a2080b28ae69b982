"""Teachers: cross-encoder batching across queries equals per-query scoring; ensembles standardise each teacher."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, TINY_DOCS, TINY_QUERIES, share_cache
from typer.testing import CliRunner

from hnmine.cli import app
from hnmine.inference.models import resolve_model
from hnmine.teachers import TeacherSpec
from hnmine.teachers.scoring import standardise

MODEL_PATH = resolve_model("all-MiniLM-L6-v2")[0]


@pytest.fixture(scope="module")
def cross_encoder():
    """A cross-encoder built from the bundled MiniLM (a fresh scoring head): real model code, offline."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    return CrossEncoder(MODEL_PATH, num_labels=1, device="cpu")


def test_batched_across_queries_equals_per_query_scoring(cross_encoder):
    from hnmine.inference.cross_encoder import score_pairs

    docs = [f"{d['title']} {d['text']}" for d in TINY_DOCS]
    queries, texts = [], []
    for q in TINY_QUERIES:
        for d in docs:
            queries.append(q["text"])
            texts.append(d)
    batched = score_pairs(cross_encoder, queries, texts, batch_size=7)
    reference = np.concatenate([cross_encoder.predict([(q["text"], d) for d in docs]) for q in TINY_QUERIES])
    np.testing.assert_allclose(batched, reference, rtol=1e-4, atol=1e-5)


def test_standardise_is_z_score():
    v = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    np.testing.assert_allclose(standardise(v), [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    assert (standardise(np.ones(3)) == 0).all()  # a constant teacher contributes nothing, no division by zero


def test_teacher_spec_parsing():
    assert TeacherSpec.parse("cross-encoder:/m/ce", "bi-encoder", "x") == TeacherSpec("cross-encoder", "/m/ce")
    assert TeacherSpec.parse("some/model", "bi-encoder", "x") == TeacherSpec("bi-encoder", "some/model")
    assert TeacherSpec.parse("bi-encoder:", "cross-encoder", "dflt") == TeacherSpec("bi-encoder", "dflt")


def test_cross_encoder_and_ensemble_through_the_cli(sample_run, tmp_path, cross_encoder):
    ce_dir = tmp_path / "ce"
    cross_encoder.save(str(ce_dir))
    run = tmp_path / "run"
    share_cache(sample_run, run)
    runner = CliRunner()
    args = [
        "mine",
        str(ROOT / "sample_data"),
        "--out",
        str(run),
        "--quiet",
        "--max-depth",
        "20",
        "--depth",
        "20",
        "--teacher",
        f"bi-encoder:{MODEL_PATH}",
        "--teacher",
        f"cross-encoder:{ce_dir}",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    scores = pq.read_table(run / "scores.parquet")
    members = [c for c in scores.column_names if c.startswith("teacher_") and c != "teacher_score"]
    assert len(members) == 2
    combined = np.mean([standardise(scores.column(c).to_numpy()) for c in members], axis=0)
    np.testing.assert_allclose(scores.column("teacher_score").to_numpy(), combined, rtol=1e-5, atol=1e-5)
    # The run's own --teacher values (KIND:MODEL) are kept: the type applies to a bare MODEL only
    result = runner.invoke(app, ["score", "--out", str(run), "--teacher-type", "cross-encoder", "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["score", "--out", str(run), "--teacher-type", "cross-encoder", "--defaults", "--quiet"])
    assert result.exit_code == 2 and "needs --teacher MODEL" in result.output


def test_hidden_positive_protocol_and_eval(sample_run, tmp_path):
    import json

    run = tmp_path / "hidden"
    share_cache(sample_run, run)
    runner = CliRunner()
    result = runner.invoke(app, ["mine", str(ROOT / "sample_data"), "--out", str(run), "--hide-positives", "--quiet"])
    assert result.exit_code == 0, result.output
    hidden = pq.read_table(run / "inputs/hidden_qrels.parquet")
    assert hidden.num_rows == 10  # sample_data: 10 queries with two positives
    result = runner.invoke(app, ["eval", str(run), "--hidden", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    row = report[0] if isinstance(report, list) else report
    assert row["queries"] == 60
