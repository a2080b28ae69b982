"""Worker processes for model inference (encoding, cross-encoder scoring): one device per worker.

Workers run the very batches a single process would, so results do not depend on the worker count.
On a machine with several GPUs, `--device cuda --workers N` spreads the workers round-robin over the
visible GPUs; `--device cuda:0,cuda:2` names them (one worker per listed device at least).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any


def listed_devices(device: str) -> list[str]:
    return [d.strip() for d in device.split(",") if d.strip()]


def worker_count(device: str, workers: int) -> int:
    """Processes to start: --workers, raised to one per device when several are listed."""
    return max(workers, len(listed_devices(device)))


def worker_devices(device: str, workers: int, cuda_count: Callable[[], int] | None = None) -> list[str]:
    """The device of each worker, round-robin over the listed devices (plain 'cuda': every visible GPU)."""
    names = listed_devices(device)
    n = worker_count(device, workers)
    if names == ["cuda"] and n > 1:
        visible = (cuda_count or _cuda_count)()
        if visible > 1:
            names = [f"cuda:{i}" for i in range(visible)]
    return [names[i % len(names)] for i in range(n)]


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def start_pool(devices: list[str], initializer: Callable[..., None], initargs: tuple[Any, ...], threads: int):
    """A spawn-started process pool; each worker takes one device from `devices`, runs torch with
    `threads` intra-op threads, and calls initializer(device, *initargs) once (to load its model)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    class Pool(ProcessPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
            return super().submit(_call, fn, *args, **kwargs)

        def _spawn_process(self):  # type: ignore[override]
            with _sigint_ignored():
                return super()._spawn_process()  # type: ignore[misc]

    ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    queue = ctx.Queue()
    for d in devices:
        queue.put(d)
    return Pool(max_workers=len(devices), mp_context=ctx, initializer=_init, initargs=(queue, threads, initializer, initargs))


# A worker whose initializer failed with a named error (a model that cannot load) keeps the message and
# raises it from its first task, so the parent prints it as one line; an exception escaping the
# initializer would be printed by every worker as a traceback and break the pool.
_init_error: list[str] = []


def _init(queue, threads: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    quiet_worker()
    import torch

    from hnmine.errors import HnmineError

    torch.set_num_threads(threads)
    try:
        initializer(queue.get(), *initargs)
    except HnmineError as exc:
        _init_error.append(str(exc))


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if _init_error:
        from hnmine.errors import HnmineError

        raise HnmineError(_init_error[0])  # the base class: it travels back to the parent whole (one argument)
    return fn(*args, **kwargs)


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored while a worker is started. An ignored signal stays ignored across exec, and Python
    then installs no KeyboardInterrupt handler, so a Ctrl-C that reaches a worker while it is still
    importing (before quiet_worker runs) cannot print a traceback."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def quiet_worker() -> None:
    """A worker ends with its parent, quietly.

    Ctrl-C reaches every process of the terminal's process group: the parent turns it into one line
    and stops the workers, so a worker ignores SIGINT instead of printing its own traceback. If the
    parent dies without stopping them (SIGKILL), Linux sends the worker SIGTERM (PR_SET_PDEATHSIG).
    """
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(0)


def stop_pool(pool, *, now: bool) -> None:
    """Shut a pool down; `now` (an error or a signal in the parent): terminate its workers at once
    instead of waiting for the batches they are running."""
    if now:
        # ProcessPoolExecutor has no public way to kill its workers; its process table is stable API in practice.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
    pool.shutdown(wait=not now, cancel_futures=True)


def split_batches(n_items: int, batch_size: int, workers: int) -> list[tuple[int, int]]:
    """[start, end) parts of whole batches, about four per worker so a slow worker does not hold the rest."""
    batches = (n_items + batch_size - 1) // batch_size
    per_part = max(1, (batches + 4 * workers - 1) // (4 * workers))
    step = per_part * batch_size
    return [(s, min(s + step, n_items)) for s in range(0, n_items, step)]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
