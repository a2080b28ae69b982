"""Pre-mined datasets in (`--premined FILE`): a training set mined elsewhere is read as the run's data and its
candidates, so the filter cleans its false negatives without mining again.

The file's shape is told by its columns (hnmine.io.premined_formats; `--premined-format NAME` names it).
Queries and documents are known by their text (content-hash ids, as a pairs file's), or by the file's ids
where it has them (Tevatron, a scored pool); with --corpus (--queries) a text found there keeps that file's id,
matched on the title and text joined as hnmine writes them, else on the text alone. Documents of the file
that are in no corpus become the corpus. Every positive is a known positive (inputs/qrels.parquet), every
other document a row lists is a candidate (inputs/premined.parquet: the retrieve stage's candidates), ranked
by the file's scores where every one of the query's documents has one, else in the file's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hnmine.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

    from hnmine.io.inputs import Inputs
    from hnmine.io.locate import InputSpec
    from hnmine.io.premined_formats import Read, Row

# The shapes read, by name (the export formats of the same names write them).
PREMINED_FORMATS = ("flagembedding", "triplet", "n-tuple", "tevatron", "scored-pool")


def format_names() -> list[str]:
    return list(PREMINED_FORMATS)


def detect(columns: list[str]) -> str | None:
    """The shape a file's columns say, or None."""
    c = set(columns)
    if {"query_id", "document_ids", "scores"} <= c:
        return "scored-pool"
    if {"positive_passages", "negative_passages"} <= c:
        return "tevatron"
    if {"query", "pos", "neg"} <= c:
        return "flagembedding"
    if "negative_1" in c:
        return "n-tuple"
    if "negative" in c:
        return "triplet"
    return None


def shape_of(path: Path, columns: list[str], named: str | None) -> str:
    """The shape to read `path` as: `named` (--premined-format; its columns must be there), else told by its columns."""
    from hnmine.errors import MissingColumn, UnknownName
    from hnmine.io.premined_formats import SHAPES

    if named is not None:
        if named not in SHAPES:
            raise UnknownName("pre-mined format", named, format_names())
        missing = next((c for c in SHAPES[named].needs if c not in columns), None)
        if missing is not None:
            raise MissingColumn(f"{path} (--premined-format {named})", missing, columns)
        return named
    found = detect(columns)
    if found is None:
        raise InputError(
            f"{path}: cannot tell its format from its columns ({', '.join(columns) or 'none'}); name it with --premined-format "
            f"({', '.join(format_names())})"
        )
    return found


# --- what a file gives, read cheaply (before any stage: the teacher depends on it) ------------------


def head(path: Path, split: str | None = None) -> tuple[list[str], dict]:
    """(columns, first row) of a pre-mined file, without reading it whole where its format allows."""
    from hnmine.io.locate import is_pool_folder, pool_files

    path = Path(path)
    if is_pool_folder(path):
        path = pool_files(path)["train"]
    st = path.stat()
    return _head(str(path), split, (st.st_size, st.st_mtime_ns, st.st_ino))


@lru_cache(maxsize=8)
def _head(path_text: str, split: str | None, stamp: tuple) -> tuple[list[str], dict]:
    import json

    from hnmine.io.files import detect_format, is_gzip, is_saved_dataset, read_table

    path = Path(path_text)
    fmt = None if is_saved_dataset(path) else detect_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
            batch = next(pf.iter_batches(batch_size=1), None)
        except Exception:  # noqa: BLE001 - the reader names a damaged file when it reads it
            return [], {}
        return pf.schema_arrow.names, (batch.to_pylist()[0] if batch is not None and batch.num_rows else {})
    if fmt == "jsonl":
        import gzip

        with gzip.open(path, "rt", encoding="utf-8") if is_gzip(path) else open(path, encoding="utf-8-sig") as fh:
            for line in fh:
                if line.strip():
                    try:
                        first = json.loads(line)
                    except ValueError:
                        return [], {}
                    return (list(first), first) if isinstance(first, dict) else ([], {})
        return [], {}
    table = read_table(path, split=split)
    return table.column_names, (table.slice(0, 1).to_pylist()[0] if table.num_rows else {})


