"""hnmine.mine_hard_negatives: sentence-transformers' `mine_hard_negatives`, the same call, run by hnmine (issue 25).

What sentence-transformers' own tests of that function expect (tests/util/test_hard_negatives.py in its
repository) is the specification: the same behaviours are checked here on data and stand-in models of our
own (the bundled MiniLM; a cross-encoder built from it, its head seeded), then the rows are compared with
the real function's on sample_data/ (the SciFact comparison is marked slow).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from conftest import ROOT, invoke

import hnmine

datasets = pytest.importorskip("datasets")

QUESTIONS = [
    "When should tomato seedlings be planted outside?",
    "Why does the Moon show phases?",
    "How long should pasta be boiled?",
    "How many players are on a volleyball team on court?",
    "Who built the first printing press in Europe?",
    "What does a metronome do for a musician?",
]
ANSWERS = [
    "Tomato seedlings go outside after the last spring frost, once nights stay above ten degrees.",
    "The Moon's phases come from how much of its sunlit half faces the Earth as it orbits.",
    "Most dried pasta cooks in eight to twelve minutes of boiling in salted water.",
    "A volleyball side has six players on court, rotating positions after winning the serve.",
    "Johannes Gutenberg built a movable-type printing press in Mainz around 1440.",
    "A metronome clicks at a steady tempo so a musician can keep time while practising.",
]
SECOND_ANSWERS = [
    "Harden tomato plants off for a week, then transplant them when the soil has warmed.",
    "As the Moon circles the Earth we see more or less of the side lit by the Sun.",
    "Taste pasta a minute before the packet time; al dente pasta still has some bite.",
    "Six players per team stand on a volleyball court: three at the net and three behind.",
    "Gutenberg's press of the fifteenth century used metal type cast from a hand mould.",
    "Musicians set a metronome to a number of beats per minute to practise evenly.",
]
OTHERS = [
    "Cucumbers climb trellises and need plenty of water in summer.",
    "A solar eclipse happens when the Moon passes between the Sun and the Earth.",
    "Risotto is stirred slowly while hot stock is added a ladle at a time.",
    "Basketball teams field five players each on the court.",
    "The Rosetta Stone helped scholars read Egyptian hieroglyphs.",
    "A tuning fork rings at a single fixed pitch when struck.",
    "Compost adds organic matter and nutrients to garden soil.",
    "Saturn's rings are made mostly of ice and rock.",
]


@pytest.fixture(scope="module")
def model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(hnmine.api.default_model_path(), device="cpu")


@pytest.fixture(scope="module")
def cross_encoder():
    """A cross-encoder from the bundled MiniLM with a seeded head: a stand-in, offline, the same every run."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    return CrossEncoder(hnmine.api.default_model_path(), num_labels=1, device="cpu")


@pytest.fixture
def pairs():
    return datasets.Dataset.from_dict({"question": QUESTIONS, "answer": ANSWERS})


@pytest.fixture
def two_positives():
    return datasets.Dataset.from_dict({"question": QUESTIONS + QUESTIONS, "answer": ANSWERS + SECOND_ANSWERS})


def mine(dataset, model, **kw):
    kw.setdefault("verbose", False)
    return hnmine.mine_hard_negatives(dataset, model, **kw)


# -- the shapes -----------------------------------------------------------------------------------------------


def test_the_default_call_gives_triplets_named_after_the_dataset(pairs, model):
    result = mine(pairs, model)
    assert isinstance(result, datasets.Dataset)
    assert result.column_names == ["question", "answer", "negative"]
    assert len(result) == len(pairs) * 3  # num_negatives=3, one row per negative
    assert all(n not in ANSWERS[QUESTIONS.index(q)] for q, n in zip(result["question"], result["negative"]))


def test_named_columns_are_used_and_kept(model):
    data = datasets.Dataset.from_dict({"id": list(range(6)), "user_question": QUESTIONS, "system_response": ANSWERS})
    result = mine(data, model, anchor_column_name="user_question", positive_column_name="system_response", num_negatives=2)
    assert result.column_names == ["user_question", "system_response", "negative"]
    tuples = mine(
        data, model, anchor_column_name="user_question", positive_column_name="system_response", num_negatives=2, output_format="n-tuple"
    )
    assert tuples.column_names == ["user_question", "system_response", "negative_1", "negative_2"]


