"""Hunted cases (issue 13, "Nothing silently wrong"): each test is a case that broke on the main branch
this file was written against — a traceback, a silent wrong result, a user's file replaced, a message
that misled, a nonsense option accepted — and says in its docstring what broke. Every case runs the
CLI (in process, or the installed script where streams, signals or exit codes are the point) and is
listed in docs/reliability.md, "Hunted cases".
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import BUNDLED_MODEL, HNMINE, TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, mine_json, snapshot, write_beir

# --- helpers -------------------------------------------------------------------------------------


def one_line_error(result, *fragments: str) -> str:
    """Exit 2, one line `hnmine: error: ...` on stderr holding every fragment, nothing on stdout, no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hnmine: error: "), result.stderr
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])
    assert result.stdout == ""
    return lines[0]


def fails_and_creates_nothing(tmp_path: Path, args: list, *fragments: str) -> str:
    """`hnmine mine ARGS --out FRESH` is one line and does not create FRESH."""
    fresh = tmp_path / "fresh_run"
    message = one_line_error(invoke(["mine", *args, "--out", fresh, "--quiet"]), *fragments)
    assert not fresh.exists(), "a failing command created the run directory"
    return message


def copy_run(finished_tiny, tmp_path: Path) -> tuple[Path, Path]:
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    return data, run


def tiny(tmp_path: Path, name: str = "data") -> Path:
    return write_beir(tmp_path / name, TINY_DOCS, TINY_QUERIES, TINY_QRELS)


def run_script(args: list, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(HNMINE), *map(str, args)], capture_output=True, text=True, env=env, timeout=300, **kw)


# --- reading the user's files --------------------------------------------------------------------


