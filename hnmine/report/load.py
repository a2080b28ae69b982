"""Read what the report needs from a run directory: only the columns it uses, with pyarrow.

Every missing file raises `RunDirError` naming the file and the stage that writes it; a missing
column raises `MissingColumn` listing the columns that exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hnmine.errors import MissingColumn, RunDirError
from hnmine.methods.rules import REASONS
from hnmine.rundir import RunDir

# The filter's rules, in the order they are tried (docs/tables.md, dropped.parquet).
REASON_ORDER = REASONS


def stage_order() -> list[str]:
    from hnmine.stages import BY_NAME

    return list(BY_NAME)


def check_run_dir(run_dir: Path) -> Path:
    """A folder to read a run from. One with no run in it (no marker, no manifests, no inputs: a data
    folder, an empty one) is named as such, not told which stage to run into it."""
    run = RunDir(run_dir)
    run.check_readable()
    if not any((Path(run_dir) / folder).is_dir() for folder in ("inputs", "manifests")):
        run.check_is_run()
    return Path(run_dir)


def require(run_dir: Path, *names: str) -> None:
    """Raise for the first missing table, in pipeline order of the stages that make them."""
    from hnmine.stages import BY_NAME, stage_making

    order = {stage: i for i, stage in enumerate(BY_NAME)}
    run = RunDir(run_dir)
    for name in sorted(names, key=lambda n: order.get(stage_making(run.rel(n)), 99)):
        run.require(name)


def read(
    run_dir: Path,
    name: str,
    columns: Iterable[str],
    optional: Iterable[str] = (),
    where: tuple[str, Iterable[str]] | None = None,
) -> pa.Table:
    """Read `columns` (and whichever of `optional` exist) of one table of the run; with
    `where=(column, values)`, only the rows whose `column` is one of `values` (first-appearance
    order of the file)."""
    require(run_dir, name)
    RunDir(run_dir).check_unchanged(name)
    path = run_dir / name
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        raise RunDirError(f"{path} is not a readable Parquet file: {_one_line(e)}") from None
    names = pf.schema_arrow.names
    present = set(names)
    columns = list(columns)
    for col in columns + ([where[0]] if where else []):
        if col not in present:
            raise MissingColumn(str(path), col, list(names))
    columns += [c for c in optional if c in present and c not in columns]
    try:
        if where is None:
            return pf.read(columns=columns)
        return _read_where(pf, columns, where[0], list(where[1]))
    except (OSError, pa.ArrowException) as e:
        raise RunDirError(f"{path} could not be read: {_one_line(e)}") from None


def _read_where(pf: pq.ParquetFile, columns: list[str], key: str, values: list[str]) -> pa.Table:
    """Scan the key column only, then read just the row groups holding matches and slice them out.
    (Much cheaper than reading every column, or than pyarrow's dataset filters for a few ids.)"""
    wanted = set(values)
    keys = pf.read(columns=[key]).column(key).to_pylist()
    idx = np.fromiter((i for i, k in enumerate(keys) if k in wanted), dtype=np.int64)
    n_groups = pf.metadata.num_row_groups
    if not idx.size or not n_groups:
        return pf.read_row_groups([0], columns=columns).slice(0, 0) if n_groups else pf.read(columns=columns)
    sizes = np.array([pf.metadata.row_group(i).num_rows for i in range(n_groups)], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    g = np.searchsorted(starts, idx, side="right") - 1
    groups = np.unique(g)
    table = pf.read_row_groups(groups.tolist(), columns=columns)
    offset = np.zeros(n_groups, dtype=np.int64)  # where each group read starts in `table`
    offset[groups] = np.concatenate([[0], np.cumsum(sizes[groups])[:-1]])
    local = offset[g] + idx - starts[g]
    # contiguous runs as slices: no Arrow array built from Python or numpy values (that would
    # import pandas inside pyarrow, most of a second)
    breaks = np.flatnonzero(np.diff(local) != 1) + 1
    runs = np.split(local, breaks)
    return pa.concat_tables([table.slice(int(r[0]), len(r)) for r in runs])


def read_manifests(run_dir: Path) -> dict[str, dict]:
    """Every trusted manifest (as plain dicts), pipeline stages first, then any others by name."""
    return {stage: m.to_json() for stage, m in RunDir(run_dir).manifests(strict=True).items()}


def lookup_texts(run_dir: Path, kind: str, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """{id: (title, text)} for the given ids of the corpus (`kind="corpus"`) or the queries."""
    ids = sorted({i for i in ids if i is not None})
    if not ids:
        return {}
    if kind == "corpus":
        name, id_col = "inputs/corpus.parquet", "doc_id"
        table = read(run_dir, name, [id_col, "text"], optional=["title"], where=(id_col, ids))
    else:
        name, id_col = "inputs/queries.parquet", "query_id"
        table = read(run_dir, name, [id_col, "text"], where=(id_col, ids))
    keys = table.column(id_col).to_pylist()
    texts = table.column("text").to_pylist()
    titles = table.column("title").to_pylist() if "title" in table.column_names else [""] * len(keys)
    return {k: (ti or "", te or "") for k, ti, te in zip(keys, titles, texts)}


# Columns to numpy straight from the Arrow buffers. pyarrow's own to_numpy / fill_null import
# pandas (most of a second), which alone would eat a third of the report's time budget.
_NUMERIC = {
    pa.float16(): np.float16,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.uint8(): np.uint8,
    pa.uint16(): np.uint16,
    pa.uint32(): np.uint32,
    pa.uint64(): np.uint64,
}


def _bits(buf, offset: int, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(buf, np.uint8), bitorder="little")[offset : offset + n].astype(bool)


def _chunk(arr: pa.Array, dtype, null) -> np.ndarray:
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype)
    if pa.types.is_boolean(arr.type):
        values = _bits(arr.buffers()[1], arr.offset, n)
    elif arr.type in _NUMERIC:
        raw = np.frombuffer(arr.buffers()[1], dtype=_NUMERIC[arr.type], count=arr.offset + n)[arr.offset :]
        values = raw.astype(dtype)
    elif pa.types.is_null(arr.type):
        return np.full(n, null, dtype)
    else:  # anything else (decimal, dictionary…): the slow, safe way
        return np.array([null if v is None else v for v in arr.to_pylist()], dtype=dtype)
    if arr.null_count:
        values[~_bits(arr.buffers()[0], arr.offset, n)] = null
    return values


def _column(table: pa.Table, col: str, dtype, null) -> np.ndarray:
    chunks = table.column(col).chunks
    if not chunks:
        return np.zeros(0, dtype)
    return np.concatenate([_chunk(c, dtype, null) for c in chunks])


def floats(table: pa.Table, col: str) -> np.ndarray:
    """A numeric column as float64 numpy, nulls as NaN."""
    return _column(table, col, np.float64, np.nan)


def ints(table: pa.Table, col: str, null: int = -1) -> np.ndarray:
    """An integer column as int64 numpy, nulls as `null`."""
    return _column(table, col, np.int64, null)


def bools(table: pa.Table, col: str) -> np.ndarray:
    """A boolean column as numpy, nulls as False."""
    return _column(table, col, bool, False)


def strings(table: pa.Table, col: str) -> np.ndarray:
    out = np.empty(table.num_rows, dtype=object)
    out[:] = table.column(col).to_pylist()
    return out


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:300]
