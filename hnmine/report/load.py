"""Read what the report needs from a run directory: only the columns it uses, with pyarrow.

Every missing file raises `RunDirError` naming the file and the stage that writes it; a missing
column raises `MissingColumn` listing the columns that exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hnmine.errors import MissingColumn, RunDirError

STAGE_ORDER = ("inputs", "index", "retrieve", "score", "filter", "export")

# The stage that writes each table (docs/tables.md), for messages about a missing one.
MADE_BY = {
    "inputs/corpus.parquet": "inputs",
    "inputs/queries.parquet": "inputs",
    "inputs/qrels.parquet": "inputs",
    "candidates.parquet": "retrieve",
    "scores.parquet": "score",
    "negatives.parquet": "filter",
    "dropped.parquet": "filter",
    "query_summary.parquet": "filter",
}

# The filter's rules, in the order they are tried (docs/tables.md, dropped.parquet).
REASON_ORDER = (
    "known_positive",
    "same_text_as_positive",
    "near_duplicate_of_positive",
    "outside_rank_window",
    "above_max_score",
    "below_min_score",
    "within_margin_of_positive",
    "within_relative_margin_of_positive",
    "not_sampled",
)


def check_run_dir(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(f"run directory '{run_dir}' does not exist")
    if not run_dir.is_dir():
        raise RunDirError(f"run directory '{run_dir}' is not a directory")
    return run_dir


def require(run_dir: Path, *names: str) -> None:
    """Raise for the first missing table, in pipeline order of the stages that make them."""
    order = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    for name in sorted(names, key=lambda n: order.get(MADE_BY.get(n, ""), 99)):
        if not (run_dir / name).is_file():
            stage = MADE_BY.get(name, "unknown")
            raise RunDirError(
                f"{run_dir / name} is missing: it is written by the {stage} stage "
                f"(run `hnmine {stage}` or `hnmine mine` on this run first)"
            )


def read(
    run_dir: Path,
    name: str,
    columns: Iterable[str],
    optional: Iterable[str] = (),
    filters=None,
) -> pa.Table:
    """Read `columns` (and whichever of `optional` exist) of one table of the run."""
    require(run_dir, name)
    path = run_dir / name
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as e:
        raise RunDirError(f"{path} is not a readable Parquet file: {_one_line(e)}") from None
    present = set(schema.names)
    columns = list(columns)
    for col in columns:
        if col not in present:
            raise MissingColumn(str(path), col, list(schema.names))
    columns += [c for c in optional if c in present and c not in columns]
    try:
        return pq.read_table(path, columns=columns, filters=filters)
    except (OSError, pa.ArrowException) as e:
        raise RunDirError(f"{path} could not be read: {_one_line(e)}") from None


def read_manifests(run_dir: Path) -> dict[str, dict]:
    """Every manifests/<stage>.json, pipeline stages first, then any others by name."""
    folder = run_dir / "manifests"
    found: dict[str, dict] = {}
    if not folder.is_dir():
        return found
    order = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    paths = sorted(folder.glob("*.json"), key=lambda p: (order.get(p.stem, 99), p.stem))
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise RunDirError(f"{path} is not a readable JSON manifest: {_one_line(e)}") from None
        if isinstance(data, dict):
            found[path.stem] = data
    return found


def lookup_texts(run_dir: Path, kind: str, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """{id: (title, text)} for the given ids of the corpus (`kind="corpus"`) or the queries."""
    ids = sorted({i for i in ids if i is not None})
    if not ids:
        return {}
    if kind == "corpus":
        name, id_col = "inputs/corpus.parquet", "doc_id"
        table = read(run_dir, name, [id_col, "text"], optional=["title"], filters=[(id_col, "in", ids)])
    else:
        name, id_col = "inputs/queries.parquet", "query_id"
        table = read(run_dir, name, [id_col, "text"], filters=[(id_col, "in", ids)])
    keys = table.column(id_col).to_pylist()
    texts = table.column("text").to_pylist()
    titles = table.column("title").to_pylist() if "title" in table.column_names else [""] * len(keys)
    return {k: (ti or "", te or "") for k, ti, te in zip(keys, titles, texts)}


def floats(table: pa.Table, col: str) -> np.ndarray:
    """A float column as float64 numpy, nulls as NaN."""
    arr = table.column(col)
    return pc.fill_null(pc.cast(arr, pa.float64()), float("nan")).to_numpy()


def ints(table: pa.Table, col: str, null: int = -1) -> np.ndarray:
    arr = table.column(col)
    return pc.fill_null(pc.cast(arr, pa.int64()), null).to_numpy()


def bools(table: pa.Table, col: str) -> np.ndarray:
    return pc.fill_null(table.column(col), False).to_numpy(zero_copy_only=False)


def strings(table: pa.Table, col: str) -> np.ndarray:
    return np.asarray(table.column(col).to_pylist(), dtype=object)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:300]