@pytest.mark.parametrize("where", ["qrels-of-mine", "eval-qrels"])
def test_a_relevance_grade_beyond_int32_is_one_line(tmp_path, finished_tiny, where):
    """A qrels grade of 10000000000 crashed with `ArrowInvalid: Value ... too large to fit in C integer type`."""
    data = tiny(tmp_path)
    (data / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t10000000000\nq2\td5\t1\n")
    fragments = [str(data / "qrels" / "train.tsv"), "row 1: relevance column 'score' holds '10000000000'", "2,147,483,647"]
    if where == "qrels-of-mine":
        fails_and_creates_nothing(tmp_path, [data], *fragments)
    else:
        _, run = finished_tiny
        one_line_error(invoke(["eval", run, "--qrels", data / "qrels" / "train.tsv"]), *fragments)


@pytest.mark.parametrize("kind", ["tsv", "parquet"])
def test_a_judgments_grade_beyond_int32_is_one_line(tmp_path, finished_tiny, kind):
    """`--judgments` with a grade of 99999999999 crashed with an ArrowInvalid traceback (TSV and Parquet)."""
    data, run = copy_run(finished_tiny, tmp_path)
    if kind == "tsv":
        path = tmp_path / "judged.tsv"
        path.write_text("query-id\tcorpus-id\tscore\nq1\td2\t99999999999\n")
        fragments = [f"{path}:2: relevance 99999999999 is out of range"]
    else:
        path = tmp_path / "judged.parquet"
        pq.write_table(pa.table({"query_id": ["q1"], "doc_id": ["d2"], "relevance": pa.array([99999999999], pa.int64())}), path)
        fragments = [f"{path}: column 'relevance' holds values out of range"]
    before = snapshot(run)
    one_line_error(invoke(["filter", "--out", run, "--judgments", path, "--quiet"]), *fragments)
    assert snapshot(run) == before


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet"])
def test_a_header_naming_a_column_twice_is_refused(tmp_path, kind):
    """A corpus with two columns named `text` crashed with `KeyError: 'Field "text" exists 2 times in schema'`."""
    data = tiny(tmp_path)
    path = tmp_path / f"corpus.{kind}"
    if kind == "parquet":
        pq.write_table(
            pa.Table.from_arrays(
                [pa.array(["d1", "d5", "d9"]), pa.array(["a", "b", "c"]), pa.array(["x", "y", "z"])], names=["_id", "text", "text"]
            ),
            path,
        )
    else:
        sep = "," if kind == "csv" else "\t"
        path.write_text(sep.join(["_id", "text", "text"]) + "\n" + "".join(sep.join([d, "a", "b"]) + "\n" for d in ("d1", "d5", "d9")))
    fails_and_creates_nothing(
        tmp_path,
        ["--corpus", path, "--queries", data / "queries.jsonl", "--qrels", data / "qrels/train.tsv"],
        f"{path}: column 'text' appears twice in the header",
    )


def test_a_json_object_with_a_key_twice_is_refused(tmp_path):
    """`{"_id": "d1", "text": "a", "text": "b"}` was read as text "b", silently dropping "a"."""
    data = tiny(tmp_path)
    corpus = data / "corpus.jsonl"
    lines = corpus.read_text().splitlines()
    lines[1] = '{"_id": "d2", "text": "Pour-over coffee drips slowly.", "text": "Something else entirely."}'
    corpus.write_text("\n".join(lines) + "\n")
    fails_and_creates_nothing(tmp_path, [data], f"{corpus}:2: key 'text' appears twice in one object")


@pytest.mark.parametrize("copies", [("corpus.jsonl", "corpus.jsonl.gz"), ("qrels/train.tsv", "qrels/train.tsv.gz")])
def test_a_beir_folder_with_two_copies_of_a_file_is_refused(tmp_path, copies):
    """With corpus.jsonl beside corpus.jsonl.gz the plain one was read, and with qrels/train.tsv beside
    train.tsv.gz the compressed one: silently, and the other way round for the two roles."""
    import gzip

    data = tiny(tmp_path)
    plain, packed = copies
    (data / packed).write_bytes(gzip.compress((data / plain).read_bytes()))
    fails_and_creates_nothing(tmp_path, [data], "several", plain.split("/")[-1], packed.split("/")[-1], "keep one")


def test_data_and_pairs_given_together_are_refused(tmp_path):
    """`mine pairs_a.jsonl --pairs pairs_b.jsonl` read pairs_a and silently ignored pairs_b; with a BEIR
    folder the message blamed --queries and --qrels, which were not given."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"query": "how is espresso made", "positive": "Espresso is brewed under pressure."}\n')
    b.write_text('{"query": "bike chain care", "positive": "Lubricate the chain."}\n')
    fails_and_creates_nothing(tmp_path, [a, "--pairs", b], f"{a} and --pairs {b}: give the data once")
    data = tiny(tmp_path)
    fails_and_creates_nothing(tmp_path, [data, "--pairs", b], f"{data} and --pairs {b}: give the data once")


@pytest.mark.parametrize("inputs", ["pairs", "files"])
def test_split_without_a_beir_folder_is_refused(tmp_path, inputs):
    """`--split dev` with a pairs file or with --corpus/--queries/--qrels was silently unused: the run mined
    whatever the files held, as if the split had been chosen."""
    data = tiny(tmp_path)
    if inputs == "pairs":
        pairs = tmp_path / "pairs.jsonl"
        pairs.write_text('{"query": "q", "positive": "p"}\n')
        args = [pairs]
    else:
        args = ["--corpus", data / "corpus.jsonl", "--queries", data / "queries.jsonl", "--qrels", data / "qrels/train.tsv"]
    fails_and_creates_nothing(tmp_path, [*args, "--split", "dev"], "--split 'dev' chooses the qrels file of a BEIR folder")


@pytest.mark.parametrize("case", ["pair-column-with-beir", "query-column-with-pairs", "doc-column-with-pairs-only"])
def test_a_column_option_for_a_file_that_is_not_read_is_refused(tmp_path, case):
    """`--pair-query-column` with a BEIR folder, `--query-id-column` with a pairs file, `--doc-id-column`
    with pairs and no --corpus: silently unused (a typo'd setup mined with the wrong columns' defaults)."""
    data = tiny(tmp_path)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"query": "q", "positive": "p"}\n')
    args, flag = {
        "pair-column-with-beir": ([data, "--pair-query-column", "question"], "--pair-query-column"),
        "query-column-with-pairs": ([pairs, "--query-id-column", "qid"], "--query-id-column"),
        "doc-column-with-pairs-only": ([pairs, "--doc-id-column", "pid"], "--doc-id-column"),
    }[case]
    fails_and_creates_nothing(tmp_path, args, flag, "the option would be unused")


# --- vectors the user brings ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["npy", "parquet"])
def test_vectors_with_no_values_are_refused(tmp_path, kind):
    """Corpus and query vectors of shape (n, 0) were accepted: every score was 0 and every negative an
    arbitrary pick, with exit code 0."""
    data = tiny(tmp_path)
    docs, queries = tmp_path / f"docs.{kind}", tmp_path / f"queries.{kind}"
    for path, n in ((docs, len(TINY_DOCS)), (queries, len(TINY_QUERIES))):
        if kind == "npy":
            np.save(path, np.ones((n, 0), np.float32))
        else:
            pq.write_table(pa.table({"emb": pa.array([[] for _ in range(n)], pa.list_(pa.float32()))}), path)
    run = tmp_path / "run"
    result = invoke(["mine", data, "--out", run, "--quiet", "--corpus-embeddings", docs, "--query-embeddings", queries])
    one_line_error(result, f"{docs}: the vectors have no values (shape ({len(TINY_DOCS)}, 0))")
    assert not (run / "manifests/index.json").exists()


def test_a_npy_that_is_not_numpy_is_named_as_such(tmp_path):
    """A text file named docs.npy was reported as holding "pickled (object) data", which it does not."""
    data = tiny(tmp_path)
    bad = tmp_path / "docs.npy"
    bad.write_text("0.1 0.2 0.3\n")
    result = invoke(["mine", data, "--out", tmp_path / "run", "--quiet", "--corpus-embeddings", bad])
    message = one_line_error(result, f"{bad}: not a .npy file")
    assert "pickled" not in message


# --- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--model", "--candidate-model"])
def test_an_empty_model_name_is_refused(tmp_path, flag):
    """`--model ""` loaded the current folder as a model ("Unrecognized model in /current/folder"), after
    the inputs stage had run; with a model in the current folder it would have used that one silently."""
    fails_and_creates_nothing(tmp_path, [tiny(tmp_path), flag, ""], f"{flag} needs a model name or path")


@pytest.mark.parametrize("side", ["query", "corpus"])
def test_a_prompt_and_a_prompt_name_together_are_refused(tmp_path, side):
    """`--query-prompt X --query-prompt-name Y` printed a raw sentence-transformers warning and silently
    dropped the prompt name."""
    fails_and_creates_nothing(
        tmp_path,
        [tiny(tmp_path), f"--{side}-prompt", "query: ", f"--{side}-prompt-name", "query"],
        f"--{side}-prompt and --{side}-prompt-name: give one",
    )


@pytest.mark.parametrize("side", ["query", "corpus"])
def test_an_unknown_prompt_name_fails_before_any_work(tmp_path, side):
    """`--query-prompt-name nope` failed only in the retrieve stage, after the whole corpus was encoded
    (hours on a large corpus); the run directory was already written."""
    fails_and_creates_nothing(
        tmp_path,
        [tiny(tmp_path), f"--{side}-prompt-name", "nope"],
        f"--{side}-prompt-name 'nope': model 'all-MiniLM-L6-v2' has no prompt of that name",
        "query",
    )


def test_a_sampler_option_the_method_ignores_is_named_by_its_flag(tmp_path):
    """The message said `simans_a has no effect ...`, a Python name the user never typed."""
    message = fails_and_creates_nothing(
        tmp_path, [tiny(tmp_path), "--method", "naive", "--simans-a", "2"], "--simans-a has no effect with sampling 'top'"
    )
    assert "simans_a" not in message


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["mine", "DATA", "--out", "RUN", "--num-negatives", "abc"], "Invalid value for '--num-negatives'"),
        (["mine", "DATA", "--out", "RUN", "--no-such-flag"], "No such option: --no-such-flag"),
        (["mine", "DATA"], "--out is needed"),
        (["report", "RUN", "--top", "-1"], "--top must be at least 0, got -1"),
        (["report", "RUN", "--html", "TMP"], "is a directory"),
        (["inspect"], "RUN is needed (an argument, or --out RUN)"),
        (["eval", "RUN", "--min-relevance", "high"], "Invalid value for '--min-relevance'"),
    ],
    ids=[
        "not-a-number",
        "unknown-option",
        "missing-out",
        "report-top-negative",
        "report-html-folder",
        "inspect-no-run",
        "eval-min-relevance-text",
    ],
)
def test_usage_errors_are_one_line(tmp_path, finished_tiny, args, fragment):
    """A value that is not a number, an unknown option, a missing --out or argument: click printed four lines
    (`Usage: ...`, `Try ...`, a blank line, `Error: ...`) instead of one `hnmine: error:` line."""
    data, run = finished_tiny
    args = [{"DATA": data, "RUN": run, "TMP": tmp_path}.get(a, a) for a in args]
    line = one_line_error(invoke(args), fragment)
    assert "Usage:" not in line


def test_usage_errors_are_one_line_from_the_installed_script(tmp_path, finished_tiny):
    """The same through the real console script: exit 2, one line, nothing on stdout."""
    data, _ = finished_tiny
    proc = run_script(["mine", data, "--out", tmp_path / "run", "-n", "many"])
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("hnmine: error: Invalid value for '--num-negatives'")
    assert not (tmp_path / "run").exists()


def test_out_may_come_from_the_config_file(tmp_path, finished_tiny):
    """`out = "..."` in a --config file passed the config checks, but click demanded --out first
    ("Missing option '--out'"), so the documented key could never be used."""
    data, run = copy_run(finished_tiny, tmp_path)
    config = tmp_path / "mine.toml"
    config.write_text(f'out = "{run}"\n')
    result = invoke(["mine", data, "--config", config, "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["run_dir"] == str(run) and all(s["skipped"] for s in summary["stages"])


# --- the run directory -----------------------------------------------------------------------------


def test_out_as_a_broken_link_is_named_as_such(tmp_path, finished_tiny):
    """`--out LINK` where LINK points to a folder that does not exist said "cannot create the run
    directory (File exists)", though nothing existed."""
    data, _ = finished_tiny
    link = tmp_path / "runlink"
    link.symlink_to(tmp_path / "gone")
    one_line_error(invoke(["mine", data, "--out", link, "--quiet"]), f"{link}: a link to {tmp_path / 'gone'}, which does not exist")
    assert link.is_symlink() and not (tmp_path / "gone").exists()


@pytest.mark.parametrize("command", ["report", "report-json", "eval", "inspect"])
def test_readers_refuse_a_table_changed_since_its_stage(tmp_path, finished_tiny, command):
    """`report`, `eval` and `inspect` read negatives.parquet without checking it against the filter's
    manifest: a table replaced or edited afterwards (or left by a filter rerun killed before its
    manifest) was reported beside the old manifest's method and counts, as one run."""
    _, run = copy_run(finished_tiny, tmp_path)
    negatives = pq.read_table(run / "negatives.parquet")
    pq.write_table(negatives.slice(0, 1), run / "negatives.parquet")
    args = {
        "report": ["report", run],
        "report-json": ["report", run, "--json"],
        "eval": ["eval", run],
        "inspect": ["inspect", run, negatives.column("query_id")[0].as_py()],
    }[command]
    one_line_error(invoke(args), f"{run / 'negatives.parquet'} changed since the filter stage wrote it", "rerun `hnmine filter`")


def test_a_deleted_table_is_called_missing_not_changed(tmp_path, finished_tiny):
    """`hnmine export` after negatives.parquet was deleted said it had "changed since the filter stage wrote it"."""
    _, run = copy_run(finished_tiny, tmp_path)
    (run / "negatives.parquet").unlink()
    one_line_error(invoke(["export", "--out", run, "--quiet"]), f"{run / 'negatives.parquet'} is missing", "rerun `hnmine filter`")


# --- files hnmine writes for the user --------------------------------------------------------------


@pytest.mark.parametrize("command", ["review-export", "report-html"])
def test_a_user_file_that_is_a_link_is_written_through(tmp_path, finished_tiny, command):
    """`review --export LINK` and `report --html LINK` renamed a new file over the link: the link was
    replaced and the file it points to left as it was (run as root with /dev/stdout, the link
    /dev/stdout itself was replaced by a regular file)."""
    _, run = finished_tiny
    target = tmp_path / "real" / "out.txt"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    args = ["review", run, "--export", link] if command == "review-export" else ["report", run, "--html", link]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    written = target.read_text()
    assert written != "old\n"
    assert written.startswith("query-id\tcorpus-id\tscore") if command == "review-export" else written.startswith("<!DOCTYPE html>")


def test_a_user_file_that_is_a_pipe_is_written_into(tmp_path, finished_tiny):
    """`review --export FIFO` replaced the named pipe by a regular file; a reader waiting on it got nothing."""
    _, run = finished_tiny
    fifo = tmp_path / "qrels.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader is there before hnmine opens it
    try:
        result = invoke(["review", run, "--export", fifo])
        assert result.exit_code == 0, result.output
        assert stat.S_ISFIFO(fifo.lstat().st_mode), "the named pipe was replaced"
        received = os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)
    assert received.startswith("query-id\tcorpus-id\tscore\n")