def test_a_column_name_the_dataset_lacks_is_an_error(pairs, model):
    """sentence-transformers took the first (or second) column instead, without a word: a misspelt name mined
    the wrong column. Here it is a ValueError naming the columns."""
    with pytest.raises(ValueError, match=r"anchor_column_name='questoin' is not a column of the dataset \(columns: question, answer\)"):
        mine(pairs, model, anchor_column_name="questoin")


def test_negatives_come_from_a_separate_corpus(pairs, model):
    result = mine(pairs, model, corpus=OTHERS, range_max=3)
    assert set(result["negative"]) & set(OTHERS)


def test_every_output_format(pairs, model):
    triplet = mine(pairs, model)
    assert triplet.column_names == ["question", "answer", "negative"]
    scored = mine(pairs, model, output_scores=True)
    assert scored.column_names == ["question", "answer", "negative", "scores"] and all(len(s) == 2 for s in scored["scores"])
    tuples = mine(pairs, model, num_negatives=2, output_format="n-tuple")
    assert tuples.column_names == ["question", "answer", "negative_1", "negative_2"]
    pair_rows = mine(pairs, model, output_format="labeled-pair")
    assert pair_rows.column_names == ["question", "answer", "label"] and set(pair_rows["label"]) == {0, 1}
    assert mine(pairs, model, output_format="labeled-pair", output_scores=True).column_names == ["question", "answer", "score"]
    lists = mine(pairs, model, output_format="labeled-list")
    assert lists.column_names == ["question", "answer", "labels"]
    assert all(isinstance(p, list) for p in lists["answer"])
    assert all(labels[0] == 1 and set(labels[1:]) == {0} for labels in lists["labels"])
    listed = mine(pairs, model, output_format="labeled-list", output_scores=True)
    assert listed.column_names == ["question", "answer", "scores"]


def test_n_tuple_scores_put_the_positive_first(pairs, model):
    """The deprecated "n-tuple-scores" is n-tuple with output_scores (a `scores` list of 1 + num_negatives);
    with absolute_margin=0 every negative scores below its positive."""
    result = mine(pairs, model, num_negatives=2, output_format="n-tuple-scores", absolute_margin=0)
    assert result.column_names == ["question", "answer", "negative_1", "negative_2", "scores"]
    for scores in result["scores"]:
        assert len(scores) == 3 and scores[0] >= max(scores[1:])


@pytest.mark.parametrize("output_format", ["triplet", "labeled-pair", "n-tuple", "n-tuple-scores", "labeled-list"])
@pytest.mark.parametrize("positives", [1, 2])
def test_row_counts_with_one_and_two_positives_per_query(pairs, two_positives, model, output_format, positives):
    data = pairs if positives == 1 else two_positives
    result = mine(data, model, num_negatives=3, output_format=output_format, corpus=OTHERS)
    if output_format == "triplet":
        assert len(result) == len(data) * 3
    elif output_format == "labeled-pair":  # every (query, positive) pair, then each query's negatives
        assert len(result) == len(data) + len(set(data["question"])) * 3
    else:
        assert len(result) == len(data)


def test_a_query_with_two_positives_has_neither_among_its_negatives(two_positives, model):
    result = mine(two_positives, model, num_negatives=3, corpus=OTHERS, output_format="n-tuple")
    for row in result:
        own = {ANSWERS[QUESTIONS.index(row["question"])], SECOND_ANSWERS[QUESTIONS.index(row["question"])]}
        assert not own & {row[f"negative_{i}"] for i in (1, 2, 3)}


# -- the options ----------------------------------------------------------------------------------------------


def test_range_score_and_margin_options_keep_the_shape(pairs, model):
    for kw in (
        dict(range_min=1, range_max=4),
        dict(range_max=3, max_score=0.8, min_score=0.1),
        dict(range_max=3, absolute_margin=0.1),
        dict(range_max=3, relative_margin=0.05),
    ):
        result = mine(pairs, model, corpus=OTHERS, **kw)
        assert result.column_names == ["question", "answer", "negative"], kw


def test_range_min_skips_the_first_candidates_by_rank(pairs, model):
    """range_min=2 skips the two best candidates of each query: its negatives are the third onwards of range_min=0's."""
    wide = mine(pairs, model, corpus=OTHERS, num_negatives=5, output_format="n-tuple")
    shifted = mine(pairs, model, corpus=OTHERS, num_negatives=3, range_min=2, range_max=5, output_format="n-tuple")
    for a, b in zip(wide, shifted):
        assert [b[f"negative_{i}"] for i in (1, 2, 3)] == [a[f"negative_{i}"] for i in (3, 4, 5)]


