"""Small numpy / pyarrow helpers shared by the selection modules."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hnmine.errors import MissingColumn


def offsets(sorted_group: np.ndarray, n: int) -> np.ndarray:
    """Start offsets (n + 1) of groups 0..n-1 in an array sorted by group."""
    return np.concatenate([[0], np.cumsum(np.bincount(sorted_group, minlength=n))]).astype(np.int64)


def positions_in_segments(counts: np.ndarray) -> np.ndarray:
    """0, 1, .., counts[0]-1, 0, 1, .., counts[1]-1, ...: each element's position in its segment."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


def concatenated_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """starts[0] .. starts[0]+counts[0]-1, starts[1] .. : the ranges one after the other."""
    return np.repeat(starts, counts) + positions_in_segments(counts)


def distinct(values: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, each value's index among them) of integers in [0, bound): what
    np.unique(values, return_inverse=True) gives, by a mask over [0, bound) when `values` is
    large enough for that to beat a sort (a filter run's candidates against its corpus)."""
    if values.size * 8 < bound:
        return np.unique(values, return_inverse=True)
    present = np.zeros(bound, dtype=bool)
    present[values] = True
    uniq = np.flatnonzero(present)
    index = np.zeros(bound, dtype=np.int64)
    index[uniq] = np.arange(uniq.size)
    return uniq, index[values]


def sorted_contains(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Elementwise: x[i] is in the sorted array."""
    if sorted_values.size == 0:
        return np.zeros(x.shape, dtype=bool)
    i = np.minimum(np.searchsorted(sorted_values, x), sorted_values.size - 1)
    return sorted_values[i] == x


def column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def string_column(table: pa.Table, name: str) -> pa.Array:
    """A column as one plain string array (dictionary-decoded, other types cast)."""
    col = column(table, name)
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    return col


def require_columns(table: pa.Table, label: str, columns: tuple[str, ...]) -> None:
    for name in columns:
        if name not in table.column_names:
            raise MissingColumn(label, name, list(table.column_names))


def first_true(mask: pa.Array) -> int:
    """Index of the first true value of a boolean array."""
    return int(np.argmax(mask.to_numpy(zero_copy_only=False)))


def a_duplicate(values: pa.Array) -> str:
    """One value that appears more than once (for error messages)."""
    counts = pc.value_counts(values)
    return pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))[0].as_py()
