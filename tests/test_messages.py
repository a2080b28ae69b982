"""Misleading messages and silently ignored options (issue 23, item 14): each test is a case that broke on
the main branch this file was written against — an option accepted and never used, a status or message
that told the user something untrue, a failure that came after minutes of work or blamed the wrong thing —
and says in its docstring what broke. Listed in docs/reliability.md, "Hunted cases".
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, mine_json, write_beir
from test_hunt import copy_run, fails_and_creates_nothing, one_line_error, tiny

import hnmine
from hnmine.errors import OptionError

# --- options given and never used ------------------------------------------------------------------


@pytest.mark.parametrize("flag, value", [("--relabel-margin", "0.3"), ("--relabel-max", "3")])
def test_a_relabel_option_without_relabel_is_refused(tmp_path, flag, value):
    """`--relabel-margin 0.3` (or `--relabel-max 3`) without `--relabel` was silently ignored: the run
    relabelled nothing and said nothing."""
    message = fails_and_creates_nothing(tmp_path, [tiny(tmp_path), flag, value], f"{flag} applies only with --relabel")
    assert "relabel_" not in message


def test_a_relabel_option_without_relabel_is_refused_by_the_filter_command(tmp_path, finished_tiny):
    """The stage command `hnmine filter --relabel-max 3` refiltered without relabelling."""
    _, run = copy_run(finished_tiny, tmp_path)
    one_line_error(invoke(["filter", "--out", run, "--relabel-max", "3", "--quiet"]), "--relabel-max applies only with --relabel")


def test_a_relabel_option_without_relabel_is_refused_in_a_config_file(tmp_path):
    """`relabel_margin = 0.3` in a --config file, without `relabel = true`: silently ignored."""
    config = tmp_path / "mine.toml"
    config.write_text("[filter]\nrelabel_margin = 0.3\n")
    fails_and_creates_nothing(tmp_path, [tiny(tmp_path), "--config", config], "--relabel-margin applies only with --relabel")


def test_a_relabel_option_without_relabel_is_refused_by_the_api():
    """`hnmine.mine(..., relabel_max=3)` without relabel=True: silently ignored."""
    with pytest.raises(OptionError, match=r"^relabel_max= applies only with relabel=True"):
        hnmine.mine([{"anchor": "a", "positive": "b"}], relabel_max=3, progress=False)


def test_relabel_options_with_relabel_or_left_at_their_defaults_are_accepted():
    """The rule must fire only for an option the user gave, not for the defaults (0.0 and 1)."""
    from hnmine.options import Options, make_options

    assert make_options({"relabel": True, "relabel_margin": 0.0, "relabel_max": 1}).relabel_margin == 0.0
    plain = make_options({"num_negatives": 3})
    assert (plain.relabel, plain.relabel_margin, plain.relabel_max) == (False, None, None)
    assert Options(relabel=True).relabel_margin is None  # resolved where it is used (the filter stage)


def test_the_filter_key_of_a_relabel_run_is_unchanged(tmp_path, finished_tiny):
    """Making the defaults None must not rerun the filter of an existing `--relabel` run: the key holds the
    resolved values (margin 0.0, at most 1 per query), as before."""
    data, run = copy_run(finished_tiny, tmp_path)
    mine_json(data, run, "--relabel")
    key = json.loads((run / "manifests/filter.json").read_text())
    assert '"margin": 0.0' in json.dumps(key) and '"max_per_query": 1' in json.dumps(key)
    assert "filter" not in [
        s["stage"] for s in mine_json(data, run, "--relabel", "--relabel-margin", "0", "--relabel-max", "1")["stages"] if not s["skipped"]
    ]


# --- statuses and reasons that said something untrue -------------------------------------------------


def test_a_query_whose_candidates_were_all_relabelled_is_not_called_no_candidates(tmp_path, finished_tiny):
    """`--relabel --relabel-margin -10 --relabel-max 100` turns every candidate into a positive; the query
    summary said `no_candidates` (retrieval found nothing), which is not what happened."""
    _, run = copy_run(finished_tiny, tmp_path)
    result = invoke(["filter", "--out", run, "--relabel", "--relabel-margin", "-10", "--relabel-max", "100", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    summary = pq.read_table(run / "query_summary.parquet").to_pylist()
    assert {s["status"] for s in summary} == {"all_candidates_positive"}
    stats = json.loads((run / "manifests/filter.json").read_text())["stats"]
    assert stats["queries_all_candidates_positive"] == 3 and stats["queries_no_candidates"] == 0


def test_method_auto_with_hide_positives_says_why_it_cannot_calibrate(tmp_path, finished_tiny):
    """`--method auto --hide-positives` said "only 0 queries have two or more positives", as if the data
    had none, when it was --hide-positives that left every query one positive."""
    data, run = copy_run(finished_tiny, tmp_path)
    mine_json(data, run, "--method", "auto", "--hide-positives")
    reason = json.loads((run / "manifests/filter.json").read_text())["stats"]["calibration"]["reason"]
    assert "--hide-positives" in reason and "one positive per query" in reason
    assert "the default method shifted is used" in reason


# --- inputs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_corpus", [False, True])
def test_an_empty_pairs_file_fails_at_once(tmp_path, with_corpus):
    """A pairs file with no rows (a Parquet file of the right columns): alone it ran to exit 0 with an empty
    training file; with --corpus it encoded the whole corpus, then failed with "query vectors have 0
    dimensions". (An empty saved `datasets` folder already said "the saved dataset holds no data".)"""
    pairs = tmp_path / "pairs.parquet"
    pq.write_table(pa.table({"query": pa.array([], pa.string()), "positive": pa.array([], pa.string())}), pairs)
    extra = ["--corpus", tiny(tmp_path) / "corpus.jsonl"] if with_corpus else []
    message = fails_and_creates_nothing(tmp_path, [pairs, *extra], f"{pairs}: no pairs (it has no rows)")
    assert "dimensions" not in message


