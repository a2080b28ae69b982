"""The stage contract, and the one place that runs a stage: key, skip, timing, outputs, manifest.

A stage (`Stage`) is declared data: its name, the command that runs it alone, what it reads and writes
(names of `hnmine.run_layout.LAYOUT`), the options and resolved settings its key is made of, and a
function that does the work — tables in (read through the context), tables out (`StageOutput`).
The pipeline decides whether the stage is up to date, times it, writes its tables, removes outputs
of an earlier run that this one does not make, and writes the manifest last.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hnmine import __version__
from hnmine.errors import RunDirError
from hnmine.io.hashing import content_hash
from hnmine.manifest import Manifest
from hnmine.options import Options
from hnmine.progress import Reporter
from hnmine.run_options import OptionChange, stage_settings
from hnmine.rundir import RunDir

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class Context:
    """What a stage's functions see: the run directory, the options, progress, and the executor of its parts."""

    run: RunDir
    options: Options
    reporter: Reporter = field(default_factory=Reporter)
    engine: str = "local"
    memo: dict[str, Any] = field(default_factory=dict)  # what a stage computes once for its key and its work
    executors: Any = None  # hnmine.executors.ExecutorSession of the run (started by the first stage that maps parts)

    @property
    def executor(self):
        """What runs this stage's parts (hnmine.parts): started on first use (hnmine.runner gives the session)."""
        if self.executors is None:
            raise RuntimeError("this context has no executor session (stages run through hnmine.runner)")
        return self.executors.started()

    def table(self, name: str, columns: Sequence[str] | None = None, optional: Sequence[str] = ()) -> pa.Table:
        return self.run.read_table(name, columns, optional)


@dataclass
class StageOutput:
    tables: dict[str, pa.Table] = field(default_factory=dict)  # LAYOUT name or run path -> table (written by the pipeline)
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _nothing(ctx: Context) -> dict:
    return {}


def _no_check(options: Options) -> None:
    return None


@dataclass(frozen=True)
class Stage:
    name: str  # one of hnmine.options.STAGE_NAMES: its command and the paths it makes are declared there and in hnmine.run_layout
    reads: Callable[[Context], Sequence[str]]  # run tables/folders it reads (their content enters the key)
    writes: Callable[[Options], Sequence[str]]  # what it writes with these options (within `makes`)
    key: Callable[[Context], dict]  # the options and resolved settings its work depends on
    work: Callable[[Context], StageOutput]
    sources: Callable[[Context], dict] = _nothing  # files of the user it reads: name -> content hash
    check: Callable[[Options], None] = _no_check  # cheap checks before any stage runs (files exist, limits)
    packages: tuple[str, ...] = ("pyarrow", "numpy")

    @property
    def command(self) -> str:
        """The command that runs this stage on its own."""
        from hnmine.options import command_of

        return command_of(self.name)


@dataclass
class StageOutcome:
    stage: str
    skipped: bool
    seconds: float
    manifest: Manifest | None = None

    def summary(self) -> dict:
        return {
            "stage": self.stage,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "counts": dict(self.manifest.counts) if self.manifest else {},
        }


@dataclass
class MineResult:
    run_dir: Path | str  # a URI for a run on a bucket
    outcomes: list[StageOutcome] = field(default_factory=list)
    seconds: float = 0.0
    changes: list[OptionChange] = field(default_factory=list)  # options that differ from the run's last

    def outcome(self, stage: str) -> StageOutcome | None:
        return next((o for o in self.outcomes if o.stage == stage), None)

    def summary(self) -> dict:
        filt, export = self.outcome("filter"), self.outcome("export")
        export_file = export.manifest.stats.get("file") if export and export.manifest else None
        return {
            "run_dir": str(self.run_dir),
            "seconds": round(self.seconds, 3),
            "stages": [o.summary() for o in self.outcomes],
            "filter": dict(filt.manifest.stats) if filt and filt.manifest else {},
            "export": self._export_path(export_file) if export_file else None,
            "changes": [c.to_json() for c in self.changes],
        }

    def _export_path(self, export_file: str) -> str:
        if isinstance(self.run_dir, str):  # a bucket's URI
            return f"{self.run_dir}/{export_file}"
        return str(self.run_dir / export_file)


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


def stage_key(stage: str, options: dict, inputs: dict) -> str:
    payload = json.dumps(
        {"stage": stage, "version": __version__, "options": jsonable(options), "inputs": jsonable(inputs)},
        sort_keys=True,
        ensure_ascii=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def package_versions(names: Sequence[str]) -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version(), "hnmine": __version__}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_stage(stage: Stage, ctx: Context, *, force: bool = False) -> StageOutcome:
    run = ctx.run
    inputs = dict(stage.sources(ctx))
    inputs.update({run.rel(name): run.fingerprint(name) for name in stage.reads(ctx)})
    key_options = stage.key(ctx)
    key = stage_key(stage.name, key_options, inputs)
    if not force and run.up_to_date(stage.name, key):
        return StageOutcome(stage.name, skipped=True, seconds=0.0, manifest=run.manifest(stage.name))
    started = time.perf_counter()
    writes = [run.rel(w) for w in stage.writes(ctx.options)]
    run.remove_outputs_not_in(stage.name, writes)
    try:
        out = stage.work(ctx)
        for name, table in out.tables.items():
            _write_table(table, run.path_of(name))
    except OSError as exc:  # a full disk or a vanished folder while writing: one line, never a traceback
        where = exc.filename or run.path
        raise RunDirError(f"{where}: cannot write ({exc.strerror or exc}) while the {stage.name} stage ran") from None
    outputs = {rel: content_hash(run.path_of(rel)) for rel in writes}
    seconds = time.perf_counter() - started
    manifest = Manifest(
        stage=stage.name,
        hnmine_version=__version__,
        key=key,
        options=jsonable(key_options),
        inputs=inputs,
        outputs=outputs,
        counts=out.counts,
        stats=jsonable(out.stats),
        warnings=list(out.warnings),
        seconds=round(seconds, 3),
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        packages=package_versions(stage.packages),
        models=jsonable(out.models),
        settings=stage_settings(ctx.options, stage.name, run.path),
    )
    run.write_manifest(manifest)
    return StageOutcome(stage.name, skipped=False, seconds=seconds, manifest=manifest)


def _write_table(table: pa.Table, target: Path) -> None:
    from hnmine.io.atomic import write_jsonl, write_parquet

    if target.suffix == ".jsonl":
        write_jsonl(table, target)
    else:
        write_parquet(table, target)
