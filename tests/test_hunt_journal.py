"""Hunted cases (issue 23, item 11): a damaged line in the review journal (`RUN/review/journal.jsonl`).

`filter` and `review --export` fold the journal into the run's judgments. A line that is JSON but not
an entry the journal writes (a relevance that is not a whole number, a missing field, an id that is
a list) crashed both with a traceback; each is now one line naming the journal and the line, as a
line that is not JSON already was. Listed in docs/reliability.md, "Hunted cases".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import invoke, snapshot
from test_hunt import one_line_error

from hnmine.errors import RunDirError
from hnmine.journal import JOURNAL_FILE, JudgmentLog

GOOD = {"op": "judge", "query_id": "q1", "doc_id": "d2", "relevance": 0, "source": "human", "time": "2026-01-01T00:00:00.000Z"}


def without(key: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != key}


DAMAGED = {
    "relevance-text": ({**GOOD, "relevance": "high"}, "relevance"),
    "relevance-fraction": ({**GOOD, "relevance": 1.5}, "relevance"),
    "relevance-bool": ({**GOOD, "relevance": True}, "relevance"),
    "relevance-null": ({**GOOD, "relevance": None}, "relevance"),
    "relevance-beyond-int32": ({**GOOD, "relevance": 2**40}, "2,147,483,647"),
    "no-relevance": (without("relevance"), "relevance"),
    "no-query-id": (without("query_id"), "query_id"),
    "no-op": (without("op"), "op"),
    "unknown-op": ({**GOOD, "op": "redo"}, "op"),
    "doc-id-list": ({**GOOD, "doc_id": ["d2"]}, "doc_id"),
    "query-id-number": ({**GOOD, "query_id": 1}, "query_id"),
    "empty-doc-id": ({**GOOD, "doc_id": ""}, "doc_id"),
    "source-number": ({**GOOD, "source": 3}, "source"),
    "time-list": ({**GOOD, "time": []}, "time"),
    "undo-without-doc-id": ({"op": "undo", "query_id": "q1"}, "doc_id"),
}


def damaged_run(finished_tiny, tmp_path: Path, bad: dict) -> Path:
    """A copy of the tiny run whose journal holds a good verdict, then `bad` on line 2."""
    _, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    journal = run / JOURNAL_FILE
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(json.dumps(GOOD) + "\n" + json.dumps(bad) + "\n")
    return run


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_journal_line_is_named_by_the_reader(tmp_path, case):
    bad, fragment = DAMAGED[case]
    journal = tmp_path / JOURNAL_FILE
    journal.parent.mkdir(parents=True)
    journal.write_text(json.dumps(GOOD) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(RunDirError) as caught:
        JudgmentLog(tmp_path).verdicts()
    message = str(caught.value)
    assert message.startswith(f"{journal}:2: ") and fragment in message and "\n" not in message, message


@pytest.mark.parametrize("command", ["filter", "review-export"])
@pytest.mark.parametrize("case", ["relevance-text", "no-relevance", "doc-id-list"])
def test_a_damaged_journal_line_is_one_line_in_the_cli(finished_tiny, tmp_path, command, case):
    """`filter --out RUN` and `review RUN --export F` over a journal with a damaged line: a
    `ValueError`/`KeyError`/`TypeError` traceback (or, for list ids, a pyarrow one)."""
    bad, fragment = DAMAGED[case]
    run = damaged_run(finished_tiny, tmp_path, bad)
    before = snapshot(run)
    args = ["filter", "--out", run, "--quiet"] if command == "filter" else ["review", run, "--export", tmp_path / "q.tsv"]
    one_line_error(invoke(args), f"{run / JOURNAL_FILE}:2: ", fragment)
    assert snapshot(run) == before
    assert not (tmp_path / "q.tsv").exists()


def test_a_valid_journal_with_an_undo_and_no_source_is_read(tmp_path):
    """What the journal itself writes (and an undo, and an entry without source/time) still reads."""
    journal = tmp_path / JOURNAL_FILE
    journal.parent.mkdir(parents=True)
    lines = [GOOD, {**GOOD, "doc_id": "d3", "relevance": 1}, {"op": "undo", "query_id": "q1", "doc_id": "d3"}, without("source")]
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert JudgmentLog(tmp_path).verdicts() == {("q1", "d2"): 0}
