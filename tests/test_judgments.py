"""Judgments: reading qrels as text, the review journal, the one rule, export, apply_judgments."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hnmine.errors import InputError, MissingColumn, OptionError, RunDirError, UnknownName
from hnmine.journal import JOURNAL_FILE, JUDGMENTS_FILE, JudgmentLog, run_judgments, save_judgments
from hnmine.judgment_files import export_qrels, read_judgments
from hnmine.judgments import apply_judgments, fold_judgments, judgments_table
from hnmine.schemas import JUDGMENTS_SCHEMA


def clock():
    """Deterministic verdict times: 2026-01-01T00:00:00.001Z, .002Z, ..."""
    counter = itertools.count(1)
    return lambda: f"2026-01-01T00:00:00.{next(counter):03d}Z"


def j(q, d, rel, source="human", time=""):
    return {"query_id": q, "doc_id": d, "relevance": rel, "source": source, "time": time}


def pairs(table: pa.Table) -> list[tuple]:
    return [(r["query_id"], r["doc_id"], r["relevance"]) for r in table.to_pylist()]


# -- reading ----------------------------------------------------------------------------------


def test_beir_qrels_ids_stay_text_exactly(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\n001\t1e3\t1\n0x1F\t007.0\t0\nNaN\tdoc with space\t2\n", encoding="utf-8")
    table = read_judgments(path)
    assert table.schema == JUDGMENTS_SCHEMA
    assert pairs(table) == [("001", "1e3", 1), ("0x1F", "007.0", 0), ("NaN", "doc with space", 2)]
    assert set(table.column("source").to_pylist()) == {"test.tsv"}


def test_trec_qrels(tmp_path):
    path = tmp_path / "qrels.trec"
    path.write_text("001 0 1e3 1\n002  0\tD-7 0\n\n003 Q0 x -1\n", encoding="utf-8")
    assert pairs(read_judgments(path)) == [("001", "1e3", 1), ("002", "D-7", 0), ("003", "x", -1)]


@pytest.mark.parametrize(
    "content, message",
    [
        ("a b\n", "expected `query-id corpus-id score` (BEIR) or `qid 0 docid rel` (TREC), got 2 field(s)"),
        ("q-id\td-id\tscore\nq1\td1\t1\nq2\td2\n", ":3: 2 field(s), the file's first line has 3"),
        ("q1\td1\t1\nq2\td2\thigh\n", ":2: relevance 'high' is not a whole number"),
    ],
)
def test_bad_qrels_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("`", "`")):
        read_judgments(path)


def test_parquet_judgments_must_hold_text_ids(tmp_path):
    good = tmp_path / "j.parquet"
    pq.write_table(pa.table({"query_id": ["001"], "doc_id": ["1e3"], "relevance": pa.array([1], pa.int64())}), good)
    table = read_judgments(good)
    assert pairs(table) == [("001", "1e3", 1)] and table.column("source").to_pylist() == ["j.parquet"]
    numeric = tmp_path / "n.parquet"
    pq.write_table(pa.table({"query_id": [1], "doc_id": ["d"], "relevance": [1]}), numeric)
    with pytest.raises(InputError, match="column 'query_id' must hold text"):
        read_judgments(numeric)
    missing = tmp_path / "m.parquet"
    pq.write_table(pa.table({"query_id": ["q"], "doc": ["d"], "relevance": [1]}), missing)
    with pytest.raises(MissingColumn, match="no column 'doc_id' \\(columns: query_id, doc, relevance\\)"):
        read_judgments(missing)
    with pytest.raises(InputError, match="no such judgments file"):
        read_judgments(tmp_path / "nope.tsv")


# -- the rule ---------------------------------------------------------------------------------


def test_fold_person_beats_files_beats_teacher_then_latest():
    table = judgments_table(
        [
            j("q", "a", 0, "human", "2026-01-01T00:00:00Z"),
            j("q", "a", 1, "teacher", "2026-06-01T00:00:00Z"),  # later, but the person wins
            j("q", "b", 1, "teacher", "2026-01-01T00:00:00Z"),
            j("q", "b", 0, "gold.tsv", ""),  # a file beats the teacher whatever the time
            j("q", "c", 1, "teacher", "2026-01-02T00:00:00Z"),
            j("q", "c", 0, "teacher", "2026-01-01T00:00:00Z"),  # older: loses
            j("q", "d", 1, "human", "2026-01-01T00:00:00Z"),
            j("q", "d", 0, "human", "2026-01-01T00:00:00Z"),  # same time: the later row wins
        ]
    )
    assert pairs(fold_judgments(table)) == [("q", "a", 0), ("q", "b", 0), ("q", "c", 1), ("q", "d", 0)]


# -- the journal ------------------------------------------------------------------------------


def test_journal_undo_and_resume_in_a_new_session(tmp_path):
    log = JudgmentLog(tmp_path, clock=clock())
    log.judge("q1", "a", 1)
    log.judge("q1", "b", 0)
    log.judge("q1", "a", 0)  # changes its mind
    assert pairs(log.latest()) == [("q1", "b", 0), ("q1", "a", 0)]
    assert log.undo()["relevance"] == 0  # withdraws the change of mind: back to relevant
    assert pairs(log.latest()) == [("q1", "a", 1), ("q1", "b", 0)]
    log.close()  # the first review ends

    again = JudgmentLog(tmp_path, clock=clock())  # a later session undoes what the first one did
    assert again.verdicts() == {("q1", "a"): 1, ("q1", "b"): 0}
    assert again.undo()["doc_id"] == "b"
    assert again.undo()["doc_id"] == "a"
    assert again.undo() is None
    assert again.latest().num_rows == 0
    ops = [line.split('"op": "')[1][:4] for line in (tmp_path / JOURNAL_FILE).read_text().splitlines()]
    assert ops == ["judg", "judg", "judg", "undo", "undo", "undo"]


def test_an_undo_never_withdraws_a_verdict_of_a_review_still_open_elsewhere(tmp_path):
    """Two `hnmine review` sessions on one run: `u` in one withdrew the other's saved verdict."""
    first = JudgmentLog(tmp_path, clock=clock())
    second = JudgmentLog(tmp_path, clock=clock())
    first.judge("q1", "a", 1)
    second.judge("q1", "b", 0)
    first.judge("q1", "c", 1)
    assert second.undo()["doc_id"] == "b"  # its own, though first's verdict on c is newer
    assert second.undo() is None  # first is still open: its verdicts are not second's to withdraw
    assert second.verdicts() == {("q1", "a"): 1, ("q1", "c"): 1}
    first.close()
    assert second.undo()["doc_id"] == "c"  # first ended: its verdicts are history now
    assert second.verdicts() == {("q1", "a"): 1}


