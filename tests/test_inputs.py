"""Input normalisation: BEIR folders, separate files in four formats, pairs files, graded qrels."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TINY_DOCS, write_beir

from hnmine.errors import InputError, MissingColumn, OptionError
from hnmine.io.inputs import content_id, load_inputs
from hnmine.io.locate import InputSpec


def test_beir_folder_is_normalised(tiny_beir):
    loaded = load_inputs(InputSpec(data=tiny_beir))
    assert loaded.corpus.column_names == ["doc_id", "title", "text"]
    assert loaded.queries.column("query_id").to_pylist() == ["q1", "q2", "q3"]
    assert loaded.qrels.column_names == ["query_id", "doc_id", "relevance", "is_positive"]
    assert loaded.qrels.column("relevance").to_pylist() == [1, 1, 2]


def test_min_relevance_makes_graded_positives(tiny_beir):
    loaded = load_inputs(InputSpec(data=tiny_beir, min_relevance=2))
    # Only q3's judgment (grade 2) is a positive; queries without a positive are left out, with a warning.
    assert loaded.queries.column("query_id").to_pylist() == ["q3"]
    assert loaded.stats["queries_without_positive"] == 2
    assert any("no positive" in w for w in loaded.warnings)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv", "tsv"])
def test_separate_files_in_every_format_with_named_columns(tmp_path, fmt):
    corpus = pa.table({"pid": ["a", "b", "c"], "body": ["alpha text", "beta text", "gamma text"]})
    queries = pa.table({"qid": ["1", "2"], "question": ["what is alpha", "what is beta"]})
    qrels = pa.table({"q": ["1", "2"], "d": ["a", "b"], "grade": [1, 1]})
    paths = {}
    for name, table in (("corpus", corpus), ("queries", queries), ("qrels", qrels)):
        p = tmp_path / f"{name}.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, p)
        elif fmt == "jsonl":
            p.write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
        else:
            sep = "," if fmt == "csv" else "\t"
            lines = [sep.join(table.column_names)] + [sep.join(str(v) for v in r.values()) for r in table.to_pylist()]
            p.write_text("\n".join(lines) + "\n")
        paths[name] = p
    spec = InputSpec(
        corpus=paths["corpus"],
        queries=paths["queries"],
        qrels=paths["qrels"],
        doc_id_column="pid",
        doc_text_column="body",
        query_id_column="qid",
        query_text_column="question",
        qrels_query_column="q",
        qrels_doc_column="d",
        qrels_score_column="grade",
    )
    loaded = load_inputs(spec)
    assert loaded.corpus.column("doc_id").to_pylist() == ["a", "b", "c"]
    assert loaded.corpus.column("title").to_pylist() == ["", "", ""]
    assert loaded.qrels.column("doc_id").to_pylist() == ["a", "b"]


def test_missing_column_lists_the_columns_that_exist(tmp_path):
    p = tmp_path / "corpus.jsonl"
    p.write_text('{"_id": "a", "body": "x"}\n')
    q = tmp_path / "queries.jsonl"
    q.write_text('{"_id": "1", "text": "y"}\n')
    r = tmp_path / "qrels.tsv"
    r.write_text("query-id\tcorpus-id\tscore\n1\ta\t1\n")
    with pytest.raises(MissingColumn) as err:
        load_inputs(InputSpec(corpus=p, queries=q, qrels=r, doc_text_column="text"))
    assert "columns: _id, body" in str(err.value)


def test_duplicate_id_with_different_text_names_the_row(tmp_path):
    docs = TINY_DOCS + [{"_id": "d1", "title": "Espresso", "text": "Something else."}]
    folder = write_beir(tmp_path / "b", docs, [{"_id": "q1", "text": "espresso"}], [("q1", "d1", 1)])
    with pytest.raises(InputError, match=r"row 13: document id 'd1' appears twice"):
        load_inputs(InputSpec(data=folder))


def test_numeric_ids_become_strings(tmp_path):
    folder = write_beir(
        tmp_path / "b",
        [{"_id": 7, "title": "", "text": "seven"}, {"_id": 8, "title": "", "text": "eight"}],
        [{"_id": 1, "text": "which is seven"}],
        [("1", "7", 1)],
    )
    loaded = load_inputs(InputSpec(data=folder))
    assert loaded.corpus.column("doc_id").to_pylist() == ["7", "8"]
    assert loaded.qrels.column("query_id").to_pylist() == ["1"]


def test_several_splits_need_a_choice(tmp_path, tiny_beir):
    (tiny_beir / "qrels" / "test.tsv").write_text((tiny_beir / "qrels" / "train.tsv").read_text())
    assert load_inputs(InputSpec(data=tiny_beir)).qrels.num_rows == 3  # train is preferred
    (tiny_beir / "qrels" / "train.tsv").rename(tiny_beir / "qrels" / "dev.tsv")
    with pytest.raises(OptionError, match="several splits"):
        load_inputs(InputSpec(data=tiny_beir))


def test_pairs_file_string_positive_is_one_document_not_characters(tmp_path):
    p = tmp_path / "pairs.jsonl"
    rows = [
        {"query": "what is espresso", "positive": "Espresso is strong coffee."},
        {"query": "what is espresso", "positive": "Espresso is made under pressure."},
        {"query": "bike chain care", "positive": ["Lubricate the chain.", "Clean the chain."]},
        {"query": "日本の首都は?", "positive": "東京は日本の首都です。"},
    ]
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    loaded = load_inputs(InputSpec(data=p))
    assert loaded.queries.num_rows == 3
    assert loaded.corpus.num_rows == 5  # never split into characters
    assert loaded.qrels.num_rows == 5
    assert content_id("q", "what is espresso") in loaded.queries.column("query_id").to_pylist()
    assert "東京は日本の首都です。" in loaded.corpus.column("text").to_pylist()


def test_pairs_with_extra_corpus(tmp_path, tiny_beir):
    p = tmp_path / "pairs.csv"
    p.write_text("anchor,positive\nhow is espresso made,Espresso is brewed under pressure.\n")
    loaded = load_inputs(InputSpec(data=p, corpus=tiny_beir / "corpus.jsonl"))
    assert loaded.corpus.num_rows == 1 + len(TINY_DOCS)
    assert loaded.stats["extra_documents"] == len(TINY_DOCS)
