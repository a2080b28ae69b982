"""How right is `--relabel`? Its promoted positives checked against relevance judgments the run never saw.

The hidden-positive runs of bench_calibration.py (`hnmine mine C --hide-positives`: each query keeps its
best-graded relevant document as the known positive, the other relevant ones are hidden) are copied, and
only the filter and export rerun with `--relabel` at several margins. A relabelled candidate that is a
hidden relevant document is a correct promotion; any other is a wrong one (a non-relevant document that
would be trained on as a positive). For scale, the same count for the teacher's top-ranked non-positive
candidate of each query (what relabelling at any margin can at best choose from).

    python benchmarks/bench_calibration.py     # first, once: makes the hidden-positive runs
    python benchmarks/bench_relabel.py         # writes benchmarks/results/relabel.json and .md
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, HNMINE, machine, write_results  # noqa: E402

MARGINS = [-0.05, 0.0, 0.05, 0.1]


def relabelled_precision(run: Path) -> dict:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    hidden = pq.read_table(run / "inputs" / "hidden_qrels.parquet")
    relevant = {(q, d) for q, d, r in zip(*(hidden.column(c).to_pylist() for c in ("query_id", "doc_id", "relevance"))) if r > 0}
    pos = pq.read_table(run / "positives.parquet")
    pos = pos.filter(pc.equal(pos.column("origin"), "relabelled"))
    pairs = list(zip(pos.column("query_id").to_pylist(), pos.column("doc_id").to_pylist()))
    right = sum(1 for p in pairs if p in relevant)
    return {
        "relabelled": len(pairs),
        "queries": len({q for q, _ in pairs}),
        "hidden_relevant": right,
        "precision": right / len(pairs) if pairs else None,
    }


def top_candidate_precision(run: Path) -> dict:
    """The teacher's best-scored non-positive candidate of each query: how often it is a hidden relevant document."""
    import pyarrow.parquet as pq

    hidden = pq.read_table(run / "inputs" / "hidden_qrels.parquet")
    relevant = {(q, d) for q, d, r in zip(*(hidden.column(c).to_pylist() for c in ("query_id", "doc_id", "relevance"))) if r > 0}
    scores = pq.read_table(run / "scores.parquet", columns=["query_id", "doc_id", "is_positive", "teacher_score"]).to_pylist()
    best: dict[str, tuple[float, str]] = {}
    for row in scores:
        if not row["is_positive"] and (row["query_id"] not in best or row["teacher_score"] > best[row["query_id"]][0]):
            best[row["query_id"]] = (row["teacher_score"], row["doc_id"])
    right = sum(1 for q, (_, d) in best.items() if (q, d) in relevant)
    return {"queries": len(best), "hidden_relevant": right, "precision": right / len(best) if best else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=Path("/tmp/hnmine-bench-calibration"), help="bench_calibration.py's work folder")
    ap.add_argument("--work", type=Path, default=Path("/tmp/hnmine-bench-relabel"))
    args = ap.parse_args()
    out: dict = {"machine": machine(), "margins": MARGINS, "collections": {}}
    for name in ("cranfield", "scifact"):
        source = args.runs / f"{name}-hidden"
        if not source.exists():
            raise SystemExit(f"{source} is missing: run benchmarks/bench_calibration.py first")
        rows = []
        for margin in MARGINS:
            run = args.work / f"{name}-{margin}"
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(source, run)
            cmd = [str(HNMINE), "filter", "--out", str(run), "--relabel", "--relabel-margin", str(margin), "--quiet"]
            subprocess.run(cmd, check=True)
            subprocess.run([str(HNMINE), "export", "--out", str(run), "--quiet"], check=True)
            rows.append({"margin": margin, **relabelled_precision(run)})
            print(name, rows[-1], file=sys.stderr)
        out["collections"][name] = {"top_candidate": top_candidate_precision(source), "relabel": rows}
    write_results(BENCH / "results" / "relabel.json", out)
    lines = ["| collection | margin | relabelled | queries | hidden relevant | precision |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, c in out["collections"].items():
        top = c["top_candidate"]
        lines.append(
            f"| {name} | top non-positive candidate | {top['queries']} | {top['queries']} | {top['hidden_relevant']} | "
            f"{100 * (top['precision'] or 0):.1f}% |"
        )
        for r in c["relabel"]:
            p = "–" if r["precision"] is None else f"{100 * r['precision']:.1f}%"
            lines.append(f"| {name} | {r['margin']:+.2f} | {r['relabelled']} | {r['queries']} | {r['hidden_relevant']} | {p} |")
    (BENCH / "results" / "relabel.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
