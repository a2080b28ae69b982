"""Vectors the user brings (--corpus-embeddings, --query-embeddings): npy (memory-mapped) or Parquet
with one list column, checked and L2-normalised block by block, so memory stays bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hnmine.errors import InputError
from hnmine.io.files import check_regular_file, read_parquet


def _npy_errors() -> tuple[type[BaseException], ...]:
    import tokenize

    # What np.load raises on a damaged file: a short read, a bad header, and a header dictionary numpy's
    # parser cannot tokenize or evaluate (a header cut short: tokenize.TokenError, not a ValueError).
    return (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError)


NPY_ERRORS = _npy_errors()


def open_user_vectors(path: Path, expected_rows: int, rows_of: str = "") -> np.ndarray:
    """Vectors a user brings (npy, memory-mapped; or Parquet with one list column), shape-checked.

    `rows_of` says which rows the vectors must match (for the message): the run's normalised table,
    which leaves out empty and repeated rows of the user's file, not the file itself.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    check_regular_file(path, "vectors")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":  # numpy would say it holds pickled data, whatever it holds
                raise InputError(f"{path}: not a .npy file (it does not start with the NumPy header; save it with numpy.save)")
        try:
            vectors = np.load(path, mmap_mode="r")
        except NPY_ERRORS as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise InputError(f"{path}: not a readable .npy file ({detail})") from None
        if vectors.dtype.kind not in "fiu":
            raise InputError(f"{path}: holds {vectors.dtype} values, not numbers")
    elif suffix in (".parquet", ".pq"):
        vectors = _parquet_vectors(path)
    else:
        raise InputError(f"{path}: unknown embeddings format '{path.suffix}' (valid: .npy, .parquet)")
    if vectors.ndim != 2 or vectors.shape[0] != expected_rows:
        raise InputError(
            f"{path}: expected {expected_rows} vectors, one per row of {rows_of or 'the input'} in its order, "
            f"found shape {tuple(vectors.shape)}"
        )
    if vectors.shape[1] == 0:  # every score would be 0 and every ranking arbitrary
        raise InputError(f"{path}: the vectors have no values (shape {tuple(vectors.shape)})")
    return vectors


def _parquet_vectors(path: Path) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    table = read_parquet(path)
    cols = [c for c in table.column_names if str(table.schema.field(c).type).startswith(("list", "fixed_size_list", "large_list"))]
    if len(cols) != 1:
        raise InputError(f"{path}: expected one list column of vectors, found {len(cols)} (columns: {', '.join(table.column_names)})")
    column = table.column(cols[0]).combine_chunks()
    value_type = column.type.value_type
    if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type) or pa.types.is_decimal(value_type)):
        # texts or booleans would be cast to numbers silently, nested lists crash the cast
        raise InputError(f"{path}: column '{cols[0]}' holds lists of {value_type}, not numbers")
    if column.null_count:
        raise InputError(
            f"{path}: row {int(np.argmax(column.is_null().to_numpy(zero_copy_only=False))) + 1} of column '{cols[0]}' has no vector"
        )
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.argmax(lengths != lengths[0]))
        raise InputError(f"{path}: row {row + 1} of column '{cols[0]}' has {lengths[row]} values, row 1 has {lengths[0]}")
    # Flattened in Arrow: no Python float per value (a million 384-d vectors would be 384 million).
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return flat.reshape(len(column), int(lengths[0]) if len(lengths) else 0)


_BLOCK = 65536  # rows checked and normalised at a time: memory stays bounded whatever the corpus size
# Above this norm a vector's dot product with itself overflows float32: unnormalised, its scores would be inf.
_LARGEST_SCORABLE_NORM = float(np.sqrt(np.finfo(np.float32).max))


def checked_block(vectors: np.ndarray, start: int, path: Path, normalize: bool, stop: int | None = None) -> np.ndarray:
    """Rows [start, stop) (default: one _BLOCK) as float32, checked finite, L2-normalised row by row."""
    source = vectors[start : start + _BLOCK if stop is None else stop]
    with np.errstate(over="ignore"):  # a value beyond float32's range is named below, not warned about
        block = np.array(source, dtype=np.float32)
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        if np.isfinite(source[row]).all():  # finite in the file: float64 values float32 cannot hold
            largest = float(np.max(np.abs(np.asarray(source[row], dtype=np.float64))))
            raise InputError(f"{path}: row {start + row + 1} holds a value beyond float32's range ({largest:.3g}); scale the vectors down")
        raise InputError(f"{path}: holds non-finite values (row {start + row + 1})")
    norms, lost, lost_norms = _row_norms(block)
    if normalize:
        norms[norms == 0] = 1.0
        block /= norms
        # rows whose float32 norm over- or underflowed: divided in float64
        block[lost] = (block[lost].astype(np.float64) / lost_norms[:, None]).astype(np.float32)
        return block
    too_large = np.flatnonzero(norms[:, 0] > _LARGEST_SCORABLE_NORM).tolist() + lost[lost_norms > _LARGEST_SCORABLE_NORM].tolist()
    if too_large:
        row = min(too_large)
        norm = float(lost_norms[lost == row][0]) if row in lost else float(norms[row, 0])
        raise InputError(
            f"{path}: row {start + row + 1} has a norm of {norm:.3g}: unnormalised, its dot products "
            f"overflow float32 (every score inf); scale the vectors down, or drop --no-normalize"
        )
    return block


def _row_norms(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(L2 norms n x 1 in float32, the rows whose float32 norm over- or underflowed, their norms in float64).
    Values near 3e38 are finite but their squares are not; tiny ones square to 0. The float32 norm of such
    a row is set to 1 (dividing by it leaves the row as it is)."""
    with np.errstate(over="ignore", under="ignore"):
        norms = np.linalg.norm(block, axis=1, keepdims=True)
    lost = np.flatnonzero(~np.isfinite(norms[:, 0]) | ((norms[:, 0] == 0) & block.any(axis=1)))
    norms[lost] = 1.0
    return norms, lost, np.linalg.norm(block[lost].astype(np.float64), axis=1)


def load_user_vectors(path: Path, expected_rows: int, *, normalize: bool, rows_of: str = "") -> np.ndarray:
    """User vectors in memory (query vectors), checked and normalised."""
    vectors = open_user_vectors(path, expected_rows, rows_of)
    out = np.empty(vectors.shape, dtype=np.float32)
    for start in range(0, len(vectors), _BLOCK):
        out[start : start + _BLOCK] = checked_block(vectors, start, Path(path), normalize)
    return out


def save_user_vectors(path: Path, expected_rows: int, target: Path, *, normalize: bool, rows_of: str = "") -> None:
    """User vectors (corpus vectors) checked, normalised and written to `target` block by block."""
    from hnmine.io.atomic import atomic_path, open_npy_for_writing

    vectors = open_user_vectors(path, expected_rows, rows_of)
    with atomic_path(target) as tmp:
        out = open_npy_for_writing(tmp, tuple(vectors.shape), np.float32)
        for start in range(0, len(vectors), _BLOCK):
            out[start : start + _BLOCK] = checked_block(vectors, start, Path(path), normalize)
        out.flush()
        del out
