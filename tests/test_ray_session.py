"""Joining and leaving Ray (issue 23, item 10): an address nobody answers at, `auto` with no cluster,
SIGTERM during a Ray run, and Ray's own log lines. Each case runs the installed `hnmine` script in its
own process (ray.init, signals and exit codes are process-wide); each failed on the main branch before
the fix, and is listed in docs/reliability.md, "Hunted cases".

The address tests never start Ray and are fast. The two that do start a local Ray (about 10 s) give it
a short temporary folder of their own (Ray's socket paths must stay under 108 bytes) and stop every
process under that folder afterwards, by process id.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import HNMINE, TINY_DOCS, TINY_QRELS, TINY_QUERIES, write_beir

pytest.importorskip("ray", reason="Ray is not installed (pip install 'hnmine[ray]'; make setup installs it)")

# A line of Ray's C++ logging ("[2026-12-07 14:06:22,861 E 17106 17106] core_worker.cc:2465: ...") or of
# the failure signal handler's stack dump ("*** SIGTERM received at time=...", "    @ 0x7f... (unknown)").
RAY_NATIVE_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+ [DIWEF] \d+ \d+\]|\*\*\* SIG|^\s+@\s+0x|\.cc:\d+:")


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "HNMINE_RAY_VERBOSE", "RAY_BACKEND_LOG_LEVEL")}
    return {**env, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false", **extra}


def _closed_port() -> int:
    """A port on this machine nothing listens on (it was free a moment ago): a connect is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hnmine: error: "), done.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert done.stdout == ""
    return lines[0]


