"""Engines: where a stage's work runs, chosen by name (`--engine local|ray`).

One stage contract for every engine: the pipeline calls `Stage.work(ctx)`; a stage's work function
is wrapped by `on_engine(stage)`, which runs the local implementation when `ctx.engine` is "local"
and otherwise hands the stage to the engine's own implementation (imported only then). The run
directory, the tables, the keys and the manifests do not depend on the engine, so a run made with one
engine is reused by the other when nothing it depends on changed.

An engine is started lazily, by the first stage that runs on it (a rerun whose stages are all up to
date starts nothing), and stopped when `mine` returns.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hnmine.registry import Registry

if TYPE_CHECKING:
    from hnmine.pipeline import Context, StageOutput
    from hnmine.progress import Reporter


@dataclass(frozen=True)
class EngineSpec:
    module: str | None  # the package implementing `start`, `stop` and `stage_work`; None: the local code itself
    description: str


ENGINES: Registry[EngineSpec] = Registry("engine")
ENGINES.add("local", EngineSpec(None, "this machine: processes (--workers) and threads (--threads)"))
ENGINES.add(
    "ray",
    EngineSpec("hnmine.engines.ray", "a Ray cluster (pip install hnmine[ray]): Ray Data pipelines, actor pools for models, sharded search"),
)


def engine_names() -> list[str]:
    return ENGINES.names()


class EngineSession:
    """The engine of one `mine` call: started on first use, stopped on exit (only what it started)."""

    def __init__(self, name: str, address: str | None = None, reporter: Reporter | None = None):
        self.spec = ENGINES.get(name)
        self.name, self.address, self.reporter = name, address, reporter
        self.handle: Any = None

    @property
    def module(self):
        return importlib.import_module(self.spec.module) if self.spec.module else None

    def started(self) -> Any:
        if self.handle is None and self.spec.module is not None:
            self.handle = self.module.start(self.address, self.reporter)
        return self.handle

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            self.module.stop(handle)

    def __enter__(self) -> EngineSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def on_engine(stage: str) -> Callable[[Callable[[Context], StageOutput]], Callable[[Context], StageOutput]]:
    """Decorate a stage's local work function: on another engine, that engine's implementation runs
    (it receives the local function, for the cases it leaves to the driver)."""

    def wrap(local_work: Callable[[Context], StageOutput]) -> Callable[[Context], StageOutput]:
        @functools.wraps(local_work)
        def work(ctx: Context) -> StageOutput:
            session = ctx.engine_session
            if ctx.engine == "local" or session is None or session.spec.module is None:
                return local_work(ctx)
            session.started()
            return session.module.stage_work(stage, ctx, local_work)

        work.local = local_work  # type: ignore[attr-defined]
        return work

    return wrap
