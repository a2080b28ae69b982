"""Hunted cases (issue 23, "The hunt", hunter 1): the files hnmine reads — the user's inputs, judgments,
vectors, configs and training files, and the files it writes and reads back (journal, manifests, caches) —
and the numeric bounds of every command. Each test is a case that broke on the main branch this file was
written against (a traceback, a silent wrong result, a misleading message, a nonsense value accepted) and
says in its docstring what broke. Listed in docs/reliability.md, "Hunted cases".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, snapshot, write_beir
from test_hunt import fails_and_creates_nothing, one_line_error


def copy_run(finished_tiny, tmp_path: Path, name: str = "run") -> Path:
    _, done = finished_tiny
    run = tmp_path / name
    shutil.copytree(done, run)
    return run


def tiny(tmp_path: Path, name: str = "data") -> Path:
    return write_beir(tmp_path / name, TINY_DOCS, TINY_QUERIES, TINY_QRELS)


@pytest.fixture
def eval_beir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "eval", TINY_DOCS, TINY_QUERIES, TINY_QRELS, split="test")


@pytest.fixture
def no_training(monkeypatch):
    """Training replaced by a failure: a test that reaches it has checked too late."""
    import hnmine.finetune.train

    def refuse(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(hnmine.finetune.train, "train_copy", refuse)


# --- finetune: the training files it reads ---------------------------------------------------------


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
@pytest.mark.parametrize("fmt", ["labeled-pair", "labeled-list"])
def test_labels_of_a_text_training_file_keep_negatives_negative(finished_tiny, tmp_path, fmt, file_format):
    """`hnmine finetune RUN` on a run exported as labeled-pair (or labeled-list) JSONL read each label as the
    text "0" — true — so every hard negative was trained on as a positive, silently (Parquet was right)."""
    from hnmine.finetune.sources import load_source

    run = copy_run(finished_tiny, tmp_path)
    if file_format == "jsonl":
        assert invoke(["export", "--out", run, "--format", fmt, "--file-format", "jsonl", "--quiet"]).exit_code == 0
        source = load_source(run)
    else:  # the same rows as a CSV another tool wrote (every cell text)
        rows = [("q one", "p one", "1"), ("q one", "n one", "0"), ("q two", "p two", "1"), ("q two", "n two", "0")]
        path = tmp_path / "pairs.csv"
        path.write_text("anchor,passage,label\n" + "".join(",".join(r) + "\n" for r in rows))
        source = load_source(path)
    assert source.pairs and all(p.negatives for p in source.pairs), source.pairs
    negatives = {n for p in source.pairs for n in p.negatives}
    assert not negatives & {p.positive for p in source.pairs}


def test_a_label_that_is_no_label_is_refused(tmp_path):
    """A label column holding 'yes'/'maybe' was read by truthiness: any text made the row a positive."""
    from hnmine.errors import InputError
    from hnmine.finetune.sources import load_source

    path = tmp_path / "pairs.jsonl"
    path.write_text(
        json.dumps({"anchor": "q", "passage": "p", "label": 1})
        + "\n"
        + json.dumps({"anchor": "q", "passage": "n", "label": "maybe"})
        + "\n"
    )
    with pytest.raises(InputError, match=r"pairs.jsonl: row 2: label column 'label' holds 'maybe', expected 0 or 1"):
        load_source(path)


def test_a_list_of_negatives_in_one_cell_is_several_negatives(tmp_path):
    """A training file whose `negative` cell holds a list (["n1", "n2"]) trained on the text "['n1', 'n2']"
    as one negative, silently (a positive list likewise); an anchor holding a list was the text of the list."""
    from hnmine.errors import InputError
    from hnmine.finetune.sources import load_source

    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"anchor": "q", "positive": "p", "negative": ["n1", "n2"]}) + "\n")
    [pair] = load_source(path).pairs
    assert pair.negatives == ("n1", "n2")
    path.write_text(json.dumps({"anchor": ["q"], "positive": "p", "negative": "n"}) + "\n")
    with pytest.raises(InputError, match=r"t.jsonl: row 1: anchor column 'anchor' holds a list, expected text"):
        load_source(path)


# --- finetune: numeric bounds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        # OverflowError: cannot convert float infinity to integer (a traceback, after loading the model)
        (["--epochs", "inf"], "--epochs must be a finite number, got inf"),
        # trained to NaN, then "non-finite embeddings at bfloat16 (try --eval-dtype float32)"
        (["--learning-rate", "inf"], "--learning-rate must be a finite number, got inf"),
        (["--learning-rate", "1e308"], "--learning-rate must be"),  # trained and reported, as if sane
        (["--max-steps", "99999999999999999999"], "--max-steps must be between 1 and"),  # trained until killed
        (["--batch-size", "99999999999999999999"], "--batch-size must be between 2 and 65,536"),  # OverflowError traceback
        (["--threads", "100000000"], "--threads must be between 1 and 4,096"),  # a segmentation fault
        (["--eval-batch-size", "99999999999999999999"], "--eval-batch-size must be between 1 and 65,536"),
        (["--negatives", "99999999999"], "--negatives must be between 0 and 1,000"),
        (["--max-length", "99999999999999"], "--max-length must be between 1 and 1,000,000"),
        (["--epochs", "1e300"], "--epochs must be between"),  # trained until killed
    ],
)
def test_finetune_numbers_out_of_bounds_are_refused_before_training(tmp_path, eval_beir, no_training, args, message):
    """finetune had lower bounds only: infinite or enormous values crashed (a traceback, a segfault with
    --threads 10^8), trained for ever, or trained to NaN and blamed the evaluation dtype."""
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"anchor": ["a", "b"], "positive": ["p", "q"], "negative": ["n", "m"]}), path)
    one_line_error(invoke(["finetune", path, "--eval", eval_beir, "--quiet", *args]), message)


# --- --config TOML -------------------------------------------------------------------------------


def test_a_config_file_with_a_byte_order_mark_is_read(finished_tiny, tmp_path):
    """A config saved by a Windows editor (UTF-8 with a byte-order mark) was refused as
    `not valid TOML (Invalid statement (at line 1, column 1))`: every input file hnmine reads skips the mark."""
    run = copy_run(finished_tiny, tmp_path)
    config = tmp_path / "mine.toml"
    config.write_bytes(b"\xef\xbb\xbf[filter]\nmethod = 'naive'\n")
    result = invoke(["filter", "--out", run, "--config", config, "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "manifests/filter.json").read_text())["settings"]["options"]["method"] == "naive"


@pytest.mark.parametrize("table", ["", "[filter]\n"])
def test_one_option_spelled_two_ways_in_a_config_table_is_refused(finished_tiny, tmp_path, table):
    """`num_negatives = 3` and `num-negatives = 4` in one table (TOML sees two keys) ran with whichever came
    last, silently: one of the user's two values was dropped."""
    run = copy_run(finished_tiny, tmp_path)
    config = tmp_path / "mine.toml"
    config.write_text(f"{table}num_negatives = 3\nnum-negatives = 4\n")
    before = snapshot(run)
    where = f"{config}: {table.strip() + ' ' if table else ''}"
    one_line_error(
        invoke(["filter", "--out", run, "--config", config, "--quiet"]), f"{where}num_negatives and num-negatives name one option"
    )
    assert snapshot(run) == before


