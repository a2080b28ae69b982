"""`make bench` (Ray part): a cold SciFact run with --engine ray against --engine local, one run each.

Both are the `hnmine mine` command of bench_scifact.py (train split, depth 50, 5 negatives, batch 64,
`--dtype auto`), each in a fresh run directory; the Ray run starts its own local Ray (2 CPUs here) and
stops it, so Ray's start-up is in its time. Wall and CPU seconds of each process tree, their ratio
(target: Ray at most 1.5 × local), the load average, and whether the two exports are the same bytes.

  python benchmarks/bench_ray.py [--work /tmp/hnmine-bench-ray] [--ray-first]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, SCIFACT, machine, manifest_seconds, measure, ratio, write_results  # noqa: E402
from bench_scifact import hnmine_cmd  # noqa: E402

TARGET = 1.5


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hnmine-bench-ray"))
    ap.add_argument("--ray-first", action="store_true")
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "ray-scifact.json")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    out = {"machine": machine(), "runs": []}
    order = ["ray", "local"] if args.ray_first else ["local", "ray"]
    for engine in order:
        run = args.work / engine
        cmd = hnmine_cmd(SCIFACT, run) + (["--engine", "ray"] if engine == "ray" else [])
        load = os.getloadavg()
        m = measure(engine, cmd)
        row = {
            "engine": engine,
            "command": " ".join(cmd),
            "wall_s": m.seconds,
            "cpu_s": m.cpu_s,
            "tree_cpu_s": m.extra["tree_cpu_s"],
            "peak_rss_mb": m.peak_rss_mb,
            "loadavg_before": load,
            "loadavg_after": os.getloadavg(),
            "stages_s": manifest_seconds(run),
        }
        out["runs"].append(row)
        print(
            f"{engine:<6} wall {m.seconds:8.1f} s  CPU {m.extra['tree_cpu_s']:8.1f} s (process tree)  peak RSS {m.peak_rss_mb:7.0f} MB  load {load[0]:.1f}",
            flush=True,
        )
    by = {r["engine"]: r for r in out["runs"]}
    out["ratio_wall"] = ratio(by["ray"]["wall_s"], by["local"]["wall_s"])
    out["ratio_cpu"] = ratio(by["ray"]["tree_cpu_s"], by["local"]["tree_cpu_s"])  # getrusage misses Ray's own processes
    out["target_wall"] = TARGET
    out["met"] = out["ratio_wall"] <= TARGET
    out["same_export"] = sha(args.work / "local/export/triplet.parquet") == sha(args.work / "ray/export/triplet.parquet")
    out["same_tables"] = {
        t: sha(args.work / "local" / t) == sha(args.work / "ray" / t)
        for t in ("candidates.parquet", "scores.parquet", "negatives.parquet", "index/dense/embeddings.npy")
    }
    print(
        f"ray / local: wall {out['ratio_wall']} (target <= {TARGET}: {'met' if out['met'] else 'MISSED'}), CPU {out['ratio_cpu']}; "
        f"same export: {out['same_export']}"
    )
    write_results(args.results, out)
    print(json.dumps(out["same_tables"]))


if __name__ == "__main__":
    main()
