"""Downstream benchmark: which mined data trains the best model? SciFact train -> test, every method, >= 3 seeds.

Not a test. Arms, all trained with the same budget by `hnmine finetune` and measured on the SciFact
test split (300 queries, the whole 5,183-document corpus):

  untrained              the bundled all-MiniLM-L6-v2 as shipped (measured once: no seed)
  in-batch               the train (query, positive) pairs, no mined negatives
  <method>               `hnmine mine --method <method>` at its defaults, for every method `hnmine methods` lists
  st-naive               sentence-transformers' mine_hard_negatives, top 5 of the first 50 (benchmarks/st_mine.py)
  st-relative-margin     the same with relative_margin=0.05
  shifted-relabel        shifted, with --relabel (candidates scored above the best positive become positives)
  shifted-relabel-same-steps
                         the same data trained for as many steps as `shifted` (its extra rows make one epoch
                         longer): separates "better labels" from "more training"

hnmine mines once (runs/downstream/base); each method's run is a copy of it where only filter and
export rerun. Each (arm, seed) cell is one `hnmine finetune` process; its row goes into the results
JSON as soon as it finishes, and a rerun skips the cells already there (the budget must match).
Cells run seed by seed (every arm at seed 1, then seed 2, ...), so partial results are comparable.

    python benchmarks/bench_downstream.py                  # everything (hours on 2 CPU cores)
    python benchmarks/bench_downstream.py --report         # only rewrite the Markdown table from the JSON
    python benchmarks/bench_downstream.py --only shifted,in-batch --seeds 1   # a subset (e.g. to time one arm)

Writes benchmarks/results/downstream.json (machine, budget, one row per cell) and
benchmarks/results/downstream.md (mean ± sample std per arm, to paste into docs/quality.md).
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
from _common import BENCH, HNMINE, PY, ROOT, SCIFACT, bench_env, grid_cells, machine, save_json_atomically  # noqa: E402

RESULTS = BENCH / "results" / "downstream.json"
TABLE = BENCH / "results" / "downstream.md"
ST_ARMS = {"st-naive": [], "st-relative-margin": ["--relative-margin", "0.05"]}
# hnmine runs beyond one per method: options that change the training data, measured the same way.
VARIANTS = {"shifted-relabel": ["--method", "shifted", "--relabel"]}
# arm -> (the run it trains on, the arm whose number of steps it is held to)
SAME_STEPS = {"shifted-relabel-same-steps": ("shifted-relabel", "shifted")}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed (exit {result.returncode}): {' '.join(cmd)}\n{result.stderr[-3000:]}")
    return result


def method_names(env: dict) -> list[str]:
    """Every method `hnmine methods` lists (lines 'name: …' or 'name (default): …')."""
    out = run([HNMINE, "methods"], env).stdout
    return [line.split(":", 1)[0].split(" ")[0] for line in out.splitlines() if ":" in line]


def prepare_runs(args, env: dict) -> dict[str, Path]:
    """Mine once, then derive each method's run, where only filter and export rerun."""
    out = Path(args.out)
    base = out / "base"
    log(f"hnmine mine {args.data} --split train -> {base} (skipped stage by stage when up to date)")
    run([HNMINE, "mine", str(args.data), "--split", "train", "--out", str(base), "--quiet"], env)
    runs: dict[str, Path] = {}
    for method in method_names(env):
        target = out / method
        if not target.exists():
            shutil.copytree(base, target)
        run([HNMINE, "mine", str(args.data), "--split", "train", "--out", str(target), "--method", method, "--quiet"], env)
        runs[method] = target
    for name, extra in VARIANTS.items():
        target = out / name
        if not target.exists():
            shutil.copytree(base, target)
        run([HNMINE, "mine", str(args.data), "--split", "train", "--out", str(target), *extra, "--quiet"], env)
        runs[name] = target
    return runs


