"""Dense-label downstream benchmark: does removing false negatives train better models where they are common?

Not a test. Issue 29: the situation hnmine is for, measured on trained models. Each collection gives
(training query, ONE known positive) pairs whose other relevant documents are left unlabelled (never
shown to a miner), every arm mines the same pairs at the same budget, a fresh copy of the bundled
all-MiniLM-L6-v2 is fine-tuned on each arm's data (`hnmine.finetune.compare.compare_arms`, what
`hnmine finetune` runs) and measured on held-out queries with their full judgments, over the whole corpus.

  cranfield  1,400 documents, 225 queries, 7.2 relevant per query. Split by query: the queries ordered
             by sha256("0\\0<query id>") (SPLIT_SEED = 0), the first 112 train, the other 113 test.
             Evaluated on the test half's full graded qrels against the whole corpus.
  scifact    SciFact train (809 queries; 77 have 2-5 relevant documents) -> SciFact test (300 queries,
             the whole 5,183-document corpus): the hidden positives are the other relevant documents of
             those 77 queries.

The known positive of a training query: its best-graded relevant document, ties broken as
`hnmine mine --hide-positives` breaks them (hnmine.hide.choose_kept, seed 42, hnmine's default --seed).
The derived BEIR folder (runs/downstream-dense/<collection>/data) holds qrels/train.tsv (the known
pairs: all any miner sees), qrels/test.tsv (the evaluation judgments), qrels/hidden.tsv (the unlabelled
relevant documents of the training queries) and split.json.

Arms (the same pairs, 5 negatives per query from the teacher's top 50, the bundled model as encoder and
teacher; the same training budget per collection):
  untrained              the model as shipped (measured once: no seed)
  in-batch               the known pairs, no mined negatives
  <method>               `hnmine mine --method <method>` at its defaults: shifted (the default), naive, auto,
                         simans, topk-percpos, topk-marginpos (--arms adds topk-abs, sampled, top1-sampled)
  st-naive               sentence-transformers' mine_hard_negatives, top 5 of the first 50 (st_mine.py)
  st-relative-margin     the same with relative_margin=0.05
An arm whose training file is byte-identical to an earlier arm's (e.g. `auto` when it falls back to the
default) is not trained again: the table says which arm it equals.

Each arm's false-negative rate is the share of the negatives in its training file that are hidden
relevant documents of their query (matched by text, so a duplicate of a hidden document counts too).

Each (collection, arm, seed) cell runs in this process and its row goes into the results JSON as soon as
it finishes; a rerun skips the cells already there (and refuses a file written with another budget).
Cells run collection by collection, seed by seed (every arm at seed 1, then seed 2, ...).

    python benchmarks/bench_downstream_dense.py                       # both collections, seeds 1-5
    python benchmarks/bench_downstream_dense.py --collections cranfield --seeds 1 --arms shifted   # time one cell
    python benchmarks/bench_downstream_dense.py --report              # only rewrite the Markdown from the JSON

Writes benchmarks/results/downstream-dense.json and benchmarks/results/downstream-dense.md (the tables
and the paired comparison, to paste into docs/quality.md).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Other jobs share the cores: waiting OpenMP threads sleep instead of spinning (before torch is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, HNMINE, PY, ROOT, bench_env, grid_cells, machine, save_json_atomically  # noqa: E402
from bench_downstream_report import write_report  # noqa: E402

sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
RESULTS = BENCH / "results" / "downstream-dense.json"
SPLIT_SEED = 0  # the train/test split of a collection without one (Cranfield)
KEEP_SEED = 42  # hnmine's default --seed: which of equally graded positives is the known one
METHOD_ARMS = ("shifted", "naive", "auto", "simans", "topk-percpos", "topk-marginpos")
MORE_ARMS = ("topk-abs", "sampled", "top1-sampled")  # every other method of the registry, on request
ST_ARMS = {"st-naive": [], "st-relative-margin": ["--relative-margin", "0.05"]}
DEFAULT_ARMS = ("untrained", "in-batch", *METHOD_ARMS, *ST_ARMS)
# collection -> (BEIR folder, the split holding its judgments, the evaluation split or None to split by query)
COLLECTIONS = {"cranfield": (SHARED / "cranfield", "test", None), "scifact": (SHARED / "scifact", "train", "test")}
# The training budget, per collection (see benchmarks/README.md for how it was sized).
BUDGETS = {
    "cranfield": {"epochs": 3.0, "batch_size": 32, "max_length": 128},
    "scifact": {"epochs": 1.0, "batch_size": 32, "max_length": 64},
}
SHARED_BUDGET = {
    "learning_rate": 2e-5,
    "warmup_ratio": 0.1,
    "negatives": 1,
    "precision": "bfloat16",
    "eval_dtype": "bfloat16",
    "threads": 2,
    "mine": "5 negatives, depth 50",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the data: known pairs, hidden positives, evaluation judgments ---------------------------------


def read_qrels(path: Path, doc_ids: set[str]) -> dict[str, dict[str, int]]:
    """query id -> {doc id: grade} of the relevant (grade >= 1) judgments naming a non-empty document."""
    out: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            q, d, grade = row["query-id"].strip(), row["corpus-id"].strip(), int(float(row["score"]))
            if grade >= 1 and d in doc_ids:
                out.setdefault(q, {})[d] = max(grade, out.get(q, {}).get(d, grade))
    return out


def read_corpus(data: Path) -> dict[str, str]:
    """doc id -> the text a model sees ('title text'), non-empty documents only (as hnmine reads them)."""
    from hnmine.inference.batching import doc_texts

    ids, titles, texts = [], [], []
    with open(data / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            title, text = d.get("title") or "", d.get("text") or ""
            if title.strip() or text.strip():
                ids.append(str(d["_id"]).strip())
                titles.append(title)
                texts.append(text)
    return dict(zip(ids, doc_texts(titles, texts)))


def split_by_query(query_ids: list[str], seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """(train, test): the queries ordered by sha256(seed, id), the first half (rounded down) train.
    Depends only on the ids, never on the order of the files."""
    order = sorted(query_ids, key=lambda q: hashlib.sha256(f"{seed}\x00{q}".encode()).hexdigest())
    half = len(order) // 2
    return sorted(order[:half], key=_id_key), sorted(order[half:], key=_id_key)


def _id_key(q: str) -> tuple:
    return (0, int(q), "") if q.isdigit() else (1, 0, q)


def known_and_hidden(train: dict[str, dict[str, int]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The known positive of every training query (hnmine's --hide-positives rule) and its hidden ones."""
    from hnmine.hide import choose_kept

    known = {q: choose_kept(KEEP_SEED, q, graded) for q, graded in train.items()}
    hidden = {q: sorted((d for d in graded if d != known[q]), key=_id_key) for q, graded in train.items()}
    return known, {q: h for q, h in hidden.items() if h}


