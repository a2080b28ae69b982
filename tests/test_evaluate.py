"""`hnmine eval`: metrics on hand-built run directories, checked against values computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from hnmine.cli_eval import eval_command, markdown_table
from hnmine.errors import HnmineError, InputError, MissingColumn, OptionError, RunDirError
from hnmine.evaluate import compare_runs, evaluate_run
from hnmine.manifest import Manifest

# -- a tiny run directory, per docs/tables.md --------------------------------------------------------

NEG_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_id", pa.string()),
        ("rank", pa.int32()),
        ("retrieval_rank", pa.int32()),
        ("teacher_score", pa.float32()),
        ("positive_score", pa.float32()),
        ("source", pa.string()),
        ("is_random", pa.bool_()),
        ("method", pa.string()),
    ]
)
QRELS_SCHEMA = pa.schema([("query_id", pa.string()), ("doc_id", pa.string()), ("relevance", pa.int32()), ("is_positive", pa.bool_())])


def write_run(
    run: Path,
    *,
    method: str,
    num_negatives: int,
    random_negatives: int,
    negatives: list[tuple],  # (query, doc, rank, retrieval_rank, teacher_score, is_random)
    positives: list[tuple[str, str, float]],  # known positives with their teacher scores
    others: list[tuple[str, str, float]],  # other scored candidates
    hidden: list[tuple[str, str, int]] | None = None,
    seconds: dict[str, float] | None = None,
) -> Path:
    (run / "manifests").mkdir(parents=True)
    (run / "inputs").mkdir()
    queries = list(dict.fromkeys([q for q, _, _ in positives]))
    pos_score = {q: s for q, _, s in positives}
    pq.write_table(
        pa.table(
            {
                "query_id": [n[0] for n in negatives],
                "doc_id": [n[1] for n in negatives],
                "rank": [n[2] for n in negatives],
                "retrieval_rank": [n[3] for n in negatives],
                "teacher_score": [n[4] for n in negatives],
                "positive_score": [pos_score[n[0]] for n in negatives],
                "source": ["random" if n[5] else "dense" for n in negatives],
                "is_random": [n[5] for n in negatives],
                "method": [method] * len(negatives),
            },
            schema=NEG_SCHEMA,
        ),
        run / "negatives.parquet",
    )
    n_neg = {q: sum(1 for n in negatives if n[0] == q) for q in queries}
    target = num_negatives + random_negatives
    pq.write_table(
        pa.table(
            {
                "query_id": pa.array(queries, pa.string()),
                "n_positives": pa.array([1] * len(queries), pa.int32()),
                "positive_score": pa.array([pos_score[q] for q in queries], pa.float32()),
                "n_candidates": pa.array([10] * len(queries), pa.int32()),
                "depth_used": pa.array([50] * len(queries), pa.int32()),
                "n_negatives": pa.array([n_neg[q] for q in queries], pa.int32()),
                "shortfall": pa.array([max(0, target - n_neg[q]) for q in queries], pa.int32()),
                "exported": pa.array([n_neg[q] > 0 for q in queries], pa.bool_()),
                "status": pa.array(["ok" if n_neg[q] >= target else "short" for q in queries], pa.string()),
            }
        ),
        run / "query_summary.parquet",
    )
    rows = [(q, d, s, True) for q, d, s in positives] + [(q, d, s, False) for q, d, s in others]
    pq.write_table(
        pa.table(
            {
                "query_id": pa.array([r[0] for r in rows], pa.string()),
                "doc_id": pa.array([r[1] for r in rows], pa.string()),
                "rank": pa.array(list(range(1, len(rows) + 1)), pa.int32()),
                "score": pa.array([r[2] for r in rows], pa.float32()),
                "source": pa.array(["dense"] * len(rows), pa.string()),
                "is_positive": pa.array([r[3] for r in rows], pa.bool_()),
                "teacher_score": pa.array([r[2] for r in rows], pa.float32()),
            }
        ),
        run / "scores.parquet",
    )
    if hidden is not None:
        pq.write_table(
            pa.table(
                {
                    "query_id": [h[0] for h in hidden],
                    "doc_id": [h[1] for h in hidden],
                    "relevance": [h[2] for h in hidden],
                    "is_positive": [True] * len(hidden),
                },
                schema=QRELS_SCHEMA,
            ),
            run / "inputs/hidden_qrels.parquet",
        )
    seconds = seconds or {"filter": 0.25}
    for stage, secs in seconds.items():
        options = (
            {"selection": {"method": method, "num_negatives": num_negatives, "random_negatives": random_negatives}}
            if stage == "filter"
            else {}
        )
        manifest = Manifest(stage=stage, hnmine_version="test", key="k", options=options, inputs={}, outputs={"x": "y"}, seconds=secs)
        (run / "manifests" / f"{stage}.json").write_text(json.dumps(manifest.to_json()))
    return run


def run_a(tmp_path: Path, name: str = "run_a") -> Path:
    """3 queries, 3 negatives wanted. h1 and h2a are hidden positives mined as negatives."""
    return write_run(
        tmp_path / name,
        method="topk_margin",
        num_negatives=3,
        random_negatives=0,
        negatives=[
            ("q1", "n1", 1, 2, 0.6, False),
            ("q1", "h1", 2, 3, 0.5, False),
            ("q1", "n2", 3, 5, 0.4, False),
            ("q2", "h2a", 1, 1, 0.7, False),
            ("q2", "n3", 2, 4, 0.3, False),  # short: 2 of 3
            ("q3", "n4", 1, 1, 0.2, False),
            ("q3", "n5", 2, 2, 0.1, False),
            ("q3", "n6", 3, 6, 0.05, False),
        ],
        positives=[("q1", "p1", 0.8), ("q2", "p2", 0.9), ("q3", "p3", 0.6)],
        # Hidden positives are scored as ordinary candidates: they must not count as positives.
        others=[("q1", "h1", 0.5), ("q2", "h2a", 0.7), ("q2", "h2b", 0.65), ("q1", "n1", 0.6)],
        hidden=[("q1", "h1", 1), ("q2", "h2a", 1), ("q2", "h2b", 1)],
        seconds={"inputs": 0.5, "score": 1.25, "filter": 0.25},
    )


def run_b(tmp_path: Path, name: str = "run_b") -> Path:
    """2 queries, 2 mined + 1 random negative wanted; one random negative is a hidden positive."""
    return write_run(
        tmp_path / name,
        method="naive_topk",
        num_negatives=2,
        random_negatives=1,
        negatives=[
            ("q1", "n1", 1, 1, 0.6, False),
            ("q1", "h1", 2, 2, 0.5, False),
            ("q1", "r1", None, None, None, True),
            ("q2", "h2b", 1, 3, 0.65, False),
            ("q2", "h2a", None, None, None, True),  # short: 2 of 3
        ],
        positives=[("q1", "p1", 0.8), ("q2", "p2", 0.9)],
        others=[("q1", "h1", 0.5), ("q2", "h2b", 0.65)],
        hidden=[("q1", "h1", 1), ("q2", "h2a", 1), ("q2", "h2b", 1)],
        seconds={"filter": 4.0},
    )


def user_qrels(rows: list[tuple[str, str, int]]) -> pa.Table:
    return pa.table(
        {
            "query_id": [r[0] for r in rows],
            "doc_id": [r[1] for r in rows],
            "relevance": [r[2] for r in rows],
            "is_positive": [r[2] >= 1 for r in rows],
        },
        schema=QRELS_SCHEMA,
    )


# -- one run -----------------------------------------------------------------------------------------


def test_hidden_protocol_metrics_by_hand(tmp_path):
    m = evaluate_run(run_a(tmp_path), hidden=True)
    assert m["run"] == "run_a" and m["method"] == "topk_margin" and m["judgments"] == "hidden"
    assert m["queries"] == 3 and m["num_negatives"] == 3
    assert m["queries_full"] == 2 and m["coverage"] == pytest.approx(2 / 3)  # q2 has 2 of 3
    assert m["negatives_total"] == 8 and m["mined_negatives"] == 8 and m["random_negatives"] == 0
    assert m["mean_negatives_per_query"] == pytest.approx(8 / 3)
    assert m["false_negatives"] == 2  # h1 (q1), h2a (q2)
    assert m["false_negative_rate"] == pytest.approx(2 / 8)
    assert m["judged_queries"] == 2  # q3 has no hidden positive
    assert m["false_negative_rate_judged_queries"] == pytest.approx(2 / 5)
    assert m["queries_with_false_negatives"] == 2
    assert m["random_false_negatives"] == 0 and m["random_false_negative_rate"] is None
    # negatives 0.05 0.1 0.2 0.3 | 0.4 0.5 0.6 0.7 -> 0.35; positives 0.6 0.8 0.9 -> 0.8
    assert m["median_negative_score"] == pytest.approx(0.35)
    assert m["median_positive_score"] == pytest.approx(0.8)
    assert m["hardness"] == pytest.approx(0.35 / 0.8)
    assert m["mean_rank"] == pytest.approx(15 / 8)  # ranks 1 2 3 1 2 1 2 3
    assert m["mean_retrieval_rank"] == pytest.approx(24 / 8)  # 2 3 5 1 4 1 2 6
    assert m["seconds"] == pytest.approx(2.0)  # 0.5 + 1.25 + 0.25
    assert m["notes"] == []
    assert "per_query" not in m
    json.dumps(m)  # JSON-ready


def test_random_negatives_counted_separately(tmp_path):
    m = evaluate_run(run_b(tmp_path), hidden=True)
    assert m["num_negatives"] == 3  # 2 mined + 1 random
    assert m["queries_full"] == 1 and m["coverage"] == pytest.approx(0.5)
    assert m["negatives_total"] == 5 and m["mined_negatives"] == 3 and m["random_negatives"] == 2
    assert m["false_negatives"] == 2 and m["false_negative_rate"] == pytest.approx(2 / 3)  # h1, h2b
    assert m["random_false_negatives"] == 1 and m["random_false_negative_rate"] == pytest.approx(0.5)  # h2a
    # random negatives have no teacher score or rank: mined ones only
    assert m["hardness"] == pytest.approx(0.6 / 0.85)
    assert m["mean_rank"] == pytest.approx(4 / 3)
    assert m["seconds"] == pytest.approx(4.0)


def test_user_qrels_and_min_relevance(tmp_path):
    run = run_a(tmp_path)
    qrels = user_qrels(
        [
            ("q1", "p1", 2),
            ("q1", "h1", 1),
            ("q1", "n2", 0),  # n2 judged, not relevant
            ("q2", "p2", 1),
            ("q2", "n3", 1),  # n3 is relevant: a false negative the hidden set missed
            ("qX", "n1", 3),  # a query not in the run: ignored
        ]
    )
    m = evaluate_run(run, qrels=qrels)
    assert m["judgments"] == "qrels"
    assert m["false_negatives"] == 2 and m["false_negative_rate"] == pytest.approx(2 / 8)  # h1, n3
    assert m["judged_queries"] == 2
    strict = evaluate_run(run, qrels=qrels, min_relevance=2)
    assert strict["false_negatives"] == 0 and strict["false_negative_rate"] == 0.0
    assert strict["judged_queries"] == 1  # only q1 has a grade-2 judgment
    none = evaluate_run(run, qrels=qrels, min_relevance=5)
    assert none["false_negative_rate"] is None and "relevance >= 5" in none["notes"][0]


def test_per_query_detail(tmp_path):
    m = evaluate_run(run_a(tmp_path), hidden=True, per_query=True)
    assert m["per_query"] == [
        {"query_id": "q1", "n_negatives": 3, "mined_negatives": 3, "full": True, "relevant_judged": 1, "false_negatives": 1},
        {"query_id": "q2", "n_negatives": 2, "mined_negatives": 2, "full": False, "relevant_judged": 2, "false_negatives": 1},
        {"query_id": "q3", "n_negatives": 3, "mined_negatives": 3, "full": True, "relevant_judged": 0, "false_negatives": 0},
    ]


def test_without_judgments_fn_is_null(tmp_path):
    m = evaluate_run(run_a(tmp_path))
    assert m["judgments"] is None and m["false_negative_rate"] is None and m["false_negatives"] is None
    assert m["coverage"] == pytest.approx(2 / 3) and m["hardness"] == pytest.approx(0.4375)
    assert "no judgments" in m["notes"][0]


def test_empty_hidden_set_is_a_note(tmp_path):
    run = write_run(
        tmp_path / "r",
        method="m",
        num_negatives=1,
        random_negatives=0,
        negatives=[("q1", "n1", 1, 1, 0.5, False)],
        positives=[("q1", "p1", 0.9)],
        others=[],
        hidden=[],
    )
    m = evaluate_run(run, hidden=True)
    assert m["false_negative_rate"] is None and "no hidden positives" in m["notes"][0]


@pytest.mark.parametrize(
    "pos, neg, fragment",
    [(-1.0, -2.0, "median positive score is -1"), (0.0, 0.0, "median positive score is 0"), (2.0, -0.5, "median negative score is -0.5")],
)
def test_hardness_guard(tmp_path, pos, neg, fragment):
    run = write_run(
        tmp_path / "r",
        method="m",
        num_negatives=1,
        random_negatives=0,
        negatives=[("q1", "n1", 1, 1, neg, False)],
        positives=[("q1", "p1", pos)],
        others=[],
    )
    m = evaluate_run(run)
    assert m["hardness"] is None
    assert m["median_negative_score"] == pytest.approx(neg) and m["median_positive_score"] == pytest.approx(pos)
    assert any(fragment in n for n in m["notes"])


def test_no_negatives_at_all(tmp_path):
    run = write_run(
        tmp_path / "r",
        method="m",
        num_negatives=2,
        random_negatives=0,
        negatives=[],
        positives=[("q1", "p1", 0.9)],
        others=[],
        hidden=[("q1", "h", 1)],
    )
    m = evaluate_run(run, hidden=True)
    assert m["negatives_total"] == 0 and m["coverage"] == 0.0
    assert m["false_negative_rate"] is None and m["hardness"] is None and m["mean_rank"] is None
    json.dumps(m)


# -- several runs ------------------------------------------------------------------------------------


def test_compare_runs(tmp_path):
    rows = compare_runs([run_a(tmp_path), run_b(tmp_path)], hidden=True)
    assert [r["run"] for r in rows] == ["run_a", "run_b"]
    assert [r["method"] for r in rows] == ["topk_margin", "naive_topk"]
    assert [r["false_negative_rate"] for r in rows] == pytest.approx([0.25, 2 / 3])


def test_compare_runs_same_folder_name(tmp_path):
    a = run_a(tmp_path / "x", name="run")
    b = run_b(tmp_path / "y", name="run")
    rows = compare_runs([a, b])
    assert [r["run"] for r in rows] == [str(a), str(b)]


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rel, stage",
    [
        ("negatives.parquet", "filter"),
        ("query_summary.parquet", "filter"),
        ("scores.parquet", "score"),
        ("manifests/filter.json", "filter"),
    ],
)
def test_missing_file_names_file_and_stage(tmp_path, rel, stage):
    run = run_a(tmp_path)
    (run / rel).unlink()
    with pytest.raises(RunDirError, match=rf"{rel}.*written by the {stage} stage"):
        evaluate_run(run)


def test_hidden_without_hidden_file(tmp_path):
    run = run_a(tmp_path)
    (run / "inputs/hidden_qrels.parquet").unlink()
    with pytest.raises(RunDirError, match=r"hidden_qrels.parquet is missing.*--hide-positives"):
        evaluate_run(run, hidden=True)


def test_missing_run_dir(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        evaluate_run(tmp_path / "nope")


def test_qrels_of_another_collection(tmp_path):
    with pytest.raises(InputError, match="name no query of run"):
        evaluate_run(run_a(tmp_path), qrels=user_qrels([("other1", "d", 1), ("other2", "d", 1)]))


def test_empty_qrels(tmp_path):
    with pytest.raises(InputError, match="no judgments"):
        evaluate_run(run_a(tmp_path), qrels=user_qrels([]))


def test_qrels_and_hidden_conflict(tmp_path):
    with pytest.raises(OptionError, match="not both"):
        evaluate_run(run_a(tmp_path), qrels=user_qrels([("q1", "h1", 1)]), hidden=True)


def test_missing_column(tmp_path):
    run = run_a(tmp_path)
    table = pq.read_table(run / "negatives.parquet").drop_columns(["is_random"])
    pq.write_table(table, run / "negatives.parquet")
    with pytest.raises(MissingColumn, match="no column 'is_random'"):
        evaluate_run(run)


def test_unreadable_manifest(tmp_path):
    run = run_a(tmp_path)
    (run / "manifests/score.json").write_text("{not json")
    with pytest.raises(RunDirError, match="score.json is not a readable JSON manifest"):
        evaluate_run(run)


# -- the command -------------------------------------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("noop")(lambda: None)  # two commands: typer keeps `eval` as a subcommand
    return app


def test_cli_json(tmp_path, cli):
    a, b = run_a(tmp_path), run_b(tmp_path)
    result = CliRunner().invoke(cli, ["eval", str(a), str(b), "--hidden", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["run"] for r in rows] == ["run_a", "run_b"]
    assert rows[0]["false_negative_rate"] == pytest.approx(0.25)


def test_cli_table_and_markdown(tmp_path, cli):
    a, b = run_a(tmp_path), run_b(tmp_path)
    result = CliRunner().invoke(cli, ["eval", str(a), str(b), "--hidden"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in ("run_a", "run_b", "topk_margin", "25.0%", "66.7%", "0.438", "1.9"):
        assert text in result.stdout
    md = CliRunner().invoke(cli, ["eval", str(a), str(b), "--hidden", "--markdown"])
    assert md.exit_code == 0, md.output
    assert md.stdout.splitlines() == [
        "| run | method | FN rate | coverage | negatives | hardness | mean rank | seconds |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| run_a | topk_margin | 25.0% | 66.7% | 8 | 0.438 | 1.9 | 2.0 |",
        "| run_b | naive_topk | 66.7% | 50.0% | 5 | 0.706 | 1.3 | 4.0 |",
    ]


def test_markdown_escapes_pipes():
    assert "a\\|b" in markdown_table([{"run": "a|b"}])


def test_cli_reads_beir_qrels_tsv(tmp_path, cli):
    run = run_a(tmp_path)
    qrels = tmp_path / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\th1\t1\nq2\tn3\t2\nq2\tn4\t0\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["eval", str(run), "--qrels", str(qrels), "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    assert row["judgments"] == "qrels" and row["false_negatives"] == 2  # h1, n3
    strict = CliRunner().invoke(cli, ["eval", str(run), "--qrels", str(qrels), "--min-relevance", "2", "--json"])
    assert json.loads(strict.stdout)[0]["false_negatives"] == 1  # n3


def test_cli_errors_propagate(tmp_path, cli):
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "nope")])
    assert isinstance(result.exception, RunDirError)
    result = CliRunner().invoke(cli, ["eval", str(run_a(tmp_path)), "--json", "--markdown"])
    assert isinstance(result.exception, OptionError)
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "run_a"), "--qrels", str(tmp_path / "missing.tsv")])
    assert isinstance(result.exception, HnmineError) and "missing.tsv: no such file" in str(result.exception)


def test_cli_module_does_not_import_pyarrow():
    import subprocess
    import sys

    code = "import sys, hnmine.cli_eval; sys.exit(1 if 'pyarrow' in sys.modules or 'rich' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