def st_source(name: str, args, env: dict) -> Path:
    """sentence-transformers' miner output for an ST arm, mined the first time it is needed."""
    target = Path(args.out) / "sources" / f"{name}.parquet"
    if not target.exists():
        log(f"sentence-transformers mine_hard_negatives {' '.join(ST_ARMS[name])} -> {target}")
        tmp = Path(args.out) / f".{name}"
        run([PY, str(BENCH / "st_mine.py"), "--data", str(args.data), "--split", "train", "--out", str(tmp), *ST_ARMS[name]], env)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp / "triplets.parquet"), target)
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def budget_flags(args, max_steps: int | None = None) -> list[str]:
    """The finetune flags of the budget; `max_steps` holds an arm to that many steps instead."""
    max_steps = max_steps or args.max_steps
    flags = [
        "--batch-size",
        str(args.batch_size),
        "--learning-rate",
        str(args.learning_rate),
        "--warmup-ratio",
        str(args.warmup_ratio),
        "--negatives",
        str(args.negatives),
        "--precision",
        args.precision,
        "--eval-dtype",
        args.eval_dtype,
        "--threads",
        str(args.threads),
    ]
    flags += ["--max-steps", str(max_steps)] if max_steps else ["--epochs", str(args.epochs)]
    if args.max_length:
        flags += ["--max-length", str(args.max_length)]
    return flags


def load_results(budget: dict) -> dict:
    if RESULTS.exists():
        saved = json.loads(RESULTS.read_text())
        if saved.get("budget") != budget:
            raise SystemExit(f"{RESULTS} holds results for another budget ({saved.get('budget')}); move it away to start afresh")
        return saved
    return {"budget": budget, "machine": machine(), "cells": {}}


def save(results: dict) -> None:
    save_json_atomically(RESULTS, results, indent=2)


def steps_of(arm: str, results: dict) -> int:
    """How many steps `arm` trained for (every seed of an arm trains alike)."""
    steps = {r["steps"] for r in results["cells"].values() if r["arm"] == arm}
    if len(steps) != 1:
        raise SystemExit(f"run the '{arm}' arm first: its number of steps sets the budget of the same-steps control")
    return steps.pop()


def run_cell(arm: str, seed: int | None, runs: dict[str, Path], args, env: dict, results: dict) -> dict:
    source, held_to = SAME_STEPS.get(arm, (arm, None))
    budget = budget_flags(args, max_steps=steps_of(held_to, results) if held_to else None)
    if arm in SAME_STEPS:
        srcs, kind = [runs[source]], ["--arms", "mined"]
    elif arm == "untrained":
        srcs, kind = [runs["shifted"]], ["--arms", "untrained"]
    elif arm == "in-batch":
        # The union of the runs' pairs: every train pair (sentence-transformers' files hold the same
        # pairs). Export files, not run directories, so no run gets this cell's results table.
        # Variants are left out: relabelling adds pairs the other arms do not have.
        srcs, kind = [p / "export" / "triplet.parquet" for name, p in runs.items() if name not in VARIANTS], ["--arms", "in-batch"]
    elif arm in ST_ARMS:
        srcs, kind = [st_source(arm, args, env)], ["--arms", "mined"]
    else:
        srcs, kind = [runs[arm]], ["--arms", "mined"]
    cmd = [
        HNMINE,
        "finetune",
        *map(str, srcs),
        "--eval",
        str(args.data),
        "--eval-split",
        "test",
        *kind,
        "--seeds",
        str(seed if seed is not None else 1),
        *budget,
        "--json",
        "--quiet",
    ]
    started = time.perf_counter()
    out = json.loads(run(cmd, env).stdout)
    row = out["rows"][0]
    row.update(arm=arm, wall_seconds=round(time.perf_counter() - started, 1), command=" ".join(cmd))
    return row


