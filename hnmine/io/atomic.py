"""Atomic writers: write to a temporary name in the same folder, then rename over the target."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from hnmine.errors import RunDirError


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


def write_json(obj, target: Path) -> None:
    write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n", target)


def check_writable(folder: Path) -> None:
    """Fail early, before any work, when the run directory cannot be written.

    A folder that does not exist yet is not created here (a run that fails on its inputs leaves
    nothing behind); its nearest existing parent must be a writable folder.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunDirError(f"{folder}: is a file, not a run directory")
    if not folder.exists():
        parent = folder.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise RunDirError(f"{folder}: cannot create the run directory ({parent} is a file)")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RunDirError(f"{folder}: cannot create the run directory ({parent} is not writable)")
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=".hnmine-write-check.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise RunDirError(f"{folder}: run directory is not writable ({exc.strerror or exc})") from None


def write_jsonl(table: pa.Table, target: Path) -> None:
    """One JSON object per row; ensure_ascii=False: non-Latin text stays as its characters, never \\u escapes."""
    import json

    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for batch in table.to_batches(max_chunksize=4096):
                for row in batch.to_pylist():
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
