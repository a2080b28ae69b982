"""Training data for a fine-tune: the export of a run, or any training file, read as (anchor, positive, negatives).

Every export shape of hnmine.formats is accepted (and the same shapes written by other tools, e.g.
sentence-transformers' `mine_hard_negatives`, whose anchor column is named after the input's):

shape          columns                                      one (anchor, positive) gets
triplet        anchor, positive, negative                   the negatives of all its rows
n-tuple        anchor, positive, negative_1..negative_k     the row's negatives
labeled-pair   anchor, positive (or passage), label         label 1 rows are positives, label 0 negatives
labeled-list   anchor, positive (or passages), labels       as labeled-pair, within one row (a list)
flagembedding  query, pos, neg                              every pos with the row's neg
tevatron       query, positive_passages, negative_passages  the same, texts as "title text"
pairs          anchor, positive                             no negatives (in-batch training only)

Negatives of an anchor are grouped per (anchor, positive) in first-seen order (the export's
order, i.e. the filter's: hardest first). A "negative" whose text equals one of the anchor's
positives is left out and counted: trained on, it would teach the model to push a positive away.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from hnmine.errors import InputError, RunDirError
from hnmine.io.files import READERS as FILE_SUFFIXES
from hnmine.io.files import read_table

ANCHOR_COLUMNS = ("anchor", "query", "question")
POSITIVE_COLUMNS = ("positive", "pos")
_NEGATIVE_N = re.compile(r"negative_(\d+)$")


@dataclass(frozen=True)
class TrainingPair:
    anchor: str
    positive: str
    negatives: tuple[str, ...]


@dataclass
class TrainingSource:
    """One arm's training data: where it came from and its (anchor, positive, negatives) pairs."""

    label: str  # the arm's name in the results: the run directory's or the file's name
    path: Path  # what the user gave: a run directory or a file
    file: Path  # the file read
    shape: str
    pairs: list[TrainingPair]
    run_dir: Path | None = None  # set when path is a run directory (results are written there)
    stats: dict = field(default_factory=dict)


def load_source(path: Path) -> TrainingSource:
    """Read a run directory's export (the file its export manifest names) or a training file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such run directory or training file")
    run_dir = path if path.is_dir() else None
    file = export_file(path) if run_dir else path
    table = read_table(file)
    if {"query_id", "document_ids"} <= set(table.column_names) and "documents" not in table.column_names:
        table = _pool_with_texts(table, file)
    shape, pairs, stats = read_pairs(table, file)
    if not pairs:
        raise InputError(f"{file}: no (anchor, positive) pair to train on")
    label = path.name if run_dir else path.stem
    return TrainingSource(label=label, path=path, file=file, shape=shape, pairs=pairs, run_dir=run_dir, stats=stats)


def _pool_with_texts(table, file: Path):
    """A scored pool's train table (export/scored-pool/train.*) with the texts of its queries and documents tables,
    which lie beside it: the query, and each document's text, as read_pairs takes them."""
    import pyarrow as pa

    texts = {}
    for name, id_column in (("queries", "query_id"), ("documents", "document_id")):
        beside = file.with_name(f"{name}{file.suffix}")
        if not beside.is_file():
            raise InputError(f"{file}: a scored pool's train table, and {beside} (its {name}' texts) is not beside it")
        other = read_table(beside)
        texts[name] = dict(zip(*(other.column(c).to_pylist() for c in (id_column, "text"))))
    if "positive_ids" not in table.column_names:
        raise InputError(f"{file}: a scored pool that marks no positives (no column positive_ids): nothing to train on as a positive")
    query = [texts["queries"].get(q) for q in table.column("query_id").to_pylist()]
    documents = [[texts["documents"].get(d) for d in ids or []] for ids in table.column("document_ids").to_pylist()]
    return table.append_column("query", pa.array(query, pa.string())).append_column("documents", pa.array(documents))