@pytest.mark.parametrize("key, value", [("force", "true"), ("out", '"elsewhere"'), ("quiet", "true")])
def test_a_run_option_in_a_stage_table_is_refused(finished_tiny, tmp_path, key, value):
    """`[export] force = true` made `hnmine mine` redo every stage (the whole corpus encoded again), not only
    the export: a stage table may hold only that stage's options (README), and `force`, `out`, `quiet`…
    are options of the command."""
    data, _ = finished_tiny
    run = copy_run(finished_tiny, tmp_path)
    config = tmp_path / "mine.toml"
    config.write_text(f"[export]\n{key} = {value}\n")
    before = snapshot(run)
    one_line_error(
        invoke(["mine", data, "--out", run, "--config", config, "--quiet"]),
        f"{config}: [export] {key}: not an option of the export stage (an option of the command: at the top of the file, or under [mine])",
    )
    assert snapshot(run) == before


# --- the user's input files ------------------------------------------------------------------------


def _beir_with_doc(tmp_path: Path, row: int, **fields) -> Path:
    docs = [dict(d) for d in TINY_DOCS]
    docs[row - 1].update(fields)
    return write_beir(tmp_path / "data", docs, TINY_QUERIES, TINY_QRELS)


def test_a_list_in_a_later_row_is_named_at_its_row(tmp_path):
    """Row 3's text was a list and the message said `row 1: document text column 'text' holds a list`: the reader
    had wrapped every text of the column in a list to hold row 3's, and the message pointed at the wrong line."""
    data = _beir_with_doc(tmp_path, 3, text=["Cold brew", "steeps"])
    fails_and_creates_nothing(tmp_path, [data], f"{data / 'corpus.jsonl'}: row 3: document text column 'text' holds a list, expected text")


