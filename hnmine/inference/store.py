"""The embedding store: one vector per (encoder identity, text), shared by every run and command on a machine.

Layout, under the store's root (`--cache-dir DIR`: DIR/store; default the user's hnmine cache folder's):

  <identity hash>/identity.json   what the vectors were made with (hnmine.inference.cache.encoder_identity)
  <identity hash>/seg-*.seg       segments: the sha256 of some texts and their vectors, one file each

A segment is written whole under a temporary name and renamed into place, never changed after: a killed
encode leaves the segments it finished and a temporary file the next pruning removes, never a torn segment
under its name. Writers never share a file (each segment has its own name), so two processes may write
the same identity at once; a text they both encoded is there twice, the same vector. Readers take no lock:
a segment's header records the sha256 of its text hashes and of its vectors, each checked when read, so a
damaged segment (a disk error, a copy cut short, a crash that lost its blocks) is named, removed and its
texts encoded again, never served. The index from text to (segment, row) is built from the segments'
hash blocks when a shard is looked up (32 bytes a text).

A segment's modification time is its last use: a read touches it. `hnmine cache` lists the store by model
and prunes it (by model, by age, to a total size, least recently used first).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

STORE_FORMAT = 1  # bump when what a segment holds or how a vector is made changes (part of every identity)
_MAGIC = b"HNMSEG1\n"
_HEADER_MAX = 1 << 16
SEGMENT_GLOB = "seg-*.seg"
IDENTITY_FILE = "identity.json"
_STALE_TEMP_S = 3600  # a temporary segment older than this was left by a killed process

# The cache folder a command chose (--cache-dir); None: the user's hnmine cache folder.
_chosen: contextvars.ContextVar[Path | None] = contextvars.ContextVar("hnmine_cache_dir", default=None)


def store_root(cache_dir: Path | None = None) -> Path:
    """The store's folder: CACHE_DIR/store, CACHE_DIR being `cache_dir`, else the command's --cache-dir, else the
    user's hnmine cache folder ($HNMINE_CACHE_DIR, $XDG_CACHE_HOME/hnmine, ~/.cache/hnmine)."""
    from hnmine.io.user_cache import cache_dir as user_cache_dir

    base = cache_dir if cache_dir is not None else _chosen.get()
    return Path(base if base is not None else user_cache_dir()).absolute() / "store"


@contextlib.contextmanager
def store_scope(cache_dir: Path | None) -> Iterator[None]:
    """The store of every encode in this scope is CACHE_DIR/store (None: the default)."""
    check_cache_dir(cache_dir)
    token = _chosen.set(Path(cache_dir) if cache_dir is not None else None)
    try:
        yield
    finally:
        _chosen.reset(token)


def check_cache_dir(cache_dir: Path | None) -> None:
    """--cache-dir names a folder (made when missing), not a file: checked before any work."""
    from hnmine.errors import OptionError

    if cache_dir is not None and Path(cache_dir).exists() and not Path(cache_dir).is_dir():
        raise OptionError(f"{cache_dir}: is a file, not a folder (--cache-dir)")


class StoreDamage(Exception):
    """A segment that cannot be trusted (its reason is the message)."""


@dataclass(frozen=True)
class Segment:
    path: Path
    rows: int
    dim: int
    hashes_sha: str
    vectors_sha: str
    start: int  # where the hash block begins

    @property
    def vectors_at(self) -> int:
        return self.start + 32 * self.rows


def text_hashes(texts) -> np.ndarray:
    """sha256 of each text's UTF-8 bytes, as an array of 32-byte values (numpy 'S32')."""
    return np.array([hashlib.sha256(t.encode("utf-8")).digest() for t in texts], dtype="S32")


def write_segment(folder: Path, hashes: np.ndarray, vectors: np.ndarray) -> Path:
    """A new segment of `folder` holding these texts' vectors, renamed into place whole."""
    from hnmine.errors import RunDirError
    from hnmine.io.atomic import atomic_path

    hash_bytes = np.ascontiguousarray(hashes, dtype="S32").tobytes()
    vector_bytes = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
    rows, dim = vectors.shape
    header = json.dumps(
        {
            "format": STORE_FORMAT,
            "rows": int(rows),
            "dim": int(dim),
            "hashes": hashlib.sha256(hash_bytes).hexdigest(),
            "vectors": hashlib.sha256(vector_bytes).hexdigest(),
        }
    ).encode()
    target = Path(folder) / f"seg-{time.time_ns():016x}-{os.getpid()}-{os.urandom(4).hex()}.seg"
    try:
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(_MAGIC + len(header).to_bytes(4, "little") + header)
                fh.write(hash_bytes)
                fh.write(vector_bytes)
    except RunDirError as exc:
        raise RunDirError(f"{exc}; this is the embedding store (--cache-dir)") from None
    return target


