"""Pre-mined datasets in (`--premined`, issue 28 part 1): a training set mined elsewhere is the run's data and its
candidates; filter, report and export then work on it as on a mined run. The shapes are read into the run's
tables without a model (fast); a few runs go through the CLI end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, TINY_DOCS, TINY_QUERIES, invoke, mine_json, share_cache
from test_hunt import one_line_error

from hnmine.io.inputs import content_id
from hnmine.io.locate import InputSpec
from hnmine.io.premined import load_premined

SAMPLE = ROOT / "sample_data"
DOC = {d["_id"]: f"{d['title']} {d['text']}" for d in TINY_DOCS}
QUERY = {q["_id"]: q["text"] for q in TINY_QUERIES}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def fe_rows(scores: bool = False) -> list[dict]:
    """FlagEmbedding rows over the tiny texts: q1 with d1 positive and d2, d10, d11 negatives; q2 with d5 and d12, d6."""
    rows = [
        {"query": QUERY["q1"], "pos": [DOC["d1"]], "neg": [DOC["d2"], DOC["d10"], DOC["d11"]]},
        {"query": QUERY["q2"], "pos": [DOC["d5"]], "neg": [DOC["d12"], DOC["d6"]]},
    ]
    if scores:
        rows[0].update(pos_scores=[0.9], neg_scores=[0.2, 0.8, 0.5])
        rows[1].update(pos_scores=[0.7], neg_scores=[0.6, 0.1])
    return rows


def read(premined: Path, **kw):
    return load_premined(InputSpec(premined=premined, **kw))


def candidates_of(loaded) -> dict[str, list[tuple[str, float | None, bool]]]:
    """{query text: [(doc text, score, is_positive) in rank order]} of what the reader made."""
    q_text = dict(zip(loaded.queries.column("query_id").to_pylist(), loaded.queries.column("text").to_pylist()))
    corpus = loaded.corpus.to_pylist()
    d_text = {r["doc_id"]: (f"{r['title']} {r['text']}" if r["title"] else r["text"]) for r in corpus}
    out: dict[str, list] = {}
    for r in sorted(loaded.premined.to_pylist(), key=lambda r: r["rank"]):
        score = None if r["score"] is None else round(r["score"], 4)
        out.setdefault(q_text[r["query_id"]], []).append((d_text[r["doc_id"]], score, r["is_positive"]))
    return out


# --- the shapes ------------------------------------------------------------------------------------


def test_flagembedding_without_scores_keeps_the_files_order_and_content_ids(tmp_path):
    loaded = read(write_jsonl(tmp_path / "train.jsonl", fe_rows()))
    got = candidates_of(loaded)
    assert got[QUERY["q1"]] == [(DOC["d1"], None, True), (DOC["d2"], None, False), (DOC["d10"], None, False), (DOC["d11"], None, False)]
    assert loaded.queries.column("query_id").to_pylist() == [content_id("q", QUERY["q1"]), content_id("q", QUERY["q2"])]
    assert content_id("d", DOC["d1"]) in loaded.corpus.column("doc_id").to_pylist()
    assert loaded.qrels.num_rows == 2 and all(loaded.qrels.column("is_positive").to_pylist())
    assert loaded.stats["premined_format"] == "flagembedding" and loaded.stats["premined_scored"] is False


def test_flagembedding_with_scores_ranks_by_them(tmp_path):
    got = candidates_of(read(write_jsonl(tmp_path / "train.jsonl", fe_rows(scores=True))))
    assert got[QUERY["q1"]] == [(DOC["d1"], 0.9, True), (DOC["d10"], 0.8, False), (DOC["d11"], 0.5, False), (DOC["d2"], 0.2, False)]


def test_texts_found_in_the_corpus_and_queries_keep_their_ids(tmp_path, tiny_beir):
    """Matched on the title and text joined (what hnmine writes), else on the text alone; the rest of the corpus
    is the corpus too; a text in no corpus gets a content id."""
    rows = fe_rows()
    rows[1]["neg"].append("A text in no corpus.")
    rows[1]["pos"] = [next(d["text"] for d in TINY_DOCS if d["_id"] == "d5")]  # the text alone, no title
    loaded = read(write_jsonl(tmp_path / "t.jsonl", rows), corpus=tiny_beir / "corpus.jsonl", queries=tiny_beir / "queries.jsonl")
    assert loaded.queries.column("query_id").to_pylist() == ["q1", "q2"]
    premined = loaded.premined.to_pylist()
    assert [(r["query_id"], r["doc_id"], r["is_positive"]) for r in premined if r["query_id"] == "q2"] == [
        ("q2", "d5", True),
        ("q2", "d12", False),
        ("q2", "d6", False),
        ("q2", content_id("d", "A text in no corpus."), False),
    ]
    assert loaded.corpus.num_rows == len(TINY_DOCS) + 1
    assert loaded.stats["documents_from_corpus"] == len(TINY_DOCS) and loaded.stats["documents_from_premined"] == 1


def st_tuples(n: int, scores: bool) -> pa.Table:
    """sentence-transformers' n-tuple (n >= 2) or triplet (n = 1) rows, named after its input's columns."""
    negatives = [DOC["d2"], DOC["d10"], DOC["d11"]][:n]
    cols = {"question": [QUERY["q1"]], "answer": [DOC["d1"]]}
    names = ["negative"] if n == 1 else [f"negative_{i}" for i in range(1, n + 1)]
    cols.update({name: [text] for name, text in zip(names, negatives)})
    if scores:
        cols["scores"] = [[0.9] + [0.3 + 0.1 * i for i in range(n)]]
    return pa.table(cols)


@pytest.mark.parametrize("n", [1, 3])
def test_sentence_transformers_triplets_and_n_tuples_with_scores(tmp_path, n):
    path = tmp_path / "train.parquet"
    pq.write_table(st_tuples(n, scores=True), path)
    loaded = read(path)
    assert loaded.stats["premined_format"] == ("triplet" if n == 1 else "n-tuple")
    got = candidates_of(loaded)[QUERY["q1"]]
    assert got[0] == (DOC["d1"], 0.9, True) and len(got) == n + 1
    assert [s for _, s, _ in got[1:]] == sorted((round(0.3 + 0.1 * i, 4) for i in range(n)), reverse=True)


def test_a_saved_datasets_folder(tmp_path):
    import datasets

    folder = tmp_path / "saved"
    datasets.Dataset.from_list(fe_rows(scores=True)).save_to_disk(str(folder))
    loaded = read(folder)
    assert loaded.stats["premined_format"] == "flagembedding" and loaded.stats["premined_scored"] is True
    assert len(candidates_of(loaded)[QUERY["q2"]]) == 3


def test_tevatron_keeps_its_ids(tmp_path):
    def passage(d: str, score: float) -> dict:
        doc = next(x for x in TINY_DOCS if x["_id"] == d)
        return {"docid": d, "title": doc["title"], "text": doc["text"], "score": score}

    rows = [{"query_id": "q1", "query": QUERY["q1"], "positive_passages": [passage("d1", 0.9)], "negative_passages": [passage("d10", 0.8)]}]
    loaded = read(write_jsonl(tmp_path / "tev.jsonl", rows))
    assert [(r["query_id"], r["doc_id"], r["score"] == pytest.approx(s)) for r, s in zip(loaded.premined.to_pylist(), (0.9, 0.8))] == [
        ("q1", "d1", True),
        ("q1", "d10", True),
    ]
    assert loaded.corpus.to_pylist()[0] == {"doc_id": "d1", "title": "Espresso", "text": TINY_DOCS[0]["text"]}


def write_pool(folder: Path, *, positives: bool = True) -> Path:
    """A scored pool's folder (the scored-pool export's layout): train, queries and documents tables."""
    folder.mkdir(parents=True, exist_ok=True)
    train = {"query_id": ["q1"], "document_ids": [["d1", "d10", "d2"]], "scores": [[0.9, 0.8, 0.1]]}
    if positives:
        train["positive_ids"] = [["d1"]]
    pq.write_table(pa.table(train), folder / "train.parquet")
    pq.write_table(pa.table({"query_id": ["q1", "q2"], "text": [QUERY["q1"], QUERY["q2"]]}), folder / "queries.parquet")
    docs = [d for d in TINY_DOCS if d["_id"] in ("d1", "d2", "d10", "d5")]
    pq.write_table(pa.table({"document_id": [d["_id"] for d in docs], "text": [DOC[d["_id"]] for d in docs]}), folder / "documents.parquet")
    return folder


def test_a_scored_pool_folder_and_its_files(tmp_path):
    pool = write_pool(tmp_path / "pool")
    for loaded in (read(pool), read(pool / "train.parquet", queries=pool / "queries.parquet", corpus=pool / "documents.parquet")):
        assert [(r["doc_id"], r["rank"], r["is_positive"]) for r in loaded.premined.to_pylist()] == [
            ("d1", 1, True),
            ("d10", 2, False),
            ("d2", 3, False),
        ]
        assert loaded.queries.to_pylist() == [{"query_id": "q1", "text": QUERY["q1"]}]
        assert loaded.corpus.num_rows == 4  # the documents table is the corpus


def test_a_scored_pool_without_positives_takes_them_from_qrels(tmp_path):
    pool = write_pool(tmp_path / "pool", positives=False)
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td10\t1\n", encoding="utf-8")
    loaded = read(pool / "train.parquet", queries=pool / "queries.parquet", corpus=pool / "documents.parquet", qrels=qrels)
    assert [(r["doc_id"], r["is_positive"]) for r in loaded.premined.to_pylist()] == [("d1", False), ("d10", True), ("d2", False)]


# --- through the CLI -------------------------------------------------------------------------------


def hidden_pairs() -> set[tuple[str, str]]:
    lines = (SAMPLE / "unlabelled_relevant.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return {tuple(line.split("\t")[:2]) for line in lines if line.strip()}


def premined_json(run: Path, file: Path, *args) -> dict:
    """`hnmine mine --premined FILE --out RUN --json --quiet ARGS`, which must succeed; its JSON summary."""
    result = invoke(["mine", "--premined", file, "--out", run, "--json", "--quiet", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def negative_pairs(run: Path) -> set[tuple[str, str]]:
    return {(r["query_id"], r["doc_id"]) for r in pq.read_table(run / "negatives.parquet", columns=["query_id", "doc_id"]).to_pylist()}


def test_naive_negatives_read_back_are_cleaned_by_the_default_filter(sample_run, tmp_path):
    """The issue's example: sample_data mined with --method naive, exported as FlagEmbedding, read back with
    --premined into a new run, filtered with the defaults: the unlabelled relevant pairs of
    sample_data/unlabelled_relevant.tsv that were naive negatives are negatives no more. The file's scores are
    the teacher's (with --with-scores); without them the bi-encoder scores the pairs as it did."""
    naive = tmp_path / "naive"
    shutil.copytree(sample_run, naive)
    mine_json(SAMPLE, naive, "--method", "naive", "-n", "30", "--format", "flagembedding", "--with-scores")
    caught = hidden_pairs() & negative_pairs(naive)
    assert len(caught) >= 20  # sample_data plants them near the top

    run = tmp_path / "premined"
    share_cache(sample_run, run)
    file = naive / "export" / "flagembedding.jsonl"
    summary = premined_json(run, file, "--corpus", SAMPLE / "corpus.jsonl", "--queries", SAMPLE / "queries.jsonl")
    assert not caught & negative_pairs(run)
    assert len(negative_pairs(run)) == 5 * 60  # every query full with the default shifted
    stages = {s["stage"]: s for s in summary["stages"]}
    assert stages["retrieve"]["counts"]["rows_out"] == 60 * 30 + 70  # every listed document, positives included
    score = json.loads((run / "manifests/score.json").read_text())
    assert [m["kind"] for m in score["models"].values()] == ["premined"]
    original = {(r["query_id"], r["doc_id"]): r["teacher_score"] for r in pq.read_table(naive / "scores.parquet").to_pylist()}
    mined = pq.read_table(run / "scores.parquet").to_pylist()
    assert all(r["teacher_score"] == original[(r["query_id"], r["doc_id"])] for r in mined)

    report = invoke(["report", run, "--json"])
    assert report.exit_code == 0, report.output
    story = invoke(["inspect", run, "q001", "--json"])
    assert story.exit_code == 0, story.output
    assert "premined" in story.stdout

    plain = tmp_path / "plain"
    shutil.copytree(run, plain)
    rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()]
    unscored = write_jsonl(tmp_path / "unscored.jsonl", [{k: r[k] for k in ("query", "pos", "neg")} for r in rows])
    premined_json(plain, unscored, "--corpus", SAMPLE / "corpus.jsonl", "--queries", SAMPLE / "queries.jsonl", "--replace")
    assert [m["kind"] for m in json.loads((plain / "manifests/score.json").read_text())["models"].values()] == ["bi-encoder"]
    rescored = {(r["query_id"], r["doc_id"]): r["teacher_score"] for r in pq.read_table(plain / "scores.parquet").to_pylist()}
    assert all(abs(rescored[k] - original[k]) < 1e-6 for k in rescored)
    assert not caught & negative_pairs(plain)


