"""What the report needs from a run, read through its one reader (hnmine.rundir.RunDir.read_current:
only the columns it uses, a missing file named with the stage that writes it, a missing column with
the columns that exist), and Arrow columns as numpy without pandas.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from hnmine.methods.rules import REASONS
from hnmine.rundir import RunDir

# The filter's rules, in the order they are tried (docs/tables.md, dropped.parquet).
REASON_ORDER = REASONS


def read_manifests(run: RunDir) -> dict[str, dict]:
    """Every trusted manifest (as plain dicts), pipeline stages first, then any others by name."""
    return {stage: m.to_json() for stage, m in run.manifests(strict=True).items()}


def lookup_texts(run: RunDir, kind: str, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """{id: (title, text)} for the given ids of the corpus (`kind="corpus"`) or the queries."""
    ids = sorted({i for i in ids if i is not None})
    if not ids:
        return {}
    if kind == "corpus":
        id_col = "doc_id"
        table = run.read_current("corpus", [id_col, "text"], optional=["title"], where=(id_col, ids))
    else:
        id_col = "query_id"
        table = run.read_current("queries", [id_col, "text"], where=(id_col, ids))
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
