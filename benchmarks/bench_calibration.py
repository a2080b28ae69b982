"""`--method auto` on real collections: what it chooses, and whether the choice holds on held-out positives
and on another collection (issue 14, part 3).

For each collection (Cranfield, SciFact train):
  1. calibrate: `hnmine mine C --method auto` (all positives known) -> the chosen rule and its estimates;
  2. measure: `hnmine mine C --hide-positives` with naive top-k, with the rule chosen on C, and with the rule
     chosen on the other collection; `hnmine eval --hidden` gives each one's false-negative rate and coverage.
Target: on every collection, the chosen rule's false-negative rate is at most half of naive's with at least
95 % of queries full, also when the rule was tuned on the other collection.

    python benchmarks/bench_calibration.py            # writes benchmarks/results/calibration.json and .md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, HNMINE, ROOT, machine, write_results  # noqa: E402

COLLECTIONS = {"cranfield": (ROOT.parent / "shared/data/cranfield", "test"), "scifact": (ROOT.parent / "shared/data/scifact", "train")}


def hnmine(*args) -> dict:
    out = subprocess.run([str(HNMINE), *map(str, args), "--json", "--quiet"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"hnmine {' '.join(map(str, args))} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def rule_args(chosen: dict) -> list[str]:
    args = ["--method", chosen["method"]]
    for key, value in chosen["params"].items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def every_method(work: Path) -> list[dict]:
    """Every method of `hnmine methods` at its defaults on each collection's hidden-positive run (only the
    filter and export rerun from one method to the next)."""
    names = [
        line.split(":", 1)[0].split(" ")[0]
        for line in subprocess.run([str(HNMINE), "methods"], capture_output=True, text=True, check=True).stdout.splitlines()
        if ":" in line
    ]
    rows = []
    for name, (data, split) in COLLECTIONS.items():
        run = work / f"{name}-hidden"
        for method in names:
            hnmine("mine", data, "--split", split, "--out", run, "--hide-positives", "--method", method)
            out = subprocess.run([str(HNMINE), "eval", str(run), "--hidden", "--json"], capture_output=True, text=True, check=True)
            m = json.loads(out.stdout)[0]
            rows.append(
                {
                    "collection": name,
                    "method": method,
                    "false_negative_rate": m["false_negative_rate"],
                    "coverage": m["coverage"],
                    "hardness": m["hardness"],
                    "mean_rank": m["mean_rank"],
                }
            )
            print(f"{name:10} {method:16} FN {m['false_negative_rate']:.3f}  coverage {m['coverage']:.3f}", flush=True)
    for r in rows:
        naive = next(x for x in rows if x["collection"] == r["collection"] and x["method"] == "naive")
        r["fn_vs_naive"] = r["false_negative_rate"] / naive["false_negative_rate"] if naive["false_negative_rate"] else float("nan")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/hnmine-bench-calibration"))
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "calibration.json")
    args = ap.parse_args()
    chosen, estimates = {}, {}
    for name, (data, split) in COLLECTIONS.items():
        run = args.work / f"{name}-auto"
        hnmine("mine", data, "--split", split, "--out", run, "--method", "auto")
        cal = json.loads((run / "manifests/filter.json").read_text())["stats"]["calibration"]
        chosen[name], estimates[name] = cal["chosen"], cal
        print(f"{name}: auto chose {cal['chosen']} — {cal['reason']}", flush=True)
    rows = []
    for name, (data, split) in COLLECTIONS.items():
        run = args.work / f"{name}-hidden"
        arms = {"naive": ["--method", "naive"], f"chosen on {name}": rule_args(chosen[name])}
        other = next(c for c in COLLECTIONS if c != name)
        arms[f"chosen on {other}"] = rule_args(chosen[other])
        for arm, extra in arms.items():
            hnmine("mine", data, "--split", split, "--out", run, "--hide-positives", *extra)
            out = subprocess.run([str(HNMINE), "eval", str(run), "--hidden", "--json"], capture_output=True, text=True, check=True)
            m = json.loads(out.stdout)[0]
            rows.append(
                {
                    "collection": name,
                    "arm": arm,
                    "rule": " ".join(extra),
                    "false_negative_rate": m["false_negative_rate"],
                    "coverage": m["coverage"],
                    "hardness": m["hardness"],
                    "negatives": m["mined_negatives"],
                }
            )
            print(
                f"{name:10} {arm:22} {' '.join(extra):40} FN {m['false_negative_rate']:.3f}  coverage {m['coverage']:.3f}  "
                f"hardness {m['hardness']}",
                flush=True,
            )
    for r in rows:
        naive = next(x for x in rows if x["collection"] == r["collection"] and x["arm"] == "naive")
        r["fn_vs_naive"] = r["false_negative_rate"] / naive["false_negative_rate"] if naive["false_negative_rate"] else None
        r["target_met"] = r["arm"] == "naive" or bool(r["fn_vs_naive"] is not None and r["fn_vs_naive"] <= 0.5 and r["coverage"] >= 0.95)
    every = every_method(args.work)
    result = {"machine": machine(), "chosen": chosen, "calibration": estimates, "rows": rows, "every_method": every}
    write_results(args.results, result)
    md = [
        "| collection | rule | FN rate (hidden positives) | × naive | queries full | hardness | target (≤ 0.5× naive, ≥ 95% full) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        ratio = "" if r["arm"] == "naive" else f"{r['fn_vs_naive']:.2f}"
        target = "—" if r["arm"] == "naive" else ("met" if r["target_met"] else "not met")
        md.append(
            f"| {r['collection']} | {r['arm']}: `{r['rule']}` | {r['false_negative_rate']:.1%} | {ratio} | {r['coverage']:.1%} | "
            f"{r['hardness']:.3f} | {target} |"
        )
    md += [
        "",
        "| collection | method (defaults) | FN rate (hidden positives) | × naive | queries full | hardness | mean teacher rank |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in every:
        md.append(
            f"| {r['collection']} | {r['method']} | {r['false_negative_rate']:.1%} | {r['fn_vs_naive']:.2f} | {r['coverage']:.1%} | "
            f"{r['hardness']:.3f} | {r['mean_rank']:.1f} |"
        )
    args.results.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
