"""Partitioned work: the one contract between a stage and the executor that runs it (datatrove's shape).

A stage does its work in its own code (hnmine.stages). A step that must see everything (reading the inputs,
BM25's global statistics, a calibration over every query) is plain code of the stage. A step that splits
into independent parts is a `Parts`: the stage says how it splits (one small, picklable `item` per part),
what one part does (`run`, a module-level function: tables in — read by the part from the run's files or
given in `shared` — and a result out: tables, arrays, stats), and combines the results itself, which come
back in item order whatever ran them. An executor (hnmine.executors) runs the parts: in this process, in a
pool of worker processes, or in a Ray actor pool. What a part needs loaded once per worker (a model, an
index) is `hold`, called once in each worker and handed to every part it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Layout:
    """How the workers of a model step are laid out: one worker per device, `threads` torch threads each.
    Local: a process per device when there are several; Ray: an actor per GPU, or `threads` CPUs per actor."""

    devices: tuple[str, ...] = ("cpu",)
    threads: int = 1

    @property
    def gpu(self) -> bool:
        return any(d.startswith("cuda") for d in self.devices)


@dataclass(frozen=True)
class Parts:
    """One partitioned step of a stage."""

    label: str  # what the progress bar says
    items: Sequence[dict]  # one description per part, small and picklable (row ranges, chunk numbers...)
    run: Callable[[dict, dict, Any], Any]  # run(item, shared, held) -> result; a module-level function
    shared: dict = field(default_factory=dict)  # read-only data every part sees (sent to each worker once)
    hold: Callable[[dict, str], Any] | None = None  # hold(shared, device): what a worker loads once (a model)
    units: Callable[[dict], int] | None = None  # progress units of a part (default 1)
    layout: Layout | None = None  # a model step's workers; None: one CPU per part

    def units_of(self, item: dict) -> int:
        return self.units(item) if self.units is not None else 1


class Executor(Protocol):
    """What runs parts (hnmine.executors.local, hnmine.executors.ray)."""

    name: str

    def map(self, parts: Parts, reporter) -> Iterator[Any]:
        """The result of every part, in item order (a part's error is raised as it is: a named hnmine error
        stays one line)."""
        ...

    def close(self) -> None: ...


def run_in_process(parts: Parts, reporter) -> Iterator[Any]:
    """Every part in this process, one after the other, holding what the step holds once: what the local
    executor does with one worker, and what a library call without an executor does."""
    total = sum(parts.units_of(item) for item in parts.items)
    with reporter.task(parts.label, total=total) as advance:
        device = parts.layout.devices[0] if parts.layout is not None else "cpu"
        held = parts.hold(parts.shared, device) if parts.hold is not None and parts.items else None
        for item in parts.items:
            yield parts.run(item, parts.shared, held)
            advance(parts.units_of(item))
