"""Rerun with only filter/export options changed, on a finished run: wall seconds, and which heavy modules it imported.

Target: at most 5 s wall for SciFact, with no model loaded (torch and sentence-transformers not imported).
Alternates --method naive and --method topk-percpos (each change reruns filter + export only), REPEATS times.

  python benchmarks/bench_rerun.py RUN [--data ../shared/data/scifact] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, PY, SCIFACT, manifest_seconds, measure, write_results  # noqa: E402

TARGET_S = 5.0
MODEL_MODULES = ("torch", "sentence_transformers", "transformers")


def hnmine_args(data: Path, run: Path, *extra: str) -> list[str]:
    return [
        "mine",
        str(data),
        "--split",
        "train",
        "--out",
        str(run),
        "--depth",
        "50",
        "--max-depth",
        "50",
        "--num-negatives",
        "5",
        "--quiet",
        *extra,
    ]


def rerun(run: Path, data: Path = SCIFACT, repeats: int = 3) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="hnmine-rerun-"))
    rows = []
    for i in range(repeats):
        for method in ("naive", "topk-percpos"):
            mods = tmp / f"modules-{i}-{method}.json"
            before = {s: (run / "manifests" / f"{s}.json").stat().st_mtime_ns for s in ("inputs", "index", "retrieve", "score")}
            m = measure(
                f"rerun --method {method}",
                [PY, str(BENCH / "hnmine_traced.py"), str(mods), "--", *hnmine_args(data, run, "--method", method)],
            )
            after = {s: (run / "manifests" / f"{s}.json").stat().st_mtime_ns for s in before}
            info = json.loads(mods.read_text())
            rows.append(
                {
                    "method": method,
                    "seconds": m.seconds,
                    "peak_rss_mb": m.peak_rss_mb,
                    "heavy_modules_imported": info["heavy_modules_imported"],
                    "model_modules_imported": [x for x in info["heavy_modules_imported"] if x in MODEL_MODULES],
                    "upstream_stages_redone": [s for s in before if before[s] != after[s]],
                    "filter_s": manifest_seconds(run).get("filter"),
                    "export_s": manifest_seconds(run).get("export"),
                }
            )
            print(
                f"rerun --method {method}: {m.seconds:.2f} s, peak RSS {m.peak_rss_mb:.0f} MB, "
                f"imported: {', '.join(info['heavy_modules_imported']) or 'none'}",
                flush=True,
            )
    secs = [r["seconds"] for r in rows]
    imported = sorted({x for r in rows for x in r["model_modules_imported"]})
    return {
        "runs": rows,
        "median_s": statistics.median(secs),
        "max_s": max(secs),
        "target_s": TARGET_S,
        "model_modules_imported": imported,
        "met": max(secs) <= TARGET_S and not imported and not any(r["upstream_stages_redone"] for r in rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, default=SCIFACT)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "rerun.json")
    args = ap.parse_args()
    res = rerun(args.run, args.data, args.repeats)
    print(
        f"rerun median {res['median_s']:.2f} s (max {res['max_s']:.2f} s; target ≤ {TARGET_S} s); "
        f"model modules imported: {', '.join(res['model_modules_imported']) or 'none'}: {'met' if res['met'] else 'NOT met'}"
    )
    write_results(args.results, res)


if __name__ == "__main__":
    main()