@pytest.mark.parametrize("folder", ["empty", "user-folder"])
def test_review_export_refuses_a_folder_that_is_not_a_run(tmp_path, folder):
    """`review FOLDER --export qrels.tsv` on a folder that is no run (a typo'd path) exited 0 with
    "wrote 0 judgment(s)" and an empty qrels file."""
    target = tmp_path / "notarun"
    target.mkdir()
    if folder == "user-folder":
        (target / "notes.txt").write_text("mine\n")
    out = tmp_path / "qrels.tsv"
    one_line_error(invoke(["review", target, "--export", out]), f"{target}: not an hnmine run directory")
    assert not out.exists()


@pytest.mark.parametrize("option", [["--reason", "kept"], ["--top", "5"], ["--query", "q1"], ["--min-gap", "0"]])
def test_review_export_refuses_suspect_filters(tmp_path, finished_tiny, option):
    """`review RUN --export F --reason kept` (or --top/--query/--min-gap) wrote every judgment of the run,
    silently ignoring the filter the user asked for."""
    _, run = finished_tiny
    out = tmp_path / "qrels.tsv"
    one_line_error(invoke(["review", run, "--export", out, *option]), option[0], "--export writes every judgment")
    assert not out.exists()


# --- the filter's judgments ------------------------------------------------------------------------


