"""The false-negative report: data, terminal snapshot, JSON, inspect, errors.

Regenerate the snapshot with `HNMINE_UPDATE_SNAPSHOTS=1 pytest tests/test_report.py`.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from hnmine.cli_report import inspect_command, report_command
from hnmine.errors import InputError, MissingColumn, OptionError, RunDirError, UnknownName
from hnmine.report import build_report, find_query, inspect_query, render_inspect, render_report
from hnmine.report.histogram import axis, bar, column_chart, rebin
from hnmine.report.text import clean, trim, wrap_lines

HERE = Path(__file__).parent
SNAPSHOT = HERE / "snapshots" / "report.txt"
INSPECT_SNAPSHOT = HERE / "snapshots" / "inspect_q3.txt"
UPDATE = os.environ.get("HNMINE_UPDATE_SNAPSHOTS") == "1"

_spec = importlib.util.spec_from_file_location("report_run_build", HERE / "fixtures" / "report_run" / "build.py")
fixture_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture_build)


@pytest.fixture(scope="session")
def built_run(tmp_path_factory) -> Path:
    return fixture_build.build_run(tmp_path_factory.mktemp("runs") / "report_run")


@pytest.fixture
def run(built_run, tmp_path, monkeypatch) -> Path:
    """A fresh copy, reached by the relative path 'report_run' (so output does not hold tmp paths)."""
    shutil.copytree(built_run, tmp_path / "report_run")
    monkeypatch.chdir(tmp_path)
    return Path("report_run")


def console(width: int = 100) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None, legacy_windows=False, emoji=False)


def rendered(fn, data, width: int = 100) -> str:
    c = console(width)
    fn(data, c)
    return "\n".join(line.rstrip() for line in c.file.getvalue().splitlines()) + "\n"


def check_snapshot(path: Path, text: str) -> None:
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"wrote missing snapshot {path}; check it and rerun")
    assert text == path.read_text(encoding="utf-8"), (
        f"report differs from {path}; if the change is intended, rerun with HNMINE_UPDATE_SNAPSHOTS=1"
    )


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("report")(report_command)
    app.command("inspect")(inspect_command)
    return app


# -- the data, checked against the hand-built run ---------------------------------------------


def test_report_data(run):
    r = build_report(run, top=5)
    assert [s["stage"] for s in r["stages"]] == ["inputs", "index", "retrieve", "score", "filter", "export"]
    assert r["stages"][3] == {
        "stage": "score",
        "ran": True,
        "rows_in": 22,
        "rows_out": 23,
        "seconds": 12.35,
        "finished_at": "2026-11-23T10:03:00Z",
        "out_of_date": None,  # checked for the stages after the ones whose tables the report reads
    }
    assert r["stages"][-1]["ran"] is False
    assert r["meta"]["method"] == "positive_aware"
    assert r["meta"]["models"] == [
        {"role": "dense", "kind": None, "name": "sentence-transformers/all-MiniLM-L6-v2"},
        {"role": "teacher", "kind": "cross-encoder", "name": "cross-encoder/ms-marco-MiniLM-L-6-v2"},
    ]
    assert r["meta"]["warnings"] == [
        {"stage": "retrieve", "message": "1 query got fewer than --max-depth candidates: the corpus is smaller"}
    ]

    cov = r["coverage"]
    assert (cov["queries"], cov["target"], cov["full"], cov["short"], cov["exported"]) == (4, 3, 3, 1, 4)
    assert cov["negatives_per_query"] == [0, 0, 1, 3]
    assert [q["query_id"] for q in cov["shortest"]] == ["q3"]
    assert cov["shortest"][0]["query"] == "ما هي أعراض مرض السكري من النوع الثاني؟"

    # 18 non-positive candidates: 10 kept from retrieval, 7 dropped (known positives aside), 1 unused
    assert r["funnel"] == {"scored_rows": 23, "positives": 5, "candidates": 18, "kept": 10, "random": 1, "dropped": 7, "unused": 1}
    reasons = {x["reason"]: x["count"] for x in r["drop_reasons"]}
    assert reasons["known_positive"] == 4 and sum(reasons.values()) == 11
    assert [x["reason"] for x in r["drop_reasons"]][:3] == [
        "known_positive",
        "same_text_as_positive",
        "near_duplicate_of_positive",
    ]  # rule order

    series = r["scores"]["series"]
    assert (series["positives"]["n"], series["kept"]["n"], series["dropped"]["n"]) == (5, 10, 7)
    assert series["positives"]["median"] == pytest.approx(0.80)
    assert sum(series["dropped"]["counts"]) == 7
    assert r["scores"]["edges"][0] == pytest.approx(-0.2) and r["scores"]["edges"][-1] == pytest.approx(0.99)


def test_suspects_ranked_by_score_over_positive(run):
    s = build_report(run, top=20)["suspects"]
    rows = s["rows"]
    # kept + dropped, known positives aside, random negatives (no teacher score) aside
    assert s["considered"] == 17 and s["above_positive"] == 5 and s["queries_above_positive"] == 2
    # grouped by query, the queries in the order of their best suspect, each query's by Δ
    assert [(x["doc_id"], x["status"]) for x in rows[:6]] == [
        ("d33", "above_max_score"),
        ("d31", "kept"),
        ("d32", "kept"),
        ("d34", "kept"),
        ("d3", "within_margin_of_positive"),
        ("d2", "kept"),
    ]
    assert [x["query_id"] for x in rows] == ["q4"] * 4 + ["q1"] * 5 + ["q2"] * 5 + ["q3"] * 3
    assert [x["n"] for x in rows] == list(range(1, 18))
    assert rows[0]["delta"] == pytest.approx(0.99 - 0.76)
    assert rows[0]["positive_id"] == "d30" and rows[0]["positive_score"] == pytest.approx(0.76)
    assert rows[1]["rank"] == 2 and rows[1]["retrieval_rank"] == 3
    for q in ("q1", "q2", "q3", "q4"):
        deltas = [x["delta"] for x in rows if x["query_id"] == q]
        assert deltas == sorted(deltas, reverse=True)
    # q3's reference score is the min of its two positives: the positive shown is that one (d21)
    q3 = [x for x in rows if x["query_id"] == "q3"]
    assert q3 and all(x["positive_id"] == "d21" and x["positive_chosen"] == "reference" for x in q3)
    assert all(x["status"] != "known_positive" for x in rows)


def test_reason_filter(run):
    kept = build_report(run, reason="kept")["suspects"]
    assert kept["rows"] and {x["status"] for x in kept["rows"]} == {"kept"}
    assert len(kept["rows"]) == 10
    assert "10 kept negatives scored" in rendered(render_report, build_report(run, reason="kept"), 120)
    margin = build_report(run, reason="within margin of positive")["suspects"]  # label form accepted
    assert margin["reason"] == "within_margin_of_positive"
    assert "1 candidates dropped as within_margin_of_positive scored" in rendered(
        render_report, build_report(run, reason="within_margin_of_positive"), 120
    )
    assert [x["doc_id"] for x in margin["rows"]] == ["d3"]
    # asked for by name, known positives can be listed
    assert len(build_report(run, reason="known_positive")["suspects"]["rows"]) == 4


def test_top(run):
    assert len(build_report(run, top=3)["suspects"]["rows"]) == 3
    assert build_report(run, top=0)["suspects"]["rows"] == []
    with pytest.raises(OptionError):
        build_report(run, top=-1)


def test_points_only_on_request(run):
    assert "points" not in build_report(run)
    pts = build_report(run, include_points=True)["points"]
    assert len(pts["kept"]["teacher_score"]) == 10  # the random negative has no score
    assert len(pts["dropped"]["teacher_score"]) == 7


# -- terminal ---------------------------------------------------------------------------------


def test_terminal_snapshot(run):
    check_snapshot(SNAPSHOT, rendered(render_report, build_report(run, top=8, per_query=3)))


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_terminal_fits_width_and_trims_long_text(run, width):
    out = rendered(render_report, build_report(run, top=20), width)
    for line in out.splitlines():
        assert cell_len(line) <= width, line
    # characters as themselves: CJK, Arabic, accents
    assert "吸烟会导致肺" in out and "السكري" in out and "caféine" in out
    assert "\\u" not in out
    # the very long document is cut with an ellipsis, not wrapped into a wall
    assert "…" in out
    assert out.count("Cette revue systématique") <= 1
    # markup in a text is shown literally (not interpreted by rich)
    assert "Revue systématique" in out


def test_text_markup_shown_literally(run):
    data = inspect_query(run, "q1")
    out = rendered(render_inspect, data, 160)
    assert "[bold]Not markup[/bold]" in out and "<script>" in out


def test_trim_and_wrap_count_cells():
    assert trim("abcdef", 4) == "abc…"
    assert trim("abc", 4) == "abc"
    cut = trim("吸烟会导致肺癌吗", 7)  # wide characters take two cells each
    assert cut == "吸烟会…" and cell_len(cut) <= 7
    lines = wrap_lines("word " * 100, 20, 3)
    assert len(lines) == 3 and lines[-1].endswith("…") and all(cell_len(x) <= 20 for x in lines)
    assert wrap_lines("short text", 20, 3) == ["short text"]
    lines = wrap_lines("大規模コホート研究により" * 10, 10, 2)
    assert len(lines) == 2 and all(cell_len(x) <= 10 for x in lines) and lines[-1].endswith("…")
    # whitespace collapsed; a control character shown as its escape, not dropped (tests/test_terminal_safety.py)
    assert clean("a\n\tb\x07  c") == "a b\\x07 c"


def test_negatives_per_query_is_grouped_for_a_large_target(run, tmp_path):
    """`-n 1000`: the coverage line groups the 1,001 counts into a few ranges (terminal and HTML)."""
    from hnmine.report import render_html

    t = pq.read_table(run / "query_summary.parquet")
    n_neg = {"q1": 1000, "q2": 0, "q3": 500, "q4": 999}
    rows = [{**r, "n_negatives": n_neg[r["query_id"]], "shortfall": 1000 - n_neg[r["query_id"]]} for r in t.to_pylist()]
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), run / "query_summary.parquet")
    report = build_report(run)
    assert len(report["coverage"]["negatives_per_query"]) == 1001  # the data keeps every count
    for width in (80, 100):
        out = rendered(render_report, report, width)
        line = next(x for x in out.splitlines() if x.startswith("negatives per query"))
        assert cell_len(line) <= width, line
        buckets = line.split()[3:]
        assert len(buckets) <= 12, line
        assert buckets[0] == "0:1" and buckets[-1] == "1,000:1" and buckets[-2].endswith("–999:1")
        assert sum(int(b.split(":")[1]) for b in buckets) == 4
    html = render_html(build_report(run, include_points=True), tmp_path / "r.html").read_text(encoding="utf-8")
    assert "–999" in html  # the bars of the HTML page are ranges too


def test_histogram_helpers():
    assert column_chart([0, 4, 8], height=1) == [" ▄█"]
    assert column_chart([1, 100], height=1) == ["▁█"]  # a small nonzero count stays visible
    rows = column_chart([8, 16], height=2)
    assert rows == [" █", "██"]
    assert rebin([1] * 40, 25) == [2] * 20
    assert bar(0.5, 4) == "██  " and bar(1.0, 3) == "███" and bar(0.0, 2) == "  "
    assert bar(0.01, 10).startswith("▏")
    line = axis(0.0, 1.0, 30)
    assert len(line) == 30 and line.startswith("0.00") and line.endswith("1.00") and "0.50" in line


# -- JSON -------------------------------------------------------------------------------------


def test_report_json_cli_keeps_characters(run):
    result = CliRunner().invoke(cli(), ["report", str(run), "--json", "--top", "20", "--per-query", "0"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "\\u" not in out  # no ASCII escapes
    assert "吸烟会导致肺癌吗？" in out and "ما هي أعراض مرض السكري" in out and "Caféine et fréquence" in out
    data = json.loads(out)
    assert data["coverage"]["full"] == 3 and "points" not in data
    assert len(data["suspects"]["rows"]) == 17


def test_report_cli_terminal(run):
    result = CliRunner().invoke(cli(), ["report", str(run), "--top", "3"])
    assert result.exit_code == 0, result.output
    assert "Suspected false negatives (5 above their positive, in 2 queries)" in result.stdout
    assert "showing 3, at most 3 per query" in result.stdout


# -- suspects: the headline, grouped by query with a cap, the positive shown (issue 23, item 15) -----


def add_suspect(run: Path, query_id: str, doc_id: str, title: str, text: str, teacher: float, reason: str) -> None:
    """A document of the corpus, scored for `query_id` and dropped for `reason` (the run's copy)."""

    def append(name: str, row: dict) -> None:
        t = pq.read_table(run / name)
        extra = pa.table({c: [row.get(c)] for c in t.column_names}, schema=t.schema)
        pq.write_table(pa.concat_tables([t, extra]), run / name)

    ref = pq.read_table(run / "query_summary.parquet").to_pylist()
    positive_score = next(r["positive_score"] for r in ref if r["query_id"] == query_id)
    append("inputs/corpus.parquet", {"doc_id": doc_id, "title": title, "text": text})
    common = {"query_id": query_id, "doc_id": doc_id, "teacher_score": teacher, "source": "dense"}
    append("scores.parquet", {**common, "rank": 7, "score": 0.01, "is_positive": False})
    append("dropped.parquet", {**common, "positive_score": positive_score, "reason": reason, "rank": 1, "retrieval_rank": 7})


def test_suspects_headline_is_the_count_above_their_positive_not_every_candidate(run):
    out = rendered(render_report, build_report(run, top=5, per_query=3), 120)
    assert "Suspected false negatives (5 above their positive, in 2 queries)" in out
    assert "of 17" not in out.split("Suspected false negatives")[1].splitlines()[0]
    assert "showing 5, at most 3 per query, grouped by query" in out
    assert "17 kept or dropped candidates scored" in out


def test_suspects_are_grouped_by_query_with_a_per_query_cap(run):
    s = build_report(run, top=20, per_query=2)["suspects"]
    assert s["per_query"] == 2
    assert [(x["query_id"], x["doc_id"]) for x in s["rows"]] == [
        ("q4", "d33"),
        ("q4", "d31"),
        ("q1", "d3"),
        ("q1", "d2"),
        ("q2", "d14"),
        ("q2", "d11"),
        ("q3", "d23"),
        ("q3", "d22"),
    ]
    # the cap chooses, `top` counts rows: the best 3 rows under the cap
    assert [x["doc_id"] for x in build_report(run, top=3, per_query=2)["suspects"]["rows"]] == ["d33", "d31", "d3"]
    # the terminal prints a query and its positive once per group, at every width
    for width in (80, 120):
        out = rendered(render_report, build_report(run, top=20, per_query=2), width)
        suspects = out.split("Suspected false negatives")[1]
        assert suspects.count("d30 · 0.760") == 1, suspects  # q4's positive, beside d33 and d31
        assert suspects.count("Quels sont les effets") == 1
        assert "same query" in suspects


def test_report_cli_per_query_option_is_consistent_across_terminal_json_and_html(run, tmp_path):
    result = CliRunner().invoke(cli(), ["report", str(run), "--per-query", "1", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [x["query_id"] for x in data["suspects"]["rows"]] == ["q4", "q1", "q2", "q3"]
    assert data["suspects"]["per_query"] == 1 and data["suspects"]["above_positive"] == 5
    result = CliRunner().invoke(cli(), ["report", str(run), "--per-query", "1"])
    assert "showing 4, at most 1 per query" in result.stdout
    page = tmp_path / "r.html"
    result = CliRunner().invoke(cli(), ["report", str(run), "--per-query", "1", "--html", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert "5 score above their positive, in 2 queries" in html and "showing 4, at most 1 per query" in html
    assert html.count('<tr class="suspect') == 4
    # 0: no cap
    result = CliRunner().invoke(cli(), ["report", str(run), "--per-query", "0", "--json"])
    assert len(json.loads(result.stdout)["suspects"]["rows"]) == 17


def test_same_text_suspect_shows_the_positive_it_duplicates(run):
    # q3's positives: d20 (0.80) and d21 (0.55, the reference); d25 repeats d20's text (spaces aside)
    title, text = fixture_build.CORPUS["d20"]
    add_suspect(run, "q3", "d25", title, "  " + text.replace(" ", "  ") + "\n", 0.79, "same_text_as_positive")
    row = next(x for x in build_report(run, top=50)["suspects"]["rows"] if x["doc_id"] == "d25")
    assert (row["positive_id"], row["positive_chosen"]) == ("d20", "same_text")
    assert row["positive_doc_score"] == pytest.approx(0.80)  # d20's own score, beside it
    assert row["positive_score"] == pytest.approx(0.55) and row["delta"] == pytest.approx(0.79 - 0.55)  # Δ: the reference
    out = rendered(render_report, build_report(run, top=50), 160)
    assert "d20 · 0.800 · same text" in out


def test_near_duplicate_suspect_shows_the_nearest_positive_when_the_vectors_are_there(run):
    import numpy as np

    title, text = fixture_build.CORPUS["d20"]
    add_suspect(run, "q3", "d26", title, text + " (copie)", 0.78, "near_duplicate_of_positive")
    row = next(x for x in build_report(run, top=50)["suspects"]["rows"] if x["doc_id"] == "d26")
    assert (row["positive_id"], row["positive_chosen"]) == ("d21", "reference")  # no vectors: the reference
    ids = pq.read_table(run / "inputs/corpus.parquet").column("doc_id").to_pylist()
    vectors = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    vectors[ids.index("d26")] = vectors[ids.index("d20")] + 0.01
    (run / "index/dense").mkdir(parents=True)
    np.save(run / "index/dense/embeddings.npy", vectors)
    row = next(x for x in build_report(run, top=50)["suspects"]["rows"] if x["doc_id"] == "d26")
    assert (row["positive_id"], row["positive_chosen"]) == ("d20", "nearest")


def test_cli_lets_library_errors_through(run):
    """The main CLI turns HnmineError into a message and exit 2; these commands must not eat it."""
    result = CliRunner().invoke(cli(), ["report", "nowhere"])
    assert isinstance(result.exception, RunDirError)
    result = CliRunner().invoke(cli(), ["report", str(run), "--reason", "bogus"])
    assert isinstance(result.exception, UnknownName)
    result = CliRunner().invoke(cli(), ["inspect", str(run), "q404"])
    assert isinstance(result.exception, InputError)


# -- inspect ----------------------------------------------------------------------------------


def test_inspect_story(run):
    d = inspect_query(run, "q3")
    assert d["query"] == "ما هي أعراض مرض السكري من النوع الثاني؟"
    assert d["positive_score"] == pytest.approx(0.55)
    assert d["summary"]["status"] == "short" and d["summary"]["shortfall"] == 1
    assert [(p["doc_id"], p["rank"]) for p in d["positives"]] == [("d20", 1), ("d21", None)]
    story = [(c["doc_id"], c["rank"], c["verdict"], c["reason"]) for c in d["candidates"]]
    assert story == [
        ("d20", 1, "positive", None),
        ("d23", 2, "dropped", "within_relative_margin_of_positive"),
        ("d22", 3, "kept", None),
        ("d24", 4, "dropped", "below_min_score"),
        ("d21", None, "positive", None),
        ("d40", None, "kept", None),  # the random negative
    ]
    d23 = d["candidates"][1]
    assert d23["teacher_score"] == pytest.approx(0.53) and d23["delta"] == pytest.approx(-0.02)
    assert d23["source"] == "dense+bm25" and d23["dense_score"] is not None and d23["bm25_score"] is not None
    assert d["counts"] == {"positive": 2, "kept": 2, "dropped": 2, "unused": 0, "random": 1}

    q1 = inspect_query(run, "q1")
    assert [c["verdict"] for c in q1["candidates"]].count("unused") == 1


def test_inspect_snapshot(run):
    check_snapshot(INSPECT_SNAPSHOT, rendered(render_inspect, inspect_query(run, "q3")))


def test_inspect_by_text(run):
    assert inspect_query(run, query_text="肺癌")["query_id"] == "q2"
    assert find_query(run, query_text="  EFFETS de la caféine ")[0] == "q4"  # case and spaces
    with pytest.raises(InputError, match="2 queries contain 'caf': q1, q4"):
        find_query(run, query_text="caf")
    with pytest.raises(InputError, match="no query text contains"):
        find_query(run, query_text="zebra")
    with pytest.raises(OptionError):
        find_query(run)
    with pytest.raises(OptionError):
        find_query(run, "q1", "caf")


def test_inspect_unknown_id(run):
    with pytest.raises(InputError, match=r"no query 'q10' in .*queries.parquet \(4 queries; did you mean q1"):
        inspect_query(run, "q10")


def test_inspect_json_cli(run):
    result = CliRunner().invoke(cli(), ["inspect", str(run), "--query", "سكري", "--json"])
    assert result.exit_code == 0, result.output
    assert "\\u" not in result.stdout and "العلاج بالأنسولين" in result.stdout
    assert json.loads(result.stdout)["query_id"] == "q3"


def test_inspect_narrow_terminal_puts_text_under_row(run):
    out = rendered(render_inspect, inspect_query(run, "q1"), 70)
    assert all(cell_len(line) <= 70 for line in out.splitlines())
    assert "within margin of positive" in out


def test_inspect_before_filter(run):
    for name in ("negatives.parquet", "dropped.parquet", "query_summary.parquet", "manifests/filter.json"):
        (run / name).unlink(missing_ok=True)
    d = inspect_query(run, "q1")
    assert d["filtered"] is False and {c["verdict"] for c in d["candidates"]} == {"positive", "unfiltered"}
    assert "not filtered yet" in rendered(render_inspect, d)


def test_inspect_after_a_filter_table_was_deleted_names_the_file(run):
    """Not "the filter has not run": the filter ran, and one of its tables is gone."""
    (run / "negatives.parquet").unlink()
    with pytest.raises(RunDirError, match=r"negatives.parquet is missing: it is written by the filter stage; run `hnmine filter`"):
        inspect_query(run, "q1")


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, stage",
    [
        ("scores.parquet", "score"),
        ("dropped.parquet", "filter"),
        ("query_summary.parquet", "filter"),
        ("inputs/corpus.parquet", "inputs"),
    ],
)
def test_missing_table_names_file_and_stage(run, name, stage):
    (run / name).unlink()
    with pytest.raises(RunDirError) as e:
        build_report(run)
    msg = str(e.value)
    assert name in msg and f"the {stage} stage" in msg and "\n" not in msg


def test_missing_tables_reported_in_pipeline_order(run):
    (run / "scores.parquet").unlink()
    (run / "negatives.parquet").unlink()
    with pytest.raises(RunDirError, match="scores.parquet"):
        build_report(run)


def test_missing_run_dir(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        build_report(tmp_path / "nope")


def test_missing_column_lists_columns(run):
    t = pq.read_table(run / "dropped.parquet").drop(["reason"])
    pq.write_table(t, run / "dropped.parquet")
    with pytest.raises(MissingColumn, match=r"no column 'reason' \(columns: query_id, doc_id"):
        build_report(run)


def test_unknown_reason_lists_reasons_present(run):
    with pytest.raises(UnknownName) as e:
        build_report(run, reason="too_similar")
    assert e.value.kind == "reason"
    assert "kept" in e.value.valid and "below_min_score" in e.value.valid
    assert "not_sampled" not in e.value.valid  # only reasons present in this run


def test_corrupt_manifest(run):
    (run / "manifests" / "score.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RunDirError, match="score.json is not a readable JSON manifest"):
        build_report(run)


def test_no_manifests_still_reports(run):
    shutil.rmtree(run / "manifests")
    r = build_report(run)
    assert all(not s["ran"] for s in r["stages"])
    rendered(render_report, r)


def test_empty_filter_output(run):
    """A run where the filter kept and dropped nothing still renders."""
    for name in ("negatives.parquet", "dropped.parquet"):
        t = pq.read_table(run / name)
        pq.write_table(t.slice(0, 0), run / name)
    r = build_report(run)
    assert r["suspects"]["rows"] == [] and r["drop_reasons"] == []
    out = rendered(render_report, r)
    assert "no suspects" in out and "nothing was dropped" in out


def test_read_where_across_row_groups(tmp_path):
    """Rows looked up by id come back right when the file has many row groups."""
    from hnmine.report import load
    from hnmine.rundir import RunDir

    ids = [f"d{i}" for i in range(50)]
    t = pa.table({"doc_id": ids, "title": [""] * 50, "text": [f"text {i}" for i in range(50)]})
    (tmp_path / "inputs").mkdir()
    pq.write_table(t, tmp_path / "inputs" / "corpus.parquet", row_group_size=7)
    run = RunDir(tmp_path)
    got = load.lookup_texts(run, "corpus", ["d3", "d49", "d20", "d21", "nope"])
    assert got == {"d3": ("", "text 3"), "d20": ("", "text 20"), "d21": ("", "text 21"), "d49": ("", "text 49")}
    rows = run.read_current("corpus", ["text"], where=("doc_id", ["d8", "d1"]))
    assert rows.column("text").to_pylist() == ["text 1", "text 8"]  # file order
    assert run.read_current("corpus", ["text"], where=("doc_id", ["x"])).num_rows == 0


def test_report_does_not_import_pandas(built_run):
    """pyarrow's to_numpy/fill_null import pandas (most of a second): the report avoids them."""
    import subprocess
    import sys

    code = (
        "import io, sys\n"
        "from rich.console import Console\n"
        "from hnmine.report import build_report, render_report, inspect_query, render_inspect\n"
        f"run = {str(built_run)!r}\n"
        "c = Console(file=io.StringIO(), width=100)\n"
        "render_report(build_report(run, include_points=True), c)\n"
        "render_inspect(inspect_query(run, 'q3'), c)\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- mine's summary and the report count the same dropped candidates (issue 23, item 14) -------


def test_mine_summary_and_report_count_dropped_candidates_alike(finished_tiny, tmp_path):
    """`mine` said 'dropped candidates: 670' (known positives included), the report '600 dropped'."""
    import re

    from conftest import invoke

    run = tmp_path / "run"
    shutil.copytree(finished_tiny[1], run)
    result = invoke(["mine", finished_tiny[0], "--out", run])  # every stage up to date: the summary only
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stderr.splitlines() if x.startswith("negatives: "))
    stats = json.loads((run / "manifests/filter.json").read_text(encoding="utf-8"))["stats"]
    known = stats["dropped_known_positive"]
    assert known > 0  # the case where the two counts differed
    found = re.search(r"dropped by the rules: ([\d,]+) candidates \(([\d,]+) retrieved known positives aside\)", line)
    assert found, line
    report = json.loads(invoke(["report", run, "--json"]).stdout)
    assert int(found.group(1).replace(",", "")) == report["funnel"]["dropped"]
    assert int(found.group(2).replace(",", "")) == known
    terminal = invoke(["report", run]).stdout
    assert f"{report['funnel']['dropped']:,} dropped by the rules" in terminal and "candidates (positives aside)" in terminal