def test_an_undo_withdraws_the_verdict_it_names_when_two_sessions_judged_one_pair(tmp_path):
    """Both sessions judged the same pair; the later undo of the first one withdraws its own verdict, so the
    other session's (newer) verdict on that pair stands."""
    first = JudgmentLog(tmp_path, clock=clock())
    second = JudgmentLog(tmp_path, clock=clock())
    first.judge("q1", "a", 1)
    second.judge("q1", "a", 0)
    assert first.undo()["relevance"] == 1
    assert first.verdicts() == {("q1", "a"): 0}


def test_journal_drops_a_torn_last_line_and_refuses_a_corrupt_one(tmp_path):
    log = JudgmentLog(tmp_path, clock=clock())
    log.judge("q1", "a", 1)
    path = tmp_path / JOURNAL_FILE
    with open(path, "ab") as fh:  # what a process killed mid-write leaves
        fh.write(b'{"op": "judge", "query_id": "q1", "doc_id": "b", "rel')
    assert JudgmentLog(tmp_path).verdicts() == {("q1", "a"): 1}
    JudgmentLog(tmp_path, clock=clock()).judge("q1", "c", 0)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and '"doc_id": "c"' in lines[1]
    assert JudgmentLog(tmp_path).verdicts() == {("q1", "a"): 1, ("q1", "c"): 0}

    path.write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    with pytest.raises(RunDirError, match=r"journal.jsonl:2: not a journal entry"):
        JudgmentLog(tmp_path).verdicts()


def test_save_keeps_other_sources_and_run_judgments_folds_a_newer_journal(tmp_path):
    from hnmine.io.atomic import write_parquet

    write_parquet(
        judgments_table([j("q1", "t", 1, "teacher", "2026-01-01T00:00:00Z"), j("q1", "a", 1, "teacher", "2026-01-01T00:00:00Z")]),
        tmp_path / JUDGMENTS_FILE,
    )
    log = JudgmentLog(tmp_path, clock=clock())
    log.judge("q1", "a", 0)
    log.save()
    saved = read_judgments(tmp_path / JUDGMENTS_FILE)
    assert sorted(zip(saved.column("doc_id").to_pylist(), saved.column("source").to_pylist())) == [
        ("a", "human"),
        ("a", "teacher"),
        ("t", "teacher"),
    ]
    log.judge("q1", "b", 1)  # killed before save(): only the journal has it
    assert pairs(fold_judgments(run_judgments(tmp_path))) == [("q1", "t", 1), ("q1", "a", 0), ("q1", "b", 1)]


