"""Start or join a Ray cluster for one run, quietly; stop only what this run started.

`--ray-address` (or `$RAY_ADDRESS`) joins a running cluster (`ray start --head` on one node, `ray start
--address HEAD:PORT` on the others); without one a Ray is started on this machine for the run, with
this machine's CPUs (the process's affinity mask) and a bounded object store, and stopped after it. A
process that already called `ray.init` (a notebook, a test) is used as it is and left running.

Ray's own output stays off the terminal: workers' logs are not forwarded to the driver, Ray Data's
progress bars and execution lines are off, its Python loggers only let errors through, and the
driver's C++ logging (which writes straight to the stderr file descriptor) only fatal errors.
Progress is hnmine's own (hnmine.progress), on stderr. `HNMINE_RAY_VERBOSE=1` lets Ray talk.

An address to join is tried with a plain TCP connect first (`check_address`): ray.init would wait
minutes for a head that does not answer. ray.init replaces the process's SIGTERM handler (Ray's exits
15, its C++ core dumps a native stack first); the caller's handler is put back once it returns, so
hnmine's own unwinds the run and exits 143.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hnmine.errors import OptionError
from hnmine.progress import Reporter

OBJECT_STORE_MAX = 2 << 30  # a Ray started here gets at most 2 GiB of object store (blocks are bounded, parts go to disk)
PROBE_SECONDS = 10  # a head whose port does not accept a TCP connection in this long is taken as unreachable
ADDRESS_FORM = "expected HOST:PORT (the head node's port, 6379 by default), ray://HOST:PORT or auto"
UNREACHABLE_HINT = "check the address and that its port is open (`ray start --head --port PORT` on the head node)"


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


def check_before_start(address: str | None) -> bool:
    """What start() refuses first, checked without starting anything; True when there is a cluster to join."""
    try:
        import ray
    except ImportError:
        raise OptionError("--engine ray needs Ray on this machine: pip install 'hnmine[ray]'") from None
    if ray.is_initialized():
        return False
    given, origin = given_address(address)
    check_address(given, origin)
    return given is not None


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
    address, origin = given_address(address)
    check_address(address, origin)
    # The driver's environment (HF_HUB_OFFLINE, HNMINE_CACHE_DIR, ...) goes to the workers too.
    env = {k: v for k, v in os.environ.items() if k.startswith(("HF_", "HNMINE_", "TOKENIZERS_", "OMP_", "MKL_", "OPENBLAS_"))}
    runtime_env = {"env_vars": env} if env else None
    temp_dir = None
    try:
        if address:
            reporter.info(f"ray: joining the cluster at {address}")
            with _caller_sigterm_kept(), _native_logging_quiet():
                ray.init(address=address, runtime_env=runtime_env, **quiet)
            session = RaySession(connected_here=True)
        else:
            from hnmine.inference.pool import available_cpus

            temp_dir = tempfile.mkdtemp(prefix="hnmine-ray-")  # short: Ray's socket paths must stay under 108 bytes
            cpus = available_cpus()
            store = min(OBJECT_STORE_MAX, max(256 << 20, _total_memory() // 10))
            reporter.info(f"ray: starting a local Ray ({cpus} CPUs, {store >> 20} MiB object store)")
            with _caller_sigterm_kept(), _native_logging_quiet():
                ray.init(
                    num_cpus=cpus, object_store_memory=store, include_dashboard=False, _temp_dir=temp_dir, runtime_env=runtime_env, **quiet
                )
            session = RaySession(connected_here=True, started_here=True, temp_dir=temp_dir)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if temp_dir is not None:
            import shutil

            shutil.rmtree(temp_dir, ignore_errors=True)
        raise OptionError(_init_failure(address, origin, exc)) from None
    quiet_ray_logging()
    _data_context()
    return session


def _init_failure(address: str | None, origin: str, exc: BaseException) -> str:
    """ray.init's error in one line, in hnmine's words where Ray's would name its own flags."""
    said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if address is not None and isinstance(exc, ConnectionError):
        if address.lower() == "auto":
            return f"{origin} auto: no running Ray cluster found on this machine; start one with `ray start --head`, or give --ray-address HOST:PORT"
        return f"{origin} {address}: no Ray cluster answers there (Ray: {said}); {UNREACHABLE_HINT}"
    where = f"the Ray cluster at {address}" if address else "a local Ray"
    return f"cannot start {where}: {said}"


