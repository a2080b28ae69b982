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
    with pytest.raises(UnknownName, match="valid: flagembedding, labeled-list, labeled-pair, n-tuple, scored-pool, tevatron, triplet"):
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


def test_n_tuple_with_scores_is_sentence_transformers_output_scores_n_tuple():
    """sentence-transformers' mine_hard_negatives(output_format="n-tuple", output_scores=True): the anchor, the
    positive, negative_1..n, then `scores`, a list of doubles: the positive's score first, then each negative's
    in column order; queries short of n left out."""
    table = get_format("n-tuple").build(TWO_POSITIVES, 2, True)
    assert table.column_names == ["anchor", "positive", "negative_1", "negative_2", "scores"]
    assert table.schema.field("scores").type == pa.list_(pa.float64())
    rows = table.to_pylist()
    assert [(r["positive"], r["scores"]) for r in rows] == [
        ("under pressure", pytest.approx([0.9, 0.7, 0.6])),
        ("a shot in 25 seconds", pytest.approx([0.8, 0.7, 0.6])),
    ]


def scored_pool_tables() -> dict[str, pa.Table]:
    spec = get_format("scored-pool")
    shared = Example("q3", "東京について", [Passage("d7", "", "東京は首都です", 0.8)], [Passage("d2", "", "pour over", 0.5)])
    return spec.split(spec.build(TWO_POSITIVES + [shared], 2, False))


def test_scored_pool_is_pylates_layout():
    """PyLate's knowledge-distillation layout (lightonai/ms-marco-en-bge, read by pylate.utils.KDProcessing): a
    train table (query_id, document_ids, scores), a queries table (query_id, text) and a documents table
    (document_id, text). Each query's positives come first (PyLate keeps the first n_ways documents), then its
    negatives in the filter's order; `positive_ids` marks them, a column PyLate's collator leaves alone (its name
    holds `_id`). Scores are always written: they are what distillation trains on."""
    tables = scored_pool_tables()
    assert list(tables) == ["train", "queries", "documents"]
    train = tables["train"]
    assert train.schema == pa.schema(
        [
            ("query_id", pa.string()),
            ("document_ids", pa.list_(pa.string())),
            ("scores", pa.list_(pa.float32())),
            ("positive_ids", pa.list_(pa.string())),
        ]
    )
    assert all("_id" in name for name in train.column_names if name != "scores")  # PyLate tokenizes no *_id* column
    first = train.to_pylist()[0]
    assert first["query_id"] == "q1" and first["document_ids"] == ["d1", "d6", "d2", "d3"] and first["positive_ids"] == ["d1", "d6"]
    assert first["scores"] == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert tables["queries"].column("text").to_pylist() == ["how is espresso made", "what is tea", "東京について"]
    documents = tables["documents"]
    assert documents.column_names == ["document_id", "text"]
    assert documents.column("document_id").to_pylist() == ["d1", "d6", "d2", "d3", "d4", "d7"]  # each once (d2: q1 and q3)


def test_a_scored_pool_trains_as_pylates_kd_processing_reads_it():
    """What KDProcessing.transform does with the three tables (ids looked up in queries and documents, the first
    n_ways kept): every id resolves, and the texts and scores line up."""
    tables = scored_pool_tables()
    query_text = dict(zip(*(tables["queries"].column(c).to_pylist() for c in ("query_id", "text"))))
    doc_text = dict(zip(*(tables["documents"].column(c).to_pylist() for c in ("document_id", "text"))))
    n_ways = 3
    for row in tables["train"].to_pylist():
        documents = [doc_text[d] for d in row["document_ids"][:n_ways]]
        assert query_text[row["query_id"]] and len(documents) == len(row["scores"][:n_ways])
    assert doc_text["d6"] == "a shot in 25 seconds"
