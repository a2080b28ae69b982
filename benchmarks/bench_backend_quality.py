"""Hidden-positive quality with `--backend B` against the default backend, on Cranfield (`make bench`).

For each seed (which positives are hidden: `--hide-positives --seed S`), `hnmine mine` runs with the default
backend and with `--backend B`, each at its `--dtype auto`; `hnmine eval --hidden` then gives the
false-negative rate (hidden positives among the exported negatives) and the coverage of both. The noise is
the spread of each figure across seeds with the default backend; the backend's change is "within noise"
when its difference from the default, seed by seed, is no larger than that spread.

  python benchmarks/bench_backend_quality.py [--backend openvino] [--seeds 42 7 1] [--data ../shared/data/cranfield]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, HNMINE, ROOT, bench_env, write_results  # noqa: E402

CRANFIELD = (ROOT / ".." / "shared" / "data" / "cranfield").resolve()
METRICS = ("false_negative_rate", "coverage")


def mine(data: Path, run: Path, seed: int, backend: str) -> float:
    cmd = [HNMINE, "mine", str(data), "--hide-positives", "--seed", str(seed), "--out", str(run), "--quiet", "--backend", backend]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=bench_env(), cwd=ROOT)
    return round(time.perf_counter() - started, 1)


def evaluate(runs: list[Path]) -> list[dict]:
    out = subprocess.run(
        [HNMINE, "eval", *map(str, runs), "--hidden", "--json"], check=True, capture_output=True, text=True, env=bench_env(), cwd=ROOT
    )
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="openvino")
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 1])
    ap.add_argument("--data", type=Path, default=CRANFIELD)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hnmine-bench-quality"))
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "backend_quality.json")
    args = ap.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    backends = ["torch", args.backend]
    rows = []
    for i, seed in enumerate(args.seeds):
        runs = []
        for backend in backends:
            run = args.work / f"{backend}-seed{seed}"
            if i:  # the index depends on the corpus alone: reuse the first seed's, rerun the rest
                shutil.copytree(args.work / f"{backend}-seed{args.seeds[0]}", run)
            seconds = mine(args.data, run, seed, backend)
            runs.append(run)
            print(f"seed {seed}: mined with --backend {backend} in {seconds} s", flush=True)
        metrics = evaluate(runs)
        row = {"seed": seed}
        for backend, m in zip(backends, metrics):
            row[backend] = {k: m.get(k) for k in (*METRICS, "negatives_total", "hardness")}
            row[backend]["dtype"] = json.loads((args.work / f"{backend}-seed{seed}" / "manifests/index.json").read_text())["models"][
                "dense"
            ]["dtype"]
        rows.append(row)
        print(
            f"seed {seed}: "
            + "; ".join(f"{b}: FN rate {row[b]['false_negative_rate']:.2%}, coverage {row[b]['coverage']:.2%}" for b in backends),
            flush=True,
        )

    summary = {}
    for k in METRICS:
        default = [r["torch"][k] for r in rows]
        diffs = [r[args.backend][k] - r["torch"][k] for r in rows]
        spread = max(default) - min(default)
        summary[k] = {
            "default_by_seed": default,
            f"{args.backend}_by_seed": [r[args.backend][k] for r in rows],
            "difference_by_seed": [round(d, 5) for d in diffs],
            "seed_spread_default": round(spread, 5),
            "within_noise": all(abs(d) <= spread for d in diffs),
        }
        print(
            f"{k}: {args.backend} - torch by seed {[f'{d:+.2%}' for d in diffs]}; spread across seeds (torch) {spread:.2%}: "
            f"{'within noise' if summary[k]['within_noise'] else 'NOT within noise'}"
        )
    write_results(
        args.results,
        {
            "data": str(args.data),
            "backend": args.backend,
            "seeds": args.seeds,
            "rows": rows,
            "summary": summary,
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