def test_an_object_in_a_text_column_is_refused(tmp_path):
    """A text that was a JSON object in one row (`"text": {"en": "…"}`) among plain texts became the document
    `{"en": "…"}`, silently (a column of objects only was refused)."""
    data = _beir_with_doc(tmp_path, 3, text={"en": "Cold brew steeps coarse coffee."})
    fails_and_creates_nothing(
        tmp_path, [data], f"{data / 'corpus.jsonl'}: row 3: document text column 'text' holds an object, expected text"
    )


def test_an_object_among_pairs_positives_is_refused(tmp_path):
    """A pairs file whose positive was an object in one row mined the object's JSON as a positive text."""
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"query": "q one", "positive": "p one"}, {"query": "q two", "positive": {"text": "p two"}}]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fails_and_creates_nothing(tmp_path, [pairs], f"{pairs}: row 2: positive column 'positive' holds an object, expected text")


@pytest.mark.parametrize("grade", ["1_0", "٢"])
def test_a_grade_written_as_no_number_is_refused(tmp_path, grade):
    """A qrels grade `1_0` was read as 10 and `٢` (an Arabic-Indic digit) as 2: Python's float() takes both,
    no qrels file means them."""
    data = write_beir(tmp_path / "data", TINY_DOCS, TINY_QUERIES, [("q1", "d1", grade), ("q2", "d5", 1), ("q3", "d9", 1)])
    fails_and_creates_nothing(tmp_path, [data], f"row 1: relevance column 'score' holds '{grade}', expected an integer")


@pytest.mark.parametrize("first", ["q1\td1\t1", "q1 0 d1 1"])
def test_a_qrels_file_without_its_header_line_is_named_as_such(tmp_path, first):
    """A qrels TSV without its header line (or a TREC file) was refused with `no column 'query id' (tried …;
    name it with --qrels-query-column)` listing the first judgment as columns: following the advice made the
    first judgment a header, lost silently."""
    data = tiny(tmp_path)
    qrels = data / "qrels" / "train.tsv"
    qrels.write_text(first + "\n" + ("q2\td5\t1\n" if "\t" in first else "q2 0 d5 1\n"))
    fails_and_creates_nothing(tmp_path, [data], f"{qrels}: its first line ({', '.join(first.split())}) is a judgment, not a header")


@pytest.mark.parametrize("kind", ["csv", "tsv"])
def test_a_csv_cell_of_several_megabytes_is_read(tmp_path, kind):
    """A CSV/TSV corpus with a text over 1 MB (a book chapter) was refused: `cannot parse (straddling object
    straddles two block boundaries (try to increase block size?))`, an option the user cannot give."""
    from hnmine.io.files import read_table

    sep = "," if kind == "csv" else "\t"
    big = "word " * 500_000  # 2.5 MB
    path = tmp_path / f"corpus.{kind}"
    path.write_text(f"_id{sep}text\nd1{sep}{big}\nd2{sep}short\n")
    table = read_table(path)
    assert table.column("text").to_pylist() == [big, "short"]


# --- vectors: the user's, and the embedding cache ---------------------------------------------------


def _vectors_parquet(tmp_path: Path, values: list, value_type=None) -> Path:
    path = tmp_path / "v.parquet"
    pq.write_table(pa.table({"emb": pa.array(values, value_type)}), path)
    return path