@pytest.fixture(scope="module")
def tiny_premined(tmp_path_factory) -> tuple[Path, Path]:
    """(file, run): the FlagEmbedding rows with scores, mined with naive and 2 negatives, once per module."""
    base = tmp_path_factory.mktemp("tiny_premined")
    file = write_jsonl(base / "train.jsonl", fe_rows(scores=True))
    run = base / "run"
    premined_json(run, file, "--method", "naive", "-n", "2")
    return file, run


def test_stage_commands_on_a_pre_mined_run(tiny_premined, tmp_path):
    """A stage command takes the run's --premined from its record; another file than the one its inputs stage read
    is refused, not mixed with that file's lists; the report names the file as the candidates' source."""
    file, done = tiny_premined
    run = tmp_path / "run"
    shutil.copytree(done, run)
    result = invoke(["filter", "--out", run, "--method", "topk-percpos", "--quiet"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(run / "negatives.parquet").column("method").to_pylist()[0] == "topk-percpos"
    other = write_jsonl(tmp_path / "other.jsonl", fe_rows())
    one_line_error(invoke(["retrieve", "--out", run, "--premined", other, "--quiet"]), "its inputs stage read --premined", "train.jsonl")
    report = json.loads(invoke(["report", run, "--json"]).stdout)
    assert {"role": "candidates", "kind": "premined", "name": str(file)} in report["meta"]["models"]


def test_the_api_takes_a_pre_mined_table(tmp_path):
    import hnmine

    result = hnmine.mine(premined=fe_rows(scores=True), num_negatives=1, method="naive", out=tmp_path / "run", progress=False)
    assert result.table.to_pylist()[0]["negative"] == DOC["d10"]  # the file's best-scored negative of q1
    assert (tmp_path / "run" / "sources" / "premined.parquet").is_file()


# --- bad input: one line naming the file, row and column ------------------------------------------


def premined_error(tmp_path: Path, rows: list[dict] | None, *fragments: str, args: tuple = (), file: Path | None = None) -> None:
    path = file or write_jsonl(tmp_path / "bad.jsonl", rows or [])
    run = tmp_path / "run"
    one_line_error(invoke(["mine", "--premined", path, "--out", run, "--quiet", *args]), *fragments)
    assert not (run / "inputs").exists() and not (run / "export").exists()


@pytest.mark.parametrize(
    "change, fragments",
    [
        (lambda r: r.pop("neg"), ("bad.jsonl: row 2: column 'neg' is missing",)),
        (lambda r: r.update(pos=DOC["d1"]), ("bad.jsonl: row 2: column 'pos' holds text, expected a list",)),
        (lambda r: r.update(neg={"a": 1}), ("bad.jsonl: row 2: column 'neg'",)),
        (lambda r: r.update(query="  "), ("bad.jsonl: row 2: column 'query' is empty",)),
        (lambda r: r.update(pos=[]), ("bad.jsonl: row 2: column 'pos' is an empty list: a row needs a positive",)),
        (lambda r: r.update(neg=["ok", ""]), ("bad.jsonl: row 2: column 'neg' item 2 is empty",)),
        (lambda r: r.update(pos_scores=[0.5], neg_scores=[0.1]), ("bad.jsonl: row 2: column 'neg_scores' holds 1 scores for 2 negatives",)),
        (lambda r: r.update(pos_scores=["high"], neg_scores=[0.1, 0.2]), ("bad.jsonl: row 2: column 'pos_scores' item 1 holds 'high'",)),
    ],
)
def test_a_bad_flagembedding_row_is_named(tmp_path, change, fragments):
    rows = fe_rows(scores=any("scores" in f for f in fragments))
    change(rows[1])
    premined_error(tmp_path, rows, *fragments)


def test_a_file_of_no_known_shape_asks_for_its_format(tmp_path):
    premined_error(tmp_path, [{"question": "a", "answer": "b"}], "bad.jsonl: cannot tell its format from its columns (question, answer)")


def test_a_missing_column_of_a_named_format(tmp_path):
    premined_error(tmp_path, fe_rows(), "(--premined-format n-tuple): no column 'negative_1'", args=("--premined-format", "n-tuple"))


def test_an_unknown_format_lists_the_valid_ones(tmp_path):
    premined_error(
        tmp_path, fe_rows(), "unknown pre-mined format 'fe'", "flagembedding, n-tuple, scored-pool", args=("--premined-format", "fe")
    )


def test_a_tuple_row_without_its_positive(tmp_path):
    table = st_tuples(2, scores=False).to_pylist()
    table[0]["answer"] = None
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(table), path)
    premined_error(tmp_path, None, "bad.parquet: row 1: column 'answer' is missing", file=path)


def test_a_pool_that_marks_no_positives_needs_qrels(tmp_path):
    pool = write_pool(tmp_path / "pool", positives=False)
    premined_error(tmp_path, None, "marks no positives (no column positive_ids); give its judgments with --qrels", file=pool)


def test_a_pool_naming_a_document_its_documents_lack(tmp_path):
    pool = write_pool(tmp_path / "pool")
    pq.write_table(pa.table({"document_id": ["d1", "d2"], "text": ["a", "b"]}), pool / "documents.parquet")
    premined_error(tmp_path, None, "train.parquet: row 1: document 'd10' is not in", file=pool)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("--retriever", "bm25"), ("--retriever bm25 and --premined", "nothing is retrieved")),
        (("--pairs", "x.jsonl"), ("a pre-mined dataset is the run's data",)),
        (("--premined-format", "triplet", "--defaults"), ()),
    ],
)
def test_options_a_pre_mined_run_cannot_use(tmp_path, args, fragments):
    if not fragments:  # --premined-format without --premined
        one_line_error(
            invoke(["mine", SAMPLE, "--out", tmp_path / "r", "--quiet", *args]), "--premined-format applies only with --premined"
        )
        return
    (tmp_path / "x.jsonl").write_text('{"query": "a", "positive": "b"}\n', encoding="utf-8")
    premined_error(tmp_path, fe_rows(), *fragments, args=tuple(str(tmp_path / a) if a.endswith(".jsonl") else a for a in args))