def test_score_filters_hold(pairs, model):
    result = mine(pairs, model, corpus=OTHERS, range_max=8, max_score=0.5, min_score=0.1, output_scores=True)
    assert result.num_rows and all(0.1 <= s[1] <= 0.5 for s in result["scores"])
    margin = mine(pairs, model, corpus=OTHERS, range_max=8, absolute_margin=0.3, output_scores=True)
    assert all(s[1] < s[0] - 0.3 for s in margin["scores"])


def test_num_negatives_sets_the_n_tuple_width(pairs, model):
    result = mine(pairs, model, num_negatives=2, output_format="n-tuple")
    assert "negative_2" in result.column_names and "negative_3" not in result.column_names


def test_both_sampling_strategies(pairs, model):
    top = mine(pairs, model, corpus=OTHERS, sampling_strategy="top", range_max=8)
    drawn = mine(pairs, model, corpus=OTHERS, sampling_strategy="random", range_max=8)
    assert top.column_names == drawn.column_names == ["question", "answer", "negative"]
    assert mine(pairs, model, corpus=OTHERS, sampling_strategy="random", range_max=8)["negative"] == drawn["negative"]  # seeded


def test_a_cross_encoder_rescores(pairs, model, cross_encoder):
    result = mine(pairs, model, cross_encoder=cross_encoder, range_max=3, max_score=0.8)
    assert result.column_names == ["question", "answer", "negative"]
    detailed = mine(
        pairs,
        model,
        cross_encoder=cross_encoder,
        range_min=1,
        range_max=3,
        max_score=0.7,
        min_score=0.2,
        num_negatives=2,
        output_format="n-tuple",
    )
    assert detailed.column_names[:4] == ["question", "answer", "negative_1", "negative_2"]


def test_a_cross_encoder_rescores_without_a_filter_too(pairs, model, cross_encoder):
    """sentence-transformers used the cross-encoder only with a margin or a score bound (else the bi-encoder's
    scores, without a word); here the scores are always the cross-encoder's."""
    result = mine(pairs, model, cross_encoder=cross_encoder, corpus=OTHERS, output_scores=True)
    expected = cross_encoder.predict(list(zip(result["question"], result["negative"])))
    assert [s[1] for s in result["scores"]] == pytest.approx(expected.tolist(), abs=1e-5)


def test_prompts_reach_the_model(model):
    """A raw prompt is prepended to the queries only (query_prompt) or to the documents only (corpus_prompt)."""
    from copy import deepcopy

    seen: list = []  # every text as the model reads it: its prompt and itself (sentence-transformers 6 joins them there)
    spy = deepcopy(model)
    real = spy.preprocess
    spy.preprocess = lambda texts, prompt=None, **kw: seen.extend((prompt or "") + t for t in texts) or real(texts, prompt=prompt, **kw)
    data = datasets.Dataset.from_dict({"anchor": QUESTIONS, "positive": ANSWERS})
    mine(data, spy, corpus=OTHERS, num_negatives=1)
    assert QUESTIONS[0] in seen and not any(str(t).startswith("query: ") for t in seen)
    seen.clear()
    mine(data, spy, corpus=OTHERS, num_negatives=1, query_prompt="query: ")
    assert "query: " + QUESTIONS[0] in seen and "query: " + ANSWERS[0] not in seen
    seen.clear()
    mine(data, spy, corpus=OTHERS, num_negatives=1, corpus_prompt="passage: ")
    assert "passage: " + ANSWERS[0] in seen and "passage: " + QUESTIONS[0] not in seen


def test_prompt_names_and_a_raw_prompt_over_a_name(pairs, model):
    from copy import deepcopy

    named = deepcopy(model)
    named.prompts = {"query_prompt": "Query: ", "passage_prompt": "Passage: "}
    result = mine(pairs, named, query_prompt_name="query_prompt", corpus_prompt_name="passage_prompt")
    assert result.column_names == ["question", "answer", "negative"]
    mixed = mine(pairs, named, query_prompt_name="query_prompt", query_prompt="Direct query: ", corpus_prompt_name="passage_prompt")
    assert mixed.column_names == ["question", "answer", "negative"]


def test_the_models_own_query_prompt_is_used_as_encode_query_does(pairs, model, tmp_path):
    from copy import deepcopy

    prompted = deepcopy(model)
    prompted.prompts = {"query": "query: ", "document": ""}
    mine(pairs, prompted, hnmine_out=tmp_path / "run")
    info = json.loads((tmp_path / "run/index/dense/info.json").read_text())
    retrieve = json.loads((tmp_path / "run/manifests/retrieve.json").read_text())
    assert info["corpus_prompt_name"] is None and retrieve["settings"]["options"]["query_prompt_name"] == "query"


