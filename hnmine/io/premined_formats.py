"""The shapes of pre-mined datasets, each read into the same rows: a query and the documents the row lists for
it, positives marked, with the file's score of each where it gives one (hnmine.io.premined builds the run's
tables from them).

Every shape is the one a tool writes: FlagEmbedding's JSONL (`query`, `pos`, `neg`, `pos_scores`, `neg_scores`),
sentence-transformers' triplet and n-tuple (the anchor and positive columns first, `negative` or `negative_1..n`,
and `scores` = [positive, negatives...] with output_scores), Tevatron's JSONL (passages with `docid`, `title`,
`text`, `score`), and the scored pool (`query_id`, `document_ids`, `scores`, and `positive_ids` where hnmine wrote
it; the texts in its queries and documents tables). A bad value is an InputError naming the file, row and column.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from hnmine.errors import InputError, MissingColumn
from hnmine.io.files import mixed_rows


@dataclass
class Listed:
    """A document one row lists for its query."""

    text: str | None  # None: named by its id only (a scored pool: the text is in its documents table)
    doc_id: str | None  # None: known by its text (content-hash id, or the --corpus id of that text)
    score: float | None
    positive: bool
    title: str = ""


@dataclass
class Row:
    row: int  # 1-based row of the file
    query: str | None  # None: named by its id only (a scored pool)
    query_id: str | None
    docs: list[Listed]


@dataclass
class Read:
    rows: list[Row]
    scored: bool  # every listed document has the file's score
    warnings: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # role -> the column read (anchor, positive)


@dataclass(frozen=True)
class Shape:
    needs: tuple[str, ...]  # columns a file of this shape has (by which it is told apart)
    read: Callable[[pa.Table, Path, Any], Read]
    scored: Callable[[list[str], dict], bool]  # from the columns and the first row: whether the file gives scores


# --- values ---------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)


class _Cell:
    """Where a value is, for messages: `FILE: row N: column 'neg' item 2`."""

    def __init__(self, path: Path, row: int, column: str, item: int | None = None):
        self.path, self.row, self.column, self.item = path, row, column, item

    def __str__(self) -> str:
        item = f" item {self.item}" if self.item is not None else ""
        return f"{self.path}: row {self.row}: column '{self.column}'{item}"

    def at(self, item: int) -> _Cell:
        return _Cell(self.path, self.row, self.column, item)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def text(value: Any, cell: _Cell) -> str:
    if _missing(value):
        raise InputError(f"{cell} is missing")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{cell} is not valid UTF-8") from None
    if not isinstance(value, str):
        raise InputError(f"{cell} holds {_kind(value)}, expected text")
    if not value.strip():
        raise InputError(f"{cell} is empty")
    return value


def identifier(value: Any, cell: _Cell) -> str:
    """An id as text (hnmine.io.files.id_text: numbers in decimal), never empty."""
    from hnmine.io.files import id_text

    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _missing(value):
        value = id_text(value)
    return text(value, cell)


def number(value: Any, cell: _Cell) -> float:
    """A score: a number, or a number's text (a JSON file's numbers are read as written)."""
    f = None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        f = float(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        f = float(value)
    if f is None or not math.isfinite(f):
        raise InputError(f"{cell} holds {value!r}, expected a finite number")
    return f


def a_list(value: Any, cell: _Cell, mixed: dict[str, int]) -> list:
    """A list cell. A JSON list written as text (CSV, stringified columns) is read as that list; other text is
    refused, never taken as one item (a JSON file mixing lists with texts or objects had them wrapped: `mixed`,
    the first row of each, hnmine.io.files.mixed_rows)."""
    for kind, what in (("other", "text"), ("object", "an object")):
        if mixed.get(kind) == cell.row:
            raise InputError(f"{cell} holds {what}, expected a list")
    if _missing(value):
        raise InputError(f"{cell} is missing")
    if isinstance(value, str):
        v = value.strip()
        parsed = None
        if v.startswith("[") and v.endswith("]"):
            try:
                parsed = json.loads(v)
            except ValueError:
                parsed = None
        if not isinstance(parsed, list):
            raise InputError(f"{cell} holds text, expected a list")
        return parsed
    if not isinstance(value, list):
        raise InputError(f"{cell} holds {_kind(value)}, expected a list")
    return value


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", bool: "true/false", int: "a number", float: "a number"}
    return names.get(type(value), f"a {type(value).__name__}")


class _Column:
    """A column's values, with the first rows of what a JSON reader wrapped to sit beside lists (texts, objects)."""

    def __init__(self, table: pa.Table, path: Path, name: str):
        if name not in table.column_names:
            raise MissingColumn(str(path), name, table.column_names)
        self.name, self.path = name, path
        self.values = table.column(name).to_pylist()
        self.mixed = mixed_rows(table, name)

    def cell(self, i: int) -> _Cell:
        return _Cell(self.path, i + 1, self.name)

    def text(self, i: int) -> str:
        return text(self.values[i], self.cell(i))

    def texts(self, i: int, *, at_least_one: str | None = None) -> list[str]:
        cell = self.cell(i)
        items = a_list(self.values[i], cell, self.mixed)
        if at_least_one and not items:
            raise InputError(f"{cell} is an empty list: {at_least_one}")
        return [text(v, cell.at(k)) for k, v in enumerate(items, start=1)]

    def scores(self, i: int, n: int, of: str) -> list[float]:
        cell = self.cell(i)
        items = a_list(self.values[i], cell, self.mixed)
        if len(items) != n:
            raise InputError(f"{cell} holds {len(items)} scores for {n} {of}")
        return [number(v, cell.at(k)) for k, v in enumerate(items, start=1)]


