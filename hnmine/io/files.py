"""Reading tabular files (Parquet, JSONL, CSV, TSV; the text ones optionally gzip-compressed) into Arrow
tables, with row-precise errors.

Nothing is type-inferred: a CSV/TSV cell is read as the text written in the file, and a JSON number
keeps its spelling (`"0001"` and `0001` in a TSV are the same id; `1.50` stays `1.50`). Columns that
must be numbers (a relevance grade) are parsed by whoever reads them, with a message naming the row.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from hnmine.errors import InputError, MissingColumn, OptionError

READERS = {  # file suffix -> reader
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
}
COMPRESSED = (".gz",)  # text formats may be gzip-compressed, as BEIR and many datasets ship them


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
        compressed = True
    else:
        compressed = False
    fmt = READERS.get(suffixes[-1]) if suffixes else None
    if fmt is None or (compressed and fmt == "parquet"):
        valid = sorted(set(READERS)) + [f"{s}.gz" for s in sorted(READERS) if READERS[s] != "parquet"]
        raise InputError(f"{path}: unknown file format '{''.join(path.suffixes) or '(no extension)'}' (valid: {', '.join(valid)})")
    return fmt


def is_gzip(path: Path) -> bool:
    return path.suffix.lower() in COMPRESSED


def is_saved_dataset(path: Path) -> bool:
    """A folder written by `datasets`' save_to_disk (a Dataset, or a DatasetDict of splits)."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def check_utf8_path(path: Path) -> None:
    """A path pyarrow can open: one holding bytes that are not UTF-8 is an InputError naming them."""
    from hnmine.terminal_text import not_utf8

    bad = not_utf8(path)
    if bad:
        raise InputError(f"{path}: the path holds bytes that are not UTF-8 ({bad}), which hnmine cannot read; rename it")


def check_regular_file(path: Path, role: str) -> None:
    """An input hnmine reads more than once (its encoding, its rows, its fingerprint) must be a file: a named
    pipe gives its bytes once, and the next read waits for a writer for ever. A missing path or a folder is
    left to the caller's own message."""
    import stat

    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    what = "a named pipe" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
    raise InputError(f"{path}: is {what}, not a file: hnmine reads an input more than once; save it to a file ({role})")


def read_table(path: Path, split: str | None = None) -> pa.Table:
    """Read a whole file (or a saved `datasets` folder) as an Arrow table. Every failure becomes an
    InputError naming the file."""
    path = Path(path)
    check_utf8_path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if is_saved_dataset(path):
        return _read_saved_dataset(path, split)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    fmt = detect_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.ParquetFile(path).read()
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
        return _unique_columns(table, path)
    try:
        _refuse_wide_encodings(path)
        if fmt == "jsonl":
            return _read_jsonl(path)
        return _unique_columns(_read_delimited(path, "," if fmt == "csv" else "\t"), path)
    except (OSError, EOFError) as exc:  # a damaged .gz file
        raise InputError(f"{path}: cannot be read ({_first_line(exc)})") from None


def choose_split(splits: list[str], split: str | None, where: Path) -> str:
    """The split to read: the one asked for, else `train`, else the only one (BEIR folders and saved DatasetDicts alike)."""
    if split is None:
        if "train" in splits or len(splits) == 1:
            return "train" if "train" in splits else splits[0]
        raise OptionError(f"{where}: several splits ({', '.join(splits)}); choose one with --split")
    if split not in splits:
        raise InputError(f"{where}: no split '{split}' (splits: {', '.join(splits)})")
    return split


def _read_saved_dataset(path: Path, split: str | None) -> pa.Table:
    """The Arrow shards of a save_to_disk folder, read with pyarrow alone (no `datasets` needed)."""
    if (path / "dataset_dict.json").is_file():
        try:
            splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"{path}: dataset_dict.json is not readable") from None
        if not isinstance(splits, list) or not splits or not all(isinstance(s, str) and s for s in splits):
            # a text would be read as its letters, each a split
            raise InputError(f"{path}: dataset_dict.json is not readable (its splits are not a list of names)")
        path = path / choose_split(splits, split, path)
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        shards = [path / f["filename"] for f in state["_data_files"]]
        tables = []
        for shard in shards:
            with pa.memory_map(str(shard)) as source:
                tables.append(pa.ipc.open_stream(source).read_all())
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: not a readable saved dataset ({_first_line(exc)})") from None
    if not tables:
        raise InputError(f"{path}: the saved dataset holds no data")
    return pa.concat_tables(tables)