@pytest.mark.parametrize("output_format", ["triplet", "labeled-pair", "labeled-list"])
def test_include_positives_gives_rankings_led_by_the_positive(pairs, model, output_format, caplog):
    with caplog.at_level(logging.WARNING):
        result = mine(pairs, model, include_positives=True, output_format=output_format, range_max=3)
    assert result.column_names == ["question", "answer", "negative_1", "negative_2", "negative_3"]
    assert 'output_format` will be set to `"n-tuple"' in caplog.text
    assert result["answer"] == result["negative_1"]  # each positive ranks first among its query's candidates


def test_batch_size_faiss_and_cache_folder_are_taken(pairs, model, tmp_path):
    reference = mine(pairs, model)
    assert mine(pairs, model, batch_size=2)["negative"] == reference["negative"]
    assert mine(pairs, model, use_faiss=True, faiss_batch_size=2)["negative"] == reference["negative"]
    cached = tmp_path / "cache"
    assert mine(pairs, model, cache_folder=str(cached))["negative"] == mine(pairs, model, cache_folder=str(cached))["negative"]


def test_deprecated_arguments(pairs, model, caplog):
    with caplog.at_level(logging.WARNING):
        assert mine(pairs, model, range_max=3, as_triplets=True).column_names == ["question", "answer", "negative"]
        assert mine(pairs, model, range_max=3, as_triplets=False, num_negatives=2).column_names[2:] == ["negative_1", "negative_2"]
        with_margin = mine(pairs, model, range_max=3, margin=0.1, output_scores=True)
    assert "`as_triplets` parameter is deprecated" in caplog.text and "`margin` parameter is deprecated" in caplog.text
    assert with_margin.num_rows and all(s[1] < s[0] - 0.1 for s in with_margin["scores"])


def test_use_multi_process_runs_a_loaded_model_here(pairs, model, caplog):
    with caplog.at_level(logging.WARNING):
        result = mine(pairs, model, use_multi_process=True)
    assert "a loaded model runs in this process" in caplog.text
    assert result["negative"] == mine(pairs, model)["negative"]


