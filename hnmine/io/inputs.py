"""Normalise user inputs (a BEIR folder, separate files, or a pairs file) into three Arrow tables.

Output tables have the schemas of hnmine.schemas (docs/tables.md): corpus(doc_id, title, text),
queries(query_id, text), qrels(query_id, doc_id, relevance, is_positive).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from hnmine.errors import InputError, MissingColumn, OptionError
from hnmine.io.files import mixed_rows, read_table, require_columns, string_column
from hnmine.io.locate import InputSpec, resolve_files
from hnmine.options import flag
from hnmine.schemas import CORPUS_SCHEMA, QRELS_SCHEMA, QUERIES_SCHEMA

# Column names tried, in order, when the user names none.
DOC_ID_COLUMNS = ["_id", "doc_id", "docid", "id", "corpus_id", "pid", "document_id"]
DOC_TEXT_COLUMNS = ["text", "contents", "content", "body", "passage", "document"]
QUERY_ID_COLUMNS = ["_id", "query_id", "qid", "id"]
QUERY_TEXT_COLUMNS = ["text", "query", "question"]
QREL_QUERY_COLUMNS = ["query-id", "query_id", "qid"]
QREL_DOC_COLUMNS = ["corpus-id", "doc_id", "docid", "corpus_id", "pid"]
QREL_SCORE_COLUMNS = ["score", "relevance", "label", "rel"]
PAIR_QUERY_COLUMNS = ["query", "anchor", "question"]
PAIR_POSITIVE_COLUMNS = ["positive", "pos", "positives", "answer", "document"]
# Relevance grades are stored as int32 (inputs/qrels.parquet, judgments.parquet).
RELEVANCE_MIN, RELEVANCE_MAX = -(2**31), 2**31 - 1


@dataclass
class Inputs:
    corpus: pa.Table
    queries: pa.Table
    qrels: pa.Table
    stats: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    premined: pa.Table | None = None  # --premined: the file's lists of candidates (hnmine.io.premined)


def _pick_optional(table: pa.Table, path: Path, given: str | None, candidates: list[str]) -> str | None:
    """The column named by the user (it must exist), else the first of `candidates` present, else None."""
    if given is not None:
        require_columns(table, path, [given])
        return given
    return next((name for name in candidates if name in table.column_names), None)


def _pick(table: pa.Table, path: Path, given: str | None, candidates: list[str], role: str, option: str) -> str:
    """The column for `role`: named by the user with `option`, else the first of `candidates` present."""
    name = _pick_optional(table, path, given, candidates)
    if name is None:
        raise MissingColumn(str(path), f"{role} (tried {'/'.join(candidates)}; name it with {flag(option)})", table.column_names)
    return name


def _given(files: dict[str, Path | None], role: str) -> Path:
    path = files[role]
    if path is None:  # resolve_files already refused this; kept for the type checker
        raise OptionError(f"no {role} file: give a BEIR folder, --{role} FILE, or a pairs file")
    return path


def load_inputs(spec: InputSpec) -> Inputs:
    files = resolve_files(spec)
    if files["pairs"] is not None:
        return _load_pairs(spec, files["pairs"], files["corpus"])
    corpus, corpus_stats = read_corpus(spec, _given(files, "corpus"))
    queries, query_stats = read_queries(spec, _given(files, "queries"))
    qrels = read_qrels(spec, _given(files, "qrels"))
    return _link(corpus, queries, qrels, files, {**corpus_stats, **query_stats})


def read_corpus(spec: InputSpec, path: Path) -> tuple[pa.Table, dict]:
    table = read_table(path)
    id_col = _pick(table, path, spec.doc_id_column, DOC_ID_COLUMNS, "document id", "doc_id_column")
    text_col = _pick(table, path, spec.doc_text_column, DOC_TEXT_COLUMNS, "document text", "doc_text_column")
    title_col = _pick_optional(table, path, spec.doc_title_column, ["title"])
    ids = string_column(table, path, id_col, what="document id", allow_empty=False)
    texts = string_column(table, path, text_col, what="document text", allow_empty=True)
    titles = string_column(table, path, title_col, what="title", allow_empty=True) if title_col else [""] * len(ids)
    seen: dict[str, int] = {}
    keep_ids: list[str] = []
    keep_titles: list[str] = []
    keep_texts: list[str] = []
    empty_ids: list[str] = []
    duplicates = 0
    for row, (doc_id, title, text) in enumerate(zip(ids, titles, texts), start=1):
        if doc_id in seen:
            first = seen[doc_id]
            if (keep_titles[first], keep_texts[first]) != (title, text):
                raise InputError(f"{path}: row {row}: document id '{doc_id}' appears twice with different texts")
            duplicates += 1
            continue
        if not title.strip() and not text.strip():
            # An empty document cannot be a useful negative; it is reported, not fatal (Cranfield has two).
            empty_ids.append(doc_id)
            continue
        seen[doc_id] = len(keep_ids)
        keep_ids.append(doc_id)
        keep_titles.append(title)
        keep_texts.append(text)
    if not keep_ids:
        raise InputError(f"{path}: the corpus has no non-empty documents")
    corpus = pa.table({"doc_id": keep_ids, "title": keep_titles, "text": keep_texts}, schema=CORPUS_SCHEMA)
    return corpus, {"corpus_duplicate_rows": duplicates, "corpus_empty_documents": len(empty_ids), "corpus_empty_ids": empty_ids[:20]}


def read_queries(spec: InputSpec, path: Path) -> tuple[pa.Table, dict]:
    """Queries with their stats; an empty (or whitespace-only) query is left out and reported."""
    table = read_table(path)
    id_col = _pick(table, path, spec.query_id_column, QUERY_ID_COLUMNS, "query id", "query_id_column")
    text_col = _pick(table, path, spec.query_text_column, QUERY_TEXT_COLUMNS, "query text", "query_text_column")
    ids = string_column(table, path, id_col, what="query id", allow_empty=False)
    texts = string_column(table, path, text_col, what="query text", allow_empty=True)
    seen: dict[str, str] = {}
    out_ids, out_texts, empty_ids = [], [], []
    for row, (qid, text) in enumerate(zip(ids, texts), start=1):
        if qid in seen:
            if seen[qid] != text:
                raise InputError(f"{path}: row {row}: query id '{qid}' appears twice with different texts")
            continue
        seen[qid] = text
        if not text.strip():
            empty_ids.append(qid)
            continue
        out_ids.append(qid)
        out_texts.append(text)
    if not out_ids:
        raise InputError(f"{path}: no query has a non-empty text")
    table = pa.table({"query_id": out_ids, "text": out_texts}, schema=QUERIES_SCHEMA)
    return table, {"queries_empty": len(empty_ids), "queries_empty_ids": empty_ids[:20], "_empty_query_ids": set(empty_ids)}


# A grade as a qrels file writes it: a decimal number in ASCII digits ("1", "2.0", "1e0"; "nan" is refused later).
_GRADE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.ASCII | re.IGNORECASE)


def read_qrels(spec: InputSpec, path: Path) -> pa.Table:
    return qrels_from_table(spec, read_table(path), path)


def qrels_from_table(spec: InputSpec, table: pa.Table, path: Path) -> pa.Table:
    """qrels(query_id, doc_id, relevance, is_positive) from a table read from `path` (named in messages)."""
    _refuse_headerless(table, path, spec)
    q_col = _pick(table, path, spec.qrels_query_column, QREL_QUERY_COLUMNS, "query id", "qrels_query_column")
    d_col = _pick(table, path, spec.qrels_doc_column, QREL_DOC_COLUMNS, "document id", "qrels_doc_column")
    s_col = _pick_optional(table, path, spec.qrels_score_column, QREL_SCORE_COLUMNS)
    qids = string_column(table, path, q_col, what="query id", allow_empty=False)
    dids = string_column(table, path, d_col, what="document id", allow_empty=False)
    if s_col is None:
        rel = [1] * len(qids)
    else:
        rel = []
        for row, v in enumerate(table.column(s_col).to_pylist(), start=1):
            try:
                if isinstance(v, str) and not _GRADE.fullmatch(v.strip()):
                    raise ValueError  # float() also reads "1_0" and other scripts' digits
                f = float(v)
                if f != f or f in (float("inf"), float("-inf")) or not f.is_integer() or not RELEVANCE_MIN <= f <= RELEVANCE_MAX:
                    raise ValueError
                rel.append(int(f))
            except (TypeError, ValueError):
                raise InputError(
                    f"{path}: row {row}: relevance column '{s_col}' holds {v!r}, expected an integer "
                    f"(from {RELEVANCE_MIN:,} to {RELEVANCE_MAX:,})"
                ) from None
    return pa.table(
        {"query_id": qids, "doc_id": dids, "relevance": rel, "is_positive": [r >= spec.min_relevance for r in rel]}, schema=QRELS_SCHEMA
    )


def _refuse_headerless(table: pa.Table, path: Path, spec: InputSpec) -> None:
    """A qrels file whose first line is a judgment (no header, or TREC's `qid 0 docid rel`): its "columns" are
    the first judgment's fields, and naming them with --qrels-*-column would drop that judgment silently."""
    names = table.column_names
    given = (spec.qrels_query_column, spec.qrels_doc_column, spec.qrels_score_column)
    if any(given) or any(n in names for n in QREL_QUERY_COLUMNS + QREL_DOC_COLUMNS):
        return
    fields = names[0].split() if len(names) == 1 else names
    if len(fields) in (3, 4) and re.fullmatch(r"[+-]?\d+", fields[-1].strip(), re.ASCII):
        raise InputError(
            f"{path}: its first line ({', '.join(fields)}) is a judgment, not a header: a qrels table starts with a line naming "
            f"its columns (query-id, corpus-id, score); add one (TREC qrels `qid 0 docid rel` are read by "
            f"--judgments, and by eval --qrels under a name such as qrels.txt)"
        )


def _link(corpus: pa.Table, queries: pa.Table, qrels: pa.Table, files: dict, corpus_stats: dict) -> Inputs:
    """Keep judgments whose ids exist; keep queries that have a positive. Report what was left out."""
    corpus_stats = dict(corpus_stats)
    empty_queries = corpus_stats.pop("_empty_query_ids", set())
    doc_ids = set(corpus.column("doc_id").to_pylist())
    query_ids = queries.column("query_id").to_pylist()
    query_set = set(query_ids)
    q = qrels.column("query_id").to_pylist()
    d = qrels.column("doc_id").to_pylist()
    known_q = [x in query_set for x in q]
    known_d = [x in doc_ids for x in d]
    # Judgments of an empty query (left out, reported on its own) are not "unknown".
    unknown_q_ids = [x for x, k in zip(q, known_q) if not k and x not in empty_queries]
    unknown_d_ids = [y for kq, kd, y in zip(known_q, known_d, d) if kq and not kd]
    if len(q) and len(unknown_q_ids) == len(q) and not empty_queries:
        raise InputError(
            f"{files['qrels']}: no judgment names a query of {files['queries']} (wrong file or split?"
            f"{_spelling_hint(unknown_q_ids, query_set, 'queries')})"
        )
    qrels = _dedupe_qrels(qrels.filter(pa.array([kq and kd for kq, kd in zip(known_q, known_d)])))  # highest grade once
    positive_queries = set(qrels.filter(qrels.column("is_positive")).column("query_id").to_pylist())
    if not positive_queries:
        raise InputError(
            f"{files['qrels']}: no positive judgment left (check --min-relevance and the ids"
            f"{_spelling_hint(unknown_d_ids, doc_ids, 'corpus')})"
        )
    judged = set(qrels.column("query_id").to_pylist())
    queries = queries.filter(pa.array([qid in positive_queries for qid in query_ids]))
    qrels = qrels.filter(pa.array([x in positive_queries for x in qrels.column("query_id").to_pylist()]))
    raw_judged = set(q)
    left_out = {
        "unknown_q_ids": unknown_q_ids,
        "unknown_d_ids": unknown_d_ids,
        "without_positive": [x for x in query_ids if x in judged and x not in positive_queries],
        "unjudged": [qid for qid in query_ids if qid not in raw_judged],
        # Judged queries whose every judgment named a document the corpus lacks.
        "lost": [qid for qid in query_ids if qid in raw_judged and qid not in judged],
    }
    warnings = _link_warnings(files, left_out, corpus_stats, query_set, doc_ids)
    stats = {
        **{k: v for k, v in corpus_stats.items() if k not in ("corpus_empty_ids", "queries_empty_ids")},
        "qrels_unknown_query": len(unknown_q_ids),
        "qrels_unknown_doc": len(unknown_d_ids),
        "queries_without_positive": len(left_out["without_positive"]),
        "queries_unjudged": len(left_out["unjudged"]),
        "queries_without_judged_document": len(left_out["lost"]),
        "documents": corpus.num_rows,
        "queries": queries.num_rows,
        "judgments": qrels.num_rows,
        "positives": int(pa.compute.sum(qrels.column("is_positive")).as_py() or 0),
    }
    return Inputs(corpus=corpus, queries=queries, qrels=qrels, stats=stats, warnings=warnings)


def _link_warnings(files: dict, left_out: dict, corpus_stats: dict, query_set: set, doc_ids: set) -> list[str]:
    """One warning per kind of row left out, with a few examples each."""
    warnings = []
    uq, ud = left_out["unknown_q_ids"], left_out["unknown_d_ids"]
    if uq:
        warnings.append(
            f"{files['qrels']}: {len(uq)} judgments name queries not in {files['queries']} "
            f"({_examples(uq)}{_spelling_hint(uq, query_set, 'queries')}); left out"
        )
    if ud:
        warnings.append(
            f"{files['qrels']}: {len(ud)} judgments name documents not in the corpus (or empty ones) "
            f"({_examples(ud)}{_spelling_hint(ud, doc_ids, 'corpus')}); left out"
        )
    if left_out["without_positive"]:
        warnings.append(
            f"{files['qrels']}: {len(left_out['without_positive'])} judged queries have no positive at --min-relevance "
            f"({_examples(left_out['without_positive'])}); left out"
        )
    if left_out["lost"]:
        warnings.append(
            f"{files['qrels']}: {len(left_out['lost'])} queries have no judged document in the corpus "
            f"({_examples(left_out['lost'])}); left out"
        )
    if left_out["unjudged"]:
        warnings.append(
            f"{files['queries']}: {len(left_out['unjudged'])} queries have no judgment in {files['qrels']} "
            f"({_examples(left_out['unjudged'])}); left out"
        )
    if corpus_stats.get("queries_empty"):
        warnings.append(
            f"{files['queries']}: {corpus_stats['queries_empty']} empty queries left out ({_examples(corpus_stats['queries_empty_ids'])})"
        )
    if corpus_stats.get("corpus_empty_documents"):
        warnings.append(
            f"{files['corpus']}: {corpus_stats['corpus_empty_documents']} empty documents left out "
            f"({', '.join(corpus_stats['corpus_empty_ids'][:5])})"
        )
    return warnings


def _loose(id_: str) -> str:
    """An id without what differs most often between files of one dataset: surrounding spaces and
    leading zeros of a number. Only for hints: ids are always compared exactly."""
    s = id_.strip()
    return s.lstrip("0") or "0" if s.isdigit() else s


def _spelling_hint(unknown: list[str], known: set, where: str) -> str:
    """'; the corpus has '0001' for '1'': when unknown ids match known ones but for their spelling."""
    by_loose: dict[str, str] = {}
    for k in known:
        by_loose.setdefault(_loose(k), k)
    pairs = []
    for u in dict.fromkeys(unknown):
        k = by_loose.get(_loose(u))
        if k is not None and k != u:
            pairs.append(f"'{k}' for '{u}'")
        if len(pairs) == 3:
            break
    if not pairs:
        return ""
    return f"; the {where} has {', '.join(pairs)}: ids are text and must be spelled the same in every file"


def _examples(ids: list[str], n: int = 5) -> str:
    """A few ids for a message: 'a, b, c' or 'a, b, c, … (12 in all)'."""
    unique = list(dict.fromkeys(ids))
    shown = ", ".join(unique[:n])
    return shown if len(unique) <= n else f"{shown}, … ({len(unique)} in all)"


def _dedupe_qrels(qrels: pa.Table) -> pa.Table:
    best: dict[tuple[str, str], int] = {}
    for qid, did, rel in zip(
        qrels.column("query_id").to_pylist(), qrels.column("doc_id").to_pylist(), qrels.column("relevance").to_pylist()
    ):
        key = (qid, did)
        if key not in best or rel > best[key]:
            best[key] = rel
    if len(best) == qrels.num_rows:
        return qrels
    # The kept row carries the highest grade, so its is_positive flag is the right one.
    seen: set = set()
    keep = []
    for qid, did, rel in zip(
        qrels.column("query_id").to_pylist(), qrels.column("doc_id").to_pylist(), qrels.column("relevance").to_pylist()
    ):
        key = (qid, did)
        if key in seen or rel != best[key]:
            keep.append(False)
        else:
            seen.add(key)
            keep.append(True)
    return qrels.filter(pa.array(keep))


def content_id(prefix: str, text: str) -> str:
    return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _json_list(value) -> list | None:
    """A list written as JSON text ('["a", "b"]'), as CSV/TSV files and stringified pandas columns
    hold lists; None for anything else, which is then one positive text."""
    if not isinstance(value, str):
        return None
    v = value.strip()
    if not (v.startswith("[") and v.endswith("]")):
        return None
    try:
        parsed = json.loads(v)
    except ValueError:
        return None
    return parsed if isinstance(parsed, list) and parsed and all(isinstance(x, str) for x in parsed) else None


def _load_pairs(spec: InputSpec, path: Path, extra_corpus: Path | None) -> Inputs:
    """(query text, positive text[s]) rows → tables with content-hash ids."""
    table = read_table(path, split=spec.split)
    if table.num_rows == 0:  # else the run goes on: an empty export, or an encoded corpus and no query to search
        raise InputError(f"{path}: no pairs (it has no rows)")
    q_col = _pick(table, path, spec.pair_query_column, PAIR_QUERY_COLUMNS, "query text", "pair_query_column")
    p_col = _pick(table, path, spec.pair_positive_column, PAIR_POSITIVE_COLUMNS, "positive text", "pair_positive_column")
    queries_text = string_column(table, path, q_col, what="query", allow_empty=False)
    object_row = mixed_rows(table, p_col).get("object")  # an object beside texts: read as its JSON text
    if object_row:
        raise InputError(f"{path}: row {object_row}: positive column '{p_col}' holds an object, expected text")
    positives_raw = table.column(p_col).to_pylist()
    query_ids: dict[str, str] = {}
    docs: dict[str, str] = {}
    pairs: dict[tuple[str, str], None] = {}
    for row, (qtext, pos) in enumerate(zip(queries_text, positives_raw), start=1):
        # A single string is one positive, never a list of characters (a pitfall of other miners).
        items = pos if isinstance(pos, list) else _json_list(pos) or [pos]
        if not items:
            raise InputError(f"{path}: row {row}: positive column '{p_col}' is an empty list")
        qid = query_ids.setdefault(qtext, content_id("q", qtext))
        for item in items:
            if item is None or (isinstance(item, float) and item != item) or not str(item).strip():
                raise InputError(f"{path}: row {row}: positive column '{p_col}' is missing or empty")
            if not isinstance(item, str):
                raise InputError(f"{path}: row {row}: positive column '{p_col}' holds {type(item).__name__}, expected text")
            did = content_id("d", item)
            docs.setdefault(did, item)
            pairs[(qid, did)] = None
    doc_ids = list(docs)
    titles = [""] * len(doc_ids)
    texts = [docs[d] for d in doc_ids]
    stats = {"pairs": len(pairs)}
    warnings: list[str] = []
    if extra_corpus is not None:
        extra, extra_stats = read_corpus(spec, extra_corpus)
        if extra_stats.get("corpus_empty_documents"):
            warnings.append(
                f"{extra_corpus}: {extra_stats['corpus_empty_documents']} empty documents left out ({_examples(extra_stats['corpus_empty_ids'])})"
            )
        by_text = set(texts)
        added = 0
        for did, title, text in zip(
            extra.column("doc_id").to_pylist(), extra.column("title").to_pylist(), extra.column("text").to_pylist()
        ):
            full = f"{title} {text}".strip() if title else text
            if full in by_text:
                continue
            by_text.add(full)
            doc_ids.append(did if did not in docs else content_id("d", full))
            titles.append(title)
            texts.append(text)
            added += 1
        stats["extra_documents"] = added
    corpus = pa.table({"doc_id": doc_ids, "title": titles, "text": texts}, schema=CORPUS_SCHEMA)
    queries = pa.table({"query_id": list(query_ids.values()), "text": list(query_ids)}, schema=QUERIES_SCHEMA)
    qrels = pa.table(
        {
            "query_id": [q for q, _ in pairs],
            "doc_id": [d for _, d in pairs],
            "relevance": [1] * len(pairs),
            "is_positive": [True] * len(pairs),
        },
        schema=QRELS_SCHEMA,
    )
    stats.update({"documents": corpus.num_rows, "queries": queries.num_rows, "judgments": qrels.num_rows, "positives": qrels.num_rows})
    return Inputs(corpus=corpus, queries=queries, qrels=qrels, stats=stats, warnings=warnings)