# -- export -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["beir", "trec"])
def test_export_round_trip(tmp_path, fmt):
    table = judgments_table([j("001", "1e3", 1), j("q 2", "d2", 0, "teacher"), j("001", "1e3", 0, "teacher")])
    if fmt == "trec":
        with pytest.raises(InputError, match="query_id 'q 2' holds whitespace"):
            export_qrels(table, tmp_path / "x", fmt)
        table = table.filter(pa.array([True, False, True]))
    path = tmp_path / f"qrels.{fmt}"
    assert export_qrels(table, path, fmt) == len(fold_judgments(table))
    text = path.read_text()
    assert text.startswith("query-id\tcorpus-id\tscore\n001\t1e3\t1\n") if fmt == "beir" else text == "001 0 1e3 1\n"
    assert pairs(read_judgments(path)) == pairs(fold_judgments(table))
    with pytest.raises(UnknownName, match="unknown qrels format 'csv'"):
        export_qrels(table, path, "csv")


# -- apply_judgments --------------------------------------------------------------------------


def scores_table():
    return pa.table(
        {
            "query_id": ["q1", "q1", "q1", "q1", "q2", "q2"],
            "doc_id": ["p", "a", "b", "c", "p2", "x"],
            "rank": pa.array([1, 2, 3, 4, 1, 2], pa.int32()),
            "is_positive": [True, False, False, False, True, False],
            "teacher_score": pa.array([0.9, 0.95, 0.8, 0.3, 0.7, 0.6], pa.float32()),
        }
    )


def test_apply_judgments_on_a_hand_built_table():
    scores = scores_table()
    judgments = judgments_table(
        [
            j("q1", "a", 1, "human"),  # in scores -> positive
            j("q1", "b", 0, "human"),  # not relevant -> never dropped as a suspect
            j("q1", "p", 0, "human"),  # not relevant on a known positive: counted, not demoted
            j("q2", "x", 2, "teacher"),  # automatic, relevant -> positive
            j("q2", "new", 1, "teacher"),  # never scored -> returned apart
            j("q3", "z", 0, "gold.tsv"),  # not in this run
            j("q1", "c", 1, "teacher"),
            j("q1", "c", 0, "human"),  # the person overrules the teacher: not relevant
        ]
    )
    out, info = apply_judgments(scores, judgments)
    assert scores.column("is_positive").to_pylist() == [True, False, False, False, True, False]  # pure
    assert out.column("is_positive").to_pylist() == [True, True, False, False, True, True]
    assert out.column("judged").to_pylist() == ["human", "human", "human", "human", None, "teacher"]
    assert out.column("judged_relevance").to_pylist() == [0, 1, 0, 0, None, 2]
    assert out.column_names == scores.column_names + ["judged", "judged_relevance"]
    assert pairs(info["unscored_positives"]) == [("q2", "new", 1)]
    assert pairs(info["not_relevant"]) == [("q1", "b", 0), ("q1", "c", 0)]
    c = info["counts"]
    assert c["judgments"] == 7
    assert c["human"] == {
        "new_positives": 1,
        "already_positive": 0,
        "unscored_positives": 0,
        "not_relevant": 2,
        "not_relevant_known_positive": 1,
        "not_in_run": 0,
    }
    assert c["automatic"] == {
        "new_positives": 1,
        "already_positive": 0,
        "unscored_positives": 1,
        "not_relevant": 0,
        "not_relevant_known_positive": 0,
        "not_in_run": 1,
    }
    assert set(c["by_source"]) == {"human", "teacher", "gold.tsv"}


def test_apply_no_judgments_changes_nothing_but_adds_the_columns():
    scores = scores_table()
    out, info = apply_judgments(scores, judgments_table([]))
    assert out.column("is_positive").to_pylist() == scores.column("is_positive").to_pylist()
    assert out.column("judged").null_count == out.num_rows == out.column("judged_relevance").null_count
    assert info["counts"]["judgments"] == 0 and info["unscored_positives"].num_rows == 0


def test_apply_judgments_needs_the_key_columns():
    with pytest.raises(MissingColumn, match="no column 'is_positive'"):
        apply_judgments(scores_table().drop_columns(["is_positive"]), judgments_table([]))


def test_teacher_relabelling_and_review_share_the_table(tmp_path):
    log = JudgmentLog(tmp_path, clock=clock())
    log.judge("q1", "a", 0)
    log.save()
    teacher = judgments_table([j("q1", "a", 1, "teacher", "2026-02-01T00:00:00Z"), j("q1", "b", 1, "teacher", "2026-02-01T00:00:00Z")])
    save_judgments(tmp_path, teacher, "teacher")
    log.judge("q1", "c", 1)
    log.save()  # the person's rows are rewritten, the teacher's kept
    table = read_judgments(tmp_path / JUDGMENTS_FILE)
    assert sorted((r["doc_id"], r["source"]) for r in table.to_pylist()) == [
        ("a", "human"),
        ("a", "teacher"),
        ("b", "teacher"),
        ("c", "human"),
    ]
    assert pairs(fold_judgments(table)) == [("q1", "a", 0), ("q1", "b", 1), ("q1", "c", 1)]
    with pytest.raises(OptionError, match="hold other sources: human"):
        save_judgments(tmp_path, judgments_table([j("q1", "z", 1, "human")]), "teacher")
