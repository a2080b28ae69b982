"""The run directory: paths, fingerprints, manifests, and the skip-if-up-to-date rule.

A stage's manifest is written last, after its outputs. So a stage killed midway leaves either
no manifest or an older one whose recorded output hashes no longer match: either way the stage
is redone on the next run, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from hnmine import __version__
from hnmine.errors import RunDirError
from hnmine.io.atomic import check_writable, is_temp_name, write_json

STAGES = ("inputs", "index", "retrieve", "score", "filter", "export")
# Which earlier stage makes each file, for messages about a missing one.
MADE_BY = {
    "inputs/corpus.parquet": "inputs",
    "inputs/queries.parquet": "inputs",
    "inputs/qrels.parquet": "inputs",
    "candidates.parquet": "retrieve",
    "scores.parquet": "score",
    "negatives.parquet": "filter",
    "dropped.parquet": "filter",
    "query_summary.parquet": "filter",
}

_hash_memo: dict[tuple[str, int, int], str] = {}


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes, memoised per (path, size, mtime) within a process."""
    path = Path(path)
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key in _hash_memo:
        return _hash_memo[memo_key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    _hash_memo[memo_key] = digest
    return digest


def tree_hash(path: Path) -> str:
    """Fingerprint of a folder's files (names and contents).

    Temporary files a killed process left behind are not part of the output.
    """
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")):
        if p.is_file() and not is_temp_name(p.name):
            h.update(str(p.relative_to(path)).encode())
            h.update(file_hash(p).encode())
    return h.hexdigest()


def jsonable(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def stage_key(stage: str, options: Any, inputs: dict[str, Any]) -> str:
    payload = json.dumps(
        {"stage": stage, "version": __version__, "options": jsonable(options), "inputs": jsonable(inputs)},
        sort_keys=True,
        ensure_ascii=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def package_versions(names: tuple[str, ...] = ("pyarrow", "numpy")) -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version(), "hnmine": __version__}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class StageOutcome:
    stage: str
    skipped: bool
    seconds: float
    manifest: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "stage": self.stage,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "counts": self.manifest.get("counts", {}),
        }


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._swept = False

    # paths
    def __truediv__(self, rel: str) -> Path:
        return self.path / rel

    def manifest_path(self, stage: str) -> Path:
        return self.path / "manifests" / f"{stage}.json"

    @property
    def cache(self) -> Path:
        return self.path / "cache"

    def ensure_writable(self) -> None:
        check_writable(self.path)
        if not self._swept:
            self.remove_stale_temp_files()
            self._swept = True

    def remove_stale_temp_files(self) -> int:
        """Delete the temporary files of an earlier, killed process (a partial embeddings file can be
        gigabytes). One process works in a run directory at a time."""
        removed = 0
        if not self.path.is_dir():
            return 0
        for p in self.path.rglob(".*.tmp"):
            if p.is_file() and is_temp_name(p.name):
                try:
                    p.unlink()
                    removed += 1
                except OSError:
                    pass
        return removed

    # manifests
    def manifest(self, stage: str) -> dict | None:
        p = self.manifest_path(stage)
        if not p.exists():
            return None
        try:
            m = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None  # a damaged manifest means: redo the stage
        # A manifest of another shape (another version, or edited by hand) is not trusted either.
        if not isinstance(m, dict) or not isinstance(m.get("outputs", {}), dict):
            return None
        return m

    def require(self, rel: str) -> Path:
        """A file an earlier stage made; a clear error when it is missing."""
        p = self.path / rel
        if not p.exists():
            maker = MADE_BY.get(rel, "an earlier stage")
            raise RunDirError(f"{p}: missing; run `hnmine {maker}` (or `hnmine mine`) with --out {self.path} first")
        return p

    def output_fingerprint(self, stage: str) -> str:
        """A finished stage's output hashes, digested: the input fingerprint of the stages after it.

        Content, not the upstream key: an upstream rerun that writes the same bytes invalidates nothing.
        """
        m = self.manifest(stage)
        if m is None:
            raise RunDirError(f"{self.path}: stage '{stage}' has not run here; run `hnmine {stage}` (or `hnmine mine`) first")
        payload = json.dumps(m.get("outputs", {}), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()

    def up_to_date(self, stage: str, key: str) -> bool:
        m = self.manifest(stage)
        if m is None or m.get("key") != key or not m.get("outputs"):
            return False  # every stage has outputs: a manifest listing none was not written by it
        for rel, digest in m.get("outputs", {}).items():
            p = self.path / rel
            if not isinstance(digest, str) or not p.resolve().is_relative_to(self.path.resolve()):
                return False
            if not p.exists():
                return False
            if p.is_dir():
                if tree_hash(p) != digest:
                    return False
            elif file_hash(p) != digest:
                return False
        return True

    def skipped(self, stage: str) -> StageOutcome:
        return StageOutcome(stage=stage, skipped=True, seconds=0.0, manifest=self.manifest(stage) or {})

    def finish(
        self,
        stage: str,
        key: str,
        *,
        options: Any,
        inputs: dict[str, Any],
        outputs: list[str],
        counts: dict,
        stats: dict | None = None,
        started: float,
        models: dict | None = None,
        packages: tuple[str, ...] = ("pyarrow", "numpy"),
        warnings: list[str] | None = None,
    ) -> StageOutcome:
        seconds = time.perf_counter() - started
        out_hashes = {}
        for rel in outputs:
            p = self.path / rel
            out_hashes[rel] = tree_hash(p) if p.is_dir() else file_hash(p)
        manifest = {
            "stage": stage,
            "hnmine_version": __version__,
            "key": key,
            "options": jsonable(options),
            "inputs": jsonable(inputs),
            "outputs": out_hashes,
            "counts": counts,
            "stats": jsonable(stats or {}),
            "warnings": warnings or [],
            "seconds": round(seconds, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "packages": package_versions(packages),
            "models": jsonable(models or {}),
        }
        write_json(manifest, self.manifest_path(stage))
        return StageOutcome(stage=stage, skipped=False, seconds=seconds, manifest=manifest)
