"""Executors: where a stage's parts run, chosen by name (`--engine local|ray`).

A stage's work is its own code (hnmine.stages): the steps that must see everything run where the stage runs,
and its parallel steps are `Parts` (hnmine.pipeline.contract) handed to `ctx.executor.map`. An executor runs
parts and gives their results back in order; it knows nothing of stages, and no stage knows which executor
runs it. The run directory, the tables, the keys and the manifests are the same under every executor.

  local  this machine: parts in this process, or spread over --workers processes (a model step)
  ray    a Ray cluster: parts in an actor pool of Ray Data; an actor loads what a step holds (a model) once

An executor is started lazily, by the first stage that maps parts on it (a rerun whose stages are all up to
date starts nothing), and stopped when the command ends.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from hnmine.registry import Registry


@dataclass(frozen=True)
class ExecutorSpec:
    module: str  # the module whose `start(address, reporter)` gives an executor (`map(parts, reporter)`, `close()`)
    description: str


EXECUTORS: Registry[ExecutorSpec] = Registry("engine")
EXECUTORS.add("local", ExecutorSpec("hnmine.executors.local", "this machine: processes (--workers) and threads (--threads)"))
EXECUTORS.add(
    "ray",
    ExecutorSpec(
        "hnmine.executors.ray", "a Ray cluster (pip install hnmine[ray]): the stages' parts in Ray Data actor pools that hold the models"
    ),
)


def engine_names() -> list[str]:
    return EXECUTORS.names()


class ExecutorSession:
    """The executor of one command: started on first use, closed on exit (only what it started)."""

    def __init__(self, name: str, address: str | None = None, reporter=None):
        self.spec = EXECUTORS.get(name)
        self.name, self.address, self.reporter = name, address, reporter
        self.executor = None

    def check(self) -> None:
        """Before the run directory is touched: what can be checked (Ray installed, an address that answers),
        and an executor that joins a running cluster is joined now (one that fails to writes nothing)."""
        module = importlib.import_module(self.spec.module)
        if hasattr(module, "check") and module.check(self.address):
            self.started()

    def started(self):
        if self.executor is None:
            self.executor = importlib.import_module(self.spec.module).start(self.address, self.reporter)
        return self.executor

    def close(self) -> None:
        if self.executor is not None:
            executor, self.executor = self.executor, None
            executor.close()

    def __enter__(self) -> ExecutorSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
