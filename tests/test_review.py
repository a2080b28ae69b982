"""`hnmine review`: the walk, the app driven by Textual's pilot (key presses -> verdicts on disk ->
the next filter's output), a kill mid-session, 80 columns with CJK/Arabic/long/markup texts, the
CLI, and the real command in a real terminal (tmux)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from hnmine.errors import InputError, UnknownName
from hnmine.journal import JOURNAL_FILE, JUDGMENTS_FILE, run_judgments
from hnmine.judgment_files import read_judgments
from hnmine.judgments import apply_judgments
from hnmine.report import build_report
from hnmine.review.session import Filters, ReviewSession

HERE = Path(__file__).parent
ROOT = HERE.parent
_spec = importlib.util.spec_from_file_location("report_run_build", HERE / "fixtures" / "report_run" / "build.py")
fixture_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture_build)


@pytest.fixture(scope="session")
def built_run(tmp_path_factory) -> Path:
    return fixture_build.build_run(tmp_path_factory.mktemp("review_runs") / "report_run")


@pytest.fixture
def run(built_run, tmp_path) -> Path:
    shutil.copytree(built_run, tmp_path / "report_run")
    return tmp_path / "report_run"


def journal(run: Path) -> list[dict]:
    path = run / JOURNAL_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def report_keys(run: Path, **kw) -> list[tuple[str, str]]:
    return [(r["query_id"], r["doc_id"]) for r in build_report(run, **kw)["suspects"]["rows"]]


def drive(run: Path, keys_then_check, filters: Filters | None = None, size=(80, 24)):
    """Run the app headless on `run`; `keys_then_check(app, pilot)` is awaited inside."""
    from hnmine.review.app import ReviewApp

    async def main():
        app = ReviewApp(ReviewSession.open(run, filters))
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await keys_then_check(app, pilot)

    asyncio.run(main())


def screen_lines(app) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def pane_text(app, side: str) -> str:
    """What one pane shows, its wrapped lines joined back, spaces removed (wrapping moves them)."""
    lines = screen_lines(app)
    out = []
    for line in lines[4:-2]:  # title, query (2 lines), rule ... status, keys
        if "│" not in line:
            continue
        left, right = line.split("│", 1)
        out.append(left if side == "left" else right)
    return "".join("".join(out).split()).replace("▆", "").replace("▁", "")


def flat(text: str) -> str:
    return "".join(text.split())


# -- the walk, without a terminal -------------------------------------------------------------


def test_session_walks_the_report_order_with_filters(run):
    s = ReviewSession.open(run)
    assert [s.key(i) for i in range(len(s.suspects))] == report_keys(run, top=100)
    assert s.cursor == 0 and s.progress() == {"position": 1, "total": 17, "relevant": 0, "not_relevant": 0, "skipped": 0, "left": 17}
    kept = ReviewSession.open(run, Filters(reason="kept"))
    assert kept.suspects and {r["status"] for r in kept.suspects} == {"kept"}
    assert [kept.key(i) for i in range(len(kept.suspects))] == report_keys(run, top=100, reason="kept")
    q2 = ReviewSession.open(run, Filters(query_id="q2"))
    assert [q2.key(i) for i in range(len(q2.suspects))] == [k for k in report_keys(run, top=100) if k[0] == "q2"]
    gap = ReviewSession.open(run, Filters(min_gap=0.0))
    assert gap.suspects and all(r["delta"] >= 0 for r in gap.suspects)
    # the report's order (grouped by query), those with Δ >= 0
    report = build_report(run, top=100)["suspects"]["rows"]
    assert [gap.key(i) for i in range(len(gap.suspects))] == [(r["query_id"], r["doc_id"]) for r in report if r["delta"] >= 0]
    with pytest.raises(UnknownName, match="unknown reason 'nope'"):
        ReviewSession.open(run, Filters(reason="nope"))
    with pytest.raises(InputError, match="query 'q9' has no suspect in this list"):
        s.jump("q9")
    assert s.jump("q3") == [r["query_id"] for r in s.suspects].index("q3")
    assert s.jump("#5") == 4


# -- the app, driven by its pilot -------------------------------------------------------------


def test_keys_save_verdicts_and_change_the_next_filter(run):
    from hnmine.selection import FilterOptions, filter_candidates

    order = report_keys(run, top=100)
    assert order[:2] == [("q4", "d33"), ("q4", "d31")]  # d33 dropped above max score, d31 kept #2

    async def keys(app, pilot):
        await pilot.press("n")  # d33: not relevant
        assert [(e["op"], e["doc_id"], e["relevance"]) for e in journal(run)] == [("judge", "d33", 0)]
        await pilot.press("r")  # d31: relevant
        await pilot.press("s")  # #3: no verdict
        await pilot.press("r")  # #4: relevant ...
        assert app.session.cursor == 4
        await pilot.press("u")  # ... no: undone, and back on #4
        assert app.session.cursor == 3
        assert app.session.progress() == {"position": 4, "total": 17, "relevant": 1, "not_relevant": 1, "skipped": 1, "left": 15}
        status = screen_lines(app)[-2]
        assert "4/17 · 1 relevant · 1 not relevant · 1 skipped · 15 left" in status
        await pilot.press("b", "b", "b")  # back to #1: shown as judged
        assert "NOT RELEVANT (you)" in "\n".join(screen_lines(app))
        await pilot.press("q")

    drive(run, keys)
    assert [e["op"] for e in journal(run)] == ["judge", "judge", "judge", "undo"]
    saved = read_judgments(run / JUDGMENTS_FILE)
    assert [(r["query_id"], r["doc_id"], r["relevance"], r["source"]) for r in saved.to_pylist()] == [
        ("q4", "d33", 0, "human"),
        ("q4", "d31", 1, "human"),
    ]

    # The next filter: d31 is now a positive of q4, so never a negative; d33 is in the do-not-drop set.
    scores = pq.read_table(run / "scores.parquet")
    corpus = pq.read_table(run / "inputs/corpus.parquet")
    applied, info = apply_judgments(scores, run_judgments(run))
    assert [(r["query_id"], r["doc_id"]) for r in info["not_relevant"].to_pylist()] == [("q4", "d33")]
    assert info["counts"]["human"]["new_positives"] == 1 and info["counts"]["human"]["not_relevant"] == 1
    options = FilterOptions(method="naive", num_negatives=3, dedup_threshold=None)

    def negatives(table):
        neg = filter_candidates(table, corpus, options).negatives
        neg = neg.filter(pc.equal(neg.column("query_id"), "q4"))
        return neg.column("doc_id").to_pylist()

    assert negatives(scores) == ["d33", "d31", "d32"]
    assert negatives(applied) == ["d33", "d32", "d34"]


def test_inspect_and_go_to_query(run):
    from textual.widgets import Input

    async def keys(app, pilot):
        await pilot.press("i")
        text = "\n".join(screen_lines(app))
        assert "Candidates (5: 3 kept, 1 dropped, 0 unused)" in text and "q4" in text
        await pilot.press("r")  # the suspect is hidden: no verdict from under the inspect view
        assert journal(run) == []
        await pilot.press("escape")
        assert len(app.screen_stack) == 1
        await pilot.press("right", "right", "left")  # arrows walk too, from the focused pane
        assert app.session.cursor == 1 and app.focused.id == "suspect"
        await pilot.press("g", "q", "3", "left", "x")  # ... but edit the text in the prompt
        assert app.screen.query_one(Input).value == "qx3" and app.session.cursor == 1
        app.screen.query_one(Input).value = "q3"
        await pilot.press("enter")
        assert app.session.current["query_id"] == "q3"
        assert flat(fixture_build.QUERIES["q3"]) in flat("".join(screen_lines(app)[1:4]))

    drive(run, keys)

    async def elsewhere(app, pilot):  # q3 has no suspect in a q2-only walk: its story is shown
        await pilot.press("g")
        app.screen.query_one(Input).value = "q3"
        await pilot.press("enter")
        assert len(app.screen_stack) == 2 and "Positives (2)" in "\n".join(screen_lines(app))

    drive(run, elsewhere, Filters(query_id="q2"))


def test_80_columns_with_cjk_arabic_long_and_markup_texts(run):
    corpus = {d: fixture_build.CORPUS[d] for d in fixture_build.CORPUS}
    seen = {}

    async def keys(app, pilot):
        for _ in range(len(app.session.suspects)):
            lines = screen_lines(app)
            assert len(lines) == 24 and all(cell_len(line) == 80 for line in lines), lines
            assert lines[0].startswith("hnmine review  " + str(run)[:30])  # one line, cut, never wrapped away
            row = app.session.current
            title, text = corpus[row["doc_id"]]
            body = pane_text(app, "right")
            # the whole suspect text is there, wrapped by cells (the long one: its start, scrollable)
            expected = flat(f"{title} — {text}")
            assert (expected[:300] if len(expected) > 300 else expected) in body, (row["doc_id"], body)
            assert flat(row["query"])[:40] in flat("".join(lines[1:4]))
            seen[row["doc_id"]] = body
            await pilot.press("s")

    drive(run, keys)
    assert {"d11", "d12", "d13", "d23", "d22", "d31", "d4"} <= set(seen)  # CJK, Arabic, long, markup
    assert "[bold]cholesterol[/bold]" in seen["d4"] and "<script>" in seen["d4"]

    async def narrow(app, pilot):  # stacked panes below 70 columns: nothing lost, no crash
        assert app.query_one("#panes").has_class("narrow")
        assert flat(fixture_build.CORPUS["d33"][1])[:30] in flat("".join(screen_lines(app)))

    drive(run, narrow, size=(50, 30))


def rename_ids(run: Path, queries: dict[str, str], docs: dict[str, str]) -> None:
    """Rewrite ids in every table of the run (ids holding Textual/rich markup characters)."""
    for path in run.rglob("*.parquet"):
        table = pq.read_table(path)
        for col, mapping in (("query_id", queries), ("doc_id", docs)):
            if col in table.column_names:
                values = [mapping.get(v, v) for v in table.column(col).to_pylist()]
                table = table.set_column(table.column_names.index(col), col, pa.array(values, pa.string()))
        pq.write_table(table, path)


def test_ids_with_brackets_show_and_save_as_themselves(run):
    qid, did = "[b]q1[/b]", "[red]d4[/red]"
    rename_ids(run, {"q1": qid}, {"d4": did})

    async def keys(app, pilot):
        app.session.cursor = [app.session.key(i) for i in range(len(app.session.suspects))].index((qid, did))
        app.show()
        await pilot.pause()
        text = "\n".join(screen_lines(app))
        assert f"query {qid}" in text and did in text
        await pilot.press("r")

    drive(run, keys)
    assert [(e["query_id"], e["doc_id"], e["relevance"]) for e in journal(run)] == [(qid, did, 1)]


# -- a kill mid-session -----------------------------------------------------------------------

KILLED_SESSION = """
import asyncio, os, signal, sys
from hnmine.review.app import ReviewApp
from hnmine.review.session import ReviewSession

