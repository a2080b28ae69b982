"""Generic hashing: a file's sha256, a folder's (names and contents), and the memo of one pipeline run.

What a stage's key and manifest record of the files it reads and writes (hnmine.rundir checks them), and
what the model folder's fingerprint and the embedding cache are keyed on.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections.abc import Iterator
from pathlib import Path

from hnmine.io.atomic import is_temp_name

# Digests remembered for one pipeline run (hash_scope), in this thread only; None outside a scope.
_scope_memo: contextvars.ContextVar[dict[tuple[int, ...], str] | None] = contextvars.ContextVar("hnmine_hash_memo", default=None)


@contextlib.contextmanager
def hash_scope() -> Iterator[None]:
    """Remember file digests for the duration of one pipeline run (hnmine.runner.mine).

    One run asks for the same file's digest many times (each stage's key, each later stage's check that
    what it reads is current, a model folder's fingerprint for every key it enters): on SciFact the
    corpus table 26 times. Within the scope a digest is reused while the file is the same file (device,
    inode, size, modification and change time, which any write moves); outside a scope every call
    reads the bytes, so a memo never outlives a run: a file edited in place between two runs of one
    process (a notebook) with the same size and time is read again."""
    if _scope_memo.get() is not None:  # nested: the outer scope holds
        yield
        return
    token = _scope_memo.set({})
    try:
        yield
    finally:
        _scope_memo.reset(token)


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes: read every time, except within a hash_scope (see there)."""
    path = Path(path)
    memo = _scope_memo.get()
    if memo is None:
        return _sha256(path)
    st = path.stat()
    memo_key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    digest = memo.get(memo_key)
    if digest is None:
        digest = memo[memo_key] = _sha256(path)
    return digest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_hash(path: Path) -> str:
    """Fingerprint of a folder's files (names and contents); temporary files are not output."""
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")):
        if p.is_file() and not is_temp_name(p.name):
            h.update(str(p.relative_to(path)).encode())
            h.update(file_hash(p).encode())
    return h.hexdigest()


def content_hash(path: Path) -> str:
    return tree_hash(path) if Path(path).is_dir() else file_hash(path)
