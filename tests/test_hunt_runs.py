"""Hunted cases (issue 23, "The hunt", hunter 2): a run reused, copied, moved, shared or edited between
commands; a verdict or a positive losing to another source; the strings hnmine prints; two commands or
threads at once. Each test is a case that broke on main at 25bba1f — a traceback, a silent wrong
result, an option silently changed, a message that misled — and says in its docstring what broke.
Listed in docs/reliability.md, "Hunted cases".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, mine_json, reran, share_cache, snapshot, write_beir
from test_hunt import one_line_error

from hnmine.journal import JudgmentLog

# --- helpers -------------------------------------------------------------------------------------


def copy_run(finished_tiny, tmp_path: Path, name: str = "run") -> Path:
    _, done = finished_tiny
    run = tmp_path / name
    shutil.copytree(done, run)
    return run


def own_run(finished_tiny, tmp_path: Path, *args: str) -> tuple[Path, Path]:
    """(data, run): a copy of the tiny data mined into a new run (the finished run's embedding cache shared)."""
    _, done = finished_tiny
    data = write_beir(tmp_path / "data", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    run = tmp_path / "run"
    run.mkdir()
    share_cache(done, run)
    mine_json(data, run, *args)
    return data, run


def ok(*args) -> tuple[dict, str]:
    """A command that must succeed, with --json: (its summary, its stderr)."""
    result = invoke([*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def settings(run: Path, stage: str) -> dict:
    return json.loads((run / "manifests" / f"{stage}.json").read_text())["settings"]["options"]


def selection(run: Path) -> dict:
    return json.loads((run / "manifests" / "filter.json").read_text())["options"]["selection"]


def joined(doc_id: str) -> str:
    d = next(d for d in TINY_DOCS if d["_id"] == doc_id)
    return f"{d['title']} {d['text']}"


def judge(run: Path, query_id: str, doc_id: str, relevance: int) -> None:
    """A person's verdict, tied to the texts judged, as `hnmine review` records it."""
    query = next(q["text"] for q in TINY_QUERIES if q["_id"] == query_id)
    log = JudgmentLog(run)
    log.judge(query_id, doc_id, relevance, texts=(query, joined(doc_id)))
    log.save()
    log.close()


def revised(tmp_path: Path, doc_id: str) -> Path:
    docs = [dict(d, text=d["text"] + " Revised.") if d["_id"] == doc_id else d for d in TINY_DOCS]
    return write_beir(tmp_path / "revised", docs, TINY_QUERIES, TINY_QRELS)


# --- a run's inputs moved or reached from elsewhere ------------------------------------------------


def test_moved_data_is_followed_by_the_next_stage_command(finished_tiny, tmp_path):
    """The data folder moved and mined from its new place (every stage skipped): the run still recorded the
    old folder as DATA, so the next `hnmine index --out RUN` (or `mine --out RUN`) failed: 'OLD: no such file'."""
    data, run = own_run(finished_tiny, tmp_path)
    moved = data.rename(tmp_path / "moved")
    summary, _ = ok("mine", moved, "--out", run, "--quiet")
    assert reran(summary) == []
    summary, _ = ok("index", "--out", run, "--quiet")
    assert reran(summary) == [] and summary["changes"] == []
    assert settings(run, "inputs")["data"] == str(moved)


def test_a_change_of_data_is_named_as_the_argument_not_as_a_flag(finished_tiny, tmp_path):
    """The change line of a moved data folder read `inputs: --data NEW (the run had OLD)`: hnmine has no --data."""
    data, run = own_run(finished_tiny, tmp_path)
    moved = data.rename(tmp_path / "moved")
    result = invoke(["mine", moved, "--out", run])
    assert result.exit_code == 0, result.output
    assert "--data" not in result.stderr
    assert f"inputs: DATA {moved} (the run had {data})" in result.stderr


def test_the_manifest_records_input_files_by_absolute_path(finished_tiny, tmp_path, monkeypatch):
    """`hnmine mine data --out run` recorded `data/corpus.jsonl` in the inputs manifest (stats.files): a path
    relative to a working folder the manifest does not name, so the record no longer said which file it read."""
    _, done = finished_tiny
    data = write_beir(tmp_path / "data", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    (tmp_path / "run").mkdir()
    share_cache(done, tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    mine_json(Path("data"), Path("run"))
    files = json.loads((tmp_path / "run/manifests/inputs.json").read_text())["stats"]["files"]
    assert files == {
        role: str(data / rel) for role, rel in (("corpus", "corpus.jsonl"), ("queries", "queries.jsonl"), ("qrels", "qrels/train.tsv"))
    }


# --- options inherited across a change of method ----------------------------------------------------


def test_another_method_does_not_inherit_the_sampling_of_the_last(finished_tiny, tmp_path):
    """After `filter --method sampled --sampling random`, `filter --method simans` kept the inherited
    `--sampling random`: a run labelled simans drew its negatives uniformly, without a word."""
    run = copy_run(finished_tiny, tmp_path)
    ok("filter", "--out", run, "--method", "sampled", "--sampling", "random", "--quiet")
    summary, _ = ok("filter", "--out", run, "--method", "simans", "--quiet")
    assert selection(run)["method"] == "simans" and selection(run)["sampling"] == "simans"
    assert {"option": "sampling", "value": None, "was": "random"}.items() <= next(
        c for c in summary["changes"] if c["option"] == "sampling"
    ).items()


def test_another_method_is_not_refused_for_an_inherited_sampler_option(finished_tiny, tmp_path):
    """After `filter --method sampled --temperature 0.5`, `filter --method shifted` failed with `--temperature
    has no effect with sampling 'top'`: an option the user did not give this time."""
    run = copy_run(finished_tiny, tmp_path)
    ok("filter", "--out", run, "--method", "sampled", "--temperature", "0.5", "--quiet")
    ok("filter", "--out", run, "--method", "shifted", "--quiet")
    assert selection(run)["method"] == "shifted" and selection(run)["temperature"] is None


def test_another_method_does_not_inherit_the_score_cap_of_the_last(finished_tiny, tmp_path):
    """After `filter --method topk-abs --max-score 0.6`, `filter --method naive` still dropped every candidate
    above 0.6 (the manifest said naive, the change lines named only --method)."""
    run = copy_run(finished_tiny, tmp_path)
    ok("filter", "--out", run, "--method", "topk-abs", "--max-score", "0.6", "--quiet")
    summary, _ = ok("filter", "--out", run, "--method", "naive", "--quiet")
    assert selection(run)["max_score"] is None
    assert any(c["option"] == "max_score" and c["was"] == 0.6 for c in summary["changes"])


def test_a_kept_method_keeps_its_options(finished_tiny, tmp_path):
    """(Held, the rule's other side) the same method given again keeps the run's own values of its options."""
    run = copy_run(finished_tiny, tmp_path)
    ok("filter", "--out", run, "--method", "topk-abs", "--max-score", "0.6", "--quiet")
    summary, _ = ok("filter", "--out", run, "--method", "topk-abs", "-n", "2", "--quiet")
    assert selection(run)["max_score"] == 0.6 and selection(run)["num_negatives"] == 2


# --- strings printed -----------------------------------------------------------------------------


def test_an_empty_or_spaced_value_is_quoted_in_a_change_line(finished_tiny, tmp_path):
    """`hnmine retrieve --query-prompt ""` after "query: " printed `retrieve: --query-prompt  (the run had query: )`:
    the empty value and the prompt's trailing space invisible."""
    run = copy_run(finished_tiny, tmp_path)
    ok("retrieve", "--out", run, "--query-prompt", "query: ", "--quiet")
    result = invoke(["retrieve", "--out", run, "--query-prompt", ""])
    assert result.exit_code == 0, result.output
    assert "retrieve: --query-prompt '' (the run had 'query: ')" in result.stderr


# --- a run copied ------------------------------------------------------------------------------------


def test_a_run_of_a_loaded_model_still_works_copied_elsewhere(tmp_path, monkeypatch):
    """`hnmine.mine(pairs, model=st, out="a")` recorded its model as `a/sources/model` (relative to the folder
    the script ran in, outside the run's own record): the run copied to b (or used from another folder)
    failed every command with `cannot load model 'a/sources/model'`."""
    from sentence_transformers import SentenceTransformer

    import hnmine

    model = SentenceTransformer(hnmine.api.default_model_path(), device="cpu")
    pairs = [{"anchor": q["text"], "positive": TINY_DOCS[i * 4]["text"]} for i, q in enumerate(TINY_QUERIES)]
    monkeypatch.chdir(tmp_path)
    hnmine.mine(pairs, corpus=[d["text"] for d in TINY_DOCS], model=model, out="a", num_negatives=2, progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    summary, _ = ok("mine", "--out", tmp_path / "b", "--quiet")
    assert reran(summary) == [] and summary["changes"] == []


# --- verdicts tied to texts that changed -------------------------------------------------------------


def test_review_export_leaves_out_verdicts_whose_texts_changed(finished_tiny, tmp_path):
    """After `mine OTHER --replace` changed d10's text, the filter set the person's verdict on (q1, d10) aside,
    but `review --export` still wrote it: fed back as `--judgments` (or to eval) it judged the new text."""
    run = copy_run(finished_tiny, tmp_path)
    judge(run, "q1", "d10", 1)
    judge(run, "q2", "d12", 1)
    ok("mine", revised(tmp_path, "d10"), "--out", run, "--replace", "--quiet")
    out = tmp_path / "judged.tsv"
    result = invoke(["review", run, "--export", out])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == ["query-id\tcorpus-id\tscore", "q2\td12\t1"]
    assert "1 review verdict(s) set aside" in result.stderr and "document 'd10'" in result.stderr


def test_review_offers_again_a_verdict_whose_texts_changed(finished_tiny, tmp_path):
    """The filter's warning says 'review them again with `hnmine review RUN`', but the review counted the
    set-aside verdict as made: it opened past that suspect and showed the old verdict beside the new text."""
    from hnmine.review.session import ReviewSession

    run = copy_run(finished_tiny, tmp_path)
    first = ReviewSession.open(run)
    q, d = first.key()
    first.mark(True)
    first.close()
    changed = [dict(x, text=x["text"] + " Revised.") if x["_id"] == d else x for x in TINY_DOCS]
    ok("mine", write_beir(tmp_path / "revised", changed, TINY_QUERIES, TINY_QRELS), "--out", run, "--replace", "--quiet")
    again = ReviewSession.open(run)
    try:
        assert again.key(again.cursor) == (q, d)
        assert again.verdict_of(again.cursor) is None
        assert again.progress()["relevant"] == 0
        again.mark(False)  # judged again: the new verdict holds
        assert again.verdicts()[(q, d)] == 0
    finally:
        again.close()


# --- empty paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--out", "--judgments", "--config"])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(finished_tiny, tmp_path, monkeypatch, option):
    """`--out ""` (an unset shell variable) mined into the current folder; `--judgments ""` and `--config ""`
    were refused as `.: is a folder`, a path nobody typed."""
    run = copy_run(finished_tiny, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    data, _ = finished_tiny
    args = ["mine", data, "--out", "", "--quiet"] if option == "--out" else ["filter", "--out", run, "--quiet", option, ""]
    before = snapshot(run)
    one_line_error(invoke(args), f"Invalid value for '{option}'", "needs a path, got an empty text")
    assert list(work.iterdir()) == [] and snapshot(run) == before


def test_the_api_refuses_an_empty_out(finished_tiny, tmp_path, monkeypatch):
    """`hnmine.mine(data, out="")` mined into the folder the script ran in."""
    import hnmine

    data, _ = finished_tiny
    monkeypatch.chdir(tmp_path)
    with pytest.raises(hnmine.errors.OptionError, match="out= needs a path, got an empty text"):
        hnmine.mine(data, out="", progress=False)
    assert list(tmp_path.iterdir()) == []


# --- every export format, back in Python -------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["flagembedding", "tevatron"])
def test_the_api_gives_back_a_jsonl_export_as_written(tmp_path, fmt):
    """`hnmine.mine(..., format="flagembedding")` read its JSONL export back with pyarrow's type inference:
    queries that look like dates ("2021-03-04") came back as timestamps in result.table and result.dataset."""
    import hnmine

    dates = ["2021-03-04", "1999-12-31", "2000-01-01"]
    pairs = [{"anchor": a, "positive": TINY_DOCS[i * 4]["text"]} for i, a in enumerate(dates)]
    result = hnmine.mine(pairs, corpus=[d["text"] for d in TINY_DOCS], out=tmp_path / "run", format=fmt, num_negatives=2, progress=False)
    column = "query"
    assert str(result.table.schema.field(column).type) == "string"
    assert sorted(result.table.column(column).to_pylist()) == sorted(dates)
    written = [json.loads(line) for line in result.export_file.read_text().splitlines()]
    assert result.table.to_pylist() == written


def test_the_parameters_of_a_method_are_declared_as_its_own():
    """(Guard for the three cases above) every option a method sets a default for belongs to --method."""
    from hnmine.methods.base import METHOD_OPTION_FIELDS
    from hnmine.options import option_fields, spec

    assert {f.name for f in option_fields() if "method" in spec(f).belongs_to} == set(METHOD_OPTION_FIELDS)


def test_a_judgments_file_of_another_run_is_held_to_the_texts_it_judged(finished_tiny, tmp_path):
    """`filter --judgments OTHER/judgments.parquet`: the other run's verdict on (q1, d10) recorded the texts
    it judged, but a file's verdicts were applied by id alone: d10's text differs here, and it still became
    q1's positive (only the run's own verdicts were set aside)."""
    reviewed = copy_run(finished_tiny, tmp_path, "reviewed")
    judge(reviewed, "q1", "d10", 1)
    judge(reviewed, "q2", "d12", 1)
    run = copy_run(finished_tiny, tmp_path)
    ok("mine", revised(tmp_path, "d10"), "--out", run, "--replace", "--quiet")
    summary, stderr = ok("filter", "--out", run, "--judgments", reviewed / "judgments.parquet")
    positives = {(r["query_id"], r["doc_id"]) for r in pq.read_table(run / "positives.parquet").to_pylist()}
    assert ("q1", "d10") not in positives and ("q2", "d12") in positives
    assert f"{reviewed / 'judgments.parquet'}: 1 review verdict(s) set aside" in stderr
    assert summary["filter"]["verdicts_set_aside"] == 1


# --- a run used by report after a partial rerun --------------------------------------------------


def test_the_report_says_the_export_is_out_of_date(finished_tiny, tmp_path):
    """After `hnmine filter --method naive` alone, the report's stages listed the export as a finished stage
    (3 rows in, 3 out) with its old counts and nothing to say the training file no longer matches the
    negatives shown (`finetune` refuses that file)."""
    run = copy_run(finished_tiny, tmp_path)
    ok("filter", "--out", run, "--method", "naive", "--quiet")
    data = ok("report", run)[0]
    export = next(s for s in data["stages"] if s["stage"] == "export")
    assert "out of date" in export["out_of_date"] and "hnmine export" in export["out_of_date"]
    assert [s["stage"] for s in data["stages"] if s.get("out_of_date")] == ["export"]
    text = invoke(["report", run]).stdout
    assert "export: " + f"{run}: the export stage's outputs are out of date" in " ".join(text.split())
    html = tmp_path / "report.html"
    assert invoke(["report", run, "--html", html]).exit_code == 0
    assert (
        "the export stage&#x27;s outputs are out of date" in html.read_text()
        or "export stage's outputs are out of date" in html.read_text()
    )
    ok("export", "--out", run, "--quiet")
    assert not any(s.get("out_of_date") for s in ok("report", run)[0]["stages"])


# --- paths that are not UTF-8 -----------------------------------------------------------------------

BAD = "run-\udcff"  # the name os.listdir gives a folder named with the byte 0xff (not UTF-8)


@pytest.mark.parametrize(
    "command",
    [
        ["filter", "--out", "{bad}", "--method", "naive"],
        ["report", "{bad}"],
        ["report", "{bad}", "--json"],
        ["inspect", "{bad}", "q1"],
        ["eval", "{bad}"],
        ["review", "{bad}", "--export", "{tmp}/q.tsv"],
        ["mine", "{data}", "--out", "{fresh}"],
        ["mine", "{baddata}", "--out", "{tmp}/fresh"],
    ],
    ids=["filter", "report", "report-json", "inspect", "eval", "review-export", "mine-into", "mine-from"],
)
def test_a_path_that_is_not_utf8_is_one_line(finished_tiny, tmp_path, command):
    """A run directory (or a data folder) whose name holds a byte that is not UTF-8 crashed every command
    with `UnicodeEncodeError: 'utf-8' codec can't encode character '\\udcff'` from pyarrow (40 lines), and
    `mine DATA --out` such a folder left it half-made."""
    data, done = finished_tiny
    bad = tmp_path / BAD
    shutil.copytree(done, bad)
    baddata = tmp_path / ("data-\udcff")
    shutil.copytree(data, baddata)
    names = {"bad": bad, "data": data, "baddata": baddata, "fresh": tmp_path / "fresh-\udcff", "tmp": tmp_path}
    args = [a.format(**names) for a in command]
    before = snapshot(bad)
    line = one_line_error(invoke(args), "not UTF-8", "\\xff")
    assert "\udcff" not in line
    assert snapshot(bad) == before and not (tmp_path / "fresh-\udcff").exists() and not (tmp_path / "fresh").exists()


# --- two commands on one run ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["report", "{run}"], ["inspect", "{run}", "q1"], ["eval", "{run}"], ["finetune", "{run}", "--eval", "{data}"]]
)
def test_reading_a_run_another_process_is_writing_says_so(finished_tiny, tmp_path, command):
    """`hnmine report RUN` while `hnmine filter` was writing RUN (its new negatives.parquet written, its
    manifest not yet) said `negatives.parquet changed since the filter stage wrote it; rerun hnmine filter`:
    a second filter would be refused as busy, and the run was not damaged, only unfinished."""
    import fcntl

    run = copy_run(finished_tiny, tmp_path)
    with open(run / ".hnmine-lock", "a+") as lock:  # what a writing hnmine holds (another process, here another file)
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.copy(run / "dropped.parquet", run / "negatives.parquet")  # mid-write: a table ahead of its manifest
        args = [a.format(run=run, data=finished_tiny[0]) for a in command]
        line = one_line_error(invoke(args), f"{run}: another hnmine process is writing")
    assert "rerun" not in line


# --- a graded judgment below --min-relevance ----------------------------------------------------------


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_document_judged_relevant_below_min_relevance_is_never_a_negative(finished_tiny, tmp_path, engine):
    """With --min-relevance 2, d10 graded 1 for q1 (relevant, only less so) is no positive, and it was q1's
    first negative: a document the qrels call relevant trained as irrelevant (with either engine)."""
    _, done = finished_tiny
    qrels = [("q1", "d1", 2), ("q1", "d10", 1), ("q2", "d5", 2), ("q3", "d9", 2)]
    data = write_beir(tmp_path / "graded", TINY_DOCS, TINY_QUERIES, qrels)
    run = tmp_path / "run"
    run.mkdir()
    share_cache(done, run)
    mine_json(data, run, "--min-relevance", "2", "--method", "naive", "--random-negatives", "8")
    if engine == "ray":  # the Ray filter leaves such a run to the driver's code
        ok("filter", "--out", run, "--engine", "ray", "--random-negatives", "0", "--quiet")
    negatives = {(r["query_id"], r["doc_id"]) for r in pq.read_table(run / "negatives.parquet").to_pylist()}
    assert ("q1", "d10") not in negatives
    dropped = {(r["query_id"], r["doc_id"]): r["reason"] for r in pq.read_table(run / "dropped.parquet").to_pylist()}
    assert dropped[("q1", "d10")] == "judged_relevant"


# --- --defaults and the run's own data --------------------------------------------------------------


def test_defaults_keeps_the_runs_own_data(finished_tiny, tmp_path):
    """`hnmine mine --out RUN --defaults` (the run's data, a fresh run's options) failed with `no corpus file:
    give a BEIR folder, --corpus FILE, or a pairs file`: --defaults dropped the run's DATA with its options."""
    run = copy_run(finished_tiny, tmp_path)
    ok("filter", "--out", run, "--method", "naive", "--quiet")
    summary, _ = ok("mine", "--out", run, "--defaults", "--quiet")
    assert reran(summary) == ["filter"]  # the export was made from these very negatives
    assert [(c["option"], c["value"]) for c in summary["changes"]] == [("method", "shifted")]


def test_the_api_with_progress_off_prints_nothing(tmp_path, capfd):
    """`hnmine.mine(pairs, model=st, progress=False)` still printed `Writing model shards: 100%|████|` bars
    on stderr (saving the loaded model into the run), and so on every call."""
    from sentence_transformers import SentenceTransformer

    import hnmine

    model = SentenceTransformer(hnmine.api.default_model_path(), device="cpu")
    pairs = [{"anchor": q["text"], "positive": TINY_DOCS[i * 4]["text"]} for i, q in enumerate(TINY_QUERIES)]
    capfd.readouterr()
    hnmine.mine(pairs, corpus=[d["text"] for d in TINY_DOCS], model=model, out=tmp_path / "run", num_negatives=2, progress=False)
    assert capfd.readouterr().err == ""


# --- an option the run keeps, turned off ---------------------------------------------------------------


def test_a_judgments_file_the_run_kept_can_be_turned_off(finished_tiny, tmp_path):
    """After `filter --judgments judged.tsv`, every later command applied that file again, and nothing but
    --defaults (every option back to its default) could stop it: `--judgments ""` read the current folder."""
    run = copy_run(finished_tiny, tmp_path)
    judged = tmp_path / "judged.tsv"
    judged.write_text("q1\t0\td10\t1\n")
    ok("filter", "--out", run, "--judgments", judged, "--method", "naive", "--quiet")
    assert ("q1", "d10") not in {(r["query_id"], r["doc_id"]) for r in pq.read_table(run / "negatives.parquet").to_pylist()}
    summary, stderr = ok("filter", "--out", run, "--reset", "judgments")
    assert settings(run, "filter")["judgments"] is None and settings(run, "filter")["method"] == "naive"
    assert [c["option"] for c in summary["changes"]] == ["judgments"]
    assert ("q1", "d10") in {(r["query_id"], r["doc_id"]) for r in pq.read_table(run / "negatives.parquet").to_pylist()}
    one_line_error(invoke(["filter", "--out", run, "--reset", "judgment"]), "--reset judgment: no option of that name")
    one_line_error(invoke(["filter", "--out", run, "--reset", "model"]), "--reset model: --model is not an option of this command")


@pytest.mark.parametrize("what", ["judgments", "data"])
def test_a_file_the_run_kept_that_is_gone_is_named_as_the_runs(finished_tiny, tmp_path, what):
    """`hnmine mine --out RUN` after the --judgments file the run kept was deleted said `judged.tsv: no such
    file (--judgments)`, an option the user had not given this time, and with no way to drop it; after the
    data folder moved, `hnmine index --out RUN` said `DATA: no such file or folder`."""
    if what == "judgments":
        run = copy_run(finished_tiny, tmp_path)
        judged = tmp_path / "judged.tsv"
        judged.write_text("q1\t0\td10\t1\n")
        ok("filter", "--out", run, "--judgments", judged, "--quiet")
        judged.unlink()
        args, fragments = ["mine", "--out", run], [f"{judged}: no such file", "the --judgments the run's filter stage", "--reset judgments"]
    else:
        data, run = own_run(finished_tiny, tmp_path)
        data.rename(tmp_path / "moved")
        args, fragments = ["index", "--out", run], [f"{data}: no such file", "the DATA the run's inputs stage", "give DATA where it is now"]
    before = snapshot(run)
    one_line_error(invoke([*args, "--quiet"]), *fragments)
    assert snapshot(run) == before


def test_a_path_inside_the_run_is_printed_as_a_path(finished_tiny, tmp_path):
    """`hnmine filter --out RUN --judgments RUN/judged.tsv` printed `filter: --judgments run:judged.tsv (the run
    had (none))`, and --json said "run:judged.tsv": the record's own encoding, no path anyone can open."""
    run = copy_run(finished_tiny, tmp_path)
    (run / "judged.tsv").write_text("q1\t0\td10\t1\n")
    result = invoke(["filter", "--out", run, "--judgments", run / "judged.tsv"])
    assert result.exit_code == 0, result.output
    assert f"filter: --judgments {run / 'judged.tsv'} (the run had (none))" in result.stderr
    summary, _ = ok("filter", "--out", run, "--reset", "judgments", "--quiet")
    assert summary["changes"][0]["was"] == str(run / "judged.tsv")


def test_vectors_of_the_old_data_are_not_kept_for_other_data(finished_tiny, tmp_path):
    """`hnmine mine OTHER --out RUN --replace` on a run mined with `--corpus-embeddings vec.npy` kept the
    file: vectors of the old texts (one per row of the old corpus) indexed the new ones, without a word,
    whenever the row counts matched."""
    import numpy as np

    _, done = finished_tiny
    vectors = tmp_path / "vec.npy"
    np.save(vectors, np.load(done / "index/dense/embeddings.npy"))
    data, run = own_run(finished_tiny, tmp_path, "--corpus-embeddings", str(vectors))
    summary, stderr = ok("mine", revised(tmp_path, "d10"), "--out", run, "--replace")
    assert settings(run, "index")["corpus_embeddings"] is None
    assert "index: --corpus-embeddings (none) (the run had" in stderr
    same, _ = ok("mine", data, "--out", tmp_path / "run2", "--corpus-embeddings", vectors, "--quiet")
    kept, _ = ok("mine", data, "--out", tmp_path / "run2", "--replace", "--quiet")  # the same data: the vectors stay
    assert settings(tmp_path / "run2", "index")["corpus_embeddings"] == str(vectors)
