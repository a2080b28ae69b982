"""`--backend openvino`: a sentence-transformers model's transformer run by OpenVINO's CPU runtime.

Only the transformer (token ids in, token embeddings out) moves to OpenVINO. sentence-transformers
still tokenizes, adds prompts, pools and normalises, so everything but the matrix arithmetic is the
torch backend's code. The converted model (OpenVINO IR, float32 weights) is built once per model
revision and package versions, in the user's hnmine cache beside the `--dtype auto` choices, written
to a temporary folder and renamed into place whole, and checked against its recorded sha256 on every
load: a killed build leaves only a temporary folder, and the next run builds again. The precision
(`--dtype float32|bfloat16`) is chosen when the IR is compiled, so one IR serves both.

Threads: the compiled model runs with the same thread count as torch would (`--threads`, else the
CPUs shared out among the workers), as that many OpenVINO streams of one thread each; every batch
is cut into that many slices (rows split evenly, in order) that run at once, one per stream. One
thread per stream skips the per-operation synchronisation of threads within a stream, which a
model this small spends a visible share of its time on (about 4 % faster than one stream of two
threads on a 2-core EPYC, the same vectors to the bit: docs/performance.md). Every process compiles
and slices alike, so a given `--threads` gives the same bytes for any `--workers`, as with torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from functools import cache
from pathlib import Path

IR_FORMAT = 1  # bump when the conversion below changes what the IR holds
# bump when the way the compiled model is run changes what it computes (part of embedding and stage keys)
RUNNER_FORMAT = "streams-per-thread-1"
PRECISIONS = {"float32": "f32", "bfloat16": "bf16"}  # hnmine dtype -> OpenVINO inference precision
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")  # what the traced transformer takes
_STALE_BUILD_S = 3600  # a temporary build folder older than this was left by a killed process


def precision(dtype: str) -> str:
    from hnmine.errors import OptionError

    if dtype not in PRECISIONS:
        raise OptionError(f"--backend openvino runs at float32 or bfloat16, not {dtype}")
    return PRECISIONS[dtype]


def versions() -> dict[str, str]:
    """The packages whose versions change the conversion (part of the IR's cache key and of manifests)."""
    from importlib import metadata

    out = {}
    for name in ("openvino", "torch", "transformers", "sentence-transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "none"
    return out


def key_fields() -> dict[str, str]:
    """What changes the vectors besides the model and dtype: package versions and how the model is run."""
    return {**versions(), "runner": RUNNER_FORMAT}


def record(dtype: str) -> dict:
    """For a manifest: the backend, the precision it computes in, and its versions."""
    return {"inference_precision": precision(dtype), "quantization": None, "backend_versions": key_fields()}


def attach(st_model, model: str, dtype: str, threads: int):
    """Run `st_model`'s transformer with OpenVINO at `dtype`; returns the same SentenceTransformer."""
    from hnmine.errors import ModelError
    from hnmine.inference.models import resolve_model

    module = _transformer_module(st_model, model)
    # Two texts of different lengths, so the traced graph takes a padded batch: a trace of an unpadded
    # one could leave the attention mask out as a constant.
    tokenize = getattr(st_model, "preprocess", None) or st_model.tokenize
    features = tokenize(["an example text", "another, slightly longer example text, with more words in it"])
    names = [n for n in INPUT_NAMES if n in features]
    extra = sorted(k for k, v in features.items() if hasattr(v, "shape") and k not in INPUT_NAMES)
    if "input_ids" not in names or "attention_mask" not in names or extra:
        raise ModelError(
            f"--backend openvino: model '{model}' takes inputs {sorted(features)}; it runs models fed input_ids and attention_mask (and token_type_ids)"
        )
    output = module.modality_config["text"]["method_output_name"]
    path, revision = resolve_model(model)
    folder = ir_folder(path, revision, names, output)
    xml = ensure_ir(folder, lambda target: _convert(module.model, {n: features[n] for n in names}, output, target))
    compiled = _compile(str(xml), dtype, threads)
    # sentence-transformers reads the transformer's config (model type) when it tokenizes: keep it.
    module.model = _runner_class()(compiled, names, output, config=getattr(module.model, "config", None))
    module.model.ir = str(xml)  # where the converted model is (benchmarks start from it)
    return st_model


def _transformer_module(st_model, model: str):
    from hnmine.errors import ModelError

    first = st_model[0] if len(st_model) else None
    config = getattr(first, "modality_config", None) or {}
    text = config.get("text") if isinstance(config, dict) else None
    if (
        first is None
        or not hasattr(first, "model")
        or not isinstance(text, dict)
        or text.get("method") != "forward"
        or not isinstance(text.get("method_output_name"), str)
    ):
        raise ModelError(f"--backend openvino: model '{model}' does not start with a text transformer module; use --backend torch")
    return first


def ir_folder(path: str, revision: str, names: list[str], output: str) -> Path:
    from hnmine.io.user_cache import cache_dir

    payload = json.dumps(
        {"format": IR_FORMAT, "model": path, "revision": revision, "inputs": names, "output": output, "versions": versions()},
        sort_keys=True,
    )
    return cache_dir() / "openvino" / hashlib.sha256(payload.encode()).hexdigest()[:32]


def ensure_ir(folder: Path, build) -> Path:
    """folder/model.xml, built by `build(target_folder)` unless a verified copy is there."""
    if _verified(folder):
        return folder / "model.xml"
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        build(tmp)
        digests = {name: _sha256(tmp / name) for name in ("model.xml", "model.bin")}
        (tmp / "ir.json").write_text(json.dumps({"format": IR_FORMAT, "sha256": digests}, indent=2) + "\n", encoding="utf-8")
        if folder.exists() and not _verified(folder):
            shutil.rmtree(folder, ignore_errors=True)  # a damaged copy: replaced whole
        try:
            os.rename(tmp, folder)
        except OSError:
            if not _verified(folder):  # another process finished first with a good copy: keep it
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / "model.xml"


def _verified(folder: Path) -> bool:
    try:
        meta = json.loads((folder / "ir.json").read_text(encoding="utf-8"))
        return (
            meta.get("format") == IR_FORMAT
            and all(_sha256(folder / n) == d for n, d in meta["sha256"].items())
            and set(meta["sha256"]) == {"model.xml", "model.bin"}
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _remove_stale_builds(folder: Path) -> None:
    for old in folder.parent.glob(f".{folder.name}.*.tmp"):
        try:
            if time.time() - old.stat().st_mtime > _STALE_BUILD_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def _sha256(path: Path) -> str:
    from hnmine.io.hashing import file_hash

    return file_hash(path)


def _convert(hf_model, example: dict, output: str, target: Path) -> None:
    """Trace the transformer with dynamic batch and length and save it as IR with float32 weights."""
    import openvino as ov
    import torch

    class Traced(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kw = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kw["token_type_ids"] = token_type_ids
            return getattr(self.inner(**kw, return_dict=True), output)

    import warnings

    hf_model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing warns about Python-side shape checks in transformers' masking code; the converted graph is
        # checked against torch on padded batches of other lengths instead (tests/test_backend.py).
        warnings.simplefilter("ignore")
        ir = ov.convert_model(
            Traced(hf_model), example_input={k: v for k, v in example.items()}, input=[(n, [-1, -1], ov.Type.i64) for n in example]
        )
    # compress_to_fp16=False: the weights stay float32; the precision is chosen at compile time.
    ov.save_model(ir, str(target / "model.xml"), compress_to_fp16=False)


@cache
def _core():
    import openvino as ov

    return ov.Core()


def _compile(xml: str, dtype: str, threads: int, **properties):
    """The compiled model as hnmine runs it; `properties` adds OpenVINO compile properties (benchmarks only)."""
    from hnmine.errors import ModelError

    hint = precision(dtype)
    core = _core()
    if hint == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        # OpenVINO would quietly compute in float32 instead: say so, never substitute.
        raise ModelError("--backend openvino --dtype bfloat16: OpenVINO has no bfloat16 on this CPU; use --dtype float32 (or auto)")
    config = {
        "INFERENCE_PRECISION_HINT": hint,
        "INFERENCE_NUM_THREADS": int(threads),
        "NUM_STREAMS": int(threads),
        "PERFORMANCE_HINT": "THROUGHPUT",
        **properties,
    }
    return core.compile_model(xml, "CPU", config)


@cache
def _runner_class():
    """The module that stands in for the transformer (made on first use, so importing this file needs no torch)."""
    import numpy as np
    import torch

    class Runner(torch.nn.Module):
        def __init__(self, compiled, names, output, config=None):
            super().__init__()
            # One request per stream: a batch's slices run at once, one on each.
            self._requests = [compiled.create_infer_request() for _ in range(int(compiled.get_property("NUM_STREAMS")))]
            self.names, self.output, self.config = list(names), output, config

        def forward(self, **features):
            feeds = {n: np.ascontiguousarray(features[n].numpy(), dtype=np.int64) for n in self.names}
            rows = len(feeds[self.names[0]])
            slices = [s for s in np.array_split(np.arange(rows), len(self._requests)) if len(s)]
            running = self._requests[: len(slices)]
            for request, rows_of in zip(running, slices):
                request.start_async({n: np.ascontiguousarray(v[rows_of[0] : rows_of[-1] + 1]) for n, v in feeds.items()})
            for request in running:
                request.wait()
            # The output tensors are the requests' own buffers, which the next call overwrites: copied out.
            out = np.concatenate([np.array(r.get_output_tensor(0).data, dtype=np.float32, copy=True) for r in running])
            return {self.output: torch.from_numpy(out)}

    return Runner