def _unique_columns(table: pa.Table, path: Path) -> pa.Table:
    """A header that names a column twice: which one holds the ids or texts is a guess, so it is refused."""
    seen: set[str] = set()
    for name in table.column_names:
        if name in seen:
            raise InputError(f"{path}: column '{name}' appears twice in the header")
        seen.add(name)
    return table


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet file without pyarrow.dataset (whose import pulls in pandas: ~2 s per command)."""
    import pyarrow.parquet as pq

    check_utf8_path(path)
    return pq.ParquetFile(path).read(columns=columns)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _open_binary(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")  # type: ignore[return-value]


def _refuse_wide_encodings(path: Path) -> None:
    """A text file saved as UTF-16 or UTF-32 (Excel's "Unicode text", PowerShell's `>`): named as such, where
    the parsers would report a broken row or invalid JSON. Told by its byte-order mark, or by NUL bytes,
    which UTF-8 text does not hold."""
    with _open_binary(path) as fh:
        head = fh.read(4096)
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        encoding = "UTF-32"
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "UTF-16"
    elif head.count(0) and head.count(0) >= len(head) // 8:  # ASCII in UTF-32 is 3/4 NUL bytes, in UTF-16 1/2
        encoding = "UTF-32" if head.count(0) >= len(head) * 5 // 8 else "UTF-16"
    else:
        return
    raise InputError(f"{path}: not UTF-8 (looks like {encoding}; re-save as UTF-8)")


def _read_jsonl(path: Path) -> pa.Table:
    # Parsed line by line so that an error names its line. Numbers are kept as the text written
    # (parse_int/parse_float): an id 0001 in a JSON string and 1.50 as a number keep their spelling.
    rows: list[dict] = []
    with _open_binary(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark (Windows editors write one): not part of the data
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line, parse_int=str, parse_float=_json_float, object_pairs_hook=_object)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            except _DuplicateKey as exc:
                raise InputError(f"{path}:{lineno}: key '{exc.key}' appears twice in one object") from None
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
    table = pa.table({key: _to_array(values) for key, values in columns.items()})
    mixed = {key: rows_ for key, values in columns.items() if (rows_ := _mixed_rows(values))}
    return table.replace_schema_metadata({_MIXED: json.dumps(mixed)}) if mixed else table


# A column whose rows mix texts with lists or objects cannot keep both in Arrow: the texts become one-item
# lists, or the objects JSON text. Where that happened the table's metadata says so, with the first row
# holding each ({"text": {"list": 3}}), so a reader wanting text names that row, never row 1 or nothing.
_MIXED = b"hnmine.mixed_rows"


def _mixed_rows(values: list) -> dict[str, int]:
    """{"list"/"object"/"other": first 1-based row holding one} when a column mixes lists or objects with other
    values (texts, numbers); else {}."""
    kinds = {"list": 0, "object": 0, "other": 0}
    first: dict[str, int] = {}
    for row, v in enumerate(values, start=1):
        kind = "list" if isinstance(v, list) else "object" if isinstance(v, dict) else "other" if not _missing(v) else ""
        if kind:
            kinds[kind] += 1
            first.setdefault(kind, row)
    if sum(1 for n in kinds.values() if n) < 2:
        return {}  # one kind only: Arrow holds it as it is (a list column, a struct column)
    return first  # "other": the first text (or number) beside them, which a reader of lists names


def mixed_rows(table: pa.Table, column: str) -> dict[str, int]:
    """What `_mixed_rows` found in `column` of a table the JSONL reader made ({} for any other table)."""
    raw = (table.schema.metadata or {}).get(_MIXED)
    return json.loads(raw).get(column, {}) if raw else {}


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object; a key written twice is refused (json.loads would keep the last value silently)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


DuplicateKey = _DuplicateKey


def loads_object(text: str) -> Any:
    """json.loads, with a key written twice in one object refused (DuplicateKey) instead of the last kept:
    for the JSON lines hnmine writes and reads back (the review journal)."""
    return json.loads(text, object_pairs_hook=_object)


def _json_float(text: str) -> str:
    """A JSON number with a fraction or exponent, kept as written; NaN and infinities are missing values."""
    return text


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
            return pa.array(
                [None if _missing(v) else [None if _missing(x) else str(x) for x in (v if isinstance(v, list) else [v])] for v in values]
            )
    # Mixed scalar types (a flag that is sometimes a string): keep them as text.
    return pa.array([None if _missing(v) else (json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else str(v)) for v in values])


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _read_delimited(path: Path, delimiter: str) -> pa.Table:
    """Every column as text, exactly as written (no type inference: `001` stays `001`)."""
    import pyarrow.csv as pacsv

    quoted = delimiter == ","
    parse = pacsv.ParseOptions(
        delimiter=delimiter, quote_char='"' if quoted else False, newlines_in_values=quoted
    )  # a quoted CSV cell may hold line breaks
    names: list[str] = []
    try:
        names = _header(path, parse)
        convert = pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            strings_can_be_null=False,
            auto_dict_encode=False,
            quoted_strings_can_be_null=False,
        )
        table = _read_csv_whole_rows(path, parse, convert)
    except pa.ArrowInvalid as exc:
        msg = _first_line(exc)
        if "UTF8" in msg or "utf8" in msg.lower():
            import re

            col = re.search(r"column #(\d+)", msg)
            where = f" (column '{names[int(col.group(1))]}')" if col and int(col.group(1)) < len(names) else ""
            raise InputError(f"{path}:{_bad_utf8_line(path)}: not valid UTF-8{where}") from None
        if "Empty CSV file" in msg:
            raise InputError(f"{path}: file is empty") from None
        raise InputError(f"{path}: cannot parse ({msg})") from None
    return table


_BLOCK = 1 << 20  # pyarrow's CSV block: a row must fit in one
_LARGEST_BLOCK = 1 << 30


def _read_csv_whole_rows(path: Path, parse, convert) -> pa.Table:
    """pyarrow's read_csv, with blocks as large as the longest row needs."""
    import pyarrow.csv as pacsv

    def read(block: int) -> pa.Table:
        options = pacsv.ReadOptions(use_threads=True, block_size=block)
        return pacsv.read_csv(path, read_options=options, parse_options=parse, convert_options=convert)

    return _with_blocks_for_long_rows(read, _BLOCK)