def write_table(results: dict, arms: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    from hnmine.finetune.results import markdown_table, summarize

    rows = [r for a in arms for r in results["cells"].values() if r["arm"] == a]
    if not rows:
        return
    b, m = results["budget"], results["machine"]
    steps = sorted({r["steps"] for r in rows if r["kind"] != "untrained"})
    first_row = {r["arm"]: r for r in reversed(rows)}
    held = [
        f"`{a}` trains {first_row[a]['max_steps']} steps (`--max-steps`, as many as `{SAME_STEPS[a][1]}`) instead of one epoch."
        for a in arms
        if a in SAME_STEPS and a in first_row
    ]
    lines = [
        "<!-- written by benchmarks/bench_downstream.py from benchmarks/results/downstream.json -->",
        f"SciFact train → test ({rows[0]['eval_queries']} queries, {rows[0]['eval_documents']:,} documents), "
        f"{rows[0]['model']}, metrics × 100, mean ± sample std over seeds.",
        "",
        markdown_table(summarize(rows)),
        "",
        f"Budget (every trained arm): {json.dumps(b)}; steps per arm: {steps}.",
        *held,
        f"Evaluation encoded at {rows[0]['eval_dtype']} for every arm; torch threads {rows[0]['threads']}.",
        f"Machine: {m.get('Model name', '?')}, {m.get('CPU(s)', '?')} CPUs; torch {m.get('torch')}, "
        f"sentence-transformers {m.get('sentence-transformers')}.",
        f"Median wall time per trained cell: {_median([r['wall_seconds'] for r in rows if r['kind'] != 'untrained']):.0f} s.",
    ]
    TABLE.write_text("\n".join(lines) + "\n")
    log(f"table written to {TABLE}")


def _median(values: list[float]) -> float:
    v = sorted(values)
    return (v[len(v) // 2] + v[(len(v) - 1) // 2]) / 2 if v else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SCIFACT)
    ap.add_argument("--out", default=str(ROOT / "runs" / "downstream"))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--only", default=None, help="comma-separated arms (default: all)")
    ap.add_argument("--report", action="store_true", help="only rewrite the Markdown table")
    # The budget, the same for every trained arm: one epoch over the arm's pairs (919 for full coverage:
    # 29 steps of 32), 128 tokens, bf16 autocast. One cell (training + evaluating the 5,183 test documents)
    # takes about 5-6 minutes on 2 CPU cores shared with other work (benchmarks/README.md).
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=None, help="train a fixed number of steps instead of --epochs")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--learning-rate", type=float, default=2e-5)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--negatives", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--precision", default="bfloat16")
    ap.add_argument("--eval-dtype", default="bfloat16")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    if args.max_steps is not None:
        args.epochs = None  # --max-steps replaces the default epoch budget
    budget = {
        k: getattr(args, k)
        for k in (
            "max_steps",
            "epochs",
            "batch_size",
            "learning_rate",
            "warmup_ratio",
            "negatives",
            "max_length",
            "precision",
            "eval_dtype",
            "threads",
        )
    }
    results = load_results(budget)
    env = bench_env(OMP_WAIT_POLICY="PASSIVE")  # other jobs share the cores: waiting threads sleep instead of spinning
    runs = {} if args.report else prepare_runs(args, env)
    if runs:
        # The default first, then the baselines, so the first cells answer the first question.
        methods = sorted(runs, key=lambda m: (m != "shifted", m != "naive", m))
        arms = ["untrained", "shifted", "in-batch", *methods[1:], *ST_ARMS, *(a for a, (src, _) in SAME_STEPS.items() if src in runs)]
    else:
        arms = list(dict.fromkeys(r["arm"] for r in results["cells"].values()))
    if args.only:
        wanted = args.only.split(",")
        unknown = [a for a in wanted if a not in arms]
        if unknown:
            raise SystemExit(f"unknown arm(s) {unknown} (arms: {', '.join(arms)})")
        arms = [a for a in arms if a in wanted]
    if not args.report:
        todo = [(a, s) for a, s in grid_cells(arms, [int(x) for x in args.seeds.split(",")]) if f"{a}|{s}" not in results["cells"]]
        log(f"{len(todo)} cells to run ({len(results['cells'])} already in {RESULTS})")
        spent: list[float] = []
        for i, (arm, seed) in enumerate(todo, start=1):
            log(f"cell {i}/{len(todo)}: {arm} seed {seed}")
            row = run_cell(arm, seed, runs, args, env, results)
            results["cells"][f"{arm}|{seed}"] = row
            save(results)
            spent.append(row["wall_seconds"])
            eta = (len(todo) - i) * sum(spent) / len(spent) / 60
            log(
                f"  nDCG@10 {row['ndcg_at_10']:.4f}  R@100 {row['recall_at_100']:.4f}  MRR@10 {row['mrr_at_10']:.4f}  "
                f"train {row['train_seconds']:.0f} s  eval {row['eval_seconds']:.0f} s  wall {row['wall_seconds']:.0f} s  "
                f"(about {eta:.0f} min left)"
            )
            write_table(results, arms)
    write_table(results, arms)


if __name__ == "__main__":
    main()
