"""Reading tabular files (Parquet, JSONL, CSV, TSV) into Arrow tables, with row-precise errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa

from hnmine.errors import InputError, MissingColumn

READERS = {  # file suffix -> reader
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
}


def detect_format(path: Path) -> str:
    fmt = READERS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unknown file format '{path.suffix or '(no extension)'}' "
            f"(valid: {', '.join(sorted(set(READERS)))})"
        )
    return fmt


def read_table(path: Path) -> pa.Table:
    """Read a whole file as an Arrow table. Every failure becomes an InputError naming the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    fmt = detect_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).read()
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
    if fmt == "jsonl":
        return _read_jsonl(path)
    return _read_delimited(path, "," if fmt == "csv" else "\t")


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet file without pyarrow.dataset (whose import pulls in pandas: ~2 s per command)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).read(columns=columns)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _read_jsonl(path: Path) -> pa.Table:
    # Parsed line by line so that an error names its line; json is fast enough for millions of rows.
    rows: list[dict] = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark (Windows editors write one): not part of the data
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path}:{lineno}: not valid UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})"
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            rows.append(obj)
    if not rows:
        raise InputError(f"{path}: file is empty")
    columns: dict[str, list] = {}
    for obj in rows:
        for key in obj:
            columns.setdefault(key, [])
    for key in columns:
        columns[key] = [obj.get(key) for obj in rows]
    arrays = {}
    for key, values in columns.items():
        arrays[key] = _to_array(values)
    return pa.table(arrays)


def _to_array(values: list) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    if any(isinstance(v, list) for v in values):
        # Lists mixed with scalars (a positives field that is sometimes one string): a scalar is a
        # one-item list, never a sequence of characters.
        try:
            return pa.array([None if _missing(v) else (v if isinstance(v, list) else [v]) for v in values])
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array([None if _missing(v) else [None if _missing(x) else str(x) for x in (v if isinstance(v, list) else [v])] for v in values])
    # Mixed scalar types (ids that are sometimes numbers, sometimes strings): keep them as text.
    # NaN (JSON allows it) is a missing value, never the text "nan".
    return pa.array([None if _missing(v) else (json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else str(v)) for v in values])


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _read_delimited(path: Path, delimiter: str) -> pa.Table:
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if delimiter == "," else False),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=False, auto_dict_encode=False),
        )
    except pa.ArrowInvalid as exc:
        msg = _first_line(exc)
        if "UTF8" in msg or "utf8" in msg.lower():
            raise InputError(f"{path}:{_bad_utf8_line(path)}: not valid UTF-8") from None
        if "Empty CSV file" in msg:
            raise InputError(f"{path}: file is empty") from None
        raise InputError(f"{path}: cannot parse ({msg})") from None
    # Arrow reads a column holding bytes that are not UTF-8 as binary instead of failing: never
    # turn those into "b'...'" strings.
    for name, column_type in zip(table.column_names, table.schema.types):
        if pa.types.is_binary(column_type) or pa.types.is_large_binary(column_type):
            raise InputError(f"{path}:{_bad_utf8_line(path)}: not valid UTF-8 (column '{name}')")
    return table


def _bad_utf8_line(path: Path) -> int:
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return lineno
    return 0


def require_columns(table: pa.Table, path: Path | str, columns: list[str]) -> None:
    for col in columns:
        if col not in table.column_names:
            raise MissingColumn(str(path), col, table.column_names)


def string_column(table: pa.Table, path: Path | str, column: str, *, what: str, allow_empty: bool) -> list[str]:
    """A column as Python strings, with None/NaN/empty reported by row (1-based data row)."""
    values = table.column(column).to_pylist()
    out: list[str] = []
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if allow_empty:
                out.append("")
                continue
            raise InputError(f"{path}: row {i + 1}: {what} column '{column}' is missing (null/NaN)")
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{path}: row {i + 1}: {what} column '{column}' is not valid UTF-8") from None
        if isinstance(v, (list, dict)):
            raise InputError(f"{path}: row {i + 1}: {what} column '{column}' holds a {type(v).__name__}, expected text")
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        s = v if isinstance(v, str) else str(v)
        if not allow_empty and not s.strip():
            raise InputError(f"{path}: row {i + 1}: {what} column '{column}' is empty")
        out.append(s)
    return out