def test_use_multi_process_with_models_by_name_shares_the_work_out(monkeypatch, model, cross_encoder):
    """A list of devices: GPUs shared out, or as many CPU worker processes; True: every GPU, else four CPU
    processes (sentence-transformers' choice); any loaded object among the models keeps the work here."""
    import torch

    from hnmine.st_compat import _devices

    path = hnmine.api.default_model_path()
    args = dict(model=path, cross_encoder=None)
    assert _devices(dict(args, use_multi_process=["cpu", "cpu"])) == {"workers": 2}
    assert _devices(dict(args, use_multi_process=["cuda:0", "cuda:1"])) == {"device": "cuda:0,cuda:1"}
    assert _devices(dict(args, use_multi_process=False)) == {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _devices(dict(args, use_multi_process=True)) == {"workers": 4}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _devices(dict(args, use_multi_process=True)) == {"device": "cuda:0,cuda:1"}
    assert _devices(dict(model=path, cross_encoder=cross_encoder, use_multi_process=["cpu", "cpu"])) == {}
    assert _devices(dict(model=model, cross_encoder=None, use_multi_process=["cpu", "cpu"])) == {}


def test_a_larger_dataset_with_every_filter(model):
    data = datasets.Dataset.from_dict({"query": [f"{q} ({i})" for i in range(4) for q in QUESTIONS], "positive": ANSWERS * 4})
    result = mine(
        data,
        model,
        range_min=1,
        range_max=3,
        max_score=0.9,
        min_score=0.1,
        absolute_margin=0.05,
        num_negatives=2,
        output_format="n-tuple",
        batch_size=4,
    )
    assert result.column_names == ["query", "positive", "negative_1", "negative_2"]


def test_a_tiny_corpus(model):
    data = datasets.Dataset.from_dict({"query": QUESTIONS[:2], "passage": ANSWERS[:2]})
    result = mine(data, model, num_negatives=1, range_max=1)
    assert result.column_names == ["query", "passage", "negative"] and len(result) == 2


# -- bad arguments: sentence-transformers' errors -------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(num_negatives=0), "num_negatives must be at least 1, got num_negatives=0."),
        (dict(range_min=-1, range_max=5), "range_min must be non-negative, got range_min=-1."),
        (dict(range_min=5, range_max=5), "range_min must be smaller than range_max, got range_min=5 and range_max=5."),
        (dict(range_min=3, range_max=4, num_negatives=2), "Cannot mine 2 negatives per query: only 1 candidates remain after skipping"),
        (
            dict(output_format="pairs"),
            "Invalid output_format: pairs. Must be one of 'triplet', 'n-tuple', 'labeled-pair', or 'labeled-list'.",
        ),
        (dict(faiss_batch_size=0), "faiss_batch_size must be a positive integer, got 0."),
        (dict(sampling_strategy="best"), "Invalid sampling_strategy: best. Must be 'top' or 'random'."),
    ],
)
def test_bad_arguments_raise_sentence_transformers_errors(pairs, model, kw, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        mine(pairs, model, **kw)


def test_an_empty_or_one_column_dataset_is_refused(model):
    with pytest.raises(ValueError, match="^The dataset is empty"):
        mine(datasets.Dataset.from_dict({"query": [], "passage": []}), model)
    with pytest.raises(ValueError, match="^Dataset must contain at least two columns"):
        mine(datasets.Dataset.from_dict({"query": QUESTIONS}), model)


# -- output, run directory ------------------------------------------------------------------------------------


def test_verbose_reports_on_stderr_and_keeps_stdout_clean(pairs, model, capsys):
    result = mine(pairs, model, max_score=0.0, range_max=4, verbose=True)
    out, err = capsys.readouterr()
    assert out == ""
    missing = len(pairs) * 3 - len(result)
    assert f"Could not find enough negatives for {missing} samples ({missing / (len(pairs) * 3):.2%})." in err
    assert "Metric       Positive       Negative     Difference" in err


def test_the_run_can_be_kept_and_reported(pairs, model, tmp_path):
    run = tmp_path / "run"
    result = mine(pairs, model, hnmine_out=run, corpus=OTHERS)
    assert invoke(["report", run, "--json"]).exit_code == 0
    again = mine(pairs, model, hnmine_out=run, corpus=OTHERS, num_negatives=2)  # its own arguments, not the run's last ones
    assert len(again) == len(pairs) * 2 and len(result) == len(pairs) * 3


# -- against the real function ---------------------------------------------------------------------------------


def sample_pairs():
    """(query, positive) rows of sample_data/'s judgments, and its corpus, as a sentence-transformers user has them."""
    folder = ROOT / "sample_data"
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines())}
    text = {d["_id"]: f"{d['title']} {d['text']}" for d in docs}
    rows = [line.split("\t") for line in (folder / "qrels/train.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    data = datasets.Dataset.from_dict({"query": [queries[q] for q, _, _ in rows], "answer": [text[d] for _, d, _ in rows]})
    return data, list(text.values())


def assert_same_rows(ours, theirs, *, tolerance: float = 1e-5) -> None:
    """Equal columns and features (types) and rows: texts exactly, scores within the float32 tolerance."""
    assert ours.column_names == theirs.column_names
    assert ours.features == theirs.features
    assert len(ours) == len(theirs)
    for a, b in zip(ours.to_list(), theirs.to_list()):
        for key in a:
            if key in ("scores", "score"):
                assert a[key] == pytest.approx(b[key], abs=tolerance), key
            else:
                assert a[key] == b[key], key


REFERENCE_CALLS = [
    dict(),
    dict(include_positives=True, range_max=10),
    dict(range_min=5, range_max=30, num_negatives=4, output_format="n-tuple", output_scores=True),
    dict(relative_margin=0.05, num_negatives=5, output_format="labeled-pair"),
    dict(absolute_margin=0.02, max_score=0.8, output_format="labeled-list", output_scores=True),
    dict(min_score=0.3, range_max=20, output_scores=True),
]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """sample_data/ as pairs and corpus, with a sentence-transformers embedding cache and an hnmine run shared by
    the calls below, so each side encodes the texts once."""
    data, corpus = sample_pairs()
    return data, corpus, str(tmp_path_factory.mktemp("st-cache")), tmp_path_factory.mktemp("shim") / "run"


@pytest.fixture(scope="module")
def sample_reference(sample, model):
    """sentence-transformers' own rows for REFERENCE_CALLS on sample_data."""
    from sentence_transformers.util import mine_hard_negatives

    data, corpus, cache, _ = sample
    return [mine_hard_negatives(data, model, corpus=corpus, verbose=False, cache_folder=cache, **kw) for kw in REFERENCE_CALLS]


@pytest.mark.parametrize("i", range(len(REFERENCE_CALLS)), ids=[",".join(kw) or "defaults" for kw in REFERENCE_CALLS])
def test_the_rows_are_sentence_transformers_rows_on_sample_data(i, sample, sample_reference, model):
    data, corpus, _, run = sample
    assert_same_rows(mine(data, model, corpus=corpus, hnmine_out=run, **REFERENCE_CALLS[i]), sample_reference[i])


SCIFACT = ROOT.parent / "shared" / "data" / "scifact"


@pytest.mark.slow
@pytest.mark.skipif(not SCIFACT.is_dir(), reason="needs ../shared/data/scifact")
def test_the_rows_are_sentence_transformers_rows_on_scifact(tmp_path):
    """SciFact train, the bundled model at float32, benchmarks/st_compare_scifact.py's calls (top-k sampling,
    range and margin options, every output_format): every row identical or differing only by tied scores,
    except on the call that combines range_min with a score filter (range_min counts ranks before the filters,
    docs/python.md), where each of sentence-transformers' negatives that hnmine left out ranks below the ones
    hnmine chose."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import st_compare_scifact as bench

    out = bench.compare(SCIFACT, "train", list(bench.CALLS), tmp_path)
    for name, row in out["calls"].items():
        if "differs" in bench.CALLS[name]:
            assert set(row["residue_negatives_left_out_by_reason"]) <= {"ranked_below_the_chosen"}, (name, row)
        else:
            assert row["rows"]["residue"] == 0 and row["rows"]["theirs"] == row["rows"]["ours"], (name, row)


@pytest.mark.parametrize("output_format", ["triplet", "n-tuple", "labeled-pair", "labeled-list"])
def test_the_shortfall_message_is_sentence_transformers(output_format, sample, model, capsys):
    """The samples short of negatives, counted per format as sentence-transformers counts them (its own tests
    pin these counts), in its words: on stderr here, where it prints to stdout."""
    from sentence_transformers.util import mine_hard_negatives

    data, corpus, cache, run = sample
    kw = dict(corpus=corpus, max_score=0.45, range_max=4, output_format=output_format, verbose=True)
    mine_hard_negatives(data, model, cache_folder=cache, **kw)
    theirs = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Could not find")]
    hnmine.mine_hard_negatives(data, model, hnmine_out=run, **kw)
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("Could not find")]
    assert theirs and ours == theirs


def test_the_switch_is_one_line(pairs, model):
    """The import is the switch: the same call, the same keywords (docs/python.md)."""
    from sentence_transformers.util import mine_hard_negatives

    call = dict(range_max=8, num_negatives=2, output_format="n-tuple", output_scores=True, verbose=False)
    assert_same_rows(
        hnmine.mine_hard_negatives(pairs, model, corpus=OTHERS, **call), mine_hard_negatives(pairs, model, corpus=OTHERS, **call)
    )


def test_hnmine_exports_the_mine_hard_negatives_name_lazily():
    import subprocess
    import sys

    code = "import sys, hnmine; assert 'torch' not in sys.modules; f = hnmine.mine_hard_negatives; print(f.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    assert out.stdout.strip() == "hnmine.st_compat"


def test_the_signature_is_sentence_transformers():
    """The same parameters in the same order with the same defaults, and hnmine's two, keyword-only, after them."""
    import inspect

    from sentence_transformers.util import mine_hard_negatives

    theirs = list(inspect.signature(mine_hard_negatives).parameters.values())
    ours = list(inspect.signature(hnmine.mine_hard_negatives).parameters.values())
    assert [(p.name, p.default, p.kind) for p in ours[: len(theirs)]] == [(p.name, p.default, p.kind) for p in theirs]
    assert [(p.name, p.kind) for p in ours[len(theirs) :]] == [
        ("hnmine_out", inspect.Parameter.KEYWORD_ONLY),
        ("hnmine_options", inspect.Parameter.KEYWORD_ONLY),
    ]


def test_docs_python_maps_every_parameter_in_order():
    """docs/python.md's table names each parameter of the installed sentence-transformers' function, in its
    order, once, then hnmine's two."""
    import inspect

    from sentence_transformers.util import mine_hard_negatives

    text = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    table = text.split("## Every parameter", 1)[1].split("\n## ", 1)[0]
    named = [m.group(1) for m in (re.match(r"\| `(\w+)`", line) for line in table.splitlines()) if m]
    assert named == [*inspect.signature(mine_hard_negatives).parameters, "hnmine_out", "hnmine_options"]
