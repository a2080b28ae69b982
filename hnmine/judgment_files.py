"""Judgments files: a --judgments file read as a judgments table (this project's Parquet, BEIR or TREC qrels
text, a CSV or JSON-lines qrels table), and judgments written as qrels (`hnmine review --export`)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pyarrow as pa

from hnmine.errors import InputError
from hnmine.io.inputs import RELEVANCE_MAX, RELEVANCE_MIN
from hnmine.judgments import fold_judgments, judgments_table
from hnmine.schemas import JUDGMENTS_SCHEMA

QRELS_FORMATS = ("beir", "trec")


def read_judgments(path: str | Path) -> pa.Table:
    """Judgments from a file: this module's Parquet table, a BEIR qrels TSV (`query-id corpus-id
    score` with its header), a TREC qrels file (`qid 0 docid rel`, whitespace separated), or a CSV or
    JSON-lines qrels table (as `eval --qrels` reads them); text files may be gzip-compressed (.gz).
    Ids stay text exactly as written. Rows of a qrels file get the file's name as their source."""
    from hnmine.io.files import check_regular_file, check_utf8_path

    path = Path(path)
    check_utf8_path(path)
    check_regular_file(path, "--judgments")  # the filter reads it again for its fingerprint
    if not path.is_file():
        raise InputError(f"{path}: no such judgments file")
    kind = _table_kind(path)
    if kind == "parquet":
        return _read_parquet(path)
    if kind is not None:  # CSV or JSON lines: a qrels table with named columns, as `eval --qrels` reads it
        return _read_qrels_table(path)
    try:
        opened = gzip.open(path, "rt", encoding="utf-8-sig") if path.suffix.lower() == ".gz" else open(path, encoding="utf-8-sig")
        with opened as fh:  # a byte-order mark is not part of the first query id
            lines = fh.read().split("\n")  # at "\n" alone: an id may hold U+2028 or NEL (\r is stripped with the fields)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError) as exc:  # EOFError: a .gz cut short
        raise InputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    return _parse_qrels(lines, str(path), path.name)


def _table_kind(path: Path) -> str | None:
    """'parquet', 'csv' or 'jsonl' for a table file (by its name, .gz aside); None for qrels text (BEIR TSV, TREC)."""
    from hnmine.io.files import READERS

    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = READERS.get(suffixes[-1]) if suffixes else None
    return kind if kind in ("parquet", "csv", "jsonl") else None


def _read_qrels_table(path: Path) -> pa.Table:
    """A CSV or JSON-lines qrels table (query-id/query_id, corpus-id/doc_id, score/relevance columns)."""
    from hnmine.errors import MissingColumn
    from hnmine.io.files import read_table
    from hnmine.io.inputs import QREL_SCORE_COLUMNS, qrels_from_table
    from hnmine.io.locate import InputSpec

    table = read_table(path)
    if not any(name in table.column_names for name in QREL_SCORE_COLUMNS):  # a verdict needs its grade
        raise MissingColumn(str(path), f"relevance (tried {'/'.join(QREL_SCORE_COLUMNS)})", table.column_names)
    qrels = qrels_from_table(InputSpec(), table, path)
    columns = (qrels.column(c).to_pylist() for c in ("query_id", "doc_id", "relevance"))
    return judgments_table({"query_id": q, "doc_id": d, "relevance": r, "source": path.name, "time": ""} for q, d, r in zip(*columns))


def _read_parquet(path: Path) -> pa.Table:
    import pyarrow.compute as pc

    from hnmine.errors import MissingColumn
    from hnmine.io.files import read_table

    table = read_table(path)  # one line for a damaged file, or for a column named twice
    for name in ("query_id", "doc_id", "relevance"):
        if name not in table.column_names:
            raise MissingColumn(str(path), name, list(table.column_names))
    n = table.num_rows
    cols = {}
    for name in ("query_id", "doc_id", "source", "time", "query_text_sha256", "doc_text_sha256"):
        if name in table.column_names:
            col = table.column(name)
            if pa.types.is_dictionary(col.type):  # a categorical column (pandas): its values are the texts
                col = pc.cast(col, col.type.value_type)
            if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
                # a number column would lose "001" -> 1 long before here: refuse rather than guess
                raise InputError(f"{path}: column '{name}' must hold text, not {col.type}")
            cols[name] = pc.cast(col, pa.string())
        elif name == "source":
            cols[name] = pa.array([path.name] * n, pa.string())
        elif name == "time":
            cols[name] = pa.array([""] * n, pa.string())
        else:  # a file's verdicts are by id, as qrels are: no text to check them against
            cols[name] = pa.nulls(n, pa.string())
    for name in ("query_id", "doc_id"):
        if cols[name].null_count:
            raise InputError(f"{path}: column '{name}' has empty values")
        empty = pc.equal(pc.utf8_trim_whitespace(cols[name]), "").to_numpy(zero_copy_only=False)
        if empty.any():  # as a qrels text with an empty id is refused: a verdict on no document
            raise InputError(f"{path}: row {int(empty.argmax()) + 1}: column '{name}' is empty")
    rel = table.column("relevance")
    if not pa.types.is_integer(rel.type) or rel.null_count:
        raise InputError(f"{path}: column 'relevance' must hold whole numbers (it is {rel.type})")
    bounds = pc.min_max(rel)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is not None and (low < RELEVANCE_MIN or high > RELEVANCE_MAX):
        raise InputError(f"{path}: column 'relevance' holds values out of range ({RELEVANCE_MIN:,} to {RELEVANCE_MAX:,})")
    cols["relevance"] = pc.cast(rel, pa.int32())
    cols["source"] = pc.fill_null(cols["source"], path.name)
    cols["time"] = pc.fill_null(cols["time"], "")
    return pa.table({f.name: cols[f.name] for f in JUDGMENTS_SCHEMA}, schema=JUDGMENTS_SCHEMA)


_INT = re.compile(r"[+-]?\d+")


def _parse_qrels(lines: list[str], label: str, source: str) -> pa.Table:
    """BEIR (3 tab-separated fields, a header line) or TREC (4 whitespace-separated fields)."""
    rows = []
    fields_seen = None
    by_tab = False  # BEIR files are tab-separated (an id may hold a space); TREC ones any whitespace
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if fields_seen is None:
            by_tab = len(line.split("\t")) in (3, 4)
        fields = [f.strip() for f in (line.split("\t") if by_tab else line.split())]
        if fields_seen is None:
            fields_seen = len(fields)
            if fields_seen not in (3, 4):
                raise InputError(
                    f"{label}:{lineno}: expected `query-id corpus-id score` (BEIR) or `qid 0 docid rel` (TREC), got {len(fields)} field(s)"
                )
            if not _INT.fullmatch(fields[-1]):
                continue  # the header line ("query-id corpus-id score")
        if len(fields) != fields_seen:
            raise InputError(f"{label}:{lineno}: {len(fields)} field(s), the file's first line has {fields_seen}")
        query_id, doc_id, rel = (fields[0], fields[2], fields[3]) if fields_seen == 4 else fields
        if not _INT.fullmatch(rel):
            raise InputError(f"{label}:{lineno}: relevance '{rel}' is not a whole number")
        if not RELEVANCE_MIN <= int(rel) <= RELEVANCE_MAX:
            raise InputError(f"{label}:{lineno}: relevance {rel} is out of range ({RELEVANCE_MIN:,} to {RELEVANCE_MAX:,})")
        if not query_id or not doc_id:
            raise InputError(f"{label}:{lineno}: empty query or document id")
        rows.append({"query_id": query_id, "doc_id": doc_id, "relevance": int(rel), "source": source, "time": ""})
    return judgments_table(rows)


def export_qrels(table: pa.Table, path: str | Path, format: str = "beir") -> int:
    """Write judgments (folded to one per pair first) as a qrels file: `beir` is the TSV with a
    `query-id corpus-id score` header, `trec` is `qid 0 docid rel`. Returns the rows written."""
    from hnmine.errors import UnknownName
    from hnmine.io.atomic import write_user_text

    if format not in QRELS_FORMATS:
        raise UnknownName("qrels format", format, list(QRELS_FORMATS))
    rows = fold_judgments(table).to_pylist()
    bad = re.compile(r"\s") if format == "trec" else re.compile(r"[\t\r\n]")
    for r in rows:
        for name in ("query_id", "doc_id"):
            if bad.search(r[name]):
                what = "whitespace" if format == "trec" else "a tab or line break"
                raise InputError(f"{name} {r[name]!r} holds {what}: it cannot be written as {format} qrels")
    if format == "beir":
        lines = ["query-id\tcorpus-id\tscore"] + [f"{r['query_id']}\t{r['doc_id']}\t{r['relevance']}" for r in rows]
    else:
        lines = [f"{r['query_id']} 0 {r['doc_id']} {r['relevance']}" for r in rows]
    write_user_text("\n".join(lines) + "\n", Path(path))
    return len(rows)