@pytest.mark.parametrize("encoding, looks_like", [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16"), ("utf-32", "UTF-32")])
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_utf16_file_is_named_as_not_utf8(tmp_path, encoding, looks_like, kind):
    """A corpus saved as UTF-16 (Excel's "Unicode text", PowerShell's default) gave "cannot parse (CSV parse
    error: ...)" or "invalid JSON", which sends the user looking for a broken row."""
    data = tiny(tmp_path)
    path = tmp_path / f"corpus.{kind}"
    if kind == "csv":
        text = "_id,text\n" + "".join(f'{d["_id"]},"{d["text"]}"\n' for d in TINY_DOCS)
    else:
        text = (data / "corpus.jsonl").read_text(encoding="utf-8")
    path.write_bytes(text.encode(encoding))
    fails_and_creates_nothing(
        tmp_path,
        ["--corpus", path, "--queries", data / "queries.jsonl", "--qrels", data / "qrels/train.tsv"],
        f"{path}: not UTF-8 (looks like {looks_like}; re-save as UTF-8)",
    )


# --- vectors the user brings -------------------------------------------------------------------------


def _huge_vectors(tmp_path: Path, scale: float) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    docs = rng.normal(size=(len(TINY_DOCS), 8))
    queries = docs[[[d["_id"] for d in TINY_DOCS].index(d) for _, d, _ in TINY_QRELS]] + 0.3 * rng.normal(size=(len(TINY_QUERIES), 8))
    big_docs, big_queries = (
        (docs / np.abs(docs).max() * scale).astype(np.float32),
        (queries / np.abs(queries).max() * scale).astype(np.float32),
    )
    np.save(tmp_path / f"docs-{scale:g}.npy", big_docs)
    np.save(tmp_path / f"queries-{scale:g}.npy", big_queries)
    return tmp_path / f"docs-{scale:g}.npy", tmp_path / f"queries-{scale:g}.npy", big_docs, big_queries


def test_huge_finite_vectors_are_normalised_not_zeroed(tmp_path):
    """Vectors with values up to 3e38 (finite float32): their norm overflowed to inf, so every normalised
    vector became 0 and every score 0 — exit 0, a ranking by nothing, and a numpy overflow warning."""
    data = tiny(tmp_path)
    scores = {}
    for scale in (3e38, 1.0):
        docs, queries, _, _ = _huge_vectors(tmp_path, scale)
        run = tmp_path / f"run-{scale:g}"
        mine_json(data, run, "--corpus-embeddings", docs, "--query-embeddings", queries, "--num-negatives", "2", "--method", "naive")
        scores[scale] = pq.read_table(run / "scores.parquet").sort_by([("query_id", "ascending"), ("doc_id", "ascending")])
    big, small = scores[3e38], scores[1.0]
    assert big.column("doc_id").equals(small.column("doc_id"))
    assert np.abs(big.column("teacher_score").to_numpy()).max() > 0.1
    np.testing.assert_allclose(big.column("teacher_score").to_numpy(), small.column("teacher_score").to_numpy(), atol=1e-5)


def test_huge_vectors_without_normalising_name_the_file_not_a_model(tmp_path):
    """With `--no-normalize`, vectors of ±3e38 failed in the score stage with "teacher 'all-MiniLM-L6-v2' gave a
    non-finite score (try --dtype float32)": a model that never ran, and a dtype that changes nothing."""
    docs, queries, _, _ = _huge_vectors(tmp_path, 3e38)
    result = invoke(
        [
            "mine",
            tiny(tmp_path),
            "--out",
            tmp_path / "run",
            "--quiet",
            "--no-normalize",
            "--corpus-embeddings",
            docs,
            "--query-embeddings",
            queries,
        ]
    )
    message = one_line_error(result, f"{docs}: row 1 ", "overflow", "--no-normalize")
    assert "all-MiniLM" not in message and "--dtype" not in message


# --- export ------------------------------------------------------------------------------------------


def test_negatives_of_one_query_never_repeat_a_text(tmp_path):
    """A corpus holding one text under five ids (a scrape, a dump merged twice): all five became one
    query's negatives, an n-tuple row of five identical negatives."""
    copies = [{"_id": f"dup{i}", "title": "Espresso", "text": "Espresso is brewed by pushing hot water through coffee."} for i in range(5)]
    data = write_beir(tmp_path / "data", TINY_DOCS + copies, TINY_QUERIES, TINY_QRELS)
    run = tmp_path / "run"
    mine_json(data, run, "--format", "n-tuple", "--num-negatives", "3", "--method", "naive")
    export = pq.read_table(run / "export/n-tuple.parquet").to_pylist()
    for row in export:
        negatives = [row[k] for k in sorted(row) if k.startswith("negative")]
        assert len(set(negatives)) == len(negatives), negatives
    dropped = pq.read_table(run / "dropped.parquet").to_pylist()
    repeated = [r for r in dropped if r["reason"] == "same_text_as_negative"]
    assert all(r["doc_id"].startswith("dup") for r in repeated)
    assert {q: sum(1 for r in repeated if r["query_id"] == q) for q in ("q1", "q2", "q3")} == {
        "q1": 4,
        "q2": 4,
        "q3": 4,
    }  # all but one copy
    negatives = pq.read_table(run / "negatives.parquet").to_pylist()
    assert sum(1 for n in negatives if n["query_id"] == "q1" and n["doc_id"].startswith("dup")) == 1


# --- the command line and the model ------------------------------------------------------------------


def test_an_option_of_another_command_names_that_command(tmp_path, finished_tiny):
    """`hnmine retrieve --bm25-backend bm25s` said "No such option: --bm25-backend Did you mean --backend?",
    a different option altogether; --bm25-backend belongs to `hnmine index`."""
    _, run = copy_run(finished_tiny, tmp_path)
    message = one_line_error(
        invoke(["retrieve", "--out", run, "--bm25-backend", "bm25s"]),
        "--bm25-backend is an option of hnmine index (and mine), not of hnmine retrieve",
    )
    assert "Did you mean" not in message


@pytest.mark.parametrize("flag", ["--model", "--teacher", "--candidate-model"])
def test_a_model_name_that_cannot_load_fails_before_any_work(tmp_path, flag):
    """`--model all-MiniLM-L6-v3` (a typo) ran the inputs stage, then failed after about 14 s with
    "We couldn't connect to 'https://huggingface.co'", with no word of the bundled model or of the offline
    setting."""
    start = time.monotonic()
    fails_and_creates_nothing(
        tmp_path,
        [tiny(tmp_path), flag, "all-MiniLM-L6-v3"],
        "cannot load model 'all-MiniLM-L6-v3'",
        "not in the Hugging Face cache",
        "HF_HUB_OFFLINE=1",
        "the bundled default is all-MiniLM-L6-v2",
    )
    assert time.monotonic() - start < 60  # before any stage: no model is loaded to find out


def test_a_model_name_is_only_a_label_when_both_vectors_are_given(tmp_path):
    """With both --corpus-embeddings and --query-embeddings no stage loads --model: a name that is not
    installed is the vectors' label, and is not refused."""
    docs, queries, _, _ = _huge_vectors(tmp_path, 1.0)
    data = tiny(tmp_path)
    summary = mine_json(data, tmp_path / "run", "--model", "my-own-vectors", "--corpus-embeddings", docs, "--query-embeddings", queries)
    assert summary["export"]
    shutil.rmtree(tmp_path / "run")