@pytest.mark.parametrize(
    "case, values, message",
    [
        # ValueError: setting an array element with a sequence (a traceback)
        ("nested", [[[0.1, 0.2]] for _ in TINY_DOCS], "column 'emb' holds lists of list<"),
        # ValueError: could not convert string to float: 'a' (a traceback)
        ("text", [["a", "b"]] + [["1", "2"] for _ in TINY_DOCS[1:]], "column 'emb' holds lists of string, not numbers"),
        # texts that spell numbers were read as those numbers, silently
        ("numeric-text", [["1", "2"] for _ in TINY_DOCS], "column 'emb' holds lists of string, not numbers"),
        # booleans were read as 1 and 0, silently
        ("bool", [[True, False] for _ in TINY_DOCS], "column 'emb' holds lists of bool, not numbers"),
    ],
)
def test_parquet_vectors_that_are_not_numbers_are_refused(tmp_path, case, values, message):
    """Parquet vectors whose lists hold lists, texts or booleans: a traceback, or texts and booleans taken as
    numbers (a .npy of them is refused)."""
    data = tiny(tmp_path)
    path = _vectors_parquet(tmp_path, values)
    one_line_error(invoke(["index", data, "--out", tmp_path / "run", "--corpus-embeddings", path, "--quiet"]), f"{path}: {message}")


def test_float64_vectors_beyond_float32_are_named_as_such(tmp_path):
    """float64 vectors with a value beyond float32's range (1e300) printed numpy's `RuntimeWarning: overflow
    encountered in cast` and its source line, then `holds non-finite values (row 1)`: three lines, and the
    values are finite."""
    import numpy as np
    from test_hunt import run_script

    data = tiny(tmp_path)
    vectors = np.ones((len(TINY_DOCS), 4))
    vectors[0, 1] = 1e300
    np.save(tmp_path / "v.npy", vectors)
    result = run_script(["index", data, "--out", tmp_path / "run", "--corpus-embeddings", tmp_path / "v.npy", "--quiet"])
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"hnmine: error: {tmp_path / 'v.npy'}: row 1 holds a value beyond float32's range (1e+300); scale the vectors down"
    ], result.stderr


def _npy_with_header(path: Path, header: bytes) -> Path:
    """A .npy whose header dictionary is `header` (padded as numpy pads it), then 24 bytes of data."""
    body = header + b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body + b"\x00" * 24)
    return path


DAMAGED_HEADER = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), "  # cut short: no closing brace


def test_a_npy_with_a_damaged_header_is_one_line(tmp_path):
    """A .npy whose header dictionary was cut short crashed in numpy's header parser with `tokenize.TokenError:
    ('EOF in multi-line statement', …)`, a traceback."""
    data = tiny(tmp_path)
    path = _npy_with_header(tmp_path / "v.npy", DAMAGED_HEADER)
    one_line_error(
        invoke(["index", data, "--out", tmp_path / "run", "--corpus-embeddings", path, "--quiet"]), f"{path}: not a readable .npy file"
    )


@pytest.mark.parametrize("damaged", ["chunk-000000.npy", "order.npy"])
def test_a_damaged_file_of_an_interrupted_encode_is_encoded_again(finished_tiny, tmp_path, damaged):
    """An interrupted encode of an older hnmine left chunks and its order.npy in cache/embeddings/KEY.parts; one
    whose header was damaged crashed the next run (`tokenize.TokenError`, a traceback) instead of being encoded
    again. Now the embedding store holds an unfinished encode's work, and such a folder is removed unread."""
    import numpy as np

    run = copy_run(finished_tiny, tmp_path)
    cache = run / "cache" / "embeddings"
    for final in list(cache.glob("*.npy")):  # the corpus's encode back to "interrupted after its first chunk"
        n = np.load(final).shape[0]
        if n != len(TINY_DOCS):
            continue  # the queries' (the retrieve stage encodes them)
        parts = cache / (final.stem + ".parts")
        parts.mkdir()
        np.save(parts / "order.npy", np.arange(n))
        np.save(parts / "chunk-000000.npy", np.load(final))
        _npy_with_header(parts / damaged, DAMAGED_HEADER)
        final.unlink()
        final.with_name(final.name + ".sha256").unlink()
    result = invoke(["index", "--out", run, "--force", "--quiet"])
    assert result.exit_code == 0, result.output
    assert not list(cache.glob("*.parts")) and list(cache.glob("*.npy"))