def read_header(path: Path) -> Segment:
    """A segment's header, checked against the file's size; StoreDamage when it does not hold."""
    with open(path, "rb") as fh:
        head = fh.read(len(_MAGIC) + 4)
        if len(head) < len(_MAGIC) + 4 or head[: len(_MAGIC)] != _MAGIC:
            raise StoreDamage("not a segment of this store (no header)")
        size = int.from_bytes(head[len(_MAGIC) :], "little")
        if size > _HEADER_MAX:
            raise StoreDamage("damaged header")
        try:
            h = json.loads(fh.read(size))
            seg = Segment(Path(path), int(h["rows"]), int(h["dim"]), str(h["hashes"]), str(h["vectors"]), len(head) + size)
        except (ValueError, KeyError, TypeError):
            raise StoreDamage("damaged header") from None
        if h.get("format") != STORE_FORMAT:
            raise StoreDamage(f"format {h.get('format')!r}, not {STORE_FORMAT}")
    if seg.rows < 0 or seg.dim < 0 or os.path.getsize(path) != seg.vectors_at + 4 * seg.rows * seg.dim:
        raise StoreDamage("its size is not what its header says (cut short, or grown)")
    return seg


def _read_block(seg: Segment, offset: int, size: int, digest: str, what: str) -> bytes:
    with open(seg.path, "rb") as fh:
        fh.seek(offset)
        block = fh.read(size)
    if len(block) != size or hashlib.sha256(block).hexdigest() != digest:
        raise StoreDamage(f"its {what} do not match their recorded sha256")
    return block


def read_hashes(seg: Segment) -> np.ndarray:
    return np.frombuffer(_read_block(seg, seg.start, 32 * seg.rows, seg.hashes_sha, "text hashes"), dtype="S32")


def read_vectors(seg: Segment) -> np.ndarray:
    block = _read_block(seg, seg.vectors_at, 4 * seg.rows * seg.dim, seg.vectors_sha, "vectors")
    vectors = np.frombuffer(block, dtype="<f4").reshape(seg.rows, seg.dim)
    if not np.isfinite(vectors).all():
        raise StoreDamage("it holds non-finite values")
    touch(seg.path)
    return vectors


def touch(path: Path) -> None:
    """A segment's last use is now (best effort: a read-only store is still read)."""
    with contextlib.suppress(OSError):
        os.utime(path)


@dataclass
class Lookup:
    """Where each asked text is: segments[seg[i]] row row[i]; seg[i] = -1 when the store does not hold it."""

    segments: list[Segment]
    seg: np.ndarray
    row: np.ndarray
    damaged: list[tuple[Path, str]] = field(default_factory=list)  # (segment, why), removed


@dataclass(frozen=True)
class Shard:
    """The vectors of one encoder identity."""

    folder: Path

    @classmethod
    def of(cls, identity_hash: str, root: Path | None = None) -> Shard:
        return cls((root if root is not None else store_root()) / identity_hash)

    def ensure(self, identity: dict) -> None:
        """The shard's folder and identity.json exist (written once; again after a prune removed them)."""
        from hnmine.errors import RunDirError
        from hnmine.io.atomic import write_json

        record = self.folder / IDENTITY_FILE
        if record.is_file():
            return
        try:
            write_json(identity, record)
        except RunDirError as exc:
            raise RunDirError(f"{exc}; this is the embedding store (--cache-dir)") from None

    def segment_paths(self) -> list[Path]:
        try:
            return sorted(self.folder.glob(SEGMENT_GLOB))
        except OSError:
            return []

    def lookup(self, hashes: np.ndarray) -> Lookup:
        """Where each of `hashes` (unique, 'S32') is in the store; damaged segments are removed and reported."""
        segments: list[Segment] = []
        found_hashes: list[np.ndarray] = []
        seg_of: list[np.ndarray] = []
        damaged: list[tuple[Path, str]] = []
        for path in self.segment_paths():
            try:
                seg = read_header(path)
                block = read_hashes(seg)
            except FileNotFoundError:  # pruned meanwhile
                continue
            except (StoreDamage, OSError) as exc:
                damaged.append((path, str(exc)))
                remove_segment(path)
                continue
            found_hashes.append(block)
            seg_of.append(np.full(seg.rows, len(segments), dtype=np.int64))
            segments.append(seg)
        where = np.full(len(hashes), -1, dtype=np.int64)
        row = np.zeros(len(hashes), dtype=np.int64)
        if segments and len(hashes):
            held = np.concatenate(found_hashes)
            owner = np.concatenate(seg_of)
            rows = np.concatenate([np.arange(s.rows) for s in segments])
            order = np.argsort(held, kind="stable")  # a text held twice: the older segment's (first by name)
            held, owner, rows = held[order], owner[order], rows[order]
            at = np.searchsorted(held, hashes)
            hit = at < len(held)
            hit[hit] = held[at[hit]] == hashes[hit]
            where[hit] = owner[at[hit]]
            row[hit] = rows[at[hit]]
        return Lookup(segments, where, row, damaged)


def remove_segment(path: Path) -> None:
    with contextlib.suppress(OSError):
        Path(path).unlink()


# ------------------------------------------------------------------------------------ listing and pruning


@dataclass
class SegmentInfo:
    path: Path
    rows: int
    size: int
    last_use: float


@dataclass
class ShardInfo:
    folder: Path
    identity: dict
    segments: list[SegmentInfo]

    @property
    def model(self) -> str:
        return str(self.identity.get("name") or self.identity.get("model") or "(unknown: no identity.json)")

    @property
    def texts(self) -> int:
        return sum(s.rows for s in self.segments)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def last_use(self) -> float | None:
        return max((s.last_use for s in self.segments), default=None)

    def as_json(self) -> dict:
        from datetime import datetime, timezone

        last = self.last_use
        return {
            "model": self.model,
            "shard": self.folder.name,
            "identity": self.identity,
            "texts": self.texts,
            "bytes": self.size,
            "segments": len(self.segments),
            "last_use": datetime.fromtimestamp(last, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if last else None,
        }


def list_store(root: Path) -> list[ShardInfo]:
    """Every shard under `root`, by model name then identity; a segment is counted by its header (not verified)."""
    shards = []
    for folder in sorted(p for p in _children(root) if p.is_dir()):
        try:
            identity = json.loads((folder / IDENTITY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            identity = {}
        segments = []
        for path in Shard(folder).segment_paths():
            try:
                seg, st = read_header(path), path.stat()
            except (StoreDamage, OSError):
                continue  # damaged or gone: not counted, removed by the next read or prune
            segments.append(SegmentInfo(path, seg.rows, st.st_size, st.st_mtime))
        shards.append(ShardInfo(folder, identity if isinstance(identity, dict) else {}, segments))
    return sorted(shards, key=lambda s: (s.model, s.folder.name))


def _children(root: Path) -> list[Path]:
    try:
        return list(Path(root).iterdir())
    except OSError:
        return []


@dataclass
class Pruned:
    segments: int = 0
    texts: int = 0
    bytes: int = 0
    models: dict[str, int] = field(default_factory=dict)  # model -> texts removed

    def as_json(self) -> dict:
        return {"segments": self.segments, "texts": self.texts, "bytes": self.bytes, "models": self.models}


def prune(root: Path, *, model: str | None = None, older_than: float | None = None, max_size: int | None = None) -> Pruned:
    """Remove segments of the store: of `model` (all of them, unless an age or size is given too), last used
    more than `older_than` seconds ago, and the least recently used until what is left weighs at most
    `max_size` bytes (of `model`'s shards when it is given). Empty shards and stale temporary files go too."""
    shards = [s for s in list_store(root) if model is None or model in (s.model, s.identity.get("model"))]
    chosen: list[tuple[ShardInfo, SegmentInfo]] = []
    if model is not None and older_than is None and max_size is None:
        chosen = [(s, g) for s in shards for g in s.segments]
    if older_than is not None:
        limit = time.time() - older_than
        chosen += [(s, g) for s in shards for g in s.segments if g.last_use < limit]
    if max_size is not None:
        taken = {id(g) for _, g in chosen}
        left = sorted(((s, g) for s in shards for g in s.segments if id(g) not in taken), key=lambda x: x[1].last_use)
        total = sum(g.size for _, g in left)
        for s, g in left:
            if total <= max_size:
                break
            chosen.append((s, g))
            total -= g.size
    done = Pruned()
    for s, g in chosen:
        remove_segment(g.path)
        done.segments, done.texts, done.bytes = done.segments + 1, done.texts + g.rows, done.bytes + g.size
        done.models[s.model] = done.models.get(s.model, 0) + g.rows
    for s in shards:
        _tidy(s.folder)
    return done


def _tidy(folder: Path) -> None:
    """Stale temporary files out; a shard left without segments removed (a writer's new segment keeps it)."""
    now = time.time()
    for tmp in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > _STALE_TEMP_S:
                tmp.unlink()
    if not Shard(folder).segment_paths() and not any(folder.glob(".*.tmp")):
        with contextlib.suppress(OSError):
            (folder / IDENTITY_FILE).unlink()
            folder.rmdir()  # fails, harmlessly, if a writer has just put something there


def limit_size(max_size: int | None, root: Path | None = None) -> Pruned | None:
    """The size limit applied after a run (--cache-max-size): the least recently used segments out."""
    if max_size is None:
        return None
    return prune(root if root is not None else store_root(), max_size=max_size)


# ------------------------------------------------------------------------------------------- sizes and ages

_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str, flag: str) -> int:
    """'500MB', '2G', '1.5GiB', '0', '123' (bytes) -> bytes; an OptionError naming the flag otherwise."""
    from hnmine.errors import OptionError

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*", str(text), re.IGNORECASE)
    if not m:
        raise OptionError(f"{flag} must be a size such as 500MB, 2GB or 1.5GiB, got '{text}'")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])


def parse_age(text: str, flag: str) -> float:
    """'30d', '12h', '90m', '2w', '45s', '7' (days) -> seconds; an OptionError naming the flag otherwise."""
    from hnmine.errors import OptionError

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text), re.IGNORECASE)
    if not m:
        raise OptionError(f"{flag} must be an age such as 30d, 12h or 2w, got '{text}'")
    return float(m.group(1)) * _AGE_UNITS[(m.group(2) or "d").lower()]


def size_text(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
