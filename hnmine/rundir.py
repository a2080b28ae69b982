"""The run directory: its marker and lock, and the one reader of its tables, JSON and manifests.

Its paths are named in hnmine.run_layout; the hashes it checks are hnmine.io.hashing's.

A run directory is marked as hnmine's when created (`.hnmine-run`). A folder that holds other files
and no marker is refused as `--out`, so a user's folder is never written into. One process writes a
run directory at a time (an advisory lock on `.hnmine-lock`); a second is refused with a clear
message. Temporary files a killed process left are removed only by the lock holder, only in hnmine's
own folders and only by hnmine's own naming pattern.

A stage's manifest is written last, after its outputs. So a stage killed midway leaves either no
manifest or an older one whose recorded output hashes no longer match: either way the stage is
redone on the next run, never trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hnmine import __version__
from hnmine.errors import MissingColumn, RunDirError
from hnmine.io.atomic import is_temp_name, write_json
from hnmine.io.hashing import content_hash
from hnmine.manifest import Manifest
from hnmine.options import STAGE_NAMES, command_of
from hnmine.run_layout import LAYOUT, LINK_CHECKED, LOCK, MARKER, OWN_FOLDERS, refuse_link, remove_inside, stage_making

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

# Run directories this process holds: the holding thread and how many writing() blocks hold each.
# Per thread, not per process: the holder may re-enter, another thread is refused as another process
# is (the file lock alone cannot tell them apart once the table says "held").
_HELD: dict[str, tuple[int, int]] = {}
_HELD_GUARD = threading.Lock()
BUSY = "another hnmine process is working in this run directory; wait for it to finish, or use another --out"
# A reader finds a table ahead of (or behind) its manifest while a writer holds the run: not damage to redo.
WRITING = "another hnmine process is writing this run directory now; run this again when it has finished"


def _claim(key: str, path: Path) -> int:
    """Claim run directory `key` for this thread; how many blocks of this thread held it before."""
    me = threading.get_ident()
    with _HELD_GUARD:
        holder, depth = _HELD.get(key, (me, 0))
        if holder != me:
            raise RunDirError(f"{path}: {BUSY}")
        _HELD[key] = (me, depth + 1)
    return depth


def _unclaim(key: str, depth: int) -> None:
    with _HELD_GUARD:
        if depth:
            _HELD[key] = (threading.get_ident(), depth)
        else:
            _HELD.pop(key, None)


class RunDir:
    """One run directory. Reading needs nothing; writing happens inside `writing()`."""

    def __init__(self, path: Path | str):
        from hnmine.terminal_text import not_utf8

        self.path = Path(path)
        bad = not_utf8(self.path)
        if bad:  # pyarrow opens no such path: every table of the run would be a UnicodeEncodeError
            raise RunDirError(f"{self.path}: the path holds bytes that are not UTF-8 ({bad}), which hnmine cannot open; rename it")

    # -- paths ------------------------------------------------------------------------------------

    def path_of(self, name: str) -> Path:
        """A LAYOUT name ('scores') or a run-relative path made by this module (export_path, candidate_index)."""
        rel = LAYOUT.get(name, name)
        return self.path / rel

    @staticmethod
    def rel(name: str) -> str:
        return LAYOUT.get(name, name)

    def exists(self, name: str) -> bool:
        return self.path_of(name).exists()

    # -- reading ----------------------------------------------------------------------------------

    def check_readable(self) -> None:
        if not self.path.exists():
            raise RunDirError(f"run directory '{self.path}' does not exist")
        if not self.path.is_dir():
            raise RunDirError(f"run directory '{self.path}' is not a directory")

    def check_is_run(self) -> None:
        """A folder hnmine made (its marker, or an earlier version's manifests), for commands that only read
        a run: a user's other folder is named as such, not read as a run with nothing in it."""
        self.check_readable()
        if not (self.path / MARKER).exists() and not self._is_earlier_run():
            raise RunDirError(f"{self.path}: not an hnmine run directory (no {MARKER}); give the --out of `hnmine mine`")

    def check_shows_a_run(self) -> None:
        """For a command that shows a run (report, inspect, eval): a folder with no run in it (no marker, no
        manifests, no inputs: a data folder, an empty one) is named as such, not told which stage to run into it."""
        self.check_readable()
        if not any(self.path_of(folder).is_dir() for folder in ("inputs", "manifests")):
            self.check_is_run()

    def written_elsewhere(self) -> bool:
        """Whether another process (or thread) holds this run for writing now: its lock taken, not by us."""
        import fcntl

        with _HELD_GUARD:
            holder = _HELD.get(str(self.path.resolve()))
        if holder is not None:  # this process writes it: this thread reads its own work in progress
            return holder[0] != threading.get_ident()
        try:
            fh = open(self.path / LOCK, "rb")
        except OSError:
            return False
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False

    def _not_current(self, message: str) -> RunDirError:
        """The error for a table that is not what its manifest records: said as a run being written when it is."""
        return RunDirError(f"{self.path}: {WRITING}" if self.written_elsewhere() else message)

    def check_unchanged(self, name: str) -> None:
        """A table a reader is about to show must be the one its stage's manifest records: one edited or
        replaced since (or half-written by a killed rerun) would mix two runs in one report. And it must
        be current: made from the tables now in the run (an earlier stage rerun alone leaves it stale)."""
        rel = self.rel(name)
        stage = stage_making(rel)
        m = self.manifest(stage) if stage in STAGE_NAMES else None
        path = self.path_of(rel)
        if m is None or rel not in m.outputs or not path.exists():
            return
        if content_hash(path) != m.outputs[rel]:
            raise self._not_current(
                f"{path} changed since the {stage} stage wrote it; rerun `hnmine {command_of(stage)}` "
                f"(or `hnmine mine`) with --out {self.path}"
            )
        self._check_current(stage, m, set())

    def require(self, name: str) -> Path:
        """A file or folder an earlier stage made; a clear error naming the command that makes it."""
        p = self.path_of(name)
        if not p.exists():
            stage = stage_making(self.rel(name))
            raise RunDirError(
                f"{p} is missing: it is written by the {stage} stage; run `hnmine {command_of(stage)}` "
                f"(or `hnmine mine`) with --out {self.path} first"
            )
        return p

    def require_all(self, *names: str) -> None:
        """`require` each, the first missing named in pipeline order of the stages that make them."""
        order = {stage: i for i, stage in enumerate(STAGE_NAMES)}
        for name in sorted(names, key=lambda n: order.get(stage_making(n), len(order))):
            self.require(name)

    def read_table(
        self,
        name: str,
        columns: Iterable[str] | None = None,
        optional: Iterable[str] = (),
        where: tuple[str, Iterable[str]] | None = None,
    ) -> pa.Table:
        """`columns` (and whichever of `optional` exist) of one table; all columns when None. With
        `where=(column, values)`, only the rows whose `column` is one of `values`, in the file's order."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.require(name)
        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise RunDirError(f"{path}: not a readable Parquet file ({_one_line(exc)})") from None
        present = pf.schema_arrow.names
        for col in ([] if columns is None else list(columns)) + ([where[0]] if where else []):
            if col not in present:
                raise MissingColumn(str(path), col, list(present))
        wanted = None if columns is None else list(columns)
        if wanted is not None:
            wanted += [c for c in optional if c in present and c not in wanted]
        try:
            if where is None:
                return pf.read(columns=wanted)
            return _read_where(pf, wanted if wanted is not None else list(present), where[0], list(where[1]))
        except (OSError, pa.ArrowException) as exc:
            raise RunDirError(f"{path}: could not be read ({_one_line(exc)})") from None

    def read_current(
        self,
        name: str,
        columns: Iterable[str] | None = None,
        optional: Iterable[str] = (),
        where: tuple[str, Iterable[str]] | None = None,
    ) -> pa.Table:
        """`read_table` for a reader that shows the run (report, inspect, eval, review): the table must be
        the one its stage's manifest records, made from the run's tables now (`check_unchanged`)."""
        self.require(name)
        self.check_unchanged(name)
        return self.read_table(name, columns, optional, where)

    def read_json(self, name: str) -> dict:
        path = self.require(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunDirError(f"{path}: not readable JSON ({_one_line(exc)})") from None
        if not isinstance(data, dict):
            raise RunDirError(f"{path}: not a JSON object")
        return data

    # -- manifests --------------------------------------------------------------------------------

    def manifest_path(self, stage: str) -> Path:
        return self.path / LAYOUT["manifests"] / f"{stage}.json"

    def manifest(self, stage: str) -> Manifest | None:
        """The stage's manifest when present and well-formed (else None: the stage counts as not run)."""
        m = Manifest.read(self.manifest_path(stage))
        return m if m is not None and m.stage == stage else None

    def manifests(self, strict: bool = False) -> dict[str, Manifest]:
        """Every trusted manifest, pipeline stages first, then others by name. `strict`: a damaged one
        is an error (for readers that show a run), not a stage to redo (for the pipeline)."""
        folder = self.path / LAYOUT["manifests"]
        order = {name: i for i, name in enumerate(STAGE_NAMES)}
        names = sorted((p.stem for p in folder.glob("*.json")), key=lambda s: (order.get(s, len(order)), s)) if folder.is_dir() else []
        found = {s: self.manifest(s) for s in names}
        if strict:
            for s, m in found.items():
                if m is None:
                    raise RunDirError(
                        f"{self.manifest_path(s)} is not a readable JSON manifest (damaged, or of another "
                        f"version); rerun `hnmine {command_of(s)}` with --out {self.path}"
                    )
        return {s: m for s, m in found.items() if m is not None}

    def fingerprint(self, name: str) -> str:
        """The content hash of a file or folder an earlier stage wrote, checked against that stage's manifest.

        Content, not the upstream key: an upstream rerun that writes the same bytes invalidates nothing.
        """
        rel = self.rel(name)
        stage = stage_making(rel)
        m = self.manifest(stage)
        if m is None or rel not in m.outputs:
            raise RunDirError(f"{self.path}: stage '{stage}' has not run here; run `hnmine {command_of(stage)}` (or `hnmine mine`) first")
        path = self.path_of(rel)
        if not path.exists() or content_hash(path) != m.outputs[rel]:
            what = "changed since" if path.exists() else "is missing: it was deleted after"
            raise self._not_current(
                f"{path} {what} the {stage} stage wrote it; rerun `hnmine {command_of(stage)}` (or `hnmine mine`) with --out {self.path}"
            )
        self._check_current(stage, m, set())
        return m.outputs[rel]

    def _check_current(self, stage: str, m: Manifest, checked: set[str]) -> None:
        """The stage's outputs were made from what is in the run now: every run table or folder its manifest
        says it read still has the content it read, and so on up the pipeline. An earlier stage rerun on its
        own (`hnmine retrieve --max-depth 60`) leaves the later ones' outputs made from the old tables: they
        are out of date, not something to build on."""
        if stage in checked:
            return
        checked.add(stage)
        reads = [(rel, digest, stage_making(rel)) for rel, digest in m.inputs.items() if not rel.startswith("file:")]
        reads = [(rel, digest, upstream) for rel, digest, upstream in reads if upstream in STAGE_NAMES]
        for _, _, upstream in reads:  # the earliest stage out of date is the one to name
            um = self.manifest(upstream)
            if um is not None:
                self._check_current(upstream, um, checked)
        for rel, digest, _ in reads:  # (the user's files and the judgments key the stage itself: not checked here)
            path = self.path_of(rel)
            if not path.exists() or content_hash(path) != digest:
                raise self._not_current(
                    f"{self.path}: the {stage} stage's outputs are out of date: {rel} changed since it ran; "
                    f"rerun `hnmine {command_of(stage)}` (or `hnmine mine`) with --out {self.path}"
                )

    def out_of_date(self, stage: str) -> str | None:
        """Why a stage's outputs no longer are what the run holds now (an output changed, or a table it read
        was remade since: `hnmine filter` rerun alone leaves the export of the old negatives), or None."""
        m = self.manifest(stage)
        if m is None:
            return None
        try:
            for rel in m.outputs:
                self.check_unchanged(rel)
        except RunDirError as exc:
            return str(exc)
        return None

    def up_to_date(self, stage: str, key: str) -> bool:
        m = self.manifest(stage)
        if m is None or m.key != key or not m.outputs:
            return False  # every stage has outputs: a manifest listing none was not written by it
        root = self.path.resolve()
        for rel, digest in m.outputs.items():
            p = self.path / rel
            if not p.resolve().is_relative_to(root) or not p.exists() or content_hash(p) != digest:
                return False
        return True

    def write_manifest(self, manifest: Manifest) -> None:
        write_json(manifest.to_json(), self.manifest_path(manifest.stage))

    def remove_outputs_not_in(self, stage: str, keep: Iterable[str]) -> None:
        """Outputs of the stage's previous run that this run will not write (a table of an option now off,
        an export of another format): removed, so nothing out of date stays beside the new outputs."""
        m = self.manifest(stage)
        if m is None:
            return
        keep = set(keep)
        for rel in m.outputs:  # a manifest is a file of the run: what it names is removed only inside the run
            if rel not in keep and rel.split("/")[0] in OWN_FOLDERS + (rel,):
                remove_inside(self.path, self.path / rel)

    # -- writing ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[RunDir]:
        """Hold the run directory for writing: refuse a foreign folder, create and mark a new one, take
        the lock, sweep stale temporary files. A folder created here and left with nothing in it
        (the run failed before writing anything) is removed again."""
        key = str(self.path.resolve())
        depth = _claim(key, self.path)
        try:
            if depth:  # already held by this thread (the Python API stages its inputs, then runs)
                yield self
                return
            created = self._prepare()
            lock = None
            try:
                lock = self._lock()
                marker = self.path / MARKER
                if not marker.exists():
                    write_json({"hnmine": __version__, "kind": "hnmine run directory"}, marker)
                self._sweep_stale_temp_files()
                yield self
            finally:
                if lock is not None:
                    lock.close()
                if created:
                    self._remove_if_untouched()
        finally:
            _unclaim(key, depth)

    def _prepare(self) -> bool:
        """Check that --out can be used; create it when it does not exist. True when created here."""
        p = self.path
        if p.is_symlink() and not p.exists():
            raise RunDirError(f"{p}: a link to {os.readlink(p)}, which does not exist; create that folder or give --out another path")
        if p.exists() and not p.is_dir():
            raise RunDirError(f"{p}: is a file, not a run directory")
        if p.exists():
            if not (p / MARKER).exists() and not self._is_earlier_run() and any(p.iterdir()):
                raise RunDirError(
                    f"{p}: not an hnmine run directory (it holds other files and no {MARKER}); give --out a new or empty folder"
                )
            return False
        parent = p.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise RunDirError(f"{p}: cannot create the run directory ({parent} is a file)")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RunDirError(f"{p}: cannot create the run directory ({parent} is not writable)")
        try:
            p.mkdir(parents=True)
        except OSError as exc:
            raise RunDirError(f"{p}: cannot create the run directory ({exc.strerror or exc})") from None
        return True

    def _is_earlier_run(self) -> bool:
        """A run directory of an hnmine version that wrote no marker: its inputs manifest says so."""
        try:
            data = json.loads(self.manifest_path("inputs").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        return isinstance(data, dict) and isinstance(data.get("hnmine_version"), str)

    def _lock(self):
        import fcntl

        path = self.path / LOCK
        if path.is_dir():  # IsADirectoryError would read as a run directory that is not writable
            raise RunDirError(f"{path}: is a folder, where the run keeps its lock file; remove it")
        try:
            fh = open(path, "a+", encoding="utf-8")
        except OSError as exc:
            raise RunDirError(f"{self.path}: run directory is not writable ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise RunDirError(f"{self.path}: {BUSY}") from None
        return fh  # the lock file stays empty: nothing in the run changes when a command fails

    def _sweep_stale_temp_files(self) -> int:
        """Delete temporary files (and folders) an earlier, killed process left (a partial embeddings file
        can be gigabytes): only hnmine's own names, only at the top level and in hnmine's own folders,
        walked without following links. First, a run whose own folders lead elsewhere through a link is
        refused: every stage writes (and replaces, and removes) files in them."""
        self._refuse_linked_folders()
        removed = 0
        for p in self._own_entries():
            if is_temp_name(p.name):
                with contextlib.suppress(OSError):  # one that cannot be removed is left, as before
                    removed += remove_inside(self.path, p)
        return removed

    def _own_entries(self) -> Iterator[Path]:
        """The run's top-level entries, then everything in hnmine's own folders: links listed, never entered."""
        yield from list(self.path.iterdir())
        for name in LINK_CHECKED:
            top = self.path / name
            if top.is_symlink() or not top.is_dir():
                continue
            for folder, dirs, files in os.walk(top):  # followlinks=False: a linked folder is listed, not walked
                for entry in dirs + files:
                    yield Path(folder, entry)

    def _refuse_linked_folders(self) -> None:
        """One of hnmine's own folders that is a link, or a link to a folder inside them: a RunDirError."""
        for p in self._own_entries():
            top_level = p.parent == self.path
            if p.is_symlink() and ((top_level and p.name in LINK_CHECKED) or (not top_level and p.is_dir())):
                refuse_link(self.path, p)

    def _remove_if_untouched(self) -> None:
        own = {MARKER, LOCK}
        try:
            left = [p for p in self.path.iterdir() if p.name not in own]
        except OSError:
            return
        if not left:
            for name in own:
                with contextlib.suppress(OSError):
                    (self.path / name).unlink()
            with contextlib.suppress(OSError):
                self.path.rmdir()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


def _read_where(pf: pq.ParquetFile, columns: list[str], key: str, values: list[str]) -> pa.Table:
    """The rows whose `key` is one of `values`: the key column scanned alone, then only the row groups
    holding matches read and sliced (much cheaper than every column, or pyarrow's dataset filters, for a
    few ids of a large table)."""
    import numpy as np
    import pyarrow as pa

    wanted = set(values)
    keys = pf.read(columns=[key]).column(key).to_pylist()
    idx = np.fromiter((i for i, k in enumerate(keys) if k in wanted), dtype=np.int64)
    n_groups = pf.metadata.num_row_groups
    if not idx.size or not n_groups:
        return pf.read_row_groups([0], columns=columns).slice(0, 0) if n_groups else pf.read(columns=columns)
    sizes = np.array([pf.metadata.row_group(i).num_rows for i in range(n_groups)], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    g = np.searchsorted(starts, idx, side="right") - 1
    groups = np.unique(g)
    table = pf.read_row_groups(groups.tolist(), columns=columns)
    offset = np.zeros(n_groups, dtype=np.int64)  # where each group read starts in `table`
    offset[groups] = np.concatenate([[0], np.cumsum(sizes[groups])[:-1]])
    local = offset[g] + idx - starts[g]
    # contiguous runs as slices: no Arrow array built from Python or numpy values (that would
    # import pandas inside pyarrow, most of a second)
    runs = np.split(local, np.flatnonzero(np.diff(local) != 1) + 1)
    return pa.concat_tables([table.slice(int(r[0]), len(r)) for r in runs])