async def main():
    app = ReviewApp(ReviewSession.open(sys.argv[1]))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r", "n", "s", "r")
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no exit handlers

asyncio.run(main())
"""


def test_killed_session_keeps_every_verdict_and_resumes(run):
    proc = subprocess.run([sys.executable, "-c", KILLED_SESSION, str(run)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == -9, proc.stderr
    order = report_keys(run, top=100)
    made = [(e["query_id"], e["doc_id"], e["relevance"]) for e in journal(run)]
    assert made == [(*order[0], 1), (*order[1], 0), (*order[3], 1)]

    (run / JUDGMENTS_FILE).unlink()  # as if killed between the journal line and the table
    s = ReviewSession.open(run)
    assert s.cursor == 2  # the skipped one is the first without a verdict
    assert len(read_judgments(run / JUDGMENTS_FILE)) == 3

    async def keys(app, pilot):
        assert "3/17 · 1 relevant" not in screen_lines(app)[-2]
        assert " 3/17 · 2 relevant · 1 not relevant · 0 skipped · 14 left" in screen_lines(app)[-2]

    drive(run, keys)


# -- the command ------------------------------------------------------------------------------


def cli(args: list[str]):
    from hnmine.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_exports_qrels_and_refuses_without_a_terminal(run, tmp_path):
    from hnmine.journal import JudgmentLog

    log = JudgmentLog(run)
    log.judge("q2", "d11", 1)
    log.judge("q4", "d33", 0)
    for fmt, expected in (("beir", "query-id\tcorpus-id\tscore\nq2\td11\t1\nq4\td33\t0\n"), ("trec", "q2 0 d11 1\nq4 0 d33 0\n")):
        out = tmp_path / f"qrels.{fmt}"
        result = cli(["review", run, "--export", out, "--qrels-format", fmt])
        assert result.exit_code == 0, result.output
        assert out.read_text() == expected
    result = cli(["review", run])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "hnmine: error: hnmine review needs a terminal (stdin and stdout); to write the judgments as qrels use --export FILE"
    )
    result = cli(["review", run, "--reason", "nope"])
    assert result.exit_code == 2 and result.output.startswith("hnmine: error: unknown reason 'nope' (valid:")
    result = cli(["review", run, "--query", "q1", "--min-gap", "0.5"])
    assert result.exit_code == 2
    assert result.output.strip() == (f"hnmine: error: no suspected false negatives in {run} match (query q1, Δ ≥ +0.500)")
    result = cli(["review", run, "--export", tmp_path / "x", "--qrels-format", "csv"])
    assert result.exit_code == 2 and "unknown qrels format 'csv' (valid: beir, trec)" in result.output


def test_help_does_not_import_textual():
    code = "import sys; from hnmine.cli import app; sys.exit(1 if 'textual' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert "review" in cli(["--help"]).output


# -- the real command in a real terminal ------------------------------------------------------


def wait_for(what: str, check, capture, deadline_s: float = 60.0):
    """Poll until `check()` holds; the deadline only stops a hung terminal from hanging the suite."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"tmux: {what} never happened; the screen was:\n{capture()}")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make tmux installs it)")
