"""The results of a comparison: one row per (arm, seed), a summary per arm, the Parquet table, a Markdown table.

Summary per arm and metric: mean, sample standard deviation (n − 1; null with one seed), min, max.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa

from hnmine.finetune.metrics import METRICS
from hnmine.run_layout import LAYOUT
from hnmine.schemas import FINETUNE_RESULTS_SCHEMA

RESULTS_FILE = LAYOUT["finetune_results"]


def results_table(rows: list[dict]) -> pa.Table:
    schema = FINETUNE_RESULTS_SCHEMA
    return pa.Table.from_pylist([{name: r.get(name) for name in schema.names} for r in rows], schema=schema)


def write_results(rows: list[dict], run_dir: Path) -> Path:
    """Write this invocation's rows (every arm, side by side) to RUN/finetune/results.parquet, atomically."""
    from hnmine.io.atomic import write_parquet

    target = Path(run_dir) / RESULTS_FILE
    write_parquet(results_table(rows), target)
    return target


def _stats(values: list[float]) -> dict:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "min": min(values), "max": max(values)}


def summarize(rows: list[dict]) -> list[dict]:
    """One dict per arm (first-seen order): seeds, and mean/std/min/max of every metric."""
    arms: dict[str, list[dict]] = {}
    for r in rows:
        arms.setdefault(r["arm"], []).append(r)
    out = []
    for name, group in arms.items():
        entry = {
            "arm": name,
            "kind": group[0]["kind"],
            "seeds": [r["seed"] for r in group if r["seed"] is not None],
            "runs": len(group),
            "train_rows": group[0].get("train_rows"),
        }
        for metric in METRICS:
            entry[metric] = _stats([r[metric] for r in group])
        out.append(entry)
    return out


METRIC_HEADERS = {"ndcg_at_10": "nDCG@10", "recall_at_100": "Recall@100", "mrr_at_10": "MRR@10"}


def format_stat(stat: dict, scale: float = 100.0) -> str:
    """'64.52 ± 0.31' (mean ± sample std, in points), or the mean alone with one run."""
    mean = f"{scale * stat['mean']:.2f}"
    return mean if stat["std"] is None else f"{mean} ± {scale * stat['std']:.2f}"


def markdown_table(summary: list[dict]) -> str:
    """Mean ± std per arm (metrics × 100), with the min–max range of nDCG@10 and the number of runs."""
    head = ["arm", "runs", "train rows"] + [METRIC_HEADERS[m] for m in METRICS] + ["nDCG@10 min–max"]
    lines = ["| " + " | ".join(head) + " |", "| --- | ---: | ---: | " + " | ".join("---:" for _ in range(len(METRICS) + 1)) + " |"]
    for s in summary:
        nd = s["ndcg_at_10"]
        cells = [s["arm"].replace("|", "\\|"), str(s["runs"]), "–" if s["train_rows"] is None else f"{s['train_rows']:,}"]
        cells += [format_stat(s[m]) for m in METRICS]
        cells.append(f"{100 * nd['min']:.2f}–{100 * nd['max']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