def given_address(address: str | None) -> tuple[str | None, str]:
    """The cluster to join and where it was named: `--ray-address`, else `$RAY_ADDRESS` (None: start one)."""
    if address:
        return address, "--ray-address"
    from_env = os.environ.get("RAY_ADDRESS")
    return (from_env, "$RAY_ADDRESS") if from_env else (None, "")


def check_address(given: str | None, origin: str) -> None:
    """Refuse, in one line, an address no Ray head answers at, before ray.init, which would retry for
    minutes printing its own warnings: a closed port is refused at once, a host that drops the packets
    after PROBE_SECONDS. `auto` and `local` are Ray's to resolve (it answers at once)."""
    if given is None or given.lower() in ("auto", "local"):
        return
    target = _host_port(given, origin)
    if target is None:
        return
    import socket

    try:
        with socket.create_connection(target, timeout=PROBE_SECONDS):
            return
    except TimeoutError:  # socket.timeout, or the kernel giving up (ETIMEDOUT)
        reason = f"no answer within {PROBE_SECONDS} s"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    raise OptionError(f"{origin} {given}: no Ray cluster answers there ({reason}); {UNREACHABLE_HINT}")


def _host_port(given: str, origin: str) -> tuple[str, int] | None:
    """(host, port) of HOST:PORT, ray://HOST:PORT or [IPv6]:PORT; None for another scheme (Ray's to read)."""
    rest = given[len("ray://") :] if given.startswith("ray://") else given
    if "://" in rest:
        return None
    host, colon, port = rest.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError(f"{origin} '{given}': {ADDRESS_FORM}")
    return host, int(port)


@contextlib.contextmanager
def _caller_sigterm_kept() -> Iterator[None]:
    """Around ray.init: it installs Ray's SIGTERM handler (sys.exit(15)), and its C++ core worker a failure
    signal handler that prints a native stack on SIGTERM. The caller's handler (hnmine's: unwind, exit
    143) is put back after; a SIGTERM that came while ray.init ran goes to it too."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    except SystemExit as exc:
        if exc.code != signal.SIGTERM or not callable(previous):
            raise
        previous(signal.SIGTERM, None)  # hnmine's raises Terminated
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _reinstall_sigterm() -> None:
    """ray.shutdown resets SIGTERM to the default action underneath Python's handler: install it again."""
    import signal
    import threading

    handler = signal.getsignal(signal.SIGTERM)
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def _native_logging_quiet() -> Iterator[None]:
    """Around ray.init: the driver's C++ logging writes error lines straight to the stderr descriptor
    (a `core_worker.cc` line for every Ray Data actor pool, `Failed to connect to GCS` while joining).
    RAY_BACKEND_LOG_LEVEL=fatal, read when ray.init starts the core worker, keeps all but fatal errors
    off; the line announcing that setting, and whatever else ray.init writes there, goes to /dev/null
    while it runs. A user's own RAY_BACKEND_LOG_LEVEL, or HNMINE_RAY_VERBOSE, leaves Ray as it is."""
    if _verbose() or "RAY_BACKEND_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.environ.pop("RAY_BACKEND_LOG_LEVEL", None)  # the processes started meanwhile keep it; later ones need not


def stop(session: RaySession) -> None:
    """Disconnect if this run connected; a Ray this run started is stopped with it (ray.shutdown)."""
    import ray

    if session.connected_here and ray.is_initialized():
        ray.shutdown()
        _reinstall_sigterm()
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
