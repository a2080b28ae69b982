"""Nothing silently wrong: every id and text reaches the tables and every export format exactly as written,
whatever it looks like and whatever format it came in (issue "Nothing silently wrong")."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, mine_json, write_beir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hnmine.io.inputs import load_inputs
from hnmine.io.locate import InputSpec

# Ids that type inference, stripping or markup parsing would change.
TRICKY_IDS = [
    "001",
    "0001",
    "1",
    "1.0",
    "1.50",
    "1e3",
    "0x1F",
    "-0",
    "+1",
    "NaN",
    "nan",
    "null",
    "None",
    "true",
    " 7",
    "7 ",
    "٣",
    "(1)",
    "[b]x[/b]",
    "[exp1]",
    "a,b",
    "a;b",
    "a|b",
    'a"b',
    "a'b",
    "ü",
    "日本",
    "🙂",
    "a\\b",
    "a/b",
]
TRICKY_TEXTS = [
    "  leading spaces",
    "trailing spaces  ",
    "   ",
    "line\nbreak",
    "tab\tinside",
    "[bold]markup[/bold]",
    "قطة عربية",
    "東京は首都です",
    "e\u0301 combining",
    "quote \" and ' both",
    "a,b;c|d",
    "NaN",
    "0001",
    "\u00a0no-break space",
    "emoji 🙂",
]

FORMATS = ["jsonl", "jsonl.gz", "csv", "csv.gz", "tsv", "tsv.gz", "parquet"]


def mine_files(run: Path, *args) -> dict:
    """`hnmine mine --out RUN ARGS` (inputs given as files), which must succeed; its JSON summary."""
    result = invoke(["mine", "--out", run, "--json", "--quiet", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _id_strategy(fmt: str):
    chars = st.characters(blacklist_categories=("Cs", "Cc"))
    ids = st.one_of(st.sampled_from(TRICKY_IDS), st.text(chars, min_size=1, max_size=8))
    if fmt.startswith("tsv"):
        ids = ids.filter(lambda s: "\t" not in s and "\n" not in s and "\r" not in s)
    return ids.filter(lambda s: s.strip() != "")


def _text_strategy(fmt: str):
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
    texts = st.one_of(st.sampled_from(TRICKY_TEXTS), st.text(chars, min_size=1, max_size=30))
    if fmt.startswith("tsv"):  # TSV has no quoting: a tab or line break cannot be inside a cell
        texts = texts.filter(lambda s: not any(c in s for c in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"))
    if fmt.startswith("csv"):  # the csv reader splits lines on \r and \n only inside quotes
        texts = texts.filter(lambda s: "\r" not in s)
    return texts.filter(lambda s: s.strip() != "")


def write_rows(path: Path, fmt: str, columns: list[str], rows: list[list[str]]) -> Path:
    path = path.with_name(path.name + "." + fmt)
    if fmt == "parquet":
        pq.write_table(pa.table({c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(columns)}), path)
        return path
    base = fmt.removesuffix(".gz")
    if base == "jsonl":
        text = "".join(json.dumps(dict(zip(columns, r)), ensure_ascii=False) + "\n" for r in rows)
    elif base == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        text = buf.getvalue()
    else:
        text = "\t".join(columns) + "\n" + "".join("\t".join(r) + "\n" for r in rows)
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if fmt.endswith(".gz") else data)
    return path


@st.composite
def collections(draw, fmt: str):
    n = draw(st.integers(3, 6))
    doc_ids = draw(st.lists(_id_strategy(fmt), min_size=n, max_size=n, unique=True))
    titles = draw(st.lists(_text_strategy(fmt), min_size=n, max_size=n))
    texts = draw(st.lists(_text_strategy(fmt), min_size=n, max_size=n))
    q_ids = draw(st.lists(_id_strategy(fmt), min_size=2, max_size=2, unique=True))
    q_texts = draw(st.lists(_text_strategy(fmt), min_size=2, max_size=2))
    return doc_ids, titles, texts, q_ids, q_texts


def write_collection(folder: Path, fmt: str, c) -> InputSpec:
    doc_ids, titles, texts, q_ids, q_texts = c
    corpus = write_rows(folder / "corpus", fmt, ["_id", "title", "text"], [list(x) for x in zip(doc_ids, titles, texts)])
    queries = write_rows(folder / "queries", fmt, ["_id", "text"], [list(x) for x in zip(q_ids, q_texts)])
    qrels = write_rows(
        folder / "qrels", fmt, ["query-id", "corpus-id", "score"], [[q_ids[0], doc_ids[0], "1"], [q_ids[1], doc_ids[1], "1"]]
    )
    return InputSpec(corpus=corpus, queries=queries, qrels=qrels)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_reader_keeps_ids_and_texts_exactly(fmt, data):
    c = data.draw(collections(fmt))
    doc_ids, titles, texts, q_ids, q_texts = c
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_inputs(write_collection(Path(tmp), fmt, c))
    assert loaded.corpus.column("doc_id").to_pylist() == doc_ids
    assert loaded.corpus.column("title").to_pylist() == titles
    assert loaded.corpus.column("text").to_pylist() == texts
    assert loaded.queries.column("query_id").to_pylist() == q_ids
    assert loaded.queries.column("text").to_pylist() == q_texts
    assert sorted(loaded.qrels.column("doc_id").to_pylist()) == sorted(doc_ids[:2])


EXPORTS = ["triplet", "n-tuple", "labeled-pair", "labeled-list", "flagembedding", "tevatron"]


def _export_texts(run: Path, fmt: str) -> tuple[set[str], set[str], set[str]]:
    """(query texts, passage texts, ids) an export holds."""
    path = next((run / "export").glob(f"{fmt}.*"))
    rows = pq.read_table(path).to_pylist() if path.suffix == ".parquet" else [json.loads(x) for x in path.read_text("utf-8").splitlines()]
    queries, passages, ids = set(), set(), set()
    for r in rows:
        queries.add(r.get("anchor", r.get("query")))
        for key, value in r.items():
            if key in ("anchor", "query", "label", "labels", "score", "scores", "pos_scores", "neg_scores"):
                continue
            if key == "query_id":
                ids.add(value)
            elif isinstance(value, list):
                for v in value:
                    if isinstance(v, dict):
                        ids.add(v["docid"])
                        passages.add(("tevatron", v["title"], v["text"]))
                    else:
                        passages.add(v)
            else:
                passages.add(value)
    return queries, passages, ids


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_export_format_writes_ids_and_texts_exactly(data):
    """Through the whole pipeline (the user's vectors, so no model), into every export format."""
    fmt = data.draw(st.sampled_from(FORMATS))
    c = data.draw(collections(fmt))
    doc_ids, titles, texts, q_ids, q_texts = c
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = write_collection(tmp, fmt, c)
        rng = np.random.default_rng(0)
        np.save(tmp / "docs.npy", rng.normal(size=(len(doc_ids), 8)).astype(np.float32))
        np.save(tmp / "queries.npy", rng.normal(size=(len(q_ids), 8)).astype(np.float32))
        run = tmp / "run"
        mine_files(
            run,
            "--corpus",
            spec.corpus,
            "--queries",
            spec.queries,
            "--qrels",
            spec.qrels,
            "--corpus-embeddings",
            tmp / "docs.npy",
            "--query-embeddings",
            tmp / "queries.npy",
            "--method",
            "naive",
            "--num-negatives",
            "1",
            "--dedup-threshold",
            "2",
        )
        joined = {(f"{t} {x}" if t else x) for t, x in zip(titles, texts)}
        for export in EXPORTS:
            result = invoke(["export", "--out", run, "--format", export, "--quiet"])
            assert result.exit_code == 0, result.output
            queries, passages, ids = _export_texts(run, export)
            assert queries <= set(q_texts), (export, queries)
            for p in passages:
                if isinstance(p, tuple):  # Tevatron keeps title and text apart, each as read
                    assert (p[1], p[2]) in set(zip(titles, texts)), (export, p)
                else:
                    assert p in joined, (export, p)
            assert ids <= set(doc_ids) | set(q_ids), (export, ids)


def test_leading_zeros_survive_csv_and_tsv_to_the_export(tmp_path):
    """`001` became `1` in every table and in the export (type inference of CSV/TSV readers)."""
    docs = [
        ["001", "", "the first document about espresso"],
        ["002", "", "the second about bicycles"],
        ["010", "", "the tenth about volcanoes"],
    ]
    corpus = write_rows(tmp_path / "corpus", "csv", ["_id", "title", "text"], docs)
    queries = write_rows(tmp_path / "queries", "tsv", ["_id", "text"], [["007", "espresso please"]])
    qrels = write_rows(tmp_path / "qrels", "tsv", ["query-id", "corpus-id", "score"], [["007", "001", "1"]])
    run = tmp_path / "run"
    mine_files(
        run, "--corpus", corpus, "--queries", queries, "--qrels", qrels, "--method", "naive", "--num-negatives", "2", "--format", "tevatron"
    )
    assert pq.read_table(run / "inputs/corpus.parquet").column("doc_id").to_pylist() == ["001", "002", "010"]
    row = json.loads((run / "export/tevatron.jsonl").read_text().splitlines()[0])
    assert row["query_id"] == "007" and row["positive_passages"][0]["docid"] == "001"
    assert {p["docid"] for p in row["negative_passages"]} == {"002", "010"}


def test_beir_jsonl_ids_with_zeros_match_tsv_qrels(tmp_path):
    """A BEIR folder whose corpus has "0001" and whose qrels say 0001 failed with "no positive judgment left"."""
    docs = [{"_id": f"{i:04d}", "title": "", "text": d["text"]} for i, d in enumerate(TINY_DOCS, start=1)]
    queries = [{"_id": f"{i:03d}", "text": q["text"]} for i, q in enumerate(TINY_QUERIES, start=1)]
    data = write_beir(tmp_path / "zeros", docs, queries, [("001", "0001", 1), ("002", "0005", 1), ("003", "0009", 1)])
    run = tmp_path / "run"
    mine_json(data, run, "--method", "naive", "--num-negatives", "2")
    qrels = pq.read_table(run / "inputs/qrels.parquet").to_pylist()
    assert [(r["query_id"], r["doc_id"]) for r in qrels] == [("001", "0001"), ("002", "0005"), ("003", "0009")]


def test_json_numbers_keep_their_spelling(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"_id": 1.50, "text": "a"}\n{"_id": 7, "text": "b"}\n{"_id": "007", "text": "c"}\n')
    from hnmine.io.files import read_table

    ids = read_table(tmp_path / "c.jsonl").column("_id").to_pylist()
    assert ids == ["1.50", "7", "007"]


def test_ids_spelled_differently_get_a_hint_not_a_silent_match(tmp_path):
    docs = [{"_id": f"{i:04d}", "title": "", "text": d["text"]} for i, d in enumerate(TINY_DOCS, start=1)]
    data = write_beir(tmp_path / "mismatch", docs, TINY_QUERIES, [("q1", "1", 1), ("q2", "5", 1)])
    result = invoke(["mine", data, "--out", tmp_path / "run", "--quiet"])
    assert result.exit_code == 2
    assert "no positive judgment left" in result.stderr
    assert "the corpus has '0001' for '1'" in result.stderr and "ids are text" in result.stderr
    assert not (tmp_path / "run").exists()


def test_tevatron_keeps_titles_and_texts_exactly(tmp_path):
    """The Tevatron export dropped the first characters of a text whose title was whitespace or started
    with several spaces."""
    docs = [dict(d) for d in TINY_DOCS]
    docs[0]["title"], docs[0]["text"] = "   ", "Espresso is brewed by forcing hot water through fine coffee."
    docs[1]["title"], docs[1]["text"] = "  Pour over", "  Pour-over coffee drips slowly through a paper filter."
    data = write_beir(tmp_path / "ws", docs, TINY_QUERIES, [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d9", 1)])
    run = tmp_path / "run"
    mine_json(data, run, "--format", "tevatron", "--method", "naive", "--num-negatives", "2")
    rows = [json.loads(x) for x in (run / "export/tevatron.jsonl").read_text().splitlines()]
    by_doc = {p["docid"]: p for r in rows for p in r["positive_passages"] + r["negative_passages"]}
    assert by_doc["d1"]["title"] == "   " and by_doc["d1"]["text"] == docs[0]["text"]
    assert by_doc["d2"]["title"] == "  Pour over" and by_doc["d2"]["text"] == docs[1]["text"]


@pytest.mark.parametrize("compressed", ["corpus.jsonl.gz", "queries.jsonl.gz", "qrels/train.tsv.gz"])
def test_gzip_inputs_are_read(tmp_path, compressed):
    data = write_beir(tmp_path / "gz", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    plain = data / compressed.removesuffix(".gz")
    (data / compressed).write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    run = tmp_path / "run"
    summary = mine_json(data, run, "--method", "naive", "--num-negatives", "2")
    assert summary["export"]
    files = json.loads((run / "manifests/inputs.json").read_text())["stats"]["files"]
    assert any(f.endswith(".gz") for f in files.values())


def test_gzip_csv_given_as_a_file(tmp_path):
    rows = [[d["_id"], d["title"], d["text"]] for d in TINY_DOCS]
    corpus = write_rows(tmp_path / "corpus", "csv.gz", ["_id", "title", "text"], rows)
    data = write_beir(tmp_path / "b", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    run = tmp_path / "run"
    mine_json(data, run, "--corpus", corpus, "--method", "naive", "--num-negatives", "2")
    assert pq.read_table(run / "inputs/corpus.parquet").column("text").to_pylist() == [d["text"] for d in TINY_DOCS]


def test_a_csv_over_a_megabyte_with_quoted_newlines_is_read(tmp_path):
    """Valid CSV over about 1 MB with quoted newlines in texts was rejected (the reader's block size)."""
    rows = [[f"d{i}", "", f'paragraph one of {i}\nparagraph two, with a comma\nand "quotes" ' + "x" * 400] for i in range(3000)]
    corpus = write_rows(tmp_path / "corpus", "csv", ["_id", "title", "text"], rows)
    assert corpus.stat().st_size > 1_000_000
    from hnmine.io.files import read_table

    table = read_table(corpus)
    assert table.num_rows == 3000 and table.column("text").to_pylist()[2999] == rows[2999][2]
