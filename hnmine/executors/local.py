"""The local executor: parts run in this process, or — a model step laid out over several devices or
`--workers` — in a pool of spawned worker processes, each holding its own copy of what the step holds.

Results come back in item order. A worker runs exactly the code the in-process path runs, on the same
items, so the results do not depend on the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hnmine.parts import Parts, run_in_process


class LocalExecutor:
    name = "local"

    def map(self, parts: Parts, reporter) -> Iterator[Any]:
        if parts.layout is None or len(parts.layout.devices) < 2 or len(parts.items) < 2:
            yield from run_in_process(parts, reporter)
            return
        total = sum(parts.units_of(item) for item in parts.items)
        with reporter.task(parts.label, total=total) as advance:
            yield from _in_pool(parts, advance)

    def close(self) -> None:
        return None


def start(address: str | None = None, reporter=None) -> LocalExecutor:
    if address is not None:
        from hnmine.errors import OptionError

        raise OptionError("--ray-address is for --engine ray; the local engine runs on this machine")
    return LocalExecutor()


def _in_pool(parts: Parts, advance) -> Iterator[Any]:
    from hnmine.inference.pool import start_pool, stop_pool

    assert parts.layout is not None
    pool = start_pool(list(parts.layout.devices), _hold_in_worker, (parts.hold, parts.shared), parts.layout.threads)
    try:
        futures = [pool.submit(_run_in_worker, parts.run, item) for item in parts.items]
        for item, future in zip(parts.items, futures):
            yield future.result()
            advance(parts.units_of(item))
    except BaseException:
        stop_pool(pool, now=True)
        raise
    stop_pool(pool, now=False)


_worker: dict = {}  # in a worker process: the step's shared data and what it holds


def _hold_in_worker(device: str, hold, shared: dict) -> None:
    _worker.update(shared=shared, held=hold(shared, device) if hold is not None else None)


def _run_in_worker(run, item: dict) -> Any:
    return run(item, _worker["shared"], _worker["held"])
