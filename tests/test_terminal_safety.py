"""Terminal escape sequences in ids, texts and paths never reach the terminal raw (issue 23, item 9).

A run is mined from files whose ids, titles and texts hold the sequences a hostile file would use:
OSC 0 (window title), OSC 52 (clipboard), CSI 2 J (clear screen), the 8-bit CSI (C1 U+009B), a
carriage return and a right-to-left override (U+202E); the run directory's own name holds some too.
Every command that prints (report, inspect, a warning, an error, eval, mine's summary, review, JSON)
must show them as visible escapes (`\\x1b`, `\\x9b`, `\\r`, `\\u202e`) and write none of them.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import TINY_DOCS, TINY_QUERIES
from typer.testing import CliRunner

from hnmine.cli import app

TITLE = "\x1b]0;pwned-title\x07"  # OSC 0: sets the terminal's window title
CLEAR = "\x1b[2J"  # CSI 2 J: clears the screen
CLIPBOARD = "\x1b]52;c;cHduZWQ=\x07"  # OSC 52: writes the clipboard
C1_CSI = "\x9b31m"  # the 8-bit CSI (a C1 control)
RLO = "\u202e"  # right-to-left override

EVIL_QUERY = f"q1{TITLE}{C1_CSI}{RLO}x"
EVIL_DOC = f"d10{CLEAR}{RLO}\rz"
GONE_DOC = f"gone{CLIPBOARD}\r"  # named by the qrels, not in the corpus: a warning quotes it
EVIL_TEXT = f"An espresso machine {CLIPBOARD}pushes {C1_CSI}hot water{CLEAR} through fine coffee{RLO} grounds.\r"

# What may not be written: C0 controls but newline, DEL, C1 controls, bidirectional controls.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def assert_no_raw_controls(text: str) -> None:
    hits = sorted({f"U+{ord(c):04X}" for c in RAW.findall(text)})
    assert not hits, f"raw control characters written: {hits}"


@pytest.fixture(scope="module")
def evil_run(tmp_path_factory) -> tuple[Path, Path, str]:
    """(data folder, run directory, mine's stderr): the tiny collection with hostile ids and texts,
    in separate JSONL files (JSONL ids may hold any character), mined into a hostile folder name."""
    base = tmp_path_factory.mktemp("evil")
    data = base / "data"
    data.mkdir()
    docs = [dict(d) for d in TINY_DOCS]
    docs[9] = {"_id": EVIL_DOC, "title": f"Espresso machines{TITLE}", "text": EVIL_TEXT}
    queries = [dict(q) for q in TINY_QUERIES]
    queries[0] = {"_id": EVIL_QUERY, "text": f"How is espresso made?{CLEAR}\r"}
    qrels = [
        {"query-id": EVIL_QUERY, "corpus-id": "d1", "score": 1},
        {"query-id": "q2", "corpus-id": "d5", "score": 1},
        {"query-id": "q3", "corpus-id": "d9", "score": 1},
        {"query-id": "q3", "corpus-id": GONE_DOC, "score": 1},
    ]
    for name, rows in (("corpus", docs), ("queries", queries), ("qrels", qrels)):
        with open(data / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    run = base / f"run{CLEAR}{RLO}"
    result = cli(
        "mine",
        "--corpus",
        data / "corpus.jsonl",
        "--queries",
        data / "queries.jsonl",
        "--qrels",
        data / "qrels.jsonl",
        "--out",
        run,
        "--dtype",
        "float32",  # no timed probe of the CPU's half precision: this test is about what is printed
    )
    assert result.exit_code == 0, result.output
    return data, run, result.stderr


def cli(*args):
    # wide, so ids and texts are not cut before the escapes show
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def test_report_shows_escapes_and_writes_none(evil_run):
    _, run, _ = evil_run
    result = cli("report", run)
    assert result.exit_code == 0, result.output
    assert_no_raw_controls(result.stdout + result.stderr)
    out = result.stdout
    assert "run\\x1b[2J\\u202e" in out  # the run directory's name, in the header
    assert "q1\\x1b]0;pwned-title\\x07\\x9b31m\\u202ex" in out  # the query id, among the suspects
    assert "d10\\x1b[2J\\u202e\\rz" in out  # the document id
    assert "\\x1b]52;c;cHduZWQ=\\x07" in out  # the clipboard sequence in the document's text


def test_report_warnings_of_a_stage_show_escapes(evil_run):
    """A stage's warning recorded in its manifest (quoting an id) is printed in the Stages section."""
    import io

    from rich.console import Console

    from hnmine.report import build_report, render_report

    _, run, _ = evil_run
    report = build_report(run)
    report["meta"]["warnings"] = [{"stage": "filter", "message": f"query {EVIL_QUERY}: short\r\nof negatives"}]
    console = Console(file=io.StringIO(), width=250, force_terminal=True)  # styles on: their ESC are rich's own
    render_report(report, console)
    out = console.file.getvalue()
    assert "q1\\x1b]0;pwned-title\\x07\\x9b31m\\u202ex: short of negatives" in out
    assert TITLE not in out and CLEAR not in out and "\x9b" not in out and RLO not in out


def test_report_json_escapes_what_json_leaves_raw(evil_run):
    _, run, _ = evil_run
    result = cli("report", run, "--json")
    assert result.exit_code == 0, result.output
    assert_no_raw_controls(result.stdout)
    assert "\\u009b" in result.stdout and "\\u202e" in result.stdout
    data = json.loads(result.stdout)  # the same strings, read back
    assert EVIL_QUERY in {r["query_id"] for r in data["suspects"]["rows"]}


def test_inspect_shows_escapes_and_writes_none(evil_run):
    _, run, _ = evil_run
    result = cli("inspect", run, EVIL_QUERY)
    assert result.exit_code == 0, result.output
    assert_no_raw_controls(result.stdout + result.stderr)
    assert result.stdout.startswith("q1\\x1b]0;pwned-title\\x07")  # the query id (cut at 30 cells)
    assert "d10\\x1b[2J\\u202e\\rz" in result.stdout
    assert "Espresso machines\\x1b]0;pwned-title\\x07" in result.stdout
    result = cli("inspect", run, EVIL_QUERY, "--json")
    assert_no_raw_controls(result.stdout)
    assert json.loads(result.stdout)["query_id"] == EVIL_QUERY


def test_warning_shows_escapes_and_writes_none(evil_run):
    _, _, stderr = evil_run
    assert "warning: " in stderr and "gone\\x1b]52;c;cHduZWQ=\\x07\\r" in stderr
    assert_no_raw_controls(stderr)


def test_mine_summary_and_json_write_no_raw_controls(evil_run):
    data, run, stderr = evil_run
    assert "run directory: " in stderr and "run\\x1b[2J\\u202e" in stderr
    result = cli("mine", "--corpus", data / "corpus.jsonl", "--queries", data / "queries.jsonl", "--qrels", data / "qrels.jsonl")
    assert result.exit_code == 2
    result = cli(
        "mine",
        "--corpus",
        data / "corpus.jsonl",
        "--queries",
        data / "queries.jsonl",
        "--qrels",
        data / "qrels.jsonl",
        "--out",
        run,
        "--dtype",
        "float32",
        "--json",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert_no_raw_controls(result.stdout + result.stderr)
    assert json.loads(result.stdout)["run_dir"] == str(run)


def test_error_message_shows_escapes_and_writes_none(evil_run):
    _, run, _ = evil_run
    result = cli("inspect", run, f"nope{CLEAR}")
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hnmine: error: no query 'nope\\x1b[2J'"), result.stderr
    assert_no_raw_controls(result.stderr)
    # an id from a file quoted in the message: the query ids the hint lists
    assert "q1\\x1b]0;pwned-title\\x07\\x9b31m\\u202ex" in lines[0]


def test_eval_shows_escapes_and_writes_none(evil_run, tmp_path):
    _, run, _ = evil_run
    qrels = tmp_path / "judged.tsv"
    qrels.write_text(f"query-id\tcorpus-id\tscore\n{EVIL_QUERY}\td2\t1\n", encoding="utf-8")
    for extra in ([], ["--json"], ["--markdown"]):
        result = cli("eval", run, "--qrels", qrels, *extra)
        assert result.exit_code == 0, result.output
        assert_no_raw_controls(result.stdout + result.stderr)
    assert "run\\x1b[2J\\u202e" in cli("eval", run).stdout


def test_review_app_shows_escapes(evil_run, tmp_path):
    import shutil

    from hnmine.review.app import ReviewApp
    from hnmine.review.session import Filters, ReviewSession

    _, done, _ = evil_run
    run = tmp_path / "run"
    shutil.copytree(done, run)

    async def main() -> list[str]:
        app = ReviewApp(ReviewSession.open(run, Filters(query_id=EVIL_QUERY)))
        async with app.run_test(size=(200, 30)) as pilot:
            await pilot.pause()
            return [strip.text for strip in app.screen._compositor.render_strips()]

    screen = "\n".join(asyncio.run(main()))
    assert_no_raw_controls(screen)
    assert "q1\\x1b]0;pwned-title\\x07\\x9b31m\\u202ex" in screen
    export = tmp_path / "judged.tsv"
    result = cli("review", run, "--export", export)
    assert result.exit_code == 0 and "judged.tsv" in result.stderr


def test_html_report_escapes_html_and_controls(evil_run, tmp_path):
    _, run, _ = evil_run
    page = tmp_path / "report.html"
    result = cli("report", run, "--html", page)
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert_no_raw_controls(html.replace("\t", " "))
    assert "d10\\x1b[2J\\u202e\\rz" in html


def test_finetune_table_shows_escapes(capsys):
    from hnmine import cli_finetune
    from hnmine.finetune.metrics import METRICS

    stat = {"mean": 0.5, "std": 0.0, "n": 1}
    result = SimpleNamespace(
        eval={"data": f"data{TITLE}", "split": "test", "queries": 3},
        summary=[{"arm": f"mined:run{CLEAR}[bold]x[/bold]", "runs": 1, **{m: stat for m in METRICS}}],
        results_files=[f"results{C1_CSI}.json"],
    )
    cli_finetune._print_rich(result)
    out = capsys.readouterr()
    assert_no_raw_controls(out.out + out.err)
    assert "run\\x1b[2J[bold]x[/bold]" in out.out and "data\\x1b]0;pwned-title\\x07" in out.out
    assert "results\\x9b31m.json" in out.err


def test_visible_escapes_controls_and_keeps_text():
    from hnmine.terminal_text import dumps, visible

    assert visible(f"a{TITLE}b") == "a\\x1b]0;pwned-title\\x07b"
    assert visible(f"{C1_CSI}{RLO}\r\n\t\x7f") == "\\x9b31m\\u202e\\r\\n\\t\\x7f"
    assert visible("café 吸烟 السكري — “ok” [bold]") == "café 吸烟 السكري — “ok” [bold]"
    assert json.loads(dumps({"k": f"{C1_CSI}{RLO}\u2028é"})) == {"k": f"{C1_CSI}{RLO}\u2028é"}
    assert_no_raw_controls(dumps({"k": f"{TITLE}{C1_CSI}{RLO}\u2028"}))