def teacher_name(options: Any) -> str | None:
    """`<sha256 prefix>` naming a pre-mined file's scores as the run's teacher: when --premined names a file that
    has scores and no --teacher is given (hnmine.teachers); else None."""
    from hnmine.io.premined_formats import SHAPES

    path = getattr(options, "premined", None)
    if path is None or tuple(getattr(options, "teacher", None) or ()) or not Path(path).exists():
        return None
    try:
        columns, first = head(Path(path), getattr(options, "split", None))
        shape = shape_of(Path(path), columns, getattr(options, "premined_format", None))
    except Exception:  # noqa: BLE001 - an unreadable file is the inputs stage's to name, with its row
        return None
    if not SHAPES[shape].scored(columns, first):
        return None
    from hnmine.io.hashing import content_hash

    return content_hash(Path(path))[:12]


# --- the run's tables ------------------------------------------------------------------------------


def load_premined(spec: InputSpec) -> Inputs:
    """The run's corpus, queries, qrels and premined tables from a pre-mined file (and --corpus/--queries/--qrels)."""
    from hnmine.io.files import read_table
    from hnmine.io.inputs import Inputs, read_corpus, read_queries
    from hnmine.io.locate import is_pool_folder, pool_files, resolve_files
    from hnmine.io.premined_formats import SHAPES

    files = resolve_files(spec)
    path = Path(files["premined"])  # type: ignore[arg-type]
    corpus_file, queries_file = files["corpus"], files["queries"]
    source = path
    if is_pool_folder(path):
        pool = pool_files(path)
        source, corpus_file, queries_file = pool["train"], pool["documents"], pool["queries"]
    table = read_table(source, split=spec.split)
    if table.num_rows == 0:
        raise InputError(f"{source}: no rows")
    shape = shape_of(source, table.column_names, spec.premined_format)
    if shape == "scored-pool" and (corpus_file is None or queries_file is None):
        raise InputError(
            f"{source} is a scored pool (query_ids and document_ids): give its texts with --queries and --corpus, or "
            f"--premined the folder holding its train, queries and documents tables"
        )
    if files["qrels"] is not None and (shape != "scored-pool" or "positive_ids" in table.column_names):
        raise InputError(f"{files['qrels']}: --qrels gives the positives of a scored pool that marks none; {source} names its own")
    if shape == "scored-pool" and files["qrels"] is None and "positive_ids" not in table.column_names:
        raise InputError(f"{source}: the scored pool marks no positives (no column positive_ids); give its judgments with --qrels")
    read = SHAPES[shape].read(table, source, spec)
    ids = _Ids(
        read_corpus(spec, corpus_file)[0] if corpus_file is not None else None,
        read_queries(spec, queries_file)[0] if queries_file is not None else None,
        corpus_file,
        queries_file,
    )
    built = _build(read, ids, source)
    qrels = _qrels(spec, files["qrels"], built) if files["qrels"] is not None else built.qrels()
    stats = {"premined_format": shape, "premined_rows": table.num_rows, "premined_scored": read.scored, **built.stats(ids)}
    premined = built.premined(read.scored, qrels)
    stats.update(documents=ids.corpus().num_rows, queries=len(built.queries), judgments=qrels.num_rows, candidates=premined.num_rows)
    return Inputs(
        corpus=ids.corpus(),
        queries=built.queries_table(ids),
        qrels=qrels,
        stats=stats,
        warnings=read.warnings + built.warnings,
        premined=premined,
    )


