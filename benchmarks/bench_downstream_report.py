"""The tables of the dense-label downstream benchmark (bench_downstream_dense.py): per arm, and paired by seed.

Per arm: mean ± sample std over seeds of nDCG@10, Recall@100, MRR@10 (× 100), and the arm's
false-negative rate. Paired: for each arm against a baseline arm (naive top-k, the default), the
difference at each seed (the same seed draws the same training order and negative choice for both),
its mean and sample std, wins / losses, a two-sided paired t test and a two-sided sign test (ties left out).
"""

from __future__ import annotations

import math
from pathlib import Path

METRICS = ("ndcg_at_10", "recall_at_100", "mrr_at_10")
HEADERS = {"ndcg_at_10": "nDCG@10", "recall_at_100": "Recall@100", "mrr_at_10": "MRR@10"}
BASELINES = ("naive", "shifted")  # naive top-k, and hnmine's default


def mean_std(values: list[float]) -> tuple[float, float | None]:
    n = len(values)
    mean = sum(values) / n
    return mean, (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None)


def paired(a: dict[int, float], b: dict[int, float]) -> dict | None:
    """Arm a against arm b over the seeds both have: {seed: metric} each. None without a common seed."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    mean, std = mean_std(diffs)
    wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return {
        "seeds": seeds,
        "mean": mean,
        "std": std,
        "wins": wins,
        "losses": losses,
        "ties": len(diffs) - wins - losses,
        "t_p": t_test_p(diffs),
        "sign_p": sign_test_p(wins, losses),
    }


def t_test_p(diffs: list[float]) -> float | None:
    """Two-sided paired t test of mean difference 0 (None with < 2 seeds; 1.0 when every difference is 0)."""
    if len(diffs) < 2:
        return None
    mean, std = mean_std(diffs)
    if not std:
        return 1.0 if mean == 0 else 0.0
    from scipy import stats

    t = mean / (std / math.sqrt(len(diffs)))
    return float(2 * stats.t.sf(abs(t), df=len(diffs) - 1))


def sign_test_p(wins: int, losses: int) -> float | None:
    """Two-sided exact binomial test of wins against losses at 1/2 (None without a non-tied seed)."""
    n = wins + losses
    if not n:
        return None
    k = min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def rows_of(results: dict, collection: str) -> dict[str, list[dict]]:
    """arm -> its rows; an arm trained on another arm's very data gets that arm's rows."""
    by_arm: dict[str, list[dict]] = {}
    for key, row in results["cells"].items():
        name, arm, _ = key.split("|")
        if name == collection:
            by_arm.setdefault(arm, []).append(row)
    for arm, info in results["collections"].get(collection, {}).get("arms", {}).items():
        if info.get("same_data_as") in by_arm:
            by_arm[arm] = by_arm[info["same_data_as"]]
    return by_arm


def _stat(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{100 * mean:.2f}" if std is None else f"{100 * mean:.2f} ± {100 * std:.2f}"


def _p(p: float | None) -> str:
    return "–" if p is None else (f"{p:.3f}" if p >= 0.001 else "<0.001")


def arm_table(collection: str, results: dict, arms: list[str]) -> list[str]:
    info = results["collections"].get(collection, {}).get("arms", {})
    by_arm = rows_of(results, collection)
    lines = [
        "| arm | runs | train rows | FN rate of its negatives | nDCG@10 | Recall@100 | MRR@10 | nDCG@10 min–max |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for arm in arms:
        rows = by_arm.get(arm)
        if not rows:
            continue
        fn = info.get(arm, {})
        rate = "–" if fn.get("false_negative_rate") is None else f"{fn['false_negative_rate']:.1%}"
        name = arm + (f" (= {fn['same_data_as']}: the same training file)" if "same_data_as" in fn else "")
        nd = [r["ndcg_at_10"] for r in rows]
        cells = [name, str(len(rows)), f"{rows[0]['train_rows']:,}", rate, *(_stat([r[m] for r in rows]) for m in METRICS)]
        lines.append("| " + " | ".join(cells + [f"{100 * min(nd):.2f}–{100 * max(nd):.2f}"]) + " |")
    return lines


def paired_table(collection: str, results: dict, arms: list[str], baseline: str) -> tuple[list[str], dict]:
    by_arm = rows_of(results, collection)
    if baseline not in by_arm:
        return [], {}
    base = {m: {r["seed"]: r[m] for r in by_arm[baseline]} for m in METRICS}
    lines = [
        f"| arm − {baseline} | seeds | Δ nDCG@10 | wins / losses | paired t p | sign p | Δ Recall@100 (t p) | Δ MRR@10 (t p) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    # an arm trained on another arm's very file has that arm's rows: it is not compared twice
    twins = {a for a, v in results["collections"].get(collection, {}).get("arms", {}).items() if "same_data_as" in v}
    out = {}
    for arm in arms:
        if arm in (baseline, "untrained", *twins) or arm not in by_arm:
            continue
        cmp = {m: paired({r["seed"]: r[m] for r in by_arm[arm]}, base[m]) for m in METRICS}
        if cmp["ndcg_at_10"] is None:
            continue
        out[arm] = cmp
        nd = cmp["ndcg_at_10"]
        spread = "" if nd["std"] is None else f" ± {100 * nd['std']:.2f}"
        others = [f"{100 * cmp[m]['mean']:+.2f} ({_p(cmp[m]['t_p'])})" for m in ("recall_at_100", "mrr_at_10")]
        cells = [
            arm,
            str(len(nd["seeds"])),
            f"{100 * nd['mean']:+.2f}{spread}",
            f"{nd['wins']} / {nd['losses']}",
            _p(nd["t_p"]),
            _p(nd["sign_p"]),
            *others,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines, out


def collection_section(collection: str, results: dict) -> tuple[list[str], dict]:
    info = results["collections"].get(collection, {})
    by_arm = rows_of(results, collection)
    arms = ["untrained", *(a for a in info.get("arms", {}) if a in by_arm)]
    if not any(a in by_arm for a in arms):
        return [], {}
    first = next(r for a in arms for r in by_arm.get(a, []))
    trained = [r for a in arms if a != "untrained" for r in by_arm.get(a, [])]
    steps = sorted({r["steps"] for r in trained})
    lines = [
        f"#### {collection}",
        "",
        f"{info.get('train_queries')} training queries ({info.get('split')}), one known positive each; "
        f"{info.get('hidden_positives')} other relevant documents of {info.get('train_queries_with_hidden')} of them left unlabelled "
        f"({info.get('relevant_per_train_query')} relevant per training query). Evaluated on {first['eval_queries']} queries "
        f"({info.get('test_judgments')} judgments) against all {first['eval_documents']:,} documents; {first['model']}, metrics × 100, "
        "mean ± sample std over seeds.",
        "",
        *arm_table(collection, results, arms),
        "",
        f"Budget: {results['budgets'][collection]}; steps per arm: {steps}; per trained cell (median) "
        f"{_median([r['wall_seconds'] for r in trained]):.0f} s wall, {_median([r['cpu_seconds'] for r in trained if 'cpu_seconds' in r]):.0f} "
        f"CPU seconds, at load average {_median([r['loadavg'] for r in trained]):.1f}.",
        "",
    ]
    comparisons = {}
    for baseline in BASELINES:
        table, comparisons[baseline] = paired_table(collection, results, arms, baseline)
        lines += [*table, ""] if table else []
    return lines, comparisons


def _median(values: list[float]) -> float:
    v = sorted(values)
    return (v[len(v) // 2] + v[(len(v) - 1) // 2]) / 2 if v else float("nan")


def write_report(results: dict, path: Path) -> dict:
    """Write the Markdown tables to `path`; return the paired comparisons (collection -> baseline -> arm)."""
    m = results["machine"]
    lines = ["<!-- written by benchmarks/bench_downstream_dense.py from benchmarks/results/downstream-dense.json -->"]
    comparisons = {}
    for collection in results["collections"]:
        section, comparisons[collection] = collection_section(collection, results)
        lines += section
    lines.append(
        f"Machine: {m.get('Model name', '?')}, {m.get('CPU(s)', '?')} CPUs shared with other work; torch {m.get('torch')}, "
        f"sentence-transformers {m.get('sentence-transformers')}; no GPU."
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    results["paired"] = comparisons
    return comparisons
