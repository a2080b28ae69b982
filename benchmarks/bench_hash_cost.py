"""What content keys cost: how many times each file is hashed in one cold `hnmine mine`, and the seconds.

Runs `hnmine mine` in this process with hnmine.io.hashing counted: a *request* is a file_hash call
(what hashing every time, with no memo, would read), a *read* is an actual sha256 of the bytes (within a
run, hnmine.io.hashing.hash_scope reads a file once while it is unchanged). `--model` defaults to the bundled
model's folder given as a path, so its fingerprint (every file's contents) is counted too. Also measures
sha256's throughput on this machine.

  python benchmarks/bench_hash_cost.py [--data ../shared/data/scifact] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, SCIFACT, write_results  # noqa: E402


def sha256_rate(mb: int = 256) -> float:
    """GB/s of hashlib.sha256 on an in-memory buffer (best of three)."""
    buf = os.urandom(mb << 20)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        hashlib.sha256(buf).hexdigest()
        best = min(best, time.perf_counter() - started)
    return (mb << 20) / best / 1e9


def counted_mine(args: list[str]) -> dict:
    """Run the CLI with file_hash requests and sha256 reads counted per file."""
    from typer.testing import CliRunner

    import hnmine.io.hashing as hashing
    from hnmine.cli import app

    requests: collections.Counter = collections.Counter()
    reads: collections.Counter = collections.Counter()
    sizes: dict[str, int] = {}
    seconds = [0.0]
    real_file_hash, real_sha256 = hashing.file_hash, hashing._sha256

    def file_hash(path):
        requests[str(path)] += 1
        sizes[str(path)] = Path(path).stat().st_size
        return real_file_hash(path)

    def sha256(path):
        reads[str(path)] += 1
        sizes[str(path)] = Path(path).stat().st_size
        started = time.perf_counter()
        try:
            return real_sha256(path)
        finally:
            seconds[0] += time.perf_counter() - started

    hashing.file_hash, hashing._sha256 = file_hash, sha256  # modules import file_hash at call time: all counted
    started = time.perf_counter()
    result = CliRunner().invoke(app, args)
    wall = time.perf_counter() - started
    hashing.file_hash, hashing._sha256 = real_file_hash, real_sha256
    if result.exit_code != 0:
        raise SystemExit(f"hnmine mine failed: {result.output}")
    files = [
        {"file": p, "bytes": sizes[p], "requests": requests[p], "reads": reads[p]}
        for p in sorted(sizes, key=lambda p: -(requests[p] * sizes[p]))
    ]
    return {
        "wall_s": round(wall, 1),
        "requests": sum(requests.values()),
        "reads": sum(reads.values()),
        "bytes_requested": sum(requests[p] * sizes[p] for p in sizes),
        "bytes_read": sum(reads[p] * sizes[p] for p in sizes),
        "sha256_seconds": round(seconds[0], 3),
        "files": files,
    }


def main() -> None:
    from hnmine.api import default_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--split", default="train")
    parser.add_argument("--model", default=default_model_path())
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--results", type=Path, default=BENCH / "results" / "hash-cost-scifact.json")
    a = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="hnmine-hash-cost-") as tmp:
        run = Path(tmp) / "run"
        args = ["mine", str(a.data), "--split", a.split, "--out", str(run), "--model", a.model, "--dtype", a.dtype, "--quiet"]
        counts = counted_mine(args)
        counts["rerun"] = {k: v for k, v in counted_mine(args).items() if k != "files"}  # every stage skipped
    rate = sha256_rate()
    shown = ["RUN" if x == str(run) else x for x in args]
    payload = {"command": "hnmine " + " ".join(shown), "sha256_gb_per_s": round(rate, 2), **counts}
    write_results(a.results, payload)
    print(
        f"cold run {counts['wall_s']} s: {counts['requests']} hash requests ({counts['bytes_requested'] / 1e6:.0f} MB), "
        f"{counts['reads']} reads ({counts['bytes_read'] / 1e6:.0f} MB) in {counts['sha256_seconds']} s; sha256 {rate:.2f} GB/s"
    )
    rerun = counts["rerun"]
    print(f"rerun {rerun['wall_s']} s: {rerun['reads']} reads ({rerun['bytes_read'] / 1e6:.0f} MB) in {rerun['sha256_seconds']} s")
    for f in counts["files"][:12]:
        print(f"  {f['requests']:4d} requests {f['reads']:3d} reads  {f['bytes'] / 1e6:8.2f} MB  {f['file']}")


if __name__ == "__main__":
    main()