# --- FlagEmbedding ---------------------------------------------------------------------------------

_NO_POSITIVE = "a row needs a positive"


def _flagembedding(table: pa.Table, path: Path, spec: Any) -> Read:
    query, pos, neg = (_Column(table, path, c) for c in ("query", "pos", "neg"))
    names = table.column_names
    scored = _flagembedding_scored(names, {})
    warnings = []
    if not scored and ("pos_scores" in names or "neg_scores" in names):
        has = "pos_scores" if "pos_scores" in names else "neg_scores"
        warnings.append(f"{path}: column '{has}' without its pair: the file's scores are not used; the teacher scores every pair")
    if "prompt" in names:
        warnings.append(f"{path}: column 'prompt' is not used; give the instruction with --query-prompt")
    pos_scores = _Column(table, path, "pos_scores") if scored else None
    neg_scores = _Column(table, path, "neg_scores") if scored else None
    rows = []
    for i in range(table.num_rows):
        positives, negatives = pos.texts(i, at_least_one=_NO_POSITIVE), neg.texts(i)
        ps = pos_scores.scores(i, len(positives), "positives") if pos_scores else [None] * len(positives)
        ns = neg_scores.scores(i, len(negatives), "negatives") if neg_scores else [None] * len(negatives)
        docs = [Listed(t, None, s, True) for t, s in zip(positives, ps)] + [Listed(t, None, s, False) for t, s in zip(negatives, ns)]
        rows.append(Row(i + 1, query.text(i), None, docs))
    return Read(rows, scored, warnings)


def _flagembedding_scored(columns: list[str], first: dict) -> bool:
    return "pos_scores" in columns and "neg_scores" in columns


# --- sentence-transformers: triplet and n-tuple ----------------------------------------------------

_NEGATIVE_N = re.compile(r"negative_(\d+)")


def negative_columns(names: list[str]) -> list[str]:
    """`negative` (a triplet), or `negative_1` … `negative_n` in order (an n-tuple)."""
    numbered = sorted((int(m.group(1)), n) for n in names if (m := _NEGATIVE_N.fullmatch(n)))
    return [n for _, n in numbered] if numbered else [n for n in names if n == "negative"]


def anchor_and_positive(table: pa.Table, path: Path, spec: Any) -> tuple[str, str]:
    """The anchor and positive columns: named with --pair-query-column/--pair-positive-column, else the usual
    names, else the first two columns (sentence-transformers names them after its input's, and puts them first)."""
    from hnmine.io.inputs import PAIR_POSITIVE_COLUMNS, PAIR_QUERY_COLUMNS

    names = table.column_names
    rest = [n for n in names if n not in negative_columns(names) and n not in ("scores", "score")]
    chosen = []
    for given, usual in ((spec.pair_query_column, PAIR_QUERY_COLUMNS), (spec.pair_positive_column, PAIR_POSITIVE_COLUMNS)):
        if given is not None and given not in names:
            raise MissingColumn(str(path), given, names)
        name = given or next((n for n in usual if n in rest and n not in chosen), None)
        name = name or next((n for n in rest if n not in chosen), None)
        if name is None:
            raise InputError(f"{path}: no anchor and positive columns beside the negatives (columns: {', '.join(names)})")
        chosen.append(name)
    return chosen[0], chosen[1]


def _tuples(table: pa.Table, path: Path, spec: Any) -> Read:
    """Rows of (anchor, positive, negative...): each names one positive; `scores` = [positive, negatives...]."""
    names = table.column_names
    negatives = negative_columns(names)
    if not negatives:
        raise MissingColumn(str(path), "negative", names)
    _contiguous(negatives, path)
    anchor_name, positive_name = anchor_and_positive(table, path, spec)
    anchor, positive = _Column(table, path, anchor_name), _Column(table, path, positive_name)
    columns = [_Column(table, path, n) for n in negatives]
    scores = _Column(table, path, "scores") if "scores" in names else None
    rows = []
    for i in range(table.num_rows):
        listed = [positive.text(i)] + [c.text(i) for c in columns]
        values = scores.scores(i, len(listed), "texts (the positive, then each negative)") if scores else [None] * len(listed)
        docs = [Listed(t, None, s, k == 0) for k, (t, s) in enumerate(zip(listed, values))]
        rows.append(Row(i + 1, anchor.text(i), None, docs))
    return Read(rows, scores is not None, columns={"anchor": anchor_name, "positive": positive_name})


