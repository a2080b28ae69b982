"""`hnmine finetune` end to end with the bundled model: real training steps on a tiny budget, the CLI's exit codes.

The model-backed tests use `sample_run` (sample_data mined with the defaults, shared with other tests)
as the training source and a three-query evaluation set of their own (TINY_DOCS), whose queries are
not training anchors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, TINY_DOCS, TINY_QRELS, TINY_QUERIES, snapshot, write_beir
from typer.testing import CliRunner

from hnmine.cli import app

runner = CliRunner()


@pytest.fixture
def eval_beir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "eval", TINY_DOCS, TINY_QUERIES, TINY_QRELS, split="test")


@pytest.fixture
def triplets(tmp_path: Path) -> Path:
    path = tmp_path / "triplets.parquet"
    pq.write_table(
        pa.table(
            {
                "anchor": ["how is espresso made", "bike chain care"],
                "positive": ["Espresso is brewed under pressure.", "Lubricate the chain."],
                "negative": ["Tea is steeped.", "Tyres need air."],
            }
        ),
        path,
    )
    return path


def _one_line_error(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    err = result.output.strip()
    assert err.startswith("hnmine: error:") and message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_finetune_has_help():
    result = runner.invoke(app, ["finetune", "--help"])
    assert result.exit_code == 0
    assert "--eval" in result.output and "--seeds" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "1", "--max-steps", "2"], "give --epochs or --max-steps, not both"),
        (["--seeds", "1,x"], "--seeds: 'x' is not an integer"),
        (["--arms", "untrained,best"], "unknown arm 'best' (valid: in-batch, mined, untrained)"),
        (["--eval-split", "dev"], "no split 'dev' (splits: test)"),
        (["--precision", "int8"], "unknown precision 'int8'"),
        (["--json", "--markdown"], "--json and --markdown: choose one output format"),
    ],
)
def test_bad_options_exit_2_with_one_line(triplets, eval_beir, args, message):
    _one_line_error(runner.invoke(app, ["finetune", str(triplets), "--eval", str(eval_beir), "--quiet", *args]), message)


def test_bad_sources_exit_2_with_one_line(tmp_path, triplets, eval_beir):
    (tmp_path / "run").mkdir()
    _one_line_error(
        runner.invoke(app, ["finetune", str(tmp_path / "run"), "--eval", str(eval_beir)]),
        "no training file in export/ (run `hnmine export` or `hnmine mine`",
    )
    _one_line_error(
        runner.invoke(app, ["finetune", str(tmp_path / "nope"), "--eval", str(eval_beir)]), "no such run directory or training file"
    )
    _one_line_error(runner.invoke(app, ["finetune", str(triplets), "--eval", str(triplets)]), "the evaluation data must be a BEIR folder")
    # Four hard negatives asked for, one exported per pair.
    _one_line_error(
        runner.invoke(app, ["finetune", str(triplets), "--eval", str(eval_beir), "--negatives", "4", "--arms", "mined"]),
        "no (anchor, positive) pair has 4 negative(s) to train with (--negatives)",
    )


def test_missing_training_extras_name_the_install(triplets, eval_beir):
    # sys.modules[name] = None makes `import name` raise ImportError, as when the package is absent.
    code = (
        "import sys; sys.modules['datasets'] = None; from hnmine.cli import main; "
        f"sys.argv = ['hnmine', 'finetune', {str(triplets)!r}, '--eval', {str(eval_beir)!r}]; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert result.stderr == "hnmine: error: fine-tuning needs datasets: pip install 'hnmine[train]'\n"
    assert result.stdout == ""


def test_finetune_end_to_end(sample_run, eval_beir):
    """Every arm, two seeds, two real training steps each: the JSON, the results table in the run, the budget."""
    args = [
        "finetune",
        str(sample_run),
        "--eval",
        str(eval_beir),
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--seeds",
        "1,2",
        "--eval-dtype",
        "float32",
        "--json",
        "--quiet",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    rows = out["rows"]
    assert [(r["arm"], r["seed"]) for r in rows] == [
        ("untrained", None),
        ("in-batch", 1),
        ("in-batch", 2),
        (sample_run.name, 1),
        (sample_run.name, 2),
    ]
    trained = rows[1:]
    assert all(r["steps"] == 2 and r["batch_size"] == 4 and r["max_steps"] == 2 and r["epochs"] is None for r in trained)
    assert all(r["loss"] == "mnrl" and r["batch_sampler"] == "no_duplicates" for r in trained)
    assert [r["negatives"] for r in trained] == [0, 0, 1, 1]
    assert rows[0]["steps"] == 0 and rows[0]["batch_size"] is None
    assert {r["eval_queries"] for r in rows} == {3} and {r["eval_documents"] for r in rows} == {12}
    assert {r["max_length"] for r in rows} == {256}  # the bundled model's own, recorded when not given
    assert all(0 <= r[m] <= 1 for r in rows for m in ("ndcg_at_10", "recall_at_100", "mrr_at_10"))
    # sample_run exports 70 (query, positive) pairs, each with 5 negatives.
    assert {r["train_pairs"] for r in trained} == {70} and {r["train_rows"] for r in trained} == {70}
    assert [s["arm"] for s in out["summary"]] == ["untrained", "in-batch", sample_run.name]
    assert out["summary"][1]["seeds"] == [1, 2] and out["summary"][1]["ndcg_at_10"]["std"] is not None
    assert out["sources"][0]["shape"] == "triplet" and out["warnings"] == []
    table = pq.read_table(sample_run / "finetune" / "results.parquet")
    assert table.num_rows == 5 and table.column("arm").to_pylist() == [r["arm"] for r in rows]
    assert out["results_files"] == [str(sample_run / "finetune" / "results.parquet")]


def test_training_changes_the_model_and_is_deterministic_per_seed():
    """A real training step moves the weights; the same seed gives the same weights, another seed others."""
    import torch

    from hnmine.finetune.options import FinetuneOptions
    from hnmine.finetune.train import load_model, train_copy
    from hnmine.inference.models import resolve_model

    rows = {
        "anchor": [d["text"] for d in TINY_QUERIES] + ["what keeps a bike chain from wearing out", "how do shield volcanoes form"],
        "positive": [d["text"] for d in TINY_DOCS[:5]],
        "negative_1": [d["text"] for d in TINY_DOCS[5:10]],
    }
    path = resolve_model("all-MiniLM-L6-v2")[0]
    opts = FinetuneOptions(max_steps=2, batch_size=4, learning_rate=1e-4)
    base = dict(load_model(path, opts).named_parameters())
    a = train_copy(path, rows, opts, seed=1)
    b = train_copy(path, rows, opts, seed=1)
    c = train_copy(path, rows, opts, seed=2)
    assert a.steps == 2
    pa_, pb, pc = (dict(x.model.named_parameters()) for x in (a, b, c))
    assert any(not torch.equal(pa_[n].detach(), base[n].detach()) for n in base)
    assert all(torch.equal(pa_[n].detach(), pb[n].detach()) for n in base)
    assert any(not torch.equal(pa_[n].detach(), pc[n].detach()) for n in base)


def test_metrics_agree_with_sentence_transformers_evaluator():
    """Our exact search + metrics against InformationRetrievalEvaluator on sample_data (302 documents, 60 queries)."""
    try:
        from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.evaluation import InformationRetrievalEvaluator

    from hnmine.finetune.evalset import load_eval_set
    from hnmine.finetune.options import FinetuneOptions
    from hnmine.finetune.retrieval import measure
    from hnmine.finetune.train import load_model
    from hnmine.inference.models import resolve_model

    ev = load_eval_set(ROOT / "sample_data", "train")
    ev.qrels = {q: {d: 1 for d in docs} for q, docs in ev.qrels.items()}  # binary, as the reference counts
    model = load_model(resolve_model("all-MiniLM-L6-v2")[0], FinetuneOptions())
    ours = measure(model, ev, dtype="float32", batch_size=64).scores
    reference = InformationRetrievalEvaluator(
        queries=dict(zip(ev.query_ids, ev.query_texts)),
        corpus=dict(zip(ev.doc_ids, ev.doc_texts)),
        relevant_docs={q: set(d) for q, d in ev.qrels.items()},
        mrr_at_k=[10],
        ndcg_at_k=[10],
        precision_recall_at_k=[10, 100],
        accuracy_at_k=[1],
        map_at_k=[10],
        batch_size=64,
        write_csv=False,
    )(model)

    def ref(metric: str) -> float:
        return next(v for k, v in reference.items() if k.endswith(metric))

    assert ours.queries == 60
    assert ours.ndcg_at_10 == pytest.approx(ref("ndcg@10"), abs=1e-6)
    assert ours.mrr_at_10 == pytest.approx(ref("mrr@10"), abs=1e-6)
    assert ours.recall_at_100 == pytest.approx(ref("recall@100"), abs=1e-6)
    assert ours.ndcg_at_10 < 1  # not a trivial case: some queries rank a positive below another document


# -- issue 23, item 13: what can be checked before training is checked before training -----------


def _finetune_copy(finished_tiny, tmp_path: Path, name: str = "run") -> Path:
    import shutil

    _, done = finished_tiny
    run = tmp_path / name
    shutil.copytree(done, run)
    return run


@pytest.fixture
def no_training(monkeypatch):
    """Training replaced by a failure: a test that reaches it has checked too late."""
    import hnmine.finetune.train

    def refuse(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(hnmine.finetune.train, "train_copy", refuse)


def test_a_seed_beyond_the_seed_range_is_refused_before_training(triplets, eval_beir, no_training):
    """`--seeds 4294967296` trained the untrained arm's evaluation, then crashed in numpy's seeding
    (`ValueError: Seed must be between 0 and 2**32 - 1`, a traceback)."""
    from hnmine.finetune.options import SEED_MAX, FinetuneOptions

    args = ["finetune", str(triplets), "--eval", str(eval_beir), "--arms", "in-batch", "--quiet"]
    _one_line_error(runner.invoke(app, [*args, "--seeds", "4294967296"]), "--seeds must be between 0 and 4,294,967,295, got 4294967296")
    _one_line_error(runner.invoke(app, [*args, "--seeds", "1,-1"]), "--seeds must be between 0 and 4,294,967,295, got -1")
    assert SEED_MAX == 2**32 - 1
    FinetuneOptions(seeds=(0, SEED_MAX)).validate()  # the bounds themselves are seeds


@pytest.mark.parametrize("how", ["read-only", "results-folder-is-a-file"])
def test_a_run_directory_that_cannot_take_the_results_is_refused_before_training(finished_tiny, tmp_path, eval_beir, no_training, how):
    """A read-only run directory (or one whose finetune/ is a file) was found only when the results were
    written, after every arm had trained: the training was lost."""
    import contextlib

    from test_bad_input import read_only

    run = _finetune_copy(finished_tiny, tmp_path)
    if how == "results-folder-is-a-file":
        (run / "finetune").write_text("not a folder")
    before = snapshot(run)
    with read_only(run) if how == "read-only" else contextlib.nullcontext(run):
        result = runner.invoke(app, ["finetune", str(run), "--eval", str(eval_beir), "--arms", "mined", "--max-steps", "1", "--quiet"])
        _one_line_error(result, f"{run / 'finetune' / 'results.parquet'}: cannot write the fine-tune results")
        assert "give its training file" in result.output
    assert snapshot(run) == before


def test_brackets_in_paths_and_run_names_are_shown_as_text(finished_tiny, tmp_path):
    """An --eval path holding `[/y]` crashed with rich's MarkupError once training was done (the table
    never printed); a run named `r_[bold]ft` showed as `r_ft`. One training step, two rows a batch."""
    run = _finetune_copy(finished_tiny, tmp_path, "r_[bold]ft")
    eval_data = write_beir(tmp_path / "ev[/y]", TINY_DOCS, TINY_QUERIES, TINY_QRELS, split="test")
    args = ["finetune", str(run), "--eval", str(eval_data), "--arms", "mined", "--max-steps", "1", "--batch-size", "2"]
    result = runner.invoke(app, [*args, "--eval-dtype", "float32", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "r_[bold]ft" in result.stdout and "ev[/y]" in result.stdout