def _write_qrels(path: Path, rows: list[tuple[str, str, int]]) -> None:
    text = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in rows)
    if not path.exists() or path.read_text(encoding="utf-8") != text:  # the same bytes: hnmine sees no change
        path.write_text(text, encoding="utf-8")


def prepare_data(name: str, work: Path) -> dict:
    """The collection's derived BEIR folder (corpus and queries linked, qrels written) and its split."""
    source, judged_split, eval_split = COLLECTIONS[name]
    corpus = read_corpus(source)
    judged = read_qrels(source / "qrels" / f"{judged_split}.tsv", set(corpus))
    if eval_split is None:
        train_q, test_q = split_by_query(sorted(judged))
        train, test = {q: judged[q] for q in train_q}, {q: judged[q] for q in test_q}
    else:
        train, test = judged, read_qrels(source / "qrels" / f"{eval_split}.tsv", set(corpus))
    known, hidden = known_and_hidden(train)
    data = work / name / "data"
    (data / "qrels").mkdir(parents=True, exist_ok=True)
    for f in ("corpus.jsonl", "queries.jsonl"):
        if not (data / f).exists():
            (data / f).symlink_to((source / f).resolve())
    by_id = sorted(train, key=_id_key)
    _write_qrels(data / "qrels" / "train.tsv", [(q, known[q], train[q][known[q]]) for q in by_id])
    _write_qrels(data / "qrels" / "hidden.tsv", [(q, d, train[q][d]) for q in by_id for d in hidden.get(q, [])])
    _write_qrels(data / "qrels" / "test.tsv", [(q, d, g) for q in sorted(test, key=_id_key) for d, g in sorted(test[q].items())])
    info = {
        "collection": name,
        "source": str(source),
        "split": f"by query: sha256 order with seed {SPLIT_SEED}, first half train"
        if eval_split is None
        else f"{judged_split} -> {eval_split}",
        "train_queries": len(train),
        "train_queries_with_hidden": len(hidden),
        "hidden_positives": sum(len(h) for h in hidden.values()),
        "relevant_per_train_query": round(sum(len(g) for g in train.values()) / len(train), 2),
        "test_queries": len(test),
        "test_judgments": sum(len(g) for g in test.values()),
        "documents": len(corpus),
        "train_query_ids": by_id,
    }
    (data / "split.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return {**info, "data": data, "known": known, "hidden": hidden, "corpus": corpus}


# --- mining: one hnmine run per method, sentence-transformers' miner, the pairs alone ----------------


def run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed (exit {result.returncode}): {' '.join(cmd)}\n{result.stderr[-3000:]}")
    return result


def mine_sources(setup: dict, arms: list[str], env: dict) -> dict[str, Path]:
    """Each arm's training source (a run directory or a file). hnmine mines once; each method's run is a
    copy of it where only filter and export rerun."""
    data, work = setup["data"], setup["data"].parent
    base = work / "base"
    log(f"{setup['collection']}: hnmine mine {data} --split train -> {base}")
    run([HNMINE, "mine", str(data), "--split", "train", "--out", str(base), "--quiet"], env)
    sources: dict[str, Path] = {}
    for method in [a for a in arms if a in METHOD_ARMS + MORE_ARMS]:
        target = work / method
        if not target.exists():
            shutil.copytree(base, target)
        run([HNMINE, "mine", str(data), "--split", "train", "--out", str(target), "--method", method, "--quiet"], env)
        sources[method] = target
    for name in [a for a in arms if a in ST_ARMS]:
        target = work / "sources" / f"{name}.parquet"
        if not target.exists():
            log(f"{setup['collection']}: sentence-transformers mine_hard_negatives {' '.join(ST_ARMS[name])} -> {target}")
            tmp = work / f".{name}"
            run([PY, str(BENCH / "st_mine.py"), "--data", str(data), "--split", "train", "--out", str(tmp), *ST_ARMS[name]], env)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(tmp / "triplets.parquet"), target)
            shutil.rmtree(tmp, ignore_errors=True)
        sources[name] = target
    sources["in-batch"] = sources["untrained"] = write_pairs(setup, work / "sources" / "pairs.parquet")
    return sources


