"""Encode speed and closeness to float32 of each way to run the bundled MiniLM, in alternation in one process.

Variants (each a SentenceTransformer whose transformer is swapped, everything else alike):
  torch-fp32, torch-bf16            today's backend (hnmine --backend torch --dtype float32|bfloat16)
  openvino-fp32, openvino-bf16      hnmine --backend openvino (hnmine.inference.backends.openvino, the cached IR)
  openvino-bf16-one-stream          the same IR at bf16 as it ran before: one stream of every thread (LATENCY)
  --int8 adds the int8 candidates that were measured and not wired in (docs/performance.md, "Backends"):
  torch-int8-dynamic                torch.ao.quantization.quantize_dynamic on every Linear (per-tensor, qint8)
  onnxruntime-int8-dynamic          ONNX export, onnxruntime.quantization.quantize_dynamic (per-channel QInt8
                                    weights, MatMul only); needs `pip install onnx onnxruntime`
  openvino-int8-weights             NNCF int8 weights (INT8_ASYM) + OpenVINO's dynamic int8 activations in groups
                                    of 32, bf16 elsewhere; needs `pip install nncf`

The texts are a random sample of SciFact abstracts ("title text", seed 0), longest first, batch 64, at the
model's full length (256 tokens). Every round encodes them with each variant in turn (A, B, C, A, B, C…),
so load from other processes hits all alike; the best of the rounds counts, as wall and as CPU seconds of
this process. Closeness: cosine of each text's vector to torch float32's (min and mean).

  python benchmarks/bench_backends.py [--texts 640] [--rounds 2] [--int8]
Top-10 agreement on all of SciFact is bench_scifact.py's (--backend openvino) or bench_dtype_agreement.py's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, SCIFACT, machine, write_results  # noqa: E402
from scifact_data import load  # noqa: E402


def _hnmine_model(dtype: str, backend: str, threads: int):
    from hnmine.inference.spec import EncoderSpec

    return EncoderSpec(dtype=dtype, backend=backend, threads=threads).load()


def _plain_fp32():
    from sentence_transformers import SentenceTransformer

    from hnmine.inference.models import resolve_model

    return SentenceTransformer(resolve_model("all-MiniLM-L6-v2")[0], device="cpu")


def _swap(st, run, names, config):
    """st with its transformer replaced by `run(feeds) -> token embeddings` (numpy)."""
    import numpy as np
    import torch

    class Runner(torch.nn.Module):
        def forward(self, **features):
            feeds = {n: features[n].numpy() for n in names if n in features}
            return {"last_hidden_state": torch.from_numpy(np.array(run(feeds), dtype=np.float32))}

    r = Runner()
    r.config = config
    st[0].model = r
    return st


def _torch_int8():
    import torch

    st = _plain_fp32()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        st[0].model = torch.ao.quantization.quantize_dynamic(st[0].model, {torch.nn.Linear}, dtype=torch.qint8)
    return st


def _export_onnx(st, folder: Path) -> Path:
    import torch

    class Traced(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    f = st.preprocess(["an example text", "another, slightly longer example text"])
    path = folder / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Traced(st[0].model.eval()),
            (f["input_ids"], f["attention_mask"], f["token_type_ids"]),
            str(path),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={k: {0: "batch", 1: "seq"} for k in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
    return path


def _onnxruntime_int8(folder: Path, threads: int):
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    st = _plain_fp32()
    src = _export_onnx(st, folder)
    q = folder / "model-int8.onnx"
    quantize_dynamic(str(src), str(q), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # spinning threads starve the others on 2 cores
    sess = ort.InferenceSession(str(q), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return _swap(st, lambda feeds: sess.run(None, feeds)[0], names, st[0].model.config)


def _openvino_int8(threads: int):
    import nncf
    import openvino as ov

    from hnmine.inference.backends.openvino import _core

    xml = _hnmine_model("float32", "openvino", threads)[0].model.ir  # the cached IR hnmine runs
    model = nncf.compress_weights(ov.Core().read_model(xml), mode=nncf.CompressWeightsMode.INT8_ASYM)
    compiled = _core().compile_model(
        model,
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": "bf16",
            "INFERENCE_NUM_THREADS": threads,
            "DYNAMIC_QUANTIZATION_GROUP_SIZE": 32,
            "PERFORMANCE_HINT": "LATENCY",
        },
    )
    req = compiled.create_infer_request()
    fresh = _plain_fp32()
    return _swap(fresh, lambda feeds: req.infer(feeds)[0].copy(), [i.get_any_name() for i in compiled.inputs], fresh[0].model.config)


def _openvino_one_stream(threads: int):
    """hnmine's OpenVINO runner on one stream of `threads` threads (what --backend openvino ran before streams)."""
    from hnmine.inference.backends.openvino import _core, _runner_class

    st = _hnmine_model("bfloat16", "openvino", threads)
    runner = st[0].model
    config = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    compiled = _core().compile_model(runner.ir, "CPU", config)
    st[0].model = _runner_class()(compiled, runner.names, runner.output, config=runner.config)
    return st


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=640)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="default: every CPU this process may use")
    ap.add_argument("--int8", action="store_true", help="add the int8 candidates whose packages are installed")
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "backends.json")
    args = ap.parse_args()

    import numpy as np
    import torch

    from hnmine.inference.pool import available_cpus

    threads = args.threads or available_cpus()
    torch.set_num_threads(threads)
    _, docs, _, _, _ = load(SCIFACT)
    texts = sorted(random.Random(0).sample(docs, args.texts), key=len, reverse=True)
    variants = {"torch-fp32": _hnmine_model("float32", "torch", threads), "torch-bf16": _hnmine_model("bfloat16", "torch", threads)}
    skipped = {}
    if importlib.util.find_spec("openvino"):
        variants["openvino-fp32"] = _hnmine_model("float32", "openvino", threads)
        variants["openvino-bf16"] = _hnmine_model("bfloat16", "openvino", threads)
        variants["openvino-bf16-one-stream"] = _openvino_one_stream(threads)
    else:
        skipped["openvino"] = "pip install 'hnmine[openvino]'"
    if args.int8:
        variants["torch-int8-dynamic"] = _torch_int8()
        tmp = Path(tempfile.mkdtemp(prefix="hnmine-onnx-"))
        if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
            variants["onnxruntime-int8-dynamic"] = _onnxruntime_int8(tmp, threads)
        else:
            skipped["onnxruntime-int8-dynamic"] = "pip install onnx onnxruntime"
        if importlib.util.find_spec("nncf") and importlib.util.find_spec("openvino"):
            variants["openvino-int8-weights"] = _openvino_int8(threads)
        else:
            skipped["openvino-int8-weights"] = "pip install nncf 'hnmine[openvino]'"
    wall = {k: float("inf") for k in variants}
    cpu = dict(wall)
    vectors = {}
    with torch.inference_mode():
        for st in variants.values():
            st.encode(texts[:16], batch_size=16)  # warm-up: first-call allocations and kernel choice
        for r in range(args.rounds):
            for name, st in variants.items():
                torch.set_num_threads(threads)
                c0, t0 = time.process_time(), time.perf_counter()
                v = st.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_tensor=True)
                wall[name], cpu[name] = min(wall[name], time.perf_counter() - t0), min(cpu[name], time.process_time() - c0)
                vectors[name] = v.float().numpy()
                print(f"round {r + 1}: {name:<26} {wall[name]:7.2f} s wall (best so far)", flush=True)
    ref = vectors["torch-fp32"]
    rows = {}
    for name in variants:
        cos = np.sum(vectors[name] * ref, axis=1) / np.linalg.norm(vectors[name], axis=1)
        rows[name] = {
            "wall_s": round(wall[name], 3),
            "cpu_s": round(cpu[name], 3),
            "wall_over_torch_bf16": round(wall[name] / wall["torch-bf16"], 3),
            "cpu_over_torch_bf16": round(cpu[name] / cpu["torch-bf16"], 3),
            "s_per_1000_texts": round(1000 * wall[name] / len(texts), 2),
            "cosine_to_torch_fp32_min": round(float(cos.min()), 5),
            "cosine_to_torch_fp32_mean": round(float(cos.mean()), 6),
        }
    print(f"\n{len(texts)} SciFact texts, batch 64, {threads} threads, best of {args.rounds} alternating rounds")
    print(f"{'variant':<26}{'s/1000':>8}{'wall/bf16':>11}{'CPU/bf16':>10}{'cos min':>10}{'cos mean':>11}")
    for name, x in rows.items():
        print(
            f"{name:<26}{x['s_per_1000_texts']:>8.1f}{x['wall_over_torch_bf16']:>11.3f}{x['cpu_over_torch_bf16']:>10.3f}"
            f"{x['cosine_to_torch_fp32_min']:>10.5f}{x['cosine_to_torch_fp32_mean']:>11.6f}"
        )
    if "openvino-bf16-one-stream" in vectors:  # does slicing batches across streams change the vectors?
        diff = float(np.abs(vectors["openvino-bf16"] - vectors["openvino-bf16-one-stream"]).max())
        rows["openvino-bf16"]["max_abs_diff_to_one_stream"] = diff
        print(f"openvino-bf16 against one stream: largest vector difference {diff:.3g}")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    write_results(
        args.results,
        {
            "machine": machine(),
            "texts": len(texts),
            "rounds": args.rounds,
            "threads": threads,
            "variants": rows,
            "skipped": skipped,
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