# --- the scored pool out and back in (issue 28 part 2) ---------------------------------------------


def test_a_scored_pool_export_reads_back_unchanged(finished_tiny, tmp_path):
    """`--format scored-pool` writes export/scored-pool/{train,queries,documents}.parquet; `--premined` that folder
    into a new run gives the same ids, texts and scores: mined again with the same method, the same three tables."""
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    same = ("--method", "naive", "-n", "4", "--format", "scored-pool")
    summary = mine_json(data, run, *same)
    pool = run / "export" / "scored-pool"
    assert summary["export"] == str(pool / "train.parquet")
    assert sorted(p.name for p in pool.iterdir()) == ["documents.parquet", "queries.parquet", "train.parquet"]
    from hnmine.finetune.sources import load_source

    trained_on = load_source(run)  # `hnmine finetune RUN` reads the pool with its texts
    assert trained_on.shape == "scored-pool" and all(p.negatives for p in trained_on.pairs)

    back = tmp_path / "back"
    share_cache(done, back)
    premined_json(back, pool, *same)
    corpus = pq.read_table(back / "inputs/corpus.parquet").to_pylist()
    documents = pq.read_table(pool / "documents.parquet").to_pylist()
    assert [(r["doc_id"], r["text"]) for r in corpus] == [(r["document_id"], r["text"]) for r in documents]
    assert pq.read_table(back / "inputs/queries.parquet").to_pylist() == pq.read_table(pool / "queries.parquet").to_pylist()
    for name in ("train", "queries", "documents"):
        assert pq.read_table(back / "export/scored-pool" / f"{name}.parquet").equals(pq.read_table(pool / f"{name}.parquet")), name
