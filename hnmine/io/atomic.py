"""Atomic writers: write to a temporary name in the same folder, then rename over the target."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hnmine.errors import RunDirError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`, on failure it is removed."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise RunDirError(f"{target.parent}: cannot write ({exc.strerror or exc})") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); a finished output gets the usual permissions.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise RunDirError(f"{target}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_temp_name(name: str) -> bool:
    """The temporary files of atomic_path (left behind only by a killed process)."""
    return name.startswith(".") and name.endswith(".tmp")


def write_parquet(table: pa.Table, target: Path) -> None:
    import pyarrow.parquet as pq

    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_text(text: str, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_user_text(text: str, target: Path) -> Path:
    """A file the user named (`report --html FILE`, `review --export FILE`): a link is written through,
    never replaced by a file (`/dev/stdout` is a link too); a pipe or a device is written to as it is
    (renaming over it would replace it). A regular file is written atomically. Returns the path written."""
    import stat

    target = Path(target)
    try:
        mode = target.stat().st_mode  # of what a link points to
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        try:
            with open(target, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise RunDirError(f"{target}: cannot write ({exc.strerror or exc})") from None
        return target
    real = Path(os.path.realpath(target)) if target.is_symlink() else target
    write_text(text, real)
    return real


def write_json(obj, target: Path) -> None:
    write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n", target)


def write_jsonl(table: pa.Table, target: Path) -> None:
    """One JSON object per line. Non-Latin text stays as its characters (ensure_ascii=False), never \\u
    escapes, except the three characters that some JSONL readers take for line breaks (str.splitlines
    splits on U+0085, U+2028 and U+2029): those are escaped, so every reader sees one object per line
    and the same strings."""
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for line in jsonl_lines(table):
                fh.write(line)


def jsonl_lines(table: pa.Table) -> Iterator[str]:
    """The lines write_jsonl writes for `table` (each ends with a newline)."""
    for batch in table.to_batches(max_chunksize=4096):
        for row in batch.to_pylist():
            yield json.dumps(row, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"


_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def open_npy_for_writing(path: Path, shape: tuple[int, ...], dtype) -> np.memmap:
    """A new .npy file at `path`, memory-mapped for writing, its blocks reserved on disk first.

    A memory map over a sparse file that the disk cannot back kills the process with SIGBUS, with no
    message and the sparse file left holding the space. Reserving the blocks first turns a full disk
    into an OSError (ENOSPC) here, which atomic_path reports in one line and cleans up.
    """
    import numpy as np

    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDWR)
    try:
        if hasattr(os, "posix_fallocate") and size:
            os.posix_fallocate(fd, 0, size)
    except OSError:
        del out
        raise
    finally:
        os.close(fd)
    return out