class _Ids:
    """The ids of texts: the --corpus/--queries ids of texts found there, the file's own ids, else content hashes."""

    def __init__(self, corpus: pa.Table | None, queries: pa.Table | None, corpus_file: Path | None, queries_file: Path | None):
        self.docs: dict[str, tuple[str, str]] = {}  # id -> (title, text), the corpus's first, in its order
        self.doc_by_text: dict[str, str] = {}
        self.queries: dict[str, str] = {}
        self.query_by_text: dict[str, str] = {}
        self.corpus_file, self.queries_file = corpus_file, queries_file
        self.from_corpus = 0
        if corpus is not None:
            for d, title, body in zip(*(corpus.column(c).to_pylist() for c in ("doc_id", "title", "text"))):
                self.docs[d] = (title, body)
            for d, (title, body) in self.docs.items():  # the text as hnmine writes it first, then the text alone
                self.doc_by_text.setdefault(f"{title} {body}" if title else body, d)  # hnmine.formats.joined_text
            for d, (_, body) in self.docs.items():
                self.doc_by_text.setdefault(body, d)
        if queries is not None:
            self.queries = dict(zip(queries.column("query_id").to_pylist(), queries.column("text").to_pylist()))
            for q, t in self.queries.items():
                self.query_by_text.setdefault(t, q)
        self.given_docs = len(self.docs)

    def doc(self, listed: Any, where: str) -> str:
        from hnmine.io.inputs import content_id

        if listed.doc_id is not None:
            known = self.docs.get(listed.doc_id)
            if listed.text is None:  # named by id: its text is in the documents table
                if known is None:
                    raise InputError(f"{where}: document '{listed.doc_id}' is not in {self.corpus_file}")
                return listed.doc_id
            if known is None:
                self.docs[listed.doc_id] = (listed.title, listed.text)
            elif known != (listed.title, listed.text):
                raise InputError(f"{where}: document id '{listed.doc_id}' has another text than {self.corpus_file or 'before'} gives it")
            return listed.doc_id
        found = self.doc_by_text.get(listed.text)
        if found is not None:
            return found
        new = content_id("d", listed.text)
        self.docs[new] = ("", listed.text)
        self.doc_by_text[listed.text] = new
        return new

    def query(self, row: Row, where: str) -> str:
        from hnmine.io.inputs import content_id

        if row.query_id is not None:
            known = self.queries.get(row.query_id)
            if row.query is None:
                if known is None:
                    raise InputError(f"{where}: query '{row.query_id}' is not in {self.queries_file}")
                return row.query_id
            if known is not None and known != row.query:
                raise InputError(f"{where}: query id '{row.query_id}' has another text than {self.queries_file or 'before'} gives it")
            self.queries[row.query_id] = row.query
            return row.query_id
        assert row.query is not None
        found = self.query_by_text.get(row.query)
        if found is None:
            found = content_id("q", row.query)
            self.queries[found] = row.query
            self.query_by_text[row.query] = found
        return found

    def corpus(self) -> pa.Table:
        import pyarrow as pa

        from hnmine.schemas import CORPUS_SCHEMA

        ids = list(self.docs)
        return pa.table(
            {"doc_id": ids, "title": [self.docs[d][0] for d in ids], "text": [self.docs[d][1] for d in ids]}, schema=CORPUS_SCHEMA
        )


@dataclass
class _Pool:
    """Each query's documents in the file's order: doc id -> [score, positive], queries in order of appearance."""

    queries: dict[str, dict[str, list]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    both: int = 0  # documents a query lists as a positive and as a negative (a positive then)
    repeated: int = 0  # a (query, document) listed again: one candidate

    def add(self, qid: str, did: str, score: float | None, positive: bool) -> None:
        docs = self.queries.setdefault(qid, {})
        entry = docs.get(did)
        if entry is None:
            docs[did] = [score, positive]
            return
        self.repeated += 1
        if entry[1] != positive:
            self.both += 1
            entry[1] = True
        if entry[0] is None:
            entry[0] = score

    def qrels(self) -> pa.Table:
        import pyarrow as pa

        from hnmine.schemas import QRELS_SCHEMA

        pairs = [(q, d) for q, docs in self.queries.items() for d, (_, pos) in docs.items() if pos]
        n = len(pairs)
        return pa.table(
            {"query_id": [q for q, _ in pairs], "doc_id": [d for _, d in pairs], "relevance": [1] * n, "is_positive": [True] * n},
            schema=QRELS_SCHEMA,
        )

    def queries_table(self, ids: _Ids) -> pa.Table:
        import pyarrow as pa

        from hnmine.schemas import QUERIES_SCHEMA

        return pa.table({"query_id": list(self.queries), "text": [ids.queries[q] for q in self.queries]}, schema=QUERIES_SCHEMA)

    def premined(self, scored: bool, qrels: pa.Table) -> pa.Table:
        """Every listed document of each query, ranked: by score where the file gives them (ties in the file's order)."""
        import pyarrow as pa

        from hnmine.schemas import PREMINED_SCHEMA

        judged = qrels.filter(qrels.column("is_positive"))
        positive = set(zip(judged.column("query_id").to_pylist(), judged.column("doc_id").to_pylist()))
        cols: dict[str, list] = {name: [] for name in PREMINED_SCHEMA.names}
        for q, docs in self.queries.items():
            items = list(docs.items())
            if scored and all(s is not None for s, _ in docs.values()):
                items.sort(key=lambda item: -item[1][0])  # stable: ties keep the file's order
            for rank, (d, (score, _)) in enumerate(items, start=1):
                for name, value in zip(PREMINED_SCHEMA.names, (q, d, rank, score, (q, d) in positive)):
                    cols[name].append(value)
        return pa.table(cols, schema=PREMINED_SCHEMA)

    def stats(self, ids: _Ids) -> dict:
        return {
            "premined_documents_listed_twice": self.repeated,
            "premined_negatives_that_are_positives": self.both,
            "documents_from_corpus": ids.given_docs,
            "documents_from_premined": len(ids.docs) - ids.given_docs,
        }


def _build(read: Read, ids: _Ids, path: Path) -> _Pool:
    pool = _Pool()
    for row in read.rows:
        where = f"{path}: row {row.row}"
        qid = ids.query(row, where)
        for listed in row.docs:
            pool.add(qid, ids.doc(listed, where), listed.score, listed.positive)
    if pool.both:
        pool.warnings.append(f"{path}: {pool.both} documents are listed as a negative of a query they are a positive of; kept as positives")
    return pool


def _qrels(spec: InputSpec, path: Path | None, pool: _Pool) -> pa.Table:
    """A scored pool's positives from --qrels: the judgments of its queries and documents (the others left out)."""
    import pyarrow as pa

    from hnmine.io.files import read_table
    from hnmine.io.inputs import qrels_from_table

    assert path is not None
    qrels = qrels_from_table(spec, read_table(path), path)
    q, d = qrels.column("query_id").to_pylist(), qrels.column("doc_id").to_pylist()
    known = [qid in pool.queries and did in pool.queries[qid] for qid, did in zip(q, d)]
    if not all(known):
        pool.warnings.append(
            f"{path}: {known.count(False)} judgments name a query the pool does not hold or a document it does not list "
            f"for that query; left out (a positive the pool has no score of)"
        )
    qrels = qrels.filter(pa.array(known, pa.bool_()))
    positive = {qid for qid, p in zip(qrels.column("query_id").to_pylist(), qrels.column("is_positive").to_pylist()) if p}
    if not positive:
        raise InputError(
            f"{path}: no positive judgment names a query of the pool and one of its documents (check --min-relevance and the ids)"
        )
    left = [qid for qid in pool.queries if qid not in positive]
    for qid in left:
        del pool.queries[qid]
    if left:
        pool.warnings.append(f"{path}: {len(left)} queries of the pool have no positive judgment; left out")
    return qrels.filter(pa.array([qid in positive for qid in qrels.column("query_id").to_pylist()], pa.bool_()))
