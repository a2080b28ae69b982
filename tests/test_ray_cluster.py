"""--engine ray on a real two-node Ray cluster on this machine, and a worker killed mid-encode.

The cluster is two separate Ray processes trees, started as a user would start them: `ray start --head`
and `ray start --address HEAD` (one CPU each, small object stores, no dashboard, logs in a temporary
folder). hnmine runs as a separate process submitted to it (`--ray-address`). Every process the
cluster started is found by its temporary folder and stopped in a `finally`, by process id.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED_DATA
from tests.ray_helpers import sha

pytest.importorskip("ray", reason="Ray is not installed (pip install 'hnmine[ray]'; make setup installs it)")
psutil = pytest.importorskip("psutil")

RAY = Path(sys.executable).with_name("ray")
HNMINE = Path(sys.executable).with_name("hnmine")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    # A throwaway local cluster: no token to share between its nodes.
    return {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def _cluster_processes(temp: str) -> list:
    """Every process of the cluster: those naming its temporary folder, and their children."""
    found = {}
    for p in psutil.process_iter(["cmdline"]):
        if p.pid != os.getpid() and any(temp in a for a in (p.info["cmdline"] or [])):
            found[p.pid] = p
            try:
                found.update({c.pid: c for c in p.children(recursive=True)})
            except psutil.Error:
                pass
    return list(found.values())


@pytest.fixture(scope="module")
def two_nodes():
    temp = tempfile.mkdtemp(prefix="hnr-")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--object-store-memory", str(300 * 2**20), "--disable-usage-stats"]
    try:
        subprocess.run(
            [str(RAY), "start", "--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp, *common],
            env=_env(),
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run([str(RAY), "start", "--address", address, *common], env=_env(), check=True, capture_output=True, timeout=120)
        yield address, temp
    finally:
        procs = _cluster_processes(temp)
        for p in procs:
            try:
                p.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=10)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        shutil.rmtree(temp, ignore_errors=True)


def _alive_nodes(address: str) -> int:
    code = f"import ray; ray.init(address='{address}', log_to_driver=False); print(sum(n['Alive'] for n in ray.nodes())); ray.shutdown()"
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_a_run_submitted_to_a_two_node_cluster_gives_the_same_export(two_nodes, tmp_path):
    address, _ = two_nodes
    assert _alive_nodes(address) == 2
    data = SHARED_DATA / "cranfield"
    if not data.exists():
        pytest.skip(f"{data} is not here (../shared/data)")
    from hnmine.options import make_options
    from hnmine.runner import mine

    local = tmp_path / "local"
    from tests.ray_helpers import seeded_vectors

    vectors = seeded_vectors(local, data, tmp_path / "vectors", 11, split="test")
    mine(local, make_options({"data": data, "split": "test", "retriever": "hybrid", "max_depth": 50, "depth": 30, **vectors}))
    run = tmp_path / "cluster"
    cmd = [
        str(HNMINE),
        "mine",
        str(data),
        "--split",
        "test",
        "--out",
        str(run),
        "--retriever",
        "hybrid",
        "--max-depth",
        "50",
        "--depth",
        "30",
        "--corpus-embeddings",
        str(vectors["corpus_embeddings"]),
        "--query-embeddings",
        str(vectors["query_embeddings"]),
        "--engine",
        "ray",
        "--ray-address",
        address,
    ]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ray: joining the cluster at" in done.stderr
    assert "INFO" not in done.stderr and "streaming_executor" not in done.stderr  # Ray's own logging stays off the terminal
    for rel in ("candidates.parquet", "negatives.parquet", "export/triplet.parquet"):
        assert sha(local / rel) == sha(run / rel), rel


def _encode_workers(temp: str) -> list:
    # the first actor pool of a run is the corpus encoding's (hnmine.inference.cache): its actors hold the model
    return [p for p in _cluster_processes(temp) if "PartActor" in " ".join(_cmdline(p))]


def _cmdline(p) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:  # exited (or a zombie) since it was listed
        return []


def test_a_worker_killed_mid_encode_finishes_with_the_same_export(two_nodes, sample_run, tmp_path):
    """SIGKILL to the process encoding the corpus: Ray restarts the actor and the run finishes, or a
    rerun of the same command resumes from the cache's finished chunks; the export is the local one's."""
    address, temp = two_nodes
    run = tmp_path / "killed"
    cmd = [str(HNMINE), "mine", str(ROOT / "sample_data"), "--out", str(run), "--engine", "ray", "--ray-address", address, "--quiet"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and killed is None:
            workers = _encode_workers(temp)
            # Killed as soon as it exists: sample_data encodes in about a second, so waiting for the
            # model to load could miss the window; a worker dying while loading is a death all the same.
            if workers and not (run / "index/dense/embeddings.npy").exists():
                killed = workers[0].pid
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, f"no encoding worker was seen (exit {proc.returncode}): {err[-3000:]}"
    if proc.returncode != 0:  # not recovered in place: the same command resumes
        again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, f"first run: {err[-2000:]}\nrerun: {again.stderr[-3000:]}"
    assert sha(sample_run / "export/triplet.parquet") == sha(run / "export/triplet.parquet")
    assert sha(sample_run / "index/dense/embeddings.npy") == sha(run / "index/dense/embeddings.npy")