def export_file(run_dir: Path) -> Path:
    """The training file of a run: the one its export manifest names, checked to be current; else, in a
    folder no hnmine stage has filtered, the only file in export/.

    Current means what `report` asks of a table: the file has the hash its export manifest records, and
    the tables the export read (negatives, ...) and those they were made from are still the ones in the run.
    An export older than the run's filter output (`hnmine filter` rerun alone) is refused, naming the
    command to rerun, before any model is loaded."""
    from hnmine.rundir import RunDir

    run = RunDir(run_dir)
    manifest = run.manifest("export")
    named = manifest.stats.get("file") if manifest is not None else None
    if manifest is not None and isinstance(named, str) and named in manifest.outputs:
        run.require(named)
        run.check_unchanged(named)
        return run.path_of(named)
    if manifest is not None or run.manifest("filter") is not None:
        raise RunDirError(
            f"{run_dir}: the export stage has not finished here (no manifests/export.json naming its file), so "
            f"export/ may hold an older training file; run `hnmine export` (or `hnmine mine`) with --out {run_dir}"
        )
    folder = run.path_of("export")
    files = sorted(p for p in folder.glob("*") if p.is_file() and p.suffix.lower() in FILE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise RunDirError(f"{run_dir}: no training file in export/ (run `hnmine export` or `hnmine mine` with --out {run_dir} first)")
    if len(files) > 1:
        names = ", ".join(p.name for p in files)
        raise RunDirError(f"{run_dir}: several training files in export/ ({names}) and no export manifest naming one; give the file itself")
    return files[0]


def _first(names: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in names), None)


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):  # Tevatron passage
        title, text = value.get("title") or "", value.get("text") or ""
        return f"{title} {text}".strip() if title else text
    return str(value)


def _items(value) -> list:
    return value if isinstance(value, list) else [value]


def _anchor(value, source: Path, row: int, column: str) -> str | None:
    if isinstance(value, list):
        raise InputError(f"{source}: row {row}: anchor column '{column}' holds a list, expected text")
    return _text(value)


_LABEL_TEXT = {"0": False, "1": True, "false": False, "true": True}


