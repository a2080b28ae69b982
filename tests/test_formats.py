"""Export shapes, on hand-built examples."""

from __future__ import annotations

import json

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
    assert t[0]["score"] == pytest.approx([0.9, 0.7])


def test_n_tuple_leaves_out_short_queries():
    t = get_format("n-tuple").build(EXAMPLES, 2, False)
    assert t.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert t.num_rows == 1


def test_labeled_pair_and_list():
    pairs = get_format("labeled-pair").build(EXAMPLES, 2, True).to_pylist()
    assert [r["label"] for r in pairs] == [1, 0, 0, 1, 0]
    lists = get_format("labeled-list").build(EXAMPLES, 2, False).to_pylist()
    assert lists[0]["labels"] == [1, 0, 0]
    assert lists[0]["passages"] == ["Espresso under pressure", "pour over", "cold brew"]


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
