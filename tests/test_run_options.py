"""A command never changes an option the user did not change, and a run is never silently replaced by a run
of other data (issue 23, items 1 and 2). Each test is a case that broke on main at 5bb8c03."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, mine_json, reran, snapshot, write_beir

from hnmine.journal import JudgmentLog

NAIVE = ["--method", "naive", "-n", "3"]


@pytest.fixture(scope="module")
def naive_run(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("options")
    data = write_beir(base / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    mine_json(data, base / "run", *NAIVE, "--retriever", "hybrid")
    return data, base / "run"


@pytest.fixture
def run(naive_run, tmp_path) -> Path:
    shutil.copytree(naive_run[1], tmp_path / "run")
    return tmp_path / "run"


def command(*args) -> tuple[dict, str]:
    result = invoke([*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def n_negatives(run: Path) -> int:
    return pq.read_metadata(run / "negatives.parquet").num_rows


def test_a_stage_command_keeps_the_runs_options(run):
    """`hnmine filter --out RUN` after `mine --method naive -n 3` refiltered with shifted and 5, without a word."""
    before = snapshot(run)
    summary, _ = command("filter", "--out", run)
    assert reran(summary) == [] and summary["changes"] == []
    assert snapshot(run) == before
    manifest = json.loads((run / "manifests" / "filter.json").read_text())
    assert manifest["settings"]["options"]["method"] == "naive" and manifest["settings"]["options"]["num_negatives"] == 3


def test_retrieve_keeps_the_hybrid_retriever_the_index_was_built_for(run):
    """`hnmine retrieve --out RUN` after a hybrid index rewrote the candidates dense-only."""
    summary, _ = command("retrieve", "--out", run)
    assert reran(summary) == []
    sources = set(pq.read_table(run / "candidates.parquet", columns=["source"]).column("source").to_pylist())
    assert sources != {"dense"}


def test_a_given_option_is_applied_and_each_change_named(run):
    summary, stderr = command("filter", "--out", run, "--method", "shifted")
    assert reran(summary) == ["filter"]
    assert summary["changes"] == [{"stage": "filter", "option": "method", "value": "shifted", "was": "naive", "origin": "given"}]
    assert "filter: --method shifted (the run had naive)" in stderr
    manifest = json.loads((run / "manifests" / "filter.json").read_text())
    assert manifest["settings"]["options"]["num_negatives"] == 3  # not given: still the run's


def test_an_option_changed_by_an_earlier_stage_command_reaches_the_later_stages(run):
    """`hnmine retrieve --max-depth 60`, then `hnmine filter`: the filter looks as deep as the candidates go now."""
    command("retrieve", "--out", run, "--max-depth", "60")
    summary, stderr = command("filter", "--out", run)
    change = {"stage": "filter", "option": "max_depth", "value": 60, "was": 200, "origin": "retrieve"}
    assert change in summary["changes"]
    assert "filter: --max-depth 60 (the run had 200, from the retrieve stage)" in stderr


def test_mine_without_data_reruns_the_runs_own_inputs(run):
    summary, _ = command("mine", "--out", run)
    assert reran(summary) == [] and summary["changes"] == []


def test_config_values_count_as_given(run, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[filter]\nnum_negatives = 2\n")
    summary, _ = command("filter", "--out", run, "--config", config)
    assert [c["option"] for c in summary["changes"]] == ["num_negatives"]
    assert n_negatives(run) == 6


def test_defaults_takes_the_defaults_for_options_not_given(run):
    summary, stderr = command("filter", "--out", run, "--defaults")
    options = {c["option"]: (c["value"], c["was"]) for c in summary["changes"]}
    assert options["method"] == ("shifted", "naive") and options["num_negatives"] == (5, 3)


def test_the_review_workflow_refilters_with_the_runs_options(run):
    """docs/review.md: mine, review, then `hnmine filter --out RUN`: the verdict applies, the method stays."""
    log = JudgmentLog(run)
    first_negative = pq.read_table(run / "negatives.parquet").to_pylist()[0]
    log.judge(first_negative["query_id"], first_negative["doc_id"], 1)
    log.save()
    log.close()
    summary, _ = command("filter", "--out", run)
    assert summary["changes"] == []
    assert json.loads((run / "manifests" / "filter.json").read_text())["settings"]["options"]["method"] == "naive"
    assert n_negatives(run) <= 9


# --- item 2: a run of other data ---------------------------------------------------------------------


def other_data(tmp_path: Path) -> Path:
    docs = [dict(d, text=d["text"] + " Revised.") if d["_id"] == "d10" else d for d in TINY_DOCS]
    return write_beir(tmp_path / "other", docs, TINY_QUERIES, TINY_QRELS)


def test_mining_other_data_into_a_run_is_refused_and_names_the_runs_inputs(run, naive_run, tmp_path):
    before = snapshot(run)
    result = invoke(["mine", other_data(tmp_path), "--out", run, "--quiet"])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("hnmine: error: ")
    assert str(naive_run[0] / "corpus.jsonl") in line and "--replace" in line
    assert snapshot(run) == before


def test_replace_mines_other_data_and_sets_aside_verdicts_on_changed_texts(run, tmp_path):
    log = JudgmentLog(run)
    negatives = [(r["query_id"], r["doc_id"]) for r in pq.read_table(run / "negatives.parquet").to_pylist()]
    assert ("q1", "d10") in negatives
    q1_other = next(d for q, d in negatives if q == "q1" and d != "d10")
    log.judge("q1", "d10", 1, texts=("How is espresso made?", TINY_DOCS[9]["title"] + " " + TINY_DOCS[9]["text"]))
    log.judge("q1", q1_other, 1, texts=("How is espresso made?", _joined(q1_other)))
    log.save()
    log.close()
    summary, stderr = command("mine", other_data(tmp_path), "--out", run, "--replace")
    assert "1 review verdict(s) set aside" in stderr and "document 'd10'" in stderr
    assert summary["filter"]["verdicts_set_aside"] == 1
    neg = {(r["query_id"], r["doc_id"]) for r in pq.read_table(run / "negatives.parquet").to_pylist()}
    assert ("q1", q1_other) not in neg  # its text did not change: the verdict still holds


def _joined(doc_id: str) -> str:
    d = next(d for d in TINY_DOCS if d["_id"] == doc_id)
    return f"{d['title']} {d['text']}"


def test_the_same_files_edited_in_place_are_the_same_inputs(tmp_path):
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    mine_json(data, tmp_path / "run")
    with open(data / "corpus.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"_id": "d13", "title": "Kettles", "text": "A kettle boils water."}) + "\n")
    assert "inputs" in reran(mine_json(data, tmp_path / "run"))


def test_the_api_refuses_other_data_before_touching_the_runs_sources(tmp_path):
    import hnmine

    pairs = [{"anchor": q["text"], "positive": TINY_DOCS[i * 4]["text"]} for i, q in enumerate(TINY_QUERIES)]
    hnmine.mine(pairs, corpus=[d["text"] for d in TINY_DOCS], out=tmp_path / "run", progress=False)
    before = snapshot(tmp_path / "run")
    other = [dict(p, anchor=p["anchor"] + "?") for p in pairs]
    with pytest.raises(hnmine.errors.RunDirError, match="other inputs"):
        hnmine.mine(other, corpus=[d["text"] for d in TINY_DOCS], out=tmp_path / "run", progress=False)
    assert snapshot(tmp_path / "run") == before
    again = hnmine.mine(other, corpus=[d["text"] for d in TINY_DOCS], out=tmp_path / "run", progress=False, replace=True)
    assert again.table.num_rows > 0


def test_an_option_inherited_for_a_switch_turned_off_is_dropped_not_refused(run):
    """The run relabelled with --relabel-margin 0.1; `hnmine filter --no-relabel` must not be refused for a
    --relabel-margin the user did not give this time."""
    command("filter", "--out", run, "--relabel", "--relabel-margin", "0.1")
    summary, _ = command("filter", "--out", run, "--no-relabel")
    assert {c["option"] for c in summary["changes"]} == {"relabel", "relabel_margin"}
    manifest = json.loads((run / "manifests" / "filter.json").read_text())
    assert manifest["settings"]["options"]["relabel"] is False and manifest["settings"]["options"]["relabel_margin"] is None