def test_judgments_given_as_a_folder_are_named_a_folder(tmp_path, finished_tiny):
    """`--judgments FOLDER` said "FOLDER: no such file", though it exists (it is a folder)."""
    data, run = copy_run(finished_tiny, tmp_path)
    one_line_error(invoke(["filter", "--out", run, "--judgments", data, "--quiet"]), f"{data}: is a folder, expected a judgments file")


def test_judgments_naming_no_query_of_the_run_are_refused(tmp_path, finished_tiny):
    """A --judgments file of another dataset (no query id of this run) was applied with only a warning about
    "documents judged relevant are not candidates", and the run refiltered."""
    _, run = copy_run(finished_tiny, tmp_path)
    judged = tmp_path / "other.tsv"
    judged.write_text("query-id\tcorpus-id\tscore\nPLAIN-1\tDOC-7\t1\nPLAIN-2\tDOC-8\t0\n")
    before = snapshot(run)
    one_line_error(
        invoke(["filter", "--out", run, "--judgments", judged, "--quiet"]),
        f"{judged}: no judgment names a query of this run",
        "wrong file or split",
    )
    assert snapshot(run) == before


def test_a_judged_relevant_candidate_is_exported_as_a_positive(tmp_path, finished_tiny):
    """docs/review.md: a document judged relevant "becomes a positive of its query". The filter stopped using
    it as a negative, but the training file never listed it as a positive (now positives.parquet hands the
    filter's positives to the export)."""
    data, run = copy_run(finished_tiny, tmp_path)
    judged = tmp_path / "judged.tsv"
    judged.write_text("query-id\tcorpus-id\tscore\nq1\td10\t1\n")  # d10 (Espresso machines): a candidate of q1
    mine_json(data, run, "--judgments", judged, "--method", "naive", "--format", "flagembedding")
    row = next(
        json.loads(line)
        for line in (run / "export/flagembedding.jsonl").read_text().splitlines()
        if json.loads(line)["query"] == "How is espresso made?"
    )
    d10 = next(f"{d['title']} {d['text']}" for d in TINY_DOCS if d["_id"] == "d10")
    assert d10 not in row["neg"]
    assert d10 in row["pos"]


