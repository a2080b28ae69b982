"""The Ray executor: a stage's parts in a Ray Data actor pool (hnmine.parts).

Each step gets a pool of actors. An actor reads the step's shared data and its items from the object store
once, loads what the step holds (a model, an index) once, and runs the parts Ray Data hands it, one at a
time. A model step laid out on GPUs gets an actor per GPU; on CPUs, `threads` CPUs per actor (the local
run's thread count: the same batches give the same bytes); any other step one CPU per actor. Results come
back in item order (Ray Data's order is preserved), streamed: the stage combines one before the next
arrives. The session (joining or starting a cluster, quietly) is hnmine.executors.ray.session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hnmine.parts import Layout, Parts


class RayExecutor:
    name = "ray"

    def __init__(self, session) -> None:
        self.session = session

    def map(self, parts: Parts, reporter) -> Iterator[Any]:
        import ray
        import ray.data

        from hnmine.executors.ray.session import unwrapped

        if not parts.items:
            return
        size, resources, device = _pool(parts.layout, len(parts.items))
        refs = [ray.put((parts.shared, list(parts.items)))]  # in a list: an actor restarted after a crash gets it again
        indices = [{"part": i} for i in range(len(parts.items))]
        ds = ray.data.from_items(indices, override_num_blocks=len(indices)).map_batches(
            PartActor,
            fn_constructor_args=(parts.run, parts.hold, refs, device),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=size),
            **resources,
        )
        total = sum(parts.units_of(item) for item in parts.items)
        with reporter.task(f"{parts.label} (ray)", total=total) as advance:
            try:
                for row in ds.iter_rows():
                    i = int(row["part"])
                    yield row["result"]
                    advance(parts.units_of(parts.items[i]))
            except Exception as exc:  # a worker's hnmine error is the user's one-line message
                inner = unwrapped(exc)
                if inner is not exc:
                    raise inner from None
                raise

    def close(self) -> None:
        from hnmine.executors.ray.session import stop

        stop(self.session)


class PartActor:
    """One worker of a step: what the step holds, loaded once; then one part per call."""

    def __init__(self, run, hold, refs, device: str) -> None:
        import ray

        from hnmine.executors.ray.session import quiet_ray_logging

        quiet_ray_logging()
        self.run = run
        self.shared, self.items = ray.get(refs[0])
        self.held = hold(self.shared, device) if hold is not None else None

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        index = [int(i) for i in batch["part"]]
        results = np.empty(len(index), dtype=object)
        for j, i in enumerate(index):
            results[j] = self.run(self.items[i], self.shared, self.held)
        return {"part": np.array(index, dtype=np.int64), "result": results}


def _pool(layout: Layout | None, n_items: int) -> tuple[int, dict, str]:
    """(actors, Ray resources per actor, the device an actor sees) of a step."""
    import ray

    from hnmine.executors.ray.session import cluster_cpus, cluster_gpus

    if layout is None:
        return max(1, min(cluster_cpus(), n_items)), {"num_cpus": 1}, "cpu"
    if layout.gpu:
        return max(1, min(cluster_gpus() or 1, n_items)), {"num_gpus": 1, "num_cpus": 1}, "cuda"  # an actor sees its GPU as cuda:0
    per_node = max([int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [1])
    cpus = max(1, min(layout.threads, per_node))  # an actor must fit on one node
    return max(1, min(cluster_cpus() // cpus, n_items)), {"num_cpus": cpus}, "cpu"


def start(address: str | None, reporter=None) -> RayExecutor:
    from hnmine.executors.ray.session import start as start_session

    return RayExecutor(start_session(address, reporter))


def check(address: str | None) -> bool:
    """Before the run directory is touched: Ray is installed, and a cluster address answers (a plain TCP
    connect; ray.init would wait minutes for a head that does not answer). True: a cluster to join now
    (its failure then writes nothing); a Ray started for the run is started by the first parts."""
    from hnmine.executors.ray.session import check_before_start

    return check_before_start(address)