def _with_blocks_for_long_rows(read, block: int):
    """`read(block)`, again with 8x larger blocks while a row does not fit in one: a cell of several MB makes
    pyarrow say a "straddling object straddles two block boundaries", which is no fault of the file."""
    while True:
        try:
            return read(block)
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc) or block >= _LARGEST_BLOCK:
                raise
            block *= 8


def _header(path: Path, parse) -> list[str]:
    """The column names (the first row), read alone so every column can be declared text."""
    import pyarrow.csv as pacsv

    def schema(block: int):
        options = pacsv.ReadOptions(block_size=block)
        return pacsv.open_csv(path, parse_options=parse, convert_options=pacsv.ConvertOptions(auto_dict_encode=False), read_options=options)

    reader = _with_blocks_for_long_rows(schema, 1 << 16)
    names = list(reader.schema.names)
    reader.close() if hasattr(reader, "close") else None
    return names


def _bad_utf8_line(path: Path) -> int:
    with _open_binary(path) as fh:
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


def id_text(value: Any) -> str:
    """An id as text, the one rule for every reader: text as written; an integer in decimal; a float
    that is a whole number (a Parquet/pandas integer column with nulls becomes float) without '.0'."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def string_column(table: pa.Table, path: Path | str, column: str, *, what: str, allow_empty: bool) -> list[str]:
    """A column as Python strings, with None/NaN/empty reported by row (1-based data row)."""
    values = table.column(column).to_pylist()
    mixed = {kind: row for kind, row in mixed_rows(table, column).items() if kind != "other"}  # texts are what it reads
    first_mixed = min(mixed.values(), default=0)
    out: list[str] = []
    for i, v in enumerate(values):
        if i + 1 == first_mixed:
            kind = min(mixed, key=lambda k: mixed[k])
            raise InputError(
                f"{path}: row {i + 1}: {what} column '{column}' holds {'a list' if kind == 'list' else 'an object'}, expected text"
            )
        if "list" in mixed and isinstance(v, list):  # a text the reader wrapped to sit beside a later row's list
            v = v[0] if v else None
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
        s = id_text(v)
        if not allow_empty and not s.strip():
            raise InputError(f"{path}: row {i + 1}: {what} column '{column}' is empty")
        out.append(s)
    return out
