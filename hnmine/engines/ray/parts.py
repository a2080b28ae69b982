"""Part files written by workers, streamed by the driver into the one file the run layout names.

Workers write each part atomically into a parts folder beside the target (`.NAME.parts/`, removed
when the target is complete; a killed run leaves it to be swept or overwritten). The driver then
reads the parts in order and writes the target through `OrderedParquetWriter`, which cuts row groups
exactly where `pyarrow.parquet.write_table` cuts them (every ROW_GROUP rows): a table written from
parts is the same bytes as the same table written whole by the local engine. Memory on the driver:
one part, plus at most one row group.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hnmine.io.atomic import atomic_path, write_parquet

ROW_GROUP = 1024 * 1024  # pyarrow's default row group size in write_table


def parts_folder(target: Path) -> Path:
    return target.with_name(f".{target.name}.parts")


def part_path(folder: Path, index: int, name: str = "part") -> Path:
    return Path(folder) / f"{name}-{index:08d}.parquet"


def write_part(table: pa.Table, folder: Path, index: int, name: str = "part") -> None:
    write_parquet(table, part_path(folder, index, name))


def read_part(folder: Path, index: int, name: str = "part") -> pa.Table:
    return pq.read_table(part_path(folder, index, name))


class OrderedParquetWriter:
    """Append tables in order; the file gets write_table's row groups (same bytes as one write_table).

    The writer decides pages and dictionary fallback batch by batch within each Arrow chunk, so the
    chunks must be cut where the local table's are: `one_chunk` for a table the local engine builds
    in one piece (the export), parts as they come for one it concatenates (candidates, then the rest).
    """

    def __init__(self, tmp: Path, schema: pa.Schema, one_chunk: bool = False):
        self.schema, self.one_chunk = schema, one_chunk
        self.writer = pq.ParquetWriter(tmp, schema, compression="zstd")
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.pending.append(table.cast(self.schema) if table.schema != self.schema else table)
        self.pending_rows += table.num_rows
        self.rows += table.num_rows
        while self.pending_rows >= ROW_GROUP:
            whole = pa.concat_tables(self.pending)
            self._write(whole.slice(0, ROW_GROUP))
            rest = whole.slice(ROW_GROUP)
            self.pending, self.pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> None:
        if self.pending_rows or self.rows == 0:
            table = pa.concat_tables(self.pending) if self.pending else self.schema.empty_table()
            self._write(table)
        self.writer.close()

    def _write(self, table: pa.Table) -> None:
        self.writer.write_table(table.combine_chunks() if self.one_chunk else table, row_group_size=ROW_GROUP)


def write_parquet_from(tables: Iterable[pa.Table], target: Path, schema: pa.Schema, one_chunk: bool = False) -> int:
    """Stream `tables` (in order) into `target` atomically; returns the rows written."""
    with atomic_path(target) as tmp:
        w = OrderedParquetWriter(tmp, schema, one_chunk)
        try:
            for t in tables:
                w.write(t)
        finally:
            w.close()
    return w.rows


def write_jsonl_from(tables: Iterable[pa.Table], target: Path) -> int:
    """Stream `tables` (in order) into one JSONL file atomically, lines as hnmine.io.atomic.write_jsonl writes them."""
    from hnmine.io.atomic import jsonl_lines

    rows = 0
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for t in tables:
            for line in jsonl_lines(t):
                fh.write(line)
            rows += t.num_rows
    return rows


def parts_in_order(folder: Path, count: int, name: str = "part") -> Iterator[pa.Table]:
    for i in range(count):
        yield read_part(folder, i, name)


def remove_parts(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def row_ranges(n: int, step: int) -> list[tuple[int, int]]:
    return [(a, min(a + step, n)) for a in range(0, n, step)]


def read_rows(path: Path, start: int, stop: int, columns: list[str] | None = None) -> pa.Table:
    """Rows [start, stop) of a Parquet file, reading only the row groups that hold them."""
    pf = pq.ParquetFile(path)
    out, offset = [], 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        lo, hi = max(start, offset), min(stop, offset + n)
        if lo < hi:
            out.append(pf.read_row_group(g, columns=columns).slice(lo - offset, hi - lo))
        offset += n
        if offset >= stop:
            break
    if not out:
        return pf.schema_arrow.empty_table().select(columns) if columns else pf.schema_arrow.empty_table()
    return pa.concat_tables(out)


def num_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows
