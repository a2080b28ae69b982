"""A run directory on a bucket (`--out s3://BUCKET/PREFIX`, `gs://…`): a local staging copy, filled from the
bucket before a command and sent back after each stage, so every rule of a local run directory
(hnmine.rundir) holds unchanged on the staging copy.

- Pull: the bucket's objects are copied into the staging folder (only those changed since this copy last
  saw them, by size and time); a manifest is trusted only when every output it names is there with its
  hash, else that stage counts as not done (its manifest is not kept in the copy). Files of the copy that
  the bucket does not hold are removed, except the local scratch: the embedding store (`cache/`), the local
  lock and Ray's scratch folder, which never leave this disk.
- Push (after each stage, and at the end): the manifests that will change are deleted first, then the
  changed tables are uploaded (each object a single put: whole or absent), objects the copy no longer
  holds are deleted, and the new manifests are uploaded last. A kill anywhere leaves each stage either
  with its manifest and every object it names, or with no manifest: the next command redoes it.
- One writer: a lease in the bucket (hnmine.io.bucket_lock); readers take none.

The staging copies live in `<cache>/bucket-runs/<bucket>-<name>-<hash of the URI>/write/<name>` for commands
that write the run and `…/read/<name>` for report, inspect and eval, each with a `.state.json` beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hnmine.errors import RunDirError
from hnmine.io.storage import call, check_bucket, filesystem, parse
from hnmine.io.user_cache import cache_dir
from hnmine.run_layout import LAYOUT, LOCK, MARKER

# Never sent to the bucket: the embedding store, the local advisory lock, Ray's scratch.
LOCAL_ONLY = ("cache", LOCK, ".hnmine-ray")


def runs_root() -> Path:
    return cache_dir() / "bucket-runs"


def staging_folder(uri: str) -> Path:
    remote = parse(uri)
    tail = re.sub(r"[^A-Za-z0-9._-]", "_", (remote.key.rsplit("/", 1)[-1] or "root"))[:60]
    return runs_root() / f"{remote.bucket}-{tail}-{hashlib.sha256(remote.uri.encode()).hexdigest()[:16]}"


class BucketRun:
    """One run directory on a bucket and its staging copy for `purpose` ('write' or 'read')."""

    def __init__(self, uri: str, purpose: str = "write"):
        self.remote = parse(uri)
        self.uri = self.remote.uri
        folder = staging_folder(uri)
        # named by the run's last part, as a local run directory is (eval names a run so)
        self.local = folder / purpose / (self.remote.key.rsplit("/", 1)[-1] or self.remote.bucket)
        self.state_path = folder / f"{purpose}.state.json"
        self.folder = folder
        self.fs: Any = None
        self.lease: Any = None

    # -- the command's span ---------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self, reporter: Any = None) -> Iterator[Path]:
        """Hold the run (the bucket's lease), fill the staging copy, yield it; send it back at the end."""
        from hnmine.io.bucket_lock import Lease
        from hnmine.io.hashing import hash_scope

        self._open()
        self.lease = Lease(self.remote, warn=getattr(reporter, "warn", None))
        self.lease.acquire()
        try:
            with hash_scope(), _local_lock(self.folder / "write.lock", self.uri):
                self.pull(reporter)
                yield self.local
                self.push()
        finally:
            self.lease.release()

    @contextlib.contextmanager
    def reading(self, reporter: Any = None) -> Iterator[Path]:
        """Fill the read copy (held by this process on this machine while it reads) and yield it."""
        from hnmine.io.hashing import hash_scope

        self._open()
        with hash_scope(), _local_lock(self.folder / "read.lock", self.uri, wait=True):
            self.pull(reporter, reading=True)
            yield self.local

    def _open(self) -> None:
        self.fs = filesystem(self.remote)
        check_bucket(self.remote)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "uri.txt").write_text(self.uri + "\n", encoding="utf-8")

    # -- bucket -> staging ----------------------------------------------------------------------

    def pull(self, reporter: Any = None, reading: bool = False) -> None:
        from hnmine.io.atomic import atomic_path
        from hnmine.io.fetch import download

        listing = self._listing()
        self._refuse_foreign(listing)
        state = self._state()
        fresh: dict[str, dict] = {}
        todo = [rel for rel in listing if not _same(state.get(rel), listing[rel], self.local / rel)]
        if todo and reporter is not None:
            reporter.info(f"copying {len(todo)} object(s) of {self.uri} to {self.local}")
        for rel in sorted(listing):
            target = self.local / rel
            if rel in todo:
                with atomic_path(target) as tmp:
                    download(self.remote.child(rel), self.fs, tmp)
            fresh[rel] = {"remote": list(listing[rel]), "local": _stamp(target)}
        for rel in self._local_files():
            if rel not in listing:
                with contextlib.suppress(OSError):
                    (self.local / rel).unlink()
        self._save_state(fresh)
        self._drop_unproven_manifests(reporter, reading)

    def _drop_unproven_manifests(self, reporter: Any, reading: bool) -> None:
        """A manifest whose outputs are not all in the copy with their hashes: the stage is not done."""
        from hnmine.io.hashing import content_hash

        folder = self.local / LAYOUT["manifests"]
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                outputs = json.loads(path.read_text(encoding="utf-8")).get("outputs")
            except (OSError, ValueError, AttributeError):
                continue  # damaged: hnmine.rundir treats it as a stage to redo, or names it to a reader
            if not isinstance(outputs, dict):
                continue
            bad = [rel for rel, digest in outputs.items() if not (self.local / rel).exists() or content_hash(self.local / rel) != digest]
            if not bad:
                continue
            if reading and self._being_written():
                from hnmine.rundir import WRITING

                raise RunDirError(f"{self.uri}: {WRITING}")
            path.unlink()
            if reporter is not None:
                reporter.warn(
                    f"{self.uri}/{LAYOUT['manifests']}/{path.name} names objects that are missing or changed "
                    f"({', '.join(bad[:3])}): that stage counts as not done"
                )

    def _refuse_foreign(self, listing: dict[str, tuple]) -> None:
        """A prefix holding other objects and no run is not written into (as a local folder is not)."""
        if listing and MARKER not in listing and f"{LAYOUT['manifests']}/inputs.json" not in listing:
            raise RunDirError(f"{self.uri}: not an hnmine run directory (it holds other objects and no {MARKER}); give --out a new prefix")

    def _being_written(self) -> bool:
        import pyarrow.fs as pafs

        from hnmine.io.bucket_lock import LEASES

        folder = self.remote.child(LEASES)
        selector = pafs.FileSelector(folder.path, allow_not_found=True)
        return any(i.type == pafs.FileType.File for i in call(folder, "listing the locks", self.fs.get_file_info, selector))

    # -- staging -> bucket ----------------------------------------------------------------------

    def push(self) -> None:
        """Send the staging copy's changes; manifests that change are removed first and put back last."""
        if self.lease is not None:
            self.lease.check()
        listing = self._listing()
        state = self._state()
        files = self._local_files()
        changed = {rel for rel, stamp in files.items() if not _sent(state.get(rel), stamp, listing.get(rel))}
        manifests = LAYOUT["manifests"] + "/"
        for rel in [r for r in listing if r.startswith(manifests) and (r not in files or r in changed)]:
            self._delete(rel)
        for rel in sorted(r for r in changed if not r.startswith(manifests)):
            self._upload(rel)
        for rel in [r for r in listing if r not in files and not r.startswith(manifests)]:
            self._delete(rel)
        for rel in sorted(r for r in changed if r.startswith(manifests)):
            self._upload(rel)
        after = self._listing()
        self._save_state({rel: {"remote": list(after[rel]), "local": files[rel]} for rel in files if rel in after})

    def _upload(self, rel: str) -> None:
        import shutil

        remote = self.remote.child(rel)
        with open(self.local / rel, "rb") as src, call(remote, "writing", self.fs.open_output_stream, remote.path) as out:
            try:
                shutil.copyfileobj(src, out, 1 << 22)
            except OSError as exc:
                from hnmine.io.storage import failure

                raise failure(remote, exc, "writing") from None

    def _delete(self, rel: str) -> None:
        remote = self.remote.child(rel)
        with contextlib.suppress(FileNotFoundError):
            call(remote, "deleting", self.fs.delete_file, remote.path)

    # -- listings and state ---------------------------------------------------------------------

    def _listing(self) -> dict[str, tuple]:
        """{run-relative path: (size, time)} of the run's objects (the leases aside)."""
        import pyarrow.fs as pafs

        from hnmine.io.bucket_lock import LEASES

        selector = pafs.FileSelector(self.remote.path, recursive=True, allow_not_found=True)
        infos = call(self.remote, "listing", self.fs.get_file_info, selector)
        out = {}
        for info in infos:
            rel = self.remote.rel(info.path)
            if info.type == pafs.FileType.File and rel.split("/")[0] != LEASES:
                out[rel] = (info.size, info.mtime_ns)
        return out

    def _local_files(self) -> dict[str, list]:
        """{run-relative path: stamp} of the staging copy's files that belong in the bucket."""
        from hnmine.io.atomic import is_temp_name

        out: dict[str, list] = {}
        if not self.local.is_dir():
            return out
        for folder, dirs, names in os.walk(self.local):
            here = Path(folder)
            if here == self.local:
                dirs[:] = [d for d in dirs if d not in LOCAL_ONLY]
            for name in names:
                p = here / name
                rel = p.relative_to(self.local).as_posix()
                if is_temp_name(name) or rel in LOCAL_ONLY or p.is_symlink():
                    continue
                out[rel] = _stamp(p)
        return out

    def _state(self) -> dict[str, dict]:
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return state.get("objects", {}) if isinstance(state, dict) and state.get("uri") == self.uri else {}

    def _save_state(self, objects: dict[str, dict]) -> None:
        from hnmine.io.atomic import write_json

        write_json({"uri": self.uri, "objects": objects}, self.state_path)


