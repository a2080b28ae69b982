"""Is there an int8 path at quality? Static and weight-only int8 of hnmine's OpenVINO IR, against its bf16.

Issue 16 asks for a cold `hnmine mine` on SciFact at 0.7x of the torch bf16 run with top-10 agreement
with float32 of at least 98 %. OpenVINO at bf16 (`--backend openvino`) reaches 0.78-0.83x. This
measures the two int8 forms NNCF makes of the very IR hnmine runs, run the way hnmine runs it (one
OpenVINO stream per thread, batches sliced across them, batch 64), on all of SciFact train:

  openvino-bf16            hnmine --backend openvino --dtype bfloat16 (the reference for speed)
  openvino-int8-static     nncf.quantize, transformer preset (SmoothQuant, int8 activations and weights),
                           calibrated on --calibration random SciFact abstracts (seed 0)
  openvino-int8-weights    nncf.compress_weights INT8_ASYM (per-channel int8 weights), activations bf16,
                           OpenVINO's dynamic activation quantization off: the int8 weight error alone

For each: seconds to encode every unique abstract and query once, top-10 agreement with torch float32
(bench_dtype_agreement.agreement: all documents, and with the query's positives left out), and a
per-operation profile of one 32 x 256-token batch on one thread (OpenVINO PERF_COUNT): the share of
time in FullyConnected (the Linear layers) and their GFLOP/s, set against a bf16 GEMM of the same shape
run by torch (oneDNN) on one thread, the rate this CPU attains.

Needs `pip install nncf` (not part of the locked environment; 3.4.0 was used) and hnmine[openvino].
Not part of `make bench`: it answers one question of issue 16 (docs/performance.md, "Backends").

  python benchmarks/bench_int8.py [--fp32 floor-fp32.npz] [--calibration 256]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, SCIFACT, machine, write_results  # noqa: E402
from bench_dtype_agreement import agreement  # noqa: E402
from scifact_data import load  # noqa: E402

HIDDEN, FFN, LAYERS = 384, 1536, 6  # all-MiniLM-L6-v2
LINEAR_FLOP_PER_TOKEN = 2 * LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)


def _st_with_ir(xml: str, threads: int, **properties):
    """The bundled model with its transformer run from `xml` as hnmine runs its own IR (hnmine.inference.backends.openvino:
    bf16, one stream per thread, each batch sliced across them), plus `properties` at compile time."""
    from hnmine.inference.backends.openvino import _compile, _runner_class
    from hnmine.inference.spec import EncoderSpec

    st = EncoderSpec(dtype="bfloat16", backend="openvino", threads=threads).load()
    runner = st[0].model
    st[0].model = _runner_class()(_compile(xml, "bfloat16", threads, **properties), runner.names, runner.output, config=runner.config)
    return st


def _encode_all(st, doc_texts, q_texts, doc_ids, qids, out: Path) -> float:
    """Seconds to encode every unique abstract and query once; the vectors saved as floor_encode.py saves them."""
    import torch
    from floor_encode import save_vectors

    docs, queries = list(dict.fromkeys(doc_texts)), list(dict.fromkeys(q_texts))
    t0 = time.perf_counter()
    with torch.inference_mode():
        dv = st.encode(docs, batch_size=64, normalize_embeddings=True, convert_to_tensor=True)
        qv = st.encode(queries, batch_size=64, normalize_embeddings=True, convert_to_tensor=True)
    seconds = time.perf_counter() - t0
    save_vectors(out, doc_ids, doc_texts, dv, qids, q_texts, qv)
    return seconds


def _feeds(tokenizer, texts):
    import numpy as np

    f = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
    return {k: f[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}


def _profile(xml: str, feeds: dict, **extra) -> dict:
    """Per-operation time of one batch on one thread, grouped by operation type."""
    from hnmine.inference.backends.openvino import _core

    config = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERF_COUNT": True, **extra}
    request = _core().compile_model(xml, "CPU", config).create_infer_request()
    best, spent = float("inf"), {}
    for _ in range(4):  # the first call chooses kernels; the best of the rest counts
        t0 = time.perf_counter()
        request.infer(feeds)
        took = time.perf_counter() - t0
        if took < best:
            best, spent = took, defaultdict(float)
            for p in request.profiling_info:
                spent[p.node_type] += p.real_time.total_seconds()
    total = sum(spent.values())
    tokens = int(feeds["attention_mask"].sum())
    fc = sum(v for k, v in spent.items() if k.startswith("FullyConnected"))  # also ...Compressed, ...QuantizedLegacy
    return {
        "batch_s": round(best, 4),
        "fully_connected_share": round(fc / total, 3),
        "fully_connected_gflops": round(tokens * LINEAR_FLOP_PER_TOKEN / fc / 1e9, 1),
        "top_ops": {k: round(v / total, 3) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])[:5]},
    }


def _attainable_bf16_gemm_gflops() -> float:
    """bf16 GEMM rate on one thread for the FFN's shape (8,192 tokens x 384 -> 1,536), via torch (oneDNN)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, w = torch.randn(8192, HIDDEN, dtype=torch.bfloat16), torch.randn(FFN, HIDDEN, dtype=torch.bfloat16)
        best = float("inf")
        for _ in range(12):
            t0 = time.perf_counter()
            torch.nn.functional.linear(a, w)
            best = min(best, time.perf_counter() - t0)
        return round(2 * 8192 * HIDDEN * FFN / best / 1e9, 1)
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fp32", type=Path, default=None, help="floor_encode.py --dtype float32 --save npz (else encoded here)")
    ap.add_argument("--calibration", type=int, default=256, help="abstracts that calibrate the static int8 model")
    ap.add_argument("--threads", type=int, default=None, help="default: every CPU this process may use")
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "int8.json")
    args = ap.parse_args()

    import nncf
    import openvino as ov
    import torch

    from hnmine.inference.pool import available_cpus
    from hnmine.inference.spec import EncoderSpec

    threads = args.threads or available_cpus()
    torch.set_num_threads(threads)
    doc_ids, doc_texts, qids, q_texts, _ = load(SCIFACT)
    work = Path(tempfile.mkdtemp(prefix="hnmine-int8-"))
    if args.fp32 is None:
        print("encoding SciFact at torch float32 (the reference)...", flush=True)
        fp32 = work / "fp32.npz"
        _encode_all(
            EncoderSpec(dtype="float32", backend="torch", threads=threads).load(),
            doc_texts,
            q_texts,
            doc_ids,
            qids,
            fp32,
        )
    else:
        fp32 = args.fp32

    bf16 = EncoderSpec(dtype="bfloat16", backend="openvino", threads=threads).load()
    ir, tokenizer = bf16[0].model.ir, bf16.tokenizer
    unique_docs = list(dict.fromkeys(doc_texts))
    sample = random.Random(0).sample(unique_docs, args.calibration)
    calibration = nncf.Dataset([_feeds(tokenizer, sample[i : i + 8]) for i in range(0, len(sample), 8)])
    t0 = time.perf_counter()
    static = nncf.quantize(ov.Core().read_model(ir), calibration, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(sample))
    static_s = time.perf_counter() - t0
    weights = nncf.compress_weights(ov.Core().read_model(ir), mode=nncf.CompressWeightsMode.INT8_ASYM)
    irs = {"openvino-bf16": ir}
    for name, model in (("openvino-int8-static", static), ("openvino-int8-weights", weights)):
        irs[name] = str(work / f"{name}.xml")
        ov.save_model(model, irs[name], compress_to_fp16=False)

    longest = sorted(unique_docs, key=len, reverse=True)[:32]  # 256 tokens each
    batch = _feeds(tokenizer, longest)
    rows = {}
    # int8 weights alone: OpenVINO would otherwise quantise their activations too (in groups of 32)
    extra = {"openvino-int8-weights": {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}}
    for name, xml in irs.items():
        st = bf16 if name == "openvino-bf16" else _st_with_ir(xml, threads, **extra.get(name, {}))
        print(f"encoding SciFact with {name}...", flush=True)
        npz = work / f"{name}.npz"
        seconds = _encode_all(st, doc_texts, q_texts, doc_ids, qids, npz)
        rows[name] = {
            "encode_s": round(seconds, 1),
            **agreement(npz, fp32),
            "profile_32x256_one_thread": _profile(xml, batch, **extra.get(name, {})),
        }
    base = rows["openvino-bf16"]
    for row in rows.values():
        row["encode_over_openvino_bf16"] = round(row["encode_s"] / base["encode_s"], 3)
        row["batch_over_openvino_bf16"] = round(
            row["profile_32x256_one_thread"]["batch_s"] / base["profile_32x256_one_thread"]["batch_s"], 3
        )
    gemm = _attainable_bf16_gemm_gflops()

    print(f"\nSciFact train ({len(set(doc_ids))} documents, {len(qids)} queries), batch 64, {threads} threads; agreement with torch fp32")
    print(f"{'variant':<24}{'encode s':>9}{'/ ov bf16':>10}{'top-10 all':>12}{'no positives':>14}{'FC share':>10}{'FC GFLOP/s':>12}")
    for name, r in rows.items():
        p = r["profile_32x256_one_thread"]
        print(
            f"{name:<24}{r['encode_s']:>9.1f}{r['encode_over_openvino_bf16']:>10.3f}{r['agreement_all_docs']:>12.2%}"
            f"{r['agreement_positives_left_out']:>14.2%}{p['fully_connected_share']:>10.1%}{p['fully_connected_gflops']:>12.1f}"
        )
    print(f"bf16 GEMM of the FFN's shape on one thread (torch/oneDNN): {gemm} GFLOP/s")
    write_results(
        args.results,
        {
            "machine": machine(),
            "versions": {"nncf": nncf.__version__, "openvino": ov.__version__},
            "threads": threads,
            "calibration_texts": len(sample),
            "static_quantize_s": round(static_s, 1),
            "attainable_bf16_gemm_gflops_one_thread": gemm,
            "linear_flop_per_token": LINEAR_FLOP_PER_TOKEN,
            "variants": rows,
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
