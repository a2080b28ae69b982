"""Start or join a Ray cluster for one run, quietly; stop only what this run started.

`--ray-address` (or `$RAY_ADDRESS`) joins a running cluster (`ray start --head` on one node, `ray start
--address HEAD:PORT` on the others); without one a Ray is started on this machine for the run, with
this machine's CPUs (the process's affinity mask) and a bounded object store, and stopped after it. A
process that already called `ray.init` (a notebook, a test) is used as it is and left running.

Ray's own output stays off the terminal: workers' logs are not forwarded to the driver, Ray Data's
progress bars and execution lines are off, and its loggers only let errors through. Progress is
hnmine's own (hnmine.progress), on stderr. `HNMINE_RAY_VERBOSE=1` lets Ray talk.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from hnmine.errors import OptionError
from hnmine.progress import Reporter

OBJECT_STORE_MAX = 2 << 30  # a Ray started here gets at most 2 GiB of object store (blocks are bounded, parts go to disk)


@dataclass
class RaySession:
    connected_here: bool  # this run called ray.init (and disconnects at the end)
    started_here: bool = False  # ... and that started Ray's processes on this machine (stopped at the end)
    temp_dir: str | None = None


def _verbose() -> bool:
    return os.environ.get("HNMINE_RAY_VERBOSE", "") not in ("", "0")


def quiet_ray_logging() -> None:
    """Ray's and Ray Data's loggers: errors only (unless HNMINE_RAY_VERBOSE). Ray Data configures its
    logger when it first runs, so its configuration is applied first, then quietened."""
    if _verbose():
        return
    try:
        from ray.data._internal.logging import configure_logging

        configure_logging()
    except ImportError:  # pragma: no cover - another Ray version
        pass
    for name in ("ray", "ray.data", "ray._private", "ray.util", "ray.train", "ray.tune"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        for handler in logger.handlers:
            handler.setLevel(logging.ERROR)


def _data_context() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = _verbose()
    ctx.print_on_execution_start = _verbose()
    ctx.execution_options.preserve_order = True  # parts come back in input order
    ctx.execution_options.verbose_progress = False


def start(address: str | None, reporter: Reporter | None = None) -> RaySession:
    try:
        import ray
    except ImportError:
        raise OptionError("--engine ray needs Ray on this machine: pip install 'hnmine[ray]'") from None
    reporter = reporter or Reporter()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "0" if _verbose() else "1")
    quiet_ray_logging()
    quiet: dict[str, Any] = {
        "log_to_driver": _verbose(),
        "logging_level": logging.INFO if _verbose() else logging.ERROR,
        "configure_logging": True,
    }
    if ray.is_initialized():  # the caller's own Ray (a test, a notebook): used as is, left running
        _data_context()
        return RaySession(connected_here=False)
    address = address or os.environ.get("RAY_ADDRESS") or None
    # The driver's environment (HF_HUB_OFFLINE, HNMINE_CACHE_DIR, ...) goes to the workers too.
    env = {k: v for k, v in os.environ.items() if k.startswith(("HF_", "HNMINE_", "TOKENIZERS_", "OMP_", "MKL_", "OPENBLAS_"))}
    runtime_env = {"env_vars": env} if env else None
    try:
        if address:
            reporter.info(f"ray: joining the cluster at {address}")
            ray.init(address=address, runtime_env=runtime_env, **quiet)
            session = RaySession(connected_here=True)
        else:
            from hnmine.encode import available_cpus

            temp_dir = tempfile.mkdtemp(prefix="hnmine-ray-")  # short: Ray's socket paths must stay under 108 bytes
            cpus = available_cpus()
            store = min(OBJECT_STORE_MAX, max(256 << 20, _total_memory() // 10))
            reporter.info(f"ray: starting a local Ray ({cpus} CPUs, {store >> 20} MiB object store)")
            ray.init(
                num_cpus=cpus, object_store_memory=store, include_dashboard=False, _temp_dir=temp_dir, runtime_env=runtime_env, **quiet
            )
            session = RaySession(connected_here=True, started_here=True, temp_dir=temp_dir)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise OptionError(f"cannot start {where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    quiet_ray_logging()
    _data_context()
    return session


def stop(session: RaySession) -> None:
    """Disconnect if this run connected; a Ray this run started is stopped with it (ray.shutdown)."""
    import ray

    if session.connected_here and ray.is_initialized():
        ray.shutdown()
    if session.temp_dir:
        import shutil

        shutil.rmtree(session.temp_dir, ignore_errors=True)


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 << 30


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def cluster_gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def unwrapped(exc: BaseException) -> BaseException:
    """The hnmine error inside a Ray task error (a worker's InputError is the user's one-line message)."""
    from hnmine.errors import HnmineError

    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, HnmineError):
            return cur
        cause = getattr(cur, "cause", None)
        cur = cause if isinstance(cause, BaseException) else cur.__cause__
        seen += 1
    return exc