def _label(value, source: Path, row: int, column: str):
    """A label as a bool (a list of them for labeled-list): 1/true is a positive, 0/false a negative. A text
    file holds labels as text ("0" is true to Python): read by value, and anything else refused."""
    if isinstance(value, list):
        return [_label(v, source, row, column) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _LABEL_TEXT:
            return _LABEL_TEXT[text]
        with contextlib.suppress(ValueError):
            if float(text) in (0.0, 1.0):  # "1.0": a JSON number kept as written
                return float(text) == 1.0
    raise InputError(f"{source}: row {row}: label column '{column}' holds {value!r}, expected 0 or 1")


def read_pairs(table, source: Path) -> tuple[str, list[TrainingPair], dict]:
    """(shape, pairs, stats) of a training table; an InputError names the columns when no shape fits."""
    names = table.column_names
    anchor_col = _first(names, ANCHOR_COLUMNS)
    rows: list[tuple[str | None, list[str], list[str]]] = []  # (anchor, positives, negatives) per table row
    if anchor_col is None:
        raise InputError(f"{source}: no anchor column (tried {'/'.join(ANCHOR_COLUMNS)}; columns: {', '.join(names)})")
    anchors = [_anchor(a, source, row, anchor_col) for row, a in enumerate(table.column(anchor_col).to_pylist(), start=1)]

    def col(name: str) -> list:
        return table.column(name).to_pylist()

    def texts(values) -> list[str]:
        return [t for t in (_text(v) for v in (values or [])) if t]

    def labels(name: str) -> list:
        return [_label(v, source, row, name) for row, v in enumerate(col(name), start=1)]

    if {"document_ids", "documents", "positive_ids"} <= set(names):
        shape = "scored-pool"  # each query's documents, its positives named by id (hnmine.formats)
        for a, ids, docs, marked in zip(anchors, col("document_ids"), col("documents"), col("positive_ids")):
            in_row, own = list(zip(ids or [], docs or [])), set(marked or [])
            rows.append((a, texts([t for d, t in in_row if d in own]), texts([t for d, t in in_row if d not in own])))
    elif "positive_passages" in names and "negative_passages" in names:
        shape = "tevatron"
        rows = [(a, texts(p), texts(n)) for a, p, n in zip(anchors, col("positive_passages"), col("negative_passages"))]
    elif "pos" in names and "neg" in names:
        shape = "flagembedding"
        rows = [(a, texts(p), texts(n)) for a, p, n in zip(anchors, col("pos"), col("neg"))]
    elif (listed := _first(names, ("passages", "positive"))) and "labels" in names:
        shape = "labeled-list"  # (anchor, passages, labels), or sentence-transformers' (anchor, positive, labels)
        for a, ps, ls in zip(anchors, col(listed), labels("labels")):
            ps, ls = list(ps or []), list(ls or [])
            rows.append((a, [str(p) for p, lab in zip(ps, ls) if lab], [str(p) for p, lab in zip(ps, ls) if not lab]))
    elif (single := _first(names, ("passage", "positive"))) and "label" in names:
        shape = "labeled-pair"  # (anchor, passage, label), or sentence-transformers' (anchor, positive, label)
        for a, p, lab in zip(anchors, col(single), labels("label")):
            rows.append((a, [str(p)], []) if lab else (a, [], [str(p)]))
    elif {"score", "scores"} & set(names) and not any(n == "negative" or _NEGATIVE_N.match(n) for n in names):
        raise InputError(
            f"{source}: a labeled shape with scores in place of labels (columns: {', '.join(names)}): which passages are "
            "negatives is not said; export it without --with-scores (output_scores=False) to train on it"
        )
    else:
        pos_col = _first(names, POSITIVE_COLUMNS)
        if pos_col is None:
            raise InputError(
                f"{source}: not a training file of a known shape (columns: {', '.join(names)}); "
                "expected e.g. anchor/positive/negative (triplet) or anchor/passage/label"
            )
        numbered = sorted((int(m.group(1)), n) for n in names if (m := _NEGATIVE_N.match(n)))
        neg_cols = ["negative"] if "negative" in names else [n for _, n in numbered]
        shape = "triplet" if neg_cols == ["negative"] else "n-tuple" if neg_cols else "pairs"
        negs = [col(n) for n in neg_cols]
        for i, (a, p) in enumerate(zip(anchors, col(pos_col))):
            # a cell holding a list is several texts, never the text of the list ("['n1', 'n2']")
            rows.append((a, texts(_items(p)), texts([x for n in negs for x in _items(n[i])])))
    return (shape, *_group(rows))


def _group(rows: list[tuple[str | None, list[str], list[str]]]) -> tuple[list[TrainingPair], dict]:
    """Group rows into one TrainingPair per (anchor, positive), negatives in first-seen order.

    Labeled shapes spread an anchor's positives and negatives over rows, so negatives are gathered
    per anchor, and the rows that name a positive say which (anchor, positive) pairs exist.
    """
    positives: dict[str, list[str]] = {}
    negatives: dict[str, dict[str, None]] = {}  # dicts as ordered sets
    per_pair: dict[tuple[str, str], dict[str, None]] = {}
    for anchor, pos, neg in rows:
        if not anchor:
            continue
        positives.setdefault(anchor, [])
        for p in pos:
            if p not in positives[anchor]:
                positives[anchor].append(p)
        if pos and neg:
            for p in pos:
                per_pair.setdefault((anchor, p), {}).update(dict.fromkeys(neg))
        elif neg:
            negatives.setdefault(anchor, {}).update(dict.fromkeys(neg))
    pairs: list[TrainingPair] = []
    dropped_equal_to_positive = 0
    for anchor, pos_list in positives.items():
        own = set(pos_list)
        for p in pos_list:
            found = list(per_pair.get((anchor, p), {})) + [n for n in negatives.get(anchor, {}) if n not in per_pair.get((anchor, p), {})]
            kept = tuple(n for n in found if n not in own)
            dropped_equal_to_positive += len(found) - len(kept)
            pairs.append(TrainingPair(anchor, p, kept))
    stats = {
        "anchors": sum(1 for a in positives if positives[a]),
        "pairs": len(pairs),
        "pairs_without_negatives": sum(1 for p in pairs if not p.negatives),
        "negatives_equal_to_a_positive": dropped_equal_to_positive,
    }
    return pairs, stats