def _contiguous(negatives: list[str], path: Path) -> None:
    expected = [f"negative_{k}" for k in range(1, len(negatives) + 1)]
    if negatives != ["negative"] and negatives != expected:
        missing = next(e for e, n in zip(expected + [""], negatives + [""]) if e != n)
        raise InputError(f"{path}: the negative columns skip '{missing}' (columns {', '.join(negatives)})")


def _tuples_scored(columns: list[str], first: dict) -> bool:
    return "scores" in columns


# --- Tevatron --------------------------------------------------------------------------------------


def _tevatron(table: pa.Table, path: Path, spec: Any) -> Read:
    query = _Column(table, path, "query")
    query_id = _Column(table, path, "query_id") if "query_id" in table.column_names else None
    groups = [_Column(table, path, c) for c in ("positive_passages", "negative_passages")]
    scored = _tevatron_scored(table.column_names, table.slice(0, 1).to_pylist()[0] if table.num_rows else {})
    rows = []
    for i in range(table.num_rows):
        docs = []
        for positive, column in zip((True, False), groups):
            cell = column.cell(i)
            items = a_list(column.values[i], cell, column.mixed)
            if positive and not items:
                raise InputError(f"{cell} is an empty list: {_NO_POSITIVE}")
            docs += [_passage(p, cell.at(k), positive, scored) for k, p in enumerate(items, start=1)]
        qid = identifier(query_id.values[i], query_id.cell(i)) if query_id else None
        rows.append(Row(i + 1, query.text(i), qid, docs))
    return Read(rows, scored)


def _passage(value: Any, cell: _Cell, positive: bool, scored: bool) -> Listed:
    if not isinstance(value, dict):
        raise InputError(f"{cell} holds {_kind(value)}, expected a passage (an object with docid, title, text)")
    for key in ("docid", "text"):
        if key not in value:
            raise InputError(f"{cell} has no '{key}'")
    title, body = ("" if _missing(value.get(key)) else value[key] for key in ("title", "text"))
    if not isinstance(title, str) or not isinstance(body, str):
        raise InputError(f"{cell} holds a title or text that is not text")
    if not (title + body).strip():
        raise InputError(f"{cell} is empty (no title, no text)")
    score = number(value.get("score"), cell) if scored else None
    return Listed(body, identifier(value["docid"], cell), score, positive, title)


def _tevatron_scored(columns: list[str], first: dict) -> bool:
    passages = first.get("positive_passages") or []
    return bool(passages) and isinstance(passages[0], dict) and not _missing(passages[0].get("score"))


# --- the scored pool -------------------------------------------------------------------------------


def _pool(table: pa.Table, path: Path, spec: Any) -> Read:
    """query_id, document_ids, scores (one per document, in its order); positive_ids where hnmine wrote it."""
    query_id, ids, scores = (_Column(table, path, c) for c in ("query_id", "document_ids", "scores"))
    marked = _Column(table, path, "positive_ids") if "positive_ids" in table.column_names else None
    rows = []
    for i in range(table.num_rows):
        cell = ids.cell(i)
        documents = [identifier(v, cell.at(k)) for k, v in enumerate(a_list(ids.values[i], cell, ids.mixed), start=1)]
        values = scores.scores(i, len(documents), "document_ids")
        positives: set[str] = set()
        if marked is not None:
            mcell = marked.cell(i)
            named = [identifier(v, mcell.at(k)) for k, v in enumerate(a_list(marked.values[i], mcell, marked.mixed), start=1)]
            if not named:
                raise InputError(f"{mcell} is an empty list: {_NO_POSITIVE}")
            stray = next((d for d in named if d not in documents), None)
            if stray is not None:
                raise InputError(f"{mcell} names '{stray}', which document_ids does not list")
            positives = set(named)
        docs = [Listed(None, d, s, d in positives) for d, s in zip(documents, values)]
        rows.append(Row(i + 1, None, identifier(query_id.values[i], query_id.cell(i)), docs))
    return Read(rows, True)


SHAPES: dict[str, Shape] = {
    "flagembedding": Shape(("query", "pos", "neg"), _flagembedding, _flagembedding_scored),
    "triplet": Shape(("negative",), _tuples, _tuples_scored),
    "n-tuple": Shape(("negative_1",), _tuples, _tuples_scored),
    "tevatron": Shape(("query", "positive_passages", "negative_passages"), _tevatron, _tevatron_scored),
    "scored-pool": Shape(("query_id", "document_ids", "scores"), _pool, lambda columns, first: True),
}