def _mine(tmp_path: Path, *args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    cmd = [str(HNMINE), "mine", str(data), "--out", str(tmp_path / "fresh"), "--engine", "ray", "--quiet", *args]
    # The timeout only stops a hang (main hung here for minutes); what is tested is the answer.
    return subprocess.run(cmd, env=env or _env(), capture_output=True, text=True, timeout=timeout)


# --- the address: fast, no Ray started ----------------------------------------------------------


@pytest.mark.parametrize("where", ["refused", "blackholed"])
def test_an_address_nobody_answers_at_is_one_line(tmp_path, where):
    """`--ray-address` of a closed port or of an address that drops packets: ray.init waited past
    150 s, printing Ray's `Failed to connect to GCS` warnings, and never said what was wrong."""
    address = f"127.0.0.1:{_closed_port()}" if where == "refused" else "10.255.255.1:6379"
    done = _mine(tmp_path, "--ray-address", address)
    _one_line_error(done, f"--ray-address {address}: no Ray cluster answers there", "ray start --head")
    assert not (tmp_path / "fresh").exists()


def test_an_unreachable_ray_address_from_the_environment_names_it(tmp_path):
    address = f"127.0.0.1:{_closed_port()}"
    done = _mine(tmp_path, env=_env(RAY_ADDRESS=address))
    _one_line_error(done, f"$RAY_ADDRESS {address}: no Ray cluster answers there")


@pytest.mark.parametrize("address", ["10.0.0.1", "head:port", "head:70000"])
def test_an_address_that_is_not_host_and_port_is_one_line(tmp_path, address):
    """`10.0.0.1` (no port) gave Ray's `Invalid address format`, after the inputs stage."""
    _one_line_error(_mine(tmp_path, "--ray-address", address), f"--ray-address '{address}': expected HOST:PORT")


def test_auto_without_a_cluster_names_hnmines_option(tmp_path):
    """`--ray-address auto` with no cluster on this machine: Ray's message told the user to set Ray's
    own `--address` flag, which hnmine does not have. Ray's scan of this machine's processes is
    switched off here (a cluster another test started must not be found), and its temporary folder,
    where `ray start` records the cluster, is an empty one of this test's."""
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    args = ["hnmine", "mine", str(data), "--out", str(tmp_path / "fresh"), "--engine", "ray", "--ray-address", "auto", "--quiet"]
    code = (
        "import functools, sys, ray._private.services as s; s.find_gcs_addresses = functools.cache(lambda: []); "
        f"from hnmine.cli import main; sys.argv = {args!r}; main()"
    )
    empty = tmp_path / "raytmp"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-c", code], env=_env(RAY_TMPDIR=str(empty)), capture_output=True, text=True, timeout=120)
    message = _one_line_error(done, "--ray-address auto: no running Ray cluster found on this machine", "ray start --head")
    assert "`--address`" not in message


# --- a local Ray: SIGTERM, and Ray's log lines -------------------------------------------------------


def _ray_processes(folder: str) -> list:
    psutil = pytest.importorskip("psutil")
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid != os.getpid() and any(folder in a for a in (p.info["cmdline"] or [])):
                found.append(p)
        except psutil.Error:
            pass
    return found


@pytest.fixture
def ray_tmp():
    """A short temporary folder for the local Ray hnmine starts ($TMPDIR of the hnmine process); every
    process still running under it at the end is stopped, by process id."""
    psutil = pytest.importorskip("psutil")
    folder = tempfile.mkdtemp(prefix="hnrs-")
    try:
        yield folder
    finally:
        left = _ray_processes(folder)
        for p in left:
            try:
                p.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(left, timeout=10)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        shutil.rmtree(folder, ignore_errors=True)


def test_sigterm_during_a_ray_run_is_terminated_143(tmp_path, ray_tmp):
    """SIGTERM once Ray was up: Ray's own SIGTERM handler (installed by ray.init) exited 15 after the
    failure signal handler's native stack dump, instead of hnmine's `hnmine: terminated` and 143."""
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    cmd = [str(HNMINE), "mine", str(data), "--out", str(tmp_path / "run"), "--engine", "ray", "--dtype", "float32"]
    proc = subprocess.Popen(cmd, env=_env(TMPDIR=ray_tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stderr:  # Ray starts before the inputs stage runs; its line means ray.init returned
            seen.append(line)
            if line.startswith("inputs "):
                break
        assert proc.poll() is None, "".join(seen)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(seen) + err
    assert proc.returncode == 143, (proc.returncode, err[-3000:])
    assert err.strip().splitlines()[-1].startswith("hnmine: terminated"), err[-3000:]
    assert "Traceback" not in err and not [line for line in err.splitlines() if RAY_NATIVE_LINE.search(line)], err[-3000:]
    assert out == ""
    deadline = time.time() + 30  # the Ray it started is stopped with it
    while _ray_processes(ray_tmp) and time.time() < deadline:
        time.sleep(0.5)
    assert not _ray_processes(ray_tmp)


def test_a_ray_run_prints_no_line_of_rays_own(tmp_path, ray_tmp):
    """Every Ray Data actor pool made the driver print
    `[...] core_worker.cc:2465: Actor with class name: 'MapWorker(...)' ... has constructor arguments in
    the object store and max_restarts > 0 ...`: a C++ error line on the terminal, though docs/scaling.md
    says Ray's logging is kept off it."""
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    cmd = [str(HNMINE), "index", str(data), "--out", str(tmp_path / "run"), "--engine", "ray", "--dtype", "float32"]
    done = subprocess.run(cmd, env=_env(TMPDIR=ray_tmp), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ray: starting a local Ray" in done.stderr and "index " in done.stderr  # it did run on Ray
    assert not [line for line in done.stderr.splitlines() if RAY_NATIVE_LINE.search(line)], done.stderr[-3000:]
    assert (tmp_path / "run" / "index" / "dense" / "embeddings.npy").is_file()


def test_the_callers_sigterm_handler_outlives_a_ray_session(ray_tmp):
    """A library caller's SIGTERM handler after `--engine ray` (hnmine.mine in a notebook, a service):
    ray.init replaced it with Ray's, and ray.shutdown left SIGTERM's default action underneath, so the
    next SIGTERM killed the process without running any handler."""
    code = (
        "import os, signal, time; from hnmine.executors.ray.session import start, stop; got = []; "
        "signal.signal(signal.SIGTERM, lambda s, f: got.append(s)); "
        "session = start(None); during = signal.getsignal(signal.SIGTERM); stop(session); "
        "os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.5); "
        "print('kept' if during is not None and during.__name__ == '<lambda>' else 'replaced', 'handled' if got else 'lost')"
    )
    done = subprocess.run([sys.executable, "-c", code], env=_env(TMPDIR=ray_tmp), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and done.stdout.split() == ["kept", "handled"], (done.returncode, done.stdout, done.stderr[-2000:])