def _stamp(path: Path) -> list:
    try:
        st = path.stat()
    except OSError:
        return []
    return [st.st_size, st.st_mtime_ns]


def _same(record: dict | None, remote: tuple, local: Path) -> bool:
    """The staging copy holds this object as the bucket has it now (copied or sent by this copy, unchanged since)."""
    return bool(record) and record.get("remote") == list(remote) and record.get("local") == _stamp(local)  # type: ignore[union-attr]


def _sent(record: dict | None, stamp: list, remote: tuple | None) -> bool:
    return remote is not None and bool(record) and record.get("local") == stamp and record.get("remote") == list(remote)  # type: ignore[union-attr]


@contextlib.contextmanager
def _local_lock(path: Path, uri: str, wait: bool = False) -> Iterator[None]:
    """This machine's processes use one staging copy at a time (readers wait their turn)."""
    import fcntl

    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError:
            raise RunDirError(
                f"{uri}: another hnmine process on this machine is using its copy of this run; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def said_as_uris(message: str) -> str:
    """A message with the paths of local copies (an input's, a bucket run's staging folder) said as the URIs
    they stand for, so the user reads the names they gave."""
    from hnmine.io.fetch import in_uris as inputs_in_uris

    return inputs_in_uris(in_uris(message))


def in_uris(message: str) -> str:
    """A message with the staging copies' paths said as the runs' URIs."""
    for root in {str(runs_root()), str(runs_root().resolve())}:
        if root not in message:
            continue
        from hnmine.io.fetch import PATH_PART

        for m in set(re.findall(re.escape(root) + r"/([^/\s]+)/(?:write|read)/" + PATH_PART, message)):
            try:
                uri = (runs_root() / m / "uri.txt").read_text(encoding="utf-8").strip()
            except OSError:
                continue
            message = re.sub(re.escape(root) + "/" + re.escape(m) + r"/(?:write|read)/" + PATH_PART, uri.replace("\\", r"\\"), message)
    return message


# The fields of the helper commands' options that name run directories (hnmine.command_options, finetune's).
RUN_FIELDS = ("run", "runs", "sources")


@contextlib.contextmanager
def runs_on_disk(command: str, objs: list, reporter: Any = None) -> Iterator[list]:
    """A helper command's option objects with every URI replaced by a local path: a run directory in a bucket
    by its staging copy (filled first; `finetune`, which writes its results into the run, holds the run and
    sends them back), any other file (eval's --qrels, finetune's --eval data or a training file) by its local
    copy (hnmine.io.fetch). Interactive `review` of a bucket run is refused: its verdicts are written as they
    are given, and a copy sent back only at the end could lose them."""
    from dataclasses import fields, replace

    from hnmine.io.fetch import local_copy
    from hnmine.io.storage import is_uri

    exporting = any(getattr(obj, "export", None) is not None for obj in objs)  # `review --export` only reads
    with contextlib.ExitStack() as stack:

        def local(name: str, value: Any) -> Any:
            if isinstance(value, tuple):
                return tuple(local(name, v) for v in value)
            if not is_uri(value):
                return value
            if name not in RUN_FIELDS or (command == "finetune" and _is_object(str(value))):
                return local_copy(value, reporter)
            if command == "review" and not exporting:
                raise RunDirError(
                    f"{value}: `hnmine review` judges a run on the local disk; copy it here (`hnmine review --export` reads a bucket run)"
                )
            run = BucketRun(str(value), "write" if command == "finetune" else "read")
            return stack.enter_context(run.writing(reporter) if command == "finetune" else run.reading(reporter))

        out = []
        for obj in objs:
            changed = {f.name: local(f.name, getattr(obj, f.name)) for f in fields(obj)}
            out.append(replace(obj, **{k: v for k, v in changed.items() if v is not getattr(obj, k)}))
        with _said_as_uris():
            yield out


class _UriStream:
    """A text stream that writes the staging copies' paths as the URIs they stand for (what a reader prints
    names the run as the user named it: `"run": "s3://…"`, not the copy in the cache folder)."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(said_as_uris(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _said_as_uris() -> Iterator[None]:
    import sys

    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _UriStream(sys.stdout), _UriStream(sys.stderr)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _is_object(uri: str) -> bool:
    """Whether a URI names one object (a file), not a prefix."""
    import pyarrow.fs as pafs

    remote = parse(uri)
    fs = filesystem(remote)
    return bool(remote.key) and call(remote, "reading", fs.get_file_info, remote.path).type == pafs.FileType.File