def test_real_terminal_in_tmux(run):
    name = f"hnmine-review-test-{os.getpid()}"
    exit_file = run.parent / "exit_code"
    hnmine = shlex.join([sys.executable, "-m", "hnmine", "review", "report_run"])
    command = f"cd {shlex.quote(str(run.parent))} && {hnmine}; echo $? > {shlex.quote(str(exit_file))}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run(["tmux", "-L", name, "new-session", "-d", "-x", "80", "-y", "24", "-s", name, command], check=True, env=env)

    def capture() -> str:
        return subprocess.run(["tmux", "-L", name, "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout

    def keys(*k: str) -> None:
        subprocess.run(["tmux", "-L", name, "send-keys", "-t", name, *k], check=True)

    try:
        wait_for("the first suspect on screen", lambda: " 1/17 · " in capture(), capture)
        screen = capture()
        lines = screen.splitlines()
        assert all(cell_len(line) <= 80 for line in lines)
        assert "query q4" in screen and "known positive (1)" in screen and "d33 · 0.990 · Δ +0.230" in screen
        assert "q quit" in lines[-1]
        keys("n")
        wait_for("the verdict in the journal", lambda: len(journal(run)) == 1, capture)
        wait_for("the second suspect", lambda: " 2/17 · 0 relevant · 1 not relevant" in capture(), capture)
        keys("r")
        wait_for("the second verdict", lambda: len(journal(run)) == 2, capture)
        keys("u")
        wait_for("the undo", lambda: len(journal(run)) == 3, capture)
        wait_for("back on the second suspect", lambda: " 2/17 · 0 relevant · 1 not relevant" in capture(), capture)
        keys("q")
        wait_for("the command to exit", lambda: exit_file.exists() and exit_file.read_text().strip() != "", capture)
        assert exit_file.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True)
    assert [(e["op"], e["doc_id"]) for e in journal(run)] == [("judge", "d33"), ("judge", "d31"), ("undo", "d31")]
    assert [(r["doc_id"], r["relevance"]) for r in read_judgments(run / JUDGMENTS_FILE).to_pylist()] == [("d33", 0)]


# -- a folder that is no run (issue 23, item 14) ------------------------------------------------


@pytest.mark.parametrize("command", [["review"], ["review", "--query", "q1"], ["report"], ["inspect", "q1"], ["eval"]])
def test_a_data_folder_is_named_as_no_run_not_as_a_run_to_write(tmp_path, command):
    """`hnmine review DATA` advised writing a run into the data folder (`run hnmine index … --out DATA`)."""
    from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, snapshot, write_beir

    data = write_beir(tmp_path / "beir", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    before = snapshot(data)
    result = invoke([command[0], data, *command[1:]])
    assert result.exit_code == 2 and result.stdout == "", result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [f"hnmine: error: {data}: not an hnmine run directory (no .hnmine-run); give the --out of `hnmine mine`"]
    assert snapshot(data) == before


# -- eval reads what review exports (issue 23, item 14) ---------------------------------------


@pytest.mark.parametrize(
    "name, qrels_format", [("judged.qrels", "beir"), ("judged.qrels", "trec"), ("qrels.test.txt", "trec"), ("j.tsv", "beir")]
)
def test_eval_reads_the_qrels_review_exports(finished_tiny, tmp_path, name, qrels_format):
    """docs/review.md: `review --export` writes qrels that `eval --qrels` reads back (`.qrels` was
    refused as an unknown file format)."""
    from conftest import invoke

    from hnmine.journal import JudgmentLog

    run = tmp_path / "run"
    shutil.copytree(finished_tiny[1], run)
    negative = pq.read_table(run / "negatives.parquet").to_pylist()[0]
    log = JudgmentLog(run)
    log.judge(negative["query_id"], negative["doc_id"], 1)  # a mined negative judged relevant: a false negative
    log.judge(negative["query_id"], "d12", 0)
    log.save()
    exported = tmp_path / name
    result = invoke(["review", run, "--export", exported, "--qrels-format", qrels_format])
    assert result.exit_code == 0, result.output
    result = invoke(["eval", run, "--qrels", exported, "--json"])
    assert result.exit_code == 0, result.output
    measured = json.loads(result.stdout)[0]
    assert measured["judged_queries"] == 1 and measured["false_negatives"] == 1
