"""Shared helpers for the benchmarks: run a command, measure wall time and peak RSS of its process tree.

Peak RSS is polled with psutil (the sum over the process and all its children, every 50 ms), and
cross-checked with getrusage's ru_maxrss of the waited children (largest single process).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
PY = sys.executable
HNMINE = str(Path(PY).with_name("hnmine"))
SCIFACT = (ROOT / ".." / "shared" / "data" / "scifact").resolve()


def bench_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    env.update(extra)
    return env


@dataclass
class Measured:
    label: str
    cmd: list[str]
    seconds: float
    peak_rss_mb: float
    maxrss_mb: float  # getrusage of waited children: the largest single process
    rc: int
    stderr_tail: str = ""
    cpu_s: float = float("nan")  # user + system CPU seconds of the waited process tree (robust to other load)
    extra: dict = field(default_factory=dict)

    def row(self) -> dict:
        return asdict(self)


def _tree_cpu(proc, seen: dict) -> None:
    """Record the CPU seconds of every process in the tree (the last value seen per process): Ray's own
    processes are not waited children of the measured one, so getrusage misses them."""
    import psutil

    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return
    for p in procs:
        try:
            t = p.cpu_times()
            seen[p.pid] = t.user + t.system
        except psutil.Error:
            pass


def _tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(
    label: str, cmd: list[str], *, env: dict | None = None, cwd: Path | None = None, timeout: float | None = None, check: bool = True
) -> Measured:
    """Run cmd; wall seconds and peak RSS (MB) of its process tree."""
    import psutil

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = ru0.ru_maxrss
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env or bench_env(), cwd=cwd or ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    stop = threading.Event()
    cpu_seen: dict[int, float] = {}
    polls = 0

    def poll() -> None:
        nonlocal peak, polls
        while not stop.is_set():
            peak = max(peak, _tree_rss(ps))
            if polls % 10 == 0:  # every half second
                _tree_cpu(ps, cpu_seen)
            polls += 1
            stop.wait(0.05)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n[benchmark] killed after {timeout}s"
    seconds = time.perf_counter() - started
    stop.set()
    t.join()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = ru1.ru_maxrss
    maxrss = after / 1024.0 if after > before else float("nan")  # KiB on Linux; only meaningful if it grew
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    m = Measured(
        label,
        cmd,
        round(seconds, 2),
        round(peak / 2**20, 1),
        round(maxrss, 1),
        proc.returncode,
        stderr_tail=(err or "")[-3000:],
        cpu_s=round(cpu, 2),
    )
    m.extra["stdout_tail"] = (out or "")[-3000:]
    m.extra["tree_cpu_s"] = round(sum(cpu_seen.values()), 2)  # polled: every process of the tree, Ray's included
    if check and proc.returncode != 0:
        raise RuntimeError(f"{label} failed (exit {proc.returncode}):\n{' '.join(cmd)}\n{m.stderr_tail}")
    return m


def machine() -> dict:
    """CPU model, cores, RAM, OS, key package versions: written next to every figure."""
    info = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Flags"):
                v = v.strip()
                if k.strip() == "Flags":
                    v = " ".join(f for f in v.split() if "bf16" in f or "fp16" in f or "amx" in f or f.startswith("avx512") or f == "avx2")
                info[k.strip()] = v
    except OSError:
        pass
    try:
        import psutil

        info["RAM_GiB"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    info["loadavg_at_start"] = os.getloadavg()
    from importlib import metadata

    for name in ("torch", "sentence-transformers", "transformers", "faiss-cpu", "bm25s", "numpy", "pyarrow", "hnmine"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return info


def manifest_seconds(run_dir: Path) -> dict:
    """Per-stage seconds from a run's manifests (a stage skipped as up to date keeps its earlier figure)."""
    out = {}
    for stage in ("inputs", "index", "retrieve", "score", "filter", "export"):
        p = Path(run_dir) / "manifests" / f"{stage}.json"
        if p.exists():
            m = json.loads(p.read_text())
            out[stage] = m.get("seconds")
    return out


def write_results(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"results written to {path}")


def save_json_atomically(path: Path, payload: dict, *, indent: int = 2) -> None:
    """Write through a temporary file and a rename, so a grid killed mid-write keeps its last whole results."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=indent, default=str))
    os.replace(tmp, path)


def grid_cells(arms: list[str], seeds: list[int]) -> list[tuple[str, int | None]]:
    """The (arm, seed) cells of a training grid: untrained once, then every trained arm at the first seed, then at
    the next, so an interrupted grid has whole seeds."""
    out: list[tuple[str, int | None]] = [("untrained", None)] if "untrained" in arms else []
    for seed in seeds:
        out += [(arm, seed) for arm in arms if arm != "untrained"]
    return out


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")
