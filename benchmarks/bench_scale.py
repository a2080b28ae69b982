"""`make bench-scale`: hnmine on a synthetic 1,000,000-document corpus with precomputed 384-d vectors.

100,000 queries (one positive each), hybrid retrieval (dense over the given vectors + BM25 on the same
texts, fused by RRF), depth 100. Each stage runs as its own `hnmine` command (the same stages and options
as one `hnmine mine`), so every stage gets its own wall seconds and peak RSS; the stage's own seconds
come from RUN/manifests/<stage>.json. The faiss index type follows corpus size (exact up to
--exact-max-docs, IVF above); for IVF the retrieve stage prints its recall against exact search.

With user vectors no stage should need a model. Imports of sentence_transformers/transformers are
blocked (they fail at once) unless --allow-model, so a stage that would load a model stops with an
error within seconds instead of encoding for hours; that is reported as a blocker.

  python benchmarks/bench_scale.py [--docs 1000000 --queries 100000] [--data /tmp/hnmine-scale-1000000]
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
from _common import BENCH, PY, bench_env, machine, manifest_seconds, measure, write_results  # noqa: E402

DEPTH = 100


def stage_commands(
    data: Path, run: Path, retrieve_with: str = "hybrid", workers: int = 1, engine: str = "local"
) -> list[tuple[str, list[str]]]:
    ce, qe = str(data / "corpus_emb.npy"), str(data / "query_emb.npy")
    common = ["--out", str(run), "--quiet"] + (["--engine", engine] if engine != "local" else [])
    par = ["--workers", str(workers)] if workers > 1 else []  # the model-option stages take --workers
    return [
        ("inputs+index", ["index", str(data), "--split", "train", "--retriever", "hybrid", "--corpus-embeddings", ce, *par, *common]),
        ("retrieve", ["retrieve", "--retriever", retrieve_with, "--max-depth", str(DEPTH), "--query-embeddings", qe, *par, *common]),
        ("score", ["score", "--query-embeddings", qe, *par, *common]),
        ("filter", ["filter", "--depth", str(DEPTH), "--max-depth", str(DEPTH), "--num-negatives", "5", *common]),
        ("export", ["export", *common]),
    ]


def mine_command(data: Path, run: Path, workers: int = 2) -> list[str]:
    return [
        "hnmine",
        "mine",
        "--workers",
        str(workers),
        str(data),
        "--split",
        "train",
        "--out",
        str(run),
        "--corpus-embeddings",
        str(data / "corpus_emb.npy"),
        "--query-embeddings",
        str(data / "query_emb.npy"),
        "--retriever",
        "hybrid",
        "--depth",
        str(DEPTH),
        "--max-depth",
        str(DEPTH),
        "--num-negatives",
        "5",
        "--quiet",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--data", type=Path, default=None, help="where the synthetic data is (made there if missing)")
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument(
        "--retrieve-with",
        default="hybrid",
        choices=["hybrid", "dense", "bm25"],
        help="retriever for the retrieve stage (the index always holds both parts)",
    )
    ap.add_argument("--workers", type=int, default=2, help="hnmine --workers (BM25 search runs in that many processes)")
    ap.add_argument(
        "--engine", default="local", choices=["local", "ray"], help="hnmine --engine (ray: each stage command starts its own local Ray)"
    )
    ap.add_argument("--allow-model", action="store_true", help="do not block model imports")
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="per stage, seconds")
    ap.add_argument("--profile", type=Path, default=None, help="folder: run each stage under cProfile, write STAGE.prof and a top-25 text")
    ap.add_argument("--results", type=Path, default=None)
    args = ap.parse_args()
    data = args.data or Path(f"/tmp/hnmine-scale-{args.docs}")
    run = args.run or Path(f"/tmp/hnmine-scale-run-{args.docs}")
    results = args.results or BENCH / "results" / f"scale-{args.docs}{'' if args.engine == 'local' else '-' + args.engine}.json"
    out = {
        "machine": machine(),
        "engine": args.engine,
        "workers": args.workers,
        "docs": args.docs,
        "queries": args.queries,
        "depth": DEPTH,
        "retrieve_with": args.retrieve_with,
        "equivalent_mine_command": " ".join(mine_command(data, run, args.workers)),
        "stages": [],
    }
    if not (data / "qrels" / "train.tsv").exists():
        t = time.perf_counter()
        subprocess.run(
            [PY, str(BENCH / "make_scale_data.py"), str(data), "--docs", str(args.docs), "--queries", str(args.queries)],
            check=True,
            env=bench_env(),
        )
        out["data_generation_s"] = round(time.perf_counter() - t, 1)
    if run.exists():
        shutil.rmtree(run)
    block = [] if args.allow_model else ["--block", "sentence_transformers,transformers"]
    blocked_at = None
    for label, argv in stage_commands(data, run, args.retrieve_with, args.workers, args.engine):
        mods = run.parent / f".{run.name}-{label}-modules.json"
        cmd = [PY, str(BENCH / "hnmine_traced.py"), str(mods), *block, "--", *argv]
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            cmd = [PY, "-m", "cProfile", "-o", str(args.profile / f"{label}.prof"), *cmd[1:]]
        m = measure(label, cmd, check=False, timeout=args.timeout)
        info = json.loads(mods.read_text()) if mods.exists() else {}
        row = {
            "stage": label,
            "command": "hnmine " + " ".join(argv),
            "wall_s": m.seconds,
            "cpu_s": m.cpu_s,
            "peak_rss_mb": m.peak_rss_mb,
            "rc": m.rc,
            "manifest_s": manifest_seconds(run),
            "heavy_modules_imported": info.get("heavy_modules_imported"),
        }
        if m.rc != 0:
            row["error"] = m.stderr_tail.strip().splitlines()[-3:]
        out["stages"].append(row)
        if args.profile and (args.profile / f"{label}.prof").exists():
            import io
            import pstats

            buf = io.StringIO()
            pstats.Stats(str(args.profile / f"{label}.prof"), stream=buf).sort_stats("cumulative").print_stats(25)
            (args.profile / f"{label}.txt").write_text(buf.getvalue())
        print(
            f"{label:<14} wall {m.seconds:9.1f} s  peak RSS {m.peak_rss_mb:8.0f} MB  rc {m.rc}"
            + (f"  imported: {', '.join(info.get('heavy_modules_imported') or [])}" if info else ""),
            flush=True,
        )
        if m.rc != 0:
            print("  " + "\n  ".join(row["error"]), flush=True)
            if "blocked" in m.stderr_tail:
                blocked_at = label
                print(f"BLOCKER: stage '{label}' tried to load a model although every vector was given", flush=True)
            break
    out["blocked_at"] = blocked_at
    ms = {}
    for stage in ("inputs", "index", "retrieve", "score", "filter", "export"):
        p = run / "manifests" / f"{stage}.json"
        if p.exists():
            mf = json.loads(p.read_text())
            ms[stage] = {"seconds": mf.get("seconds"), "stats": mf.get("stats"), "counts": mf.get("counts")}
    out["manifests"] = ms
    plan = (ms.get("retrieve", {}).get("stats") or {}).get("dense_search")
    if plan:
        tried = ", ".join(f"nprobe {t['nprobe']}: {t['recall']:.3f}" for t in plan.get("tried", []))
        print(
            f"dense search: {plan['type']}"
            + (f" (nprobe {plan['nprobe']}, recall {plan['recall']:.3f})" if plan["type"] == "ivf" else "")
            + (f"; IVF recall@{plan['k']} on a query sample: {tried}" if tried else "")
        )
    write_results(results, out)


if __name__ == "__main__":
    main()
