"""`hnmine finetune RUN` trains only on an export that is current (issue 23, item 6).

The refusal comes before any model is loaded, so these tests train nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, write_beir
from test_hunt import one_line_error


@pytest.fixture
def stale_setup(finished_tiny, tmp_path: Path) -> tuple[Path, Path]:
    """(run, eval data): a copy of the finished tiny run and a held-out BEIR split."""
    _, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    return run, write_beir(tmp_path / "eval", TINY_DOCS, TINY_QUERIES, TINY_QRELS, split="test")


def _finetune(run: Path, eval_data: Path):
    # One step of one arm: if the refusal were missing, this would train (and the test would fail on exit 0).
    return invoke(["finetune", run, "--eval", eval_data, "--arms", "mined", "--max-steps", "1", "--eval-dtype", "float32", "--quiet"])


def test_an_export_older_than_the_filter_output_is_refused(stale_setup):
    """`hnmine filter --method naive` alone rewrote negatives.parquet and left the shifted export in
    place: finetune trained on it with no warning."""
    run, eval_data = stale_setup
    assert invoke(["filter", "--out", run, "--method", "naive", "--quiet"]).exit_code == 0
    one_line_error(
        _finetune(run, eval_data),
        f"{run}: the export stage's outputs are out of date: negatives.parquet changed since it ran",
        f"rerun `hnmine export` (or `hnmine mine`) with --out {run}",
    )


def test_an_export_edited_since_its_stage_is_refused(stale_setup):
    run, eval_data = stale_setup
    import pyarrow.parquet as pq

    export = next((run / "export").glob("*.parquet"))
    pq.write_table(pq.read_table(export).slice(1), export)  # a row less: still a training file, not the stage's
    one_line_error(_finetune(run, eval_data), f"{export} changed since the export stage wrote it", "rerun `hnmine export`")


def test_an_export_without_its_manifest_is_refused(stale_setup):
    """A run whose export stage never finished (killed after writing its file, before its manifest) held
    a training file no manifest vouches for: finetune took it as the only file in export/."""
    run, eval_data = stale_setup
    (run / "manifests/export.json").unlink()
    one_line_error(_finetune(run, eval_data), f"{run}: the export stage has not finished here", "run `hnmine export`")
