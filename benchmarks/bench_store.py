"""The embedding store (issue 26) on SciFact train: what a run costs when the store has seen (most of) its texts.

Four `hnmine mine` runs, each its own process and run directory, one store (`--cache-dir`) for them all:

  cold      SciFact with 52 abstracts held out (1 % of 5,183; none judged relevant), an empty store
  new-dir   the same corpus in a new run directory
  plus-1%   the 52 held-out abstracts appended (the whole corpus), a new run directory
  edited-1% 52 other abstracts edited (their first sentence dropped), a new run directory

then `plus-1% cold`: the plus-1% corpus into an empty store, whose tables and vectors must be the same bytes
as the warm plus-1% run's. Per run: wall and CPU seconds, each stage's seconds (manifests), and the texts
the store gained (`hnmine cache --json`), i.e. those encoded.

Then the price of the store's batching (hnmine.inference.rowwise), in this process: the 5,183 documents
encoded padded to 8-token buckets (what the store does) against padded length-sorted batches (what a
cold encode did before the store), at the dtype `auto` gives, in alternation.

    python benchmarks/bench_store.py [--rounds 2] [--skip-cold-check] [--skip-batching]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, HNMINE, SCIFACT, bench_env, machine, manifest_seconds, measure, ratio, write_results  # noqa: E402

HELD_OUT = 52
DEPTH, NEG, BATCH = 50, 5, 64
TARGETS = {"new_dir_index_vs_cold_index": 0.05, "plus1_index_vs_cold_index": 0.10, "plus1_mine_vs_cold_mine": 0.25}


def make_variants(data: Path, work: Path) -> dict[str, Path]:
    """BEIR folders: base (52 unjudged abstracts held out), plus (base + those 52 appended), edited (52 of base edited)."""
    judged = set()
    for qrels in (data / "qrels").glob("*.tsv"):
        judged |= {line.split("\t")[1] for line in qrels.read_text(encoding="utf-8").splitlines()[1:] if line.strip()}
    docs = [json.loads(line) for line in (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    free = [d["_id"] for d in docs if d["_id"] not in judged]  # no query's positive: holding one out changes no pair
    step = len(free) // (2 * HELD_OUT)
    held, to_edit = set(free[::step][:HELD_OUT]), set(free[step // 2 :: step][:HELD_OUT])
    base = [d for d in docs if d["_id"] not in held]
    appended = [d for d in docs if d["_id"] in held]
    edited = [{**d, "text": _drop_first_sentence(d["text"])} if d["_id"] in to_edit else d for d in base]
    folders = {}
    for name, corpus in (("base", base), ("plus", base + appended), ("edited", edited)):
        folder = work / "data" / name
        (folder / "qrels").mkdir(parents=True, exist_ok=True)
        (folder / "corpus.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in corpus), encoding="utf-8")
        shutil.copy(data / "queries.jsonl", folder / "queries.jsonl")
        shutil.copy(data / "qrels" / "train.tsv", folder / "qrels" / "train.tsv")
        folders[name] = folder
    assert len(appended) == HELD_OUT and sum(a != b for a, b in zip(base, edited)) == HELD_OUT
    return folders


def _drop_first_sentence(text: str) -> str:
    head, dot, rest = text.partition(". ")
    return rest if dot and rest else text + " (revised)"


def mine_cmd(data: Path, run: Path, store: Path) -> list[str]:
    return [HNMINE, "mine", str(data), "--split", "train", "--out", str(run), "--depth", str(DEPTH), "--max-depth", str(DEPTH)] + [
        "--num-negatives",
        str(NEG),
        "--batch-size",
        str(BATCH),
        "--cache-dir",
        str(store),
        "--quiet",
    ]


def store_texts(store: Path) -> int:
    out = subprocess.run(
        [HNMINE, "cache", "--cache-dir", str(store), "--json"], capture_output=True, text=True, check=True, env=bench_env()
    )
    return int(json.loads(out.stdout)["texts"])


def run_sequence(folders: dict[str, Path], work: Path, check_cold: bool) -> list[dict]:
    store = work / "store"
    plan = [("cold", "base", store), ("new-dir", "base", store), ("plus-1%", "plus", store), ("edited-1%", "edited", store)]
    if check_cold:
        plan.append(("plus-1% cold", "plus", work / "store-cold"))
    rows = []
    for label, data, where in plan:
        run = work / "runs" / label.replace("%", "pct").replace(" ", "-")
        before = store_texts(where) if where.exists() else 0
        m = measure(label, mine_cmd(folders[data], run, where), env=bench_env())
        row = {"label": label, "data": data, "wall_s": m.seconds, "cpu_s": m.cpu_s, "peak_rss_mb": m.peak_rss_mb}
        row.update(stages=manifest_seconds(run), texts_encoded=store_texts(where) - before, cmd=" ".join(m.cmd))
        rows.append(row)
        print(
            f"{label:>14}: wall {m.seconds:7.1f} s  CPU {m.cpu_s:7.1f} s  index {row['stages'].get('index', 0):6.1f} s  encoded {row['texts_encoded']:,}"
        )
    return rows


def same_bytes(a: Path, b: Path) -> dict:
    rels = ["index/dense/embeddings.npy", "candidates.parquet", "scores.parquet", "negatives.parquet", "dropped.parquet"]
    rels += [str(p.relative_to(a)) for p in sorted((a / "export").glob("*"))]
    return {rel: (a / rel).read_bytes() == (b / rel).read_bytes() for rel in rels}


def batching_cost(data: Path, rounds: int) -> dict:
    """CPU and wall seconds to encode every document: the store's 8-token length buckets vs padded batches."""
    import torch

    from hnmine.inference.batching import encode_batches, encoding_order
    from hnmine.inference.rowwise import SAME_LENGTH, encode_rows
    from hnmine.inference.spec import EncoderSpec

    sys.path.insert(0, str(BENCH))
    from scifact_data import load

    texts = load(data)[1]
    spec = EncoderSpec(batch_size=BATCH).for_workers()
    model = spec.load()
    order = encoding_order(texts, spec)
    ordered = [texts[i] for i in order]
    ways = {
        "padded (before the store)": lambda: encode_batches(model, ordered, spec, None, None, lambda n=1: None),
        "length buckets (the store)": lambda: encode_rows(model, texts, spec, None, None, SAME_LENGTH),
    }
    timings: dict[str, list[dict]] = {k: [] for k in ways}
    for r in range(rounds):
        for name in ways if r % 2 == 0 else reversed(list(ways)):
            wall, cpu = time.perf_counter(), time.process_time()
            vectors = ways[name]()
            timings[name].append({"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(time.process_time() - cpu, 2)})
            print(f"  {name}: {timings[name][-1]}", flush=True)
            del vectors
    best = {k: min(t["cpu_s"] for t in v) for k, v in timings.items()}
    return {
        "dtype": spec.dtype,
        "threads": torch.get_num_threads(),
        "documents": len(texts),
        "timings": timings,
        "cpu_ratio_store_vs_padded": ratio(best["length buckets (the store)"], best["padded (before the store)"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SCIFACT)
    ap.add_argument("--work", type=Path, default=BENCH / "results" / "store-work")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "store.json")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the batching comparison")
    ap.add_argument("--skip-cold-check", action="store_true", help="no cold run of the plus-1%% corpus to compare bytes with")
    ap.add_argument("--skip-batching", action="store_true")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    info = machine()
    folders = make_variants(args.data, args.work)
    rows = run_sequence(folders, args.work, not args.skip_cold_check)
    by = {r["label"]: r for r in rows}
    cold_index = by["cold"]["stages"]["index"]
    figures = {
        "new_dir_index_vs_cold_index": ratio(by["new-dir"]["stages"]["index"], cold_index),
        "plus1_index_vs_cold_index": ratio(by["plus-1%"]["stages"]["index"], cold_index),
        "edited1_index_vs_cold_index": ratio(by["edited-1%"]["stages"]["index"], cold_index),
        "new_dir_mine_vs_cold_mine": ratio(by["new-dir"]["wall_s"], by["cold"]["wall_s"]),
        "plus1_mine_vs_cold_mine": ratio(by["plus-1%"]["wall_s"], by["cold"]["wall_s"]),
        "edited1_mine_vs_cold_mine": ratio(by["edited-1%"]["wall_s"], by["cold"]["wall_s"]),
        "plus1_mine_cpu_vs_cold_cpu": ratio(by["plus-1%"]["cpu_s"], by["cold"]["cpu_s"]),
    }
    payload = {"machine": info, "runs": rows, "figures": figures, "targets": TARGETS}
    payload["new_dir_equals_cold"] = same_bytes(args.work / "runs/cold", args.work / "runs/new-dir")
    if "plus-1% cold" in by:
        payload["plus1_warm_equals_cold"] = same_bytes(args.work / "runs/plus-1pct", args.work / "runs/plus-1pct-cold")
    if not args.skip_batching:
        print("batching: the store's length buckets against padded ones")
        payload["batching"] = batching_cost(args.data, args.rounds)
    payload["loadavg_at_end"] = os.getloadavg()
    write_results(args.out, payload)
    for name, value in figures.items():
        target = TARGETS.get(name)
        print(f"{name}: {value}" + (f"  (target <= {target}: {'met' if value <= target else 'MISSED'})" if target else ""))
    print("new-dir == cold, byte for byte:", all(payload["new_dir_equals_cold"].values()))
    if "plus1_warm_equals_cold" in payload:
        print("plus-1% warm == cold, byte for byte:", all(payload["plus1_warm_equals_cold"].values()))


if __name__ == "__main__":
    main()