# --- the machine-wide dtype choice cache ($HNMINE_CACHE_DIR) ---------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        {"seconds": [1, 2]},  # TypeError: cannot convert dictionary update sequence element #0 to a sequence
        {"seconds": 5},  # TypeError: 'int' object is not iterable
        {"seconds": {"float32": "fast", "bfloat16": None}},  # kept, and recorded in the manifest as timings
        {"reason": ["x"], "machine": 7},  # kept, and recorded in the manifest
    ],
)
def test_a_damaged_dtype_choice_is_measured_again(tmp_path, monkeypatch, damage):
    """`--dtype auto` trusts the choice cached in $HNMINE_CACHE_DIR/dtype-choice/*.json: a damaged one
    crashed every run on the machine with a TypeError traceback (`seconds` not a mapping), or its garbage
    was recorded in the run's manifest as the measurement behind the dtype."""
    from hnmine.inference import dtype as dtype_choice

    monkeypatch.setenv("HNMINE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(dtype_choice, "cpu_info", lambda: ("Test CPU", frozenset({"avx512_bf16"})))
    calls = []
    monkeypatch.setattr(dtype_choice, "_time_dtypes", lambda *a, **k: calls.append(1) or {"float32": 1.0, "bfloat16": 0.5})
    dtype_choice.choose_cpu_dtype.cache_clear()
    try:
        dtype_choice.choose_cpu_dtype("all-MiniLM-L6-v2", "bi-encoder", 2)
        [saved] = (tmp_path / "cache").glob("dtype-choice/*.json")
        saved.write_text(json.dumps({**json.loads(saved.read_text()), **damage}))
        dtype_choice.choose_cpu_dtype.cache_clear()  # a new process
        choice = dtype_choice.choose_cpu_dtype("all-MiniLM-L6-v2", "bi-encoder", 2)
    finally:
        dtype_choice.choose_cpu_dtype.cache_clear()
    assert len(calls) == 2 and not choice.cached
    assert choice.seconds == {"float32": 1.0, "bfloat16": 0.5} and isinstance(choice.reason, str) and choice.machine.startswith("Test CPU")


# --- --judgments files ------------------------------------------------------------------------------


def _write_judgments(path: Path, kind: str) -> Path:
    """q1's candidate d10 judged relevant, in one of the shapes a judgments file comes in."""
    import gzip

    if kind == "category-parquet":  # pandas writes a categorical column as a dictionary column
        ids = {n: pa.array([v]).dictionary_encode() for n, v in (("query_id", "q1"), ("doc_id", "d10"))}
        pq.write_table(pa.table({**ids, "relevance": pa.array([1], pa.int32())}), path)
    elif kind == "csv":
        path.write_text("query_id,doc_id,relevance\nq1,d10,1\n")
    elif kind == "jsonl":
        path.write_text(json.dumps({"query_id": "q1", "doc_id": "d10", "relevance": 1}) + "\n")
    elif kind == "tsv-gz":
        path.write_bytes(gzip.compress(b"query-id\tcorpus-id\tscore\nq1\td10\t1\n"))
    return path


@pytest.mark.parametrize(
    "kind, name",
    [
        # `column 'query_id' must hold text, not dictionary<values=string, indices=int32, ordered=0>`
        ("category-parquet", "judged.parquet"),
        # `judged.csv:1: expected `query-id corpus-id score` (BEIR) or `qid 0 docid rel` (TREC), got 1 field(s)`
        # (eval --qrels reads the same file)
        ("csv", "judged.csv"),
        ("jsonl", "judged.jsonl"),
        # `judged.tsv.gz: not UTF-8 text (invalid start byte at byte 1)` (the inputs read .gz qrels)
        ("tsv-gz", "judged.tsv.gz"),
    ],
)
def test_a_judgments_file_in_another_shape_is_read(finished_tiny, tmp_path, kind, name):
    """`--judgments` read only its own Parquet and BEIR/TREC text: a categorical Parquet column, a CSV or JSONL
    qrels (which `eval --qrels` reads) and a gzip-compressed qrels were refused, each with a message about
    something else (text, fields, UTF-8)."""
    run = copy_run(finished_tiny, tmp_path)
    path = _write_judgments(tmp_path / name, kind)
    result = invoke(["filter", "--out", run, "--judgments", path, "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["filter"]["judgments"]["by_source"][name]["new_positives"] == 1


@pytest.mark.parametrize(
    "columns, message",
    [
        # `not a readable Parquet file (Multiple matches for FieldRef.Name(relevance) in …)`
        ({"query_id": ["q1"], "doc_id": ["d10"], "relevance": [1], "relevance ": [0]}, "column 'relevance' appears twice in the header"),
        # read: a verdict on the document "" (a BEIR/TREC file with an empty id is refused)
        ({"query_id": ["q1", "q1"], "doc_id": ["d10", ""], "relevance": [1, 0]}, "row 2: column 'doc_id' is empty"),
    ],
)
def test_a_damaged_judgments_parquet_is_named(finished_tiny, tmp_path, columns, message):
    """A judgments Parquet naming a column twice was called unreadable; one with an empty id was applied."""
    run = copy_run(finished_tiny, tmp_path)
    path = tmp_path / "judged.parquet"
    names = [n.strip() for n in columns]
    pq.write_table(pa.Table.from_arrays([pa.array(v) for v in columns.values()], names=names), path)
    before = snapshot(run)
    one_line_error(invoke(["filter", "--out", run, "--judgments", path, "--quiet"]), f"{path}: {message}")
    assert snapshot(run) == before


# --- the review journal (RUN/review/journal.jsonl) ---------------------------------------------------

VERDICT = {"op": "judge", "query_id": "q1", "doc_id": "d2", "relevance": 0, "source": "human", "time": "2026-01-01T00:00:00.000Z"}


def _journal_run(finished_tiny, tmp_path: Path, raw: bytes) -> Path:
    from hnmine.journal import JOURNAL_FILE

    run = copy_run(finished_tiny, tmp_path)
    (run / JOURNAL_FILE).parent.mkdir(parents=True, exist_ok=True)
    (run / JOURNAL_FILE).write_bytes(raw)
    return run


def test_a_journal_saved_with_a_byte_order_mark_is_read(finished_tiny, tmp_path):
    """A journal opened and saved in a Windows editor (a UTF-8 byte-order mark before its first line) was refused:
    `journal.jsonl:1: not a journal entry (invalid JSON)`, a line that holds a good entry."""
    run = _journal_run(finished_tiny, tmp_path, b"\xef\xbb\xbf" + json.dumps(VERDICT).encode() + b"\n")
    result = invoke(["review", run, "--export", tmp_path / "q.tsv"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "q.tsv").read_text() == "query-id\tcorpus-id\tscore\nq1\td2\t0\n"


def test_a_journal_line_that_is_not_utf8_is_named(finished_tiny, tmp_path):
    """A journal byte that is not UTF-8 (a damaged disk block, an editor in Latin-1) was replaced by U+FFFD:
    the verdict was exported and applied for the document 'd\\ufffd2', which exists nowhere, silently."""
    from hnmine.journal import JOURNAL_FILE

    raw = json.dumps(VERDICT).encode().replace(b'"d2"', b'"d\xe92"')
    run = _journal_run(finished_tiny, tmp_path, json.dumps({**VERDICT, "doc_id": "d3"}).encode() + b"\n" + raw + b"\n")
    before = snapshot(run)
    one_line_error(invoke(["review", run, "--export", tmp_path / "q.tsv"]), f"{run / JOURNAL_FILE}:2: not valid UTF-8")
    assert snapshot(run) == before and not (tmp_path / "q.tsv").exists()


def test_a_journal_line_with_a_field_twice_is_named(finished_tiny, tmp_path):
    """`{"relevance": 0, …, "relevance": 1}` in one journal line was read as relevance 1, silently (the input
    readers refuse a key twice in one object)."""
    from hnmine.journal import JOURNAL_FILE

    line = json.dumps(VERDICT)[:-1] + ', "relevance": 1}'
    run = _journal_run(finished_tiny, tmp_path, line.encode() + b"\n")
    one_line_error(invoke(["review", run, "--export", tmp_path / "q.tsv"]), f"{run / JOURNAL_FILE}:1: ", "'relevance' appears twice")


def test_a_verdict_on_an_id_holding_a_unicode_line_separator_keeps_the_journal_readable(finished_tiny, tmp_path):
    """An id holding U+2028 (or NEL, U+0085) is written raw in its journal line (JSON needs no escape), and the
    reader split lines at it as at a newline: one such verdict made the run's journal `invalid JSON` for good,
    every later filter and review failing; the qrels `review --export` wrote split there too when read back."""
    from hnmine.journal import JudgmentLog
    from hnmine.judgment_files import read_judgments

    run = copy_run(finished_tiny, tmp_path)
    log = JudgmentLog(run)
    log.judge("q1", "d\u20282", 0)
    log.judge("q\x851", "d3", 1)
    log.close()
    result = invoke(["review", run, "--export", tmp_path / "q.tsv"])
    assert result.exit_code == 0, result.output
    back = read_judgments(tmp_path / "q.tsv")
    assert set(zip(back.column("query_id").to_pylist(), back.column("doc_id").to_pylist())) == {("q1", "d\u20282"), ("q\x851", "d3")}


# --- the run's manifests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value, fragment",
    [
        ("num_negatives", "abc", "must be a whole number"),
        ("num_negatives", 10**6, "must be between 1 and 1,000"),
        ("method", "bogus", "unknown method"),
    ],
)
def test_a_damaged_record_of_an_option_names_the_manifest(finished_tiny, tmp_path, option, value, fragment):
    """A command takes the options it is not given from the run's manifests. A damaged record there
    (`"num_negatives": "abc"`) was reported as `--num-negatives must be a whole number, got 'abc'`, a flag
    the user never typed, with nothing pointing at the file to fix."""
    run = copy_run(finished_tiny, tmp_path)
    path = run / "manifests" / "filter.json"
    manifest = json.loads(path.read_text())
    manifest["settings"]["options"][option] = value
    path.write_text(json.dumps(manifest))
    before = snapshot(run)
    flag = "--" + option.replace("_", "-")
    one_line_error(
        invoke(["filter", "--out", run, "--quiet"]),
        f"{path}: the run's record of {flag} is damaged (",
        fragment,
        f"give {flag}, or --defaults",
    )
    assert snapshot(run) == before
    assert invoke(["filter", "--out", run, "--defaults", "--quiet"]).exit_code == 0


# --- numeric bounds of the reading commands -----------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_review_min_gap_must_be_a_finite_number(finished_tiny, value):
    """`hnmine review RUN --min-gap nan` said `no suspected false negatives in RUN match (Δ ≥ +nan)`: a
    nonsense value taken as a filter that nothing passes (inf likewise; -inf a filter that everything passes)."""
    _, run = finished_tiny
    one_line_error(invoke(["review", run, "--min-gap", value]), f"--min-gap must be a finite number, got {value}")


# --- inputs that are not regular files -----------------------------------------------------------------


def _feed_fifo(path: Path, data: bytes) -> None:
    """A named pipe at `path` with a writer that writes `data` once (as `<(command)` or `mkfifo` would give)."""
    import os
    import threading

    os.mkfifo(path)

    def write() -> None:
        with open(path, "wb") as fh:
            fh.write(data)

    threading.Thread(target=write, daemon=True).start()


def test_an_input_file_that_is_a_named_pipe_is_refused_at_once(tmp_path):
    """`--corpus corpus.jsonl` where corpus.jsonl is a named pipe (mkfifo): hnmine reads an input more than once
    (the encoding check, the rows, the fingerprint), the pipe gives its bytes once, and the second read waited
    for a writer for ever: a hang."""
    import subprocess

    from conftest import HNMINE

    data = tiny(tmp_path)
    fifo = tmp_path / "corpus.jsonl"
    _feed_fifo(fifo, (data / "corpus.jsonl").read_bytes())
    args = ["mine", "--corpus", fifo, "--queries", data / "queries.jsonl", "--qrels", data / "qrels/train.tsv", "--out", tmp_path / "run"]
    result = subprocess.run([str(HNMINE), *map(str, args), "--quiet"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and not (tmp_path / "run").exists()
    assert result.stderr.strip().splitlines() == [
        f"hnmine: error: {fifo}: is a named pipe, not a file: hnmine reads an input more than once; save it to a file (corpus)"
    ], result.stderr


def test_a_config_given_through_a_pipe_is_read(finished_tiny, tmp_path):
    """`--config <(echo 'method = "naive"')` (a pipe) was refused as `no such config file`: it exists, it is
    just not a regular file, and a config is read once."""
    run = copy_run(finished_tiny, tmp_path)
    fifo = tmp_path / "mine.toml"
    _feed_fifo(fifo, b'[filter]\nmethod = "naive"\n')
    result = invoke(["filter", "--out", run, "--config", fifo, "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "manifests/filter.json").read_text())["settings"]["options"]["method"] == "naive"


@pytest.mark.parametrize("damage", ["abc", {"path": 5, "sha256": None}])
def test_a_damaged_record_of_the_runs_inputs_names_the_manifest(finished_tiny, tmp_path, damage):
    """`hnmine mine DATA --out RUN` with the run's own data, over a damaged identity record in
    manifests/inputs.json: `RUN holds a run of other inputs (queries …, qrels …); these differ (corpus)`, a
    claim about the user's data that is not true (with a damaged path: `corpus 5`)."""
    data, _ = finished_tiny
    run = copy_run(finished_tiny, tmp_path)
    path = run / "manifests" / "inputs.json"
    manifest = json.loads(path.read_text())
    manifest["stats"]["identity"]["corpus"] = damage
    path.write_text(json.dumps(manifest))
    before = snapshot(run)
    one_line_error(
        invoke(["mine", data, "--out", run, "--quiet"]),
        f"{path}: the record of the run's inputs is damaged (corpus); give --replace to mine these inputs into the run",
    )
    assert snapshot(run) == before


def test_vectors_named_in_capitals_are_read(tmp_path):
    """`--corpus-embeddings DOCS.NPY` (a name from a case-insensitive file system) was refused: `unknown
    embeddings format '.NPY' (valid: .npy, .parquet)`; every other input's format is told case-insensitively."""
    import numpy as np

    from hnmine.io.vectors import load_user_vectors

    np.save(tmp_path / "v.npy", np.ones((3, 4), np.float32))
    (tmp_path / "v.npy").rename(tmp_path / "DOCS.NPY")
    pq.write_table(pa.table({"emb": [[1.0, 2.0]] * 3}), tmp_path / "DOCS.PARQUET")
    assert load_user_vectors(tmp_path / "DOCS.NPY", 3, normalize=True).shape == (3, 4)
    assert load_user_vectors(tmp_path / "DOCS.PARQUET", 3, normalize=True).shape == (3, 2)


def test_a_saved_dataset_whose_splits_are_damaged_is_named(tmp_path):
    """A saved DatasetDict whose dataset_dict.json holds `"splits": "train"` (not a list) was read as the
    splits t, r, a, i, n: `several splits (a, i, n, r, t); choose one with --split`."""
    folder = tmp_path / "pairs_ds"
    folder.mkdir()
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": "train"}))
    fails_and_creates_nothing(tmp_path, [folder], f"{folder}: dataset_dict.json is not readable")


def test_a_lock_file_that_is_a_folder_is_named(finished_tiny, tmp_path):
    """A run whose .hnmine-lock had become a folder (a copy tool, a stray mkdir) was refused as
    `RUN: run directory is not writable (Is a directory)`: the run is writable, the lock is what is wrong."""
    run = copy_run(finished_tiny, tmp_path)
    (run / ".hnmine-lock").unlink()
    (run / ".hnmine-lock").mkdir()
    one_line_error(
        invoke(["filter", "--out", run, "--quiet"]), f"{run / '.hnmine-lock'}: is a folder, where the run keeps its lock file; remove it"
    )


def test_a_verdict_is_never_written_through_a_linked_review_folder(finished_tiny, tmp_path):
    """With RUN/review a link to a folder elsewhere (a copied or shared run), a verdict was appended to a
    journal.jsonl there and a session lock created beside it: a write outside the run directory, which every
    other writer of the run refuses."""
    from hnmine.errors import RunDirError
    from hnmine.journal import JudgmentLog

    run = copy_run(finished_tiny, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "review").symlink_to(elsewhere)
    log = JudgmentLog(run)
    with pytest.raises(RunDirError, match="never through a link"):
        log.judge("q1", "d2", 0)
    log.close()
    assert list(elsewhere.iterdir()) == []