# --- teachers --------------------------------------------------------------------------------------


def test_teachers_in_folders_of_the_same_name_are_both_used(tmp_path, finished_tiny):
    """Two --teacher models whose folders share a name (runs/a/model, runs/b/model) got one label: the
    second's scores replaced the first's, the ensemble silently became one teacher."""
    _, run = copy_run(finished_tiny, tmp_path)
    other = tmp_path / "other" / BUNDLED_MODEL.name
    other.parent.mkdir()
    other.symlink_to(BUNDLED_MODEL, target_is_directory=True)
    result = invoke(["score", "--out", run, "--teacher", BUNDLED_MODEL, "--teacher", other, "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((run / "manifests/score.json").read_text())
    assert len(manifest["stats"]["teachers"]) == 2 and len(manifest["models"]) == 2
    columns = [c for c in pq.read_schema(run / "scores.parquet").names if c.startswith("teacher_") and c != "teacher_score"]
    assert len(columns) == 2


# --- export ----------------------------------------------------------------------------------------


def test_export_alone_does_not_quote_a_min_negatives_the_filter_did_not_use(tmp_path, finished_tiny):
    """After `filter --min-negatives 4` left the training file empty, `hnmine export` said "no query has at
    least --min-negatives (1) negatives": the export command's default, not the filter's value."""
    _, run = copy_run(finished_tiny, tmp_path)
    assert invoke(["filter", "--out", run, "--min-negatives", "4", "--quiet"]).exit_code == 0
    result = invoke(["export", "--out", run, "--force"])
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.stderr.splitlines() if line.startswith("warning: the training file is empty"))
    assert "(1)" not in warning and "the filter's --min-negatives" in warning


# --- reading commands: streams and signals --------------------------------------------------------


def test_eval_notes_are_one_line_each(tmp_path, finished_tiny):
    """`hnmine eval` printed its notes through a console 80 columns wide: a note about a run with a long
    path was folded over two lines, breaking `2> notes.txt` line-by-line readers."""
    _, done = finished_tiny
    run = tmp_path / ("a-run-directory-with-a-rather-long-name-" * 2).rstrip("-")
    shutil.copytree(done, run)
    result = invoke(["eval", str(run)])
    assert result.exit_code == 0, result.output
    notes = result.stderr.strip().splitlines()
    assert len(notes) >= 2 and all(line.startswith(f"{run.name}: ") for line in notes), notes


DRIVER = r"""
import os, signal, sys
import importlib

module, function, sig = os.environ["HNMINE_TEST_SIGNAL"].split(":")
mod = importlib.import_module(module)
real = getattr(mod, function)


def wrapped(*args, **kwargs):  # the signal arrives while the command works
    os.kill(os.getpid(), getattr(signal, sig))
    return real(*args, **kwargs)


setattr(mod, function, wrapped)
from hnmine.cli import main

sys.argv = ["hnmine", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(
    "command, target",
    [
        ("report", "hnmine.report:build_report"),
        ("eval", "hnmine.evaluate:compare_runs"),
        ("inspect", "hnmine.report:inspect_query"),
        ("review-export", "hnmine.judgment_files:export_qrels"),
    ],
)
def test_sigterm_in_a_reading_command_is_one_line(tmp_path, finished_tiny, command, target):
    """SIGTERM while `report`, `eval`, `inspect` or `review --export` worked printed a 40-line traceback
    ending in `hnmine.errors.Terminated`, exit code 1."""
    _, run = finished_tiny
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    args = {
        "report": ["report", run],
        "eval": ["eval", run],
        "inspect": ["inspect", run, "q1"],
        "review-export": ["review", run, "--export", tmp_path / "q.tsv"],
    }[command]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HNMINE_TEST_SIGNAL": f"{target}:SIGTERM"}
    proc = subprocess.run([sys.executable, str(driver), *map(str, args)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip() == "hnmine: terminated" and proc.stdout == ""


# --- workers -----------------------------------------------------------------------------------------


def test_a_model_that_cannot_load_in_workers_is_one_line(tmp_path):
    """With --workers 2 (and a dtype given, so the parent never loads the model), a folder that is not a
    model made each worker print "Exception in initializer" with a traceback, then BrokenProcessPool:
    74 lines, exit code 1. (The same happened with --device cuda:0,cuda:1 on a machine without CUDA.)"""
    data = tiny(tmp_path)
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    (folder / "README.md").write_text("a folder that is not a model\n")
    proc = run_script(["mine", data, "--out", tmp_path / "run", "--quiet", "--model", folder, "--workers", "2", "--dtype", "float32"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith(f"hnmine: error: cannot load model '{folder}'")


# --- stage commands run one by one -----------------------------------------------------------------


def test_retrieve_alone_takes_a_max_depth_below_the_filters_depth(tmp_path, finished_tiny):
    """`hnmine retrieve --max-depth 8` was refused with "--depth (50) is larger than --max-depth (8)": a rule
    on --depth, an option of the filter that the retrieve command neither takes nor uses."""
    _, run = copy_run(finished_tiny, tmp_path)
    result = invoke(["retrieve", "--out", run, "--max-depth", "8", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "manifests/retrieve.json").read_text())["options"]["max_depth"] == 8


def test_a_later_stage_refuses_outputs_made_from_replaced_tables(tmp_path, finished_tiny):
    """After `hnmine retrieve` alone wrote new candidates, `hnmine filter` chose negatives from scores.parquet,
    the teacher scores of the old candidates: scores.parquet still matched the score stage's manifest,
    and nothing checked that the score stage was made from the candidates now in the run."""
    _, run = copy_run(finished_tiny, tmp_path)
    before = (run / "candidates.parquet").read_bytes()
    assert invoke(["retrieve", "--out", run, "--query-prompt", "query: ", "--quiet"]).exit_code == 0
    assert (run / "candidates.parquet").read_bytes() != before
    negatives = snapshot(run)["negatives.parquet"]
    one_line_error(
        invoke(["filter", "--out", run, "--method", "naive", "--quiet"]),
        "the score stage's outputs are out of date: candidates.parquet changed since it ran",
        "rerun `hnmine score`",
    )
    assert snapshot(run)["negatives.parquet"] == negatives


@pytest.mark.parametrize("command", ["report", "inspect", "eval"])
def test_readers_refuse_a_run_whose_inputs_were_replaced(tmp_path, finished_tiny, command):
    """`hnmine index NEWDATA --out RUN --replace` rewrote the run's queries; `inspect RUN q1` then showed the new q1's
    text above the old q1's candidates and negatives (and `report`, `eval` mixed them the same way)."""
    data, run = copy_run(finished_tiny, tmp_path)
    other = tmp_path / "other"
    shutil.copytree(data, other)
    queries = [dict(q, text="Which volcanoes erupt explosively?") if q["_id"] == "q1" else q for q in TINY_QUERIES]
    (other / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    assert invoke(["index", other, "--out", run, "--quiet", "--replace"]).exit_code == 0
    args = {"report": ["report", run], "inspect": ["inspect", run, "q1"], "eval": ["eval", run]}[command]
    one_line_error(invoke(args), "the retrieve stage's outputs are out of date: inputs/queries.parquet changed since it ran")
