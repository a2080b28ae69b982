"""Export shapes, on hand-built examples."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from hnmine.errors import UnknownName
from hnmine.formats import Example, Passage, get_format
from hnmine.io.atomic import write_jsonl

EXAMPLES = [
    Example(
        "q1",
        "how is espresso made",
        [Passage("d1", "Espresso", "under pressure", 0.9)],
        [Passage("d2", "", "pour over", 0.7), Passage("d3", "", "cold brew", 0.6)],
    ),
    Example("q2", "東京について", [Passage("d4", "", "東京は首都です", 0.8)], [Passage("d5", "", "مرحبا بالعالم", 0.5)]),
]


def test_triplet_rows_and_scores():
    t = get_format("triplet").build(EXAMPLES, 2, True).to_pylist()
    assert [(r["anchor"], r["negative"]) for r in t] == [
        ("how is espresso made", "pour over"),
        ("how is espresso made", "cold brew"),
        ("東京について", "مرحبا بالعالم"),
    ]
    assert list(t[0]) == ["anchor", "positive", "negative", "scores"]  # sentence-transformers' name: scores
    assert t[0]["scores"] == pytest.approx([0.9, 0.7])


def test_n_tuple_leaves_out_short_queries():
    t = get_format("n-tuple").build(EXAMPLES, 2, False)
    assert t.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert t.num_rows == 1
    scored = get_format("n-tuple").build(EXAMPLES, 2, True)
    assert scored.column_names == ["anchor", "positive", "negative_1", "negative_2", "scores"]
    assert scored.column("scores").to_pylist()[0] == pytest.approx([0.9, 0.7, 0.6])


# A query with two positives and one without negatives: sentence-transformers' row shapes per (anchor, positive).
TWO_POSITIVES = [
    Example(
        "q1",
        "how is espresso made",
        [Passage("d1", "", "under pressure", 0.9), Passage("d6", "", "a shot in 25 seconds", 0.8)],
        [Passage("d2", "", "pour over", 0.7), Passage("d3", "", "cold brew", 0.6)],
    ),
    Example("q2", "what is tea", [Passage("d4", "", "leaves in water", 0.8)], []),
]


def test_labeled_pair_has_sentence_transformers_shape():
    """(anchor, positive, label): the positives of a query, then its negatives; a query without negatives
    keeps its positives; with scores, `score` replaces `label` (as sentence-transformers' output_scores does)."""
    pairs = get_format("labeled-pair").build(TWO_POSITIVES, 2, False)
    assert pairs.column_names == ["anchor", "positive", "label"]
    assert pairs.schema.field("label").type == pa.int64()
    assert [(r["positive"], r["label"]) for r in pairs.to_pylist()] == [
        ("under pressure", 1),
        ("a shot in 25 seconds", 1),
        ("pour over", 0),
        ("cold brew", 0),
        ("leaves in water", 1),
    ]
    scored = get_format("labeled-pair").build(TWO_POSITIVES, 2, True)
    assert scored.column_names == ["anchor", "positive", "score"]
    assert scored.column("score").to_pylist() == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.8])


def test_labeled_list_is_one_row_per_anchor_and_positive():
    """(anchor, [positive, negatives...], [1, 0, ...]) per (anchor, positive) pair, rows only for a query with
    a negative; with scores, `scores` replaces `labels`."""
    lists = get_format("labeled-list").build(TWO_POSITIVES, 2, False)
    assert lists.column_names == ["anchor", "positive", "labels"]
    assert lists.to_pylist() == [
        {"anchor": "how is espresso made", "positive": ["under pressure", "pour over", "cold brew"], "labels": [1, 0, 0]},
        {"anchor": "how is espresso made", "positive": ["a shot in 25 seconds", "pour over", "cold brew"], "labels": [1, 0, 0]},
    ]
    scored = get_format("labeled-list").build(TWO_POSITIVES, 2, True)
    assert scored.column_names == ["anchor", "positive", "scores"]
    assert scored.column("scores").to_pylist()[1] == pytest.approx([0.8, 0.7, 0.6])


def test_flagembedding_and_tevatron_jsonl_keep_non_latin_characters(tmp_path):
    fe = get_format("flagembedding").build(EXAMPLES, 2, True)
    write_jsonl(fe, tmp_path / "fe.jsonl")
    raw = (tmp_path / "fe.jsonl").read_text(encoding="utf-8")
    assert "東京は首都です" in raw and "مرحبا" in raw and "\\u" not in raw
    first = json.loads(raw.splitlines()[0])
    assert first == {
        "query": "how is espresso made",
        "pos": ["Espresso under pressure"],
        "neg": ["pour over", "cold brew"],
        "pos_scores": pytest.approx([0.9]),
        "neg_scores": pytest.approx([0.7, 0.6]),
    }
    tev = get_format("tevatron").build(EXAMPLES, 2, False).to_pylist()
    assert tev[0]["positive_passages"] == [{"docid": "d1", "title": "Espresso", "text": "under pressure"}]


def test_unknown_format_lists_valid_ones():
    with pytest.raises(UnknownName, match="valid: flagembedding, labeled-list, labeled-pair, n-tuple, tevatron, triplet"):
        get_format("csv-ish")


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple", "labeled-pair", "labeled-list"])
def test_hnmine_finetune_reads_each_shape_back(fmt):
    """`hnmine finetune` trains on the export as it is written now: the same (anchor, positive, negatives)."""
    from pathlib import Path

    from hnmine.finetune.sources import read_pairs

    shape, pairs, _ = read_pairs(get_format(fmt).build(TWO_POSITIVES, 2, False), Path("export.parquet"))
    assert shape == fmt
    got = {(p.anchor, p.positive): p.negatives for p in pairs}
    assert got[("how is espresso made", "under pressure")] == ("pour over", "cold brew")
    assert got[("how is espresso made", "a shot in 25 seconds")] == ("pour over", "cold brew")


@pytest.mark.parametrize("fmt", ["labeled-pair", "labeled-list"])
def test_a_labeled_shape_with_scores_instead_of_labels_is_refused_for_training(fmt):
    """Scores replace the labels: which passage is a negative is no longer said, and read as pairs every
    negative would train as a positive."""
    from pathlib import Path

    from hnmine.errors import InputError
    from hnmine.finetune.sources import read_pairs

    with pytest.raises(InputError, match="scores in place of labels"):
        read_pairs(get_format(fmt).build(TWO_POSITIVES, 2, True), Path("export.parquet"))