def write_pairs(setup: dict, target: Path) -> Path:
    """The known (query text, positive text) pairs: the in-batch arm's data."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    queries = {}
    with open(setup["data"] / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            queries[str(q["_id"]).strip()] = q["text"]
    ids = setup["train_query_ids"]
    table = pa.table({"anchor": [queries[q] for q in ids], "positive": [setup["corpus"][setup["known"][q]] for q in ids]})
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target)
    return target


def training_file(source: Path) -> Path:
    from hnmine.finetune.sources import export_file

    return export_file(source) if source.is_dir() else source


def false_negatives(source: Path, setup: dict) -> dict:
    """Share of the training file's negatives that are hidden relevant documents of their query (by text)."""
    from hnmine.finetune.sources import load_source

    loaded = load_source(source)
    query_of = {}
    with open(setup["data"] / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            if str(q["_id"]).strip() in setup["known"]:
                query_of[q["text"]] = str(q["_id"]).strip()
    hidden_texts = {q: {setup["corpus"][d] for d in docs} for q, docs in setup["hidden"].items()}
    total = fn = 0
    for pair in loaded.pairs:
        qid = query_of[pair.anchor]
        total += len(pair.negatives)
        fn += sum(1 for n in pair.negatives if n in hidden_texts.get(qid, ()))
    return {
        "pairs": len(loaded.pairs),
        "pairs_with_5_negatives": sum(1 for p in loaded.pairs if len(p.negatives) >= 5),
        "negatives": total,
        "false_negatives": fn,
        "false_negative_rate": fn / total if total else None,
        "sha256": hashlib.sha256(training_file(source).read_bytes()).hexdigest(),
    }


# --- training and measuring: one (collection, arm, seed) cell at a time ------------------------------


def finetune_options(budget: dict, seed: int | None, kind: str):
    from hnmine.finetune.options import FinetuneOptions

    return FinetuneOptions(
        epochs=budget["epochs"],
        batch_size=budget["batch_size"],
        learning_rate=budget["learning_rate"],
        warmup_ratio=budget["warmup_ratio"],
        seeds=(seed if seed is not None else 1,),
        negatives=budget["negatives"],
        max_length=budget["max_length"],
        precision=budget["precision"],
        eval_dtype=budget["eval_dtype"],
        threads=budget["threads"],
        arms=(kind,),
    )


def run_cell(arm: str, seed: int | None, source: Path, setup: dict, budget: dict) -> dict:
    """Fine-tune (unless untrained) and measure one arm at one seed, with hnmine's own comparison code."""
    from hnmine.finetune.compare import compare_arms

    kind = arm if arm in ("untrained", "in-batch") else "mined"
    started, cpu = time.perf_counter(), time.process_time()
    out = compare_arms([source], setup["data"], "test", finetune_options(budget, seed, kind), write=False)
    row = {k: v for k, v in out.rows[0].items() if k not in ("source", "eval_data")}
    row.update(
        arm=arm,
        seed=seed,
        wall_seconds=round(time.perf_counter() - started, 1),
        cpu_seconds=round(time.process_time() - cpu, 1),  # every thread of this process: robust to other load
        loadavg=os.getloadavg()[0],
    )
    return row


def load_results(budgets: dict) -> dict:
    if RESULTS.exists():
        saved = json.loads(RESULTS.read_text())
        for name, budget in budgets.items():
            if saved.get("budgets", {}).get(name, budget) != budget:
                raise SystemExit(
                    f"{RESULTS} holds {name} results for another budget ({saved['budgets'][name]}); move it away to start afresh"
                )
        saved.setdefault("budgets", {}).update(budgets)
        return saved
    return {"budgets": budgets, "machine": machine(), "collections": {}, "cells": {}}


def save(results: dict) -> None:
    save_json_atomically(RESULTS, results, indent=1)


def prepare_collection(name: str, arms: list[str], args, results: dict) -> tuple[dict, dict[str, Path]]:
    """Data, mining and each arm's false-negative rate; arms with the same training file as an earlier one
    are recorded as equal to it."""
    setup = prepare_data(name, Path(args.work))
    sources = mine_sources(setup, arms, bench_env(OMP_WAIT_POLICY="PASSIVE"))
    info = {k: v for k, v in setup.items() if k not in ("data", "known", "hidden", "corpus", "train_query_ids")}
    info["arms"], seen = {}, {}
    for arm in arms:
        if arm == "untrained":
            continue
        fn = false_negatives(sources[arm], setup) if arm != "in-batch" else {}
        if fn and fn["sha256"] in seen:
            fn["same_data_as"] = seen[fn["sha256"]]
        elif fn:
            seen[fn["sha256"]] = arm
        info["arms"][arm] = fn
        if fn:
            rate = fn["false_negative_rate"]
            log(
                f"{name}: {arm:20} {fn['pairs']} pairs, {fn['negatives']} negatives, FN rate {rate:.1%}"
                + (f" (= {fn['same_data_as']})" if "same_data_as" in fn else "")
            )
    results["collections"][name] = info
    save(results)
    return setup, sources


def run_collection(name: str, arms: list[str], seeds: list[int], args, results: dict) -> None:
    setup, sources = prepare_collection(name, arms, args, results)
    budget = results["budgets"][name]
    same = {a: v["same_data_as"] for a, v in results["collections"][name]["arms"].items() if "same_data_as" in v}
    todo = [(a, s) for a, s in grid_cells(arms, seeds) if a not in same and f"{name}|{a}|{s}" not in results["cells"]]
    log(f"{name}: {len(todo)} cells to run; arms trained on another arm's data: {same or 'none'}")
    spent: list[float] = []
    for i, (arm, seed) in enumerate(todo, start=1):
        log(f"{name}: cell {i}/{len(todo)}: {arm} seed {seed} (load {os.getloadavg()[0]:.1f})")
        row = run_cell(arm, seed, sources[arm], setup, budget)
        results["cells"][f"{name}|{arm}|{seed}"] = row
        save(results)
        spent.append(row["wall_seconds"])
        eta = (len(todo) - i) * sum(spent) / len(spent) / 60
        log(
            f"  nDCG@10 {row['ndcg_at_10']:.4f}  R@100 {row['recall_at_100']:.4f}  MRR@10 {row['mrr_at_10']:.4f}  "
            f"{row['steps']} steps, train {row['train_seconds']:.0f} s, eval {row['eval_seconds']:.0f} s, wall {row['wall_seconds']:.0f} s  "
            f"(about {eta:.0f} min left for {name})"
        )
        write_report(results, RESULTS.with_suffix(".md"))


def budgets_of(args, names: list[str]) -> dict:
    out = {}
    for name in names:
        budget = {**BUDGETS[name], **SHARED_BUDGET}
        for key in ("epochs", "batch_size", "max_length"):
            given = getattr(args, key)
            if given is not None:
                budget[key] = given
        out[name] = budget
    return out


def main() -> None:
    global RESULTS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collections", default="cranfield,scifact")
    ap.add_argument("--arms", default=",".join(DEFAULT_ARMS), help=f"comma-separated (also: {', '.join(MORE_ARMS)})")
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--work", default=str(ROOT / "runs" / "downstream-dense"))
    ap.add_argument("--data-root", type=Path, default=SHARED, help="the folder holding cranfield/ and scifact/ (BEIR)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--report", action="store_true", help="only rewrite the Markdown from the JSON")
    ap.add_argument("--epochs", type=float, default=None, help="override the collections' budgets")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--max-length", type=int, default=None)
    args = ap.parse_args()
    RESULTS = args.results
    for name, (folder, *splits) in COLLECTIONS.items():
        COLLECTIONS[name] = (args.data_root / folder.name, *splits)
    names = [c for c in args.collections.split(",") if c]
    arms = [a for a in args.arms.split(",") if a]
    unknown = [c for c in names if c not in COLLECTIONS] + [a for a in arms if a not in DEFAULT_ARMS + MORE_ARMS]
    if unknown:
        raise SystemExit(
            f"unknown collection(s) or arm(s): {unknown} (collections: {', '.join(COLLECTIONS)}; arms: {', '.join(DEFAULT_ARMS + MORE_ARMS)})"
        )
    results = load_results(budgets_of(args, names))
    if not args.report:
        for name in names:
            run_collection(name, arms, [int(s) for s in args.seeds.split(",")], args, results)
    write_report(results, RESULTS.with_suffix(".md"))
    if not args.report:  # --report only reads the JSON: a grid running beside it keeps writing it
        save(results)  # with the paired comparisons


if __name__ == "__main__":
    main()
