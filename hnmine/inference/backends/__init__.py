"""Inference backends: what runs a sentence-transformers model's transformer (`--backend`).

`torch` (the default) runs the model as sentence-transformers loads it. `openvino` runs the same
model's transformer through OpenVINO's CPU runtime (converted once per model revision and cached),
and keeps everything around it (tokenizer, prompts, pooling, normalisation) in sentence-transformers,
so the texts a model sees and the way its vectors are pooled do not change with the backend.

Measured on SciFact (docs/performance.md, "Backends"): OpenVINO at bfloat16 encodes in 0.74-0.82x
the time of torch at bfloat16 on a 2-core AMD EPYC with avx512_bf16, with a top-10 agreement with
float32 of 99.4 % (torch bf16: 98.9 %). int8 (dynamic or static) was measured and is not offered:
it stays below the 98 % agreement target (see the same section).

Each backend beyond torch is an optional extra; asking for one that is not installed is a one-line
error naming the extra. Nothing here imports a backend until a model is loaded with it.
"""

from __future__ import annotations

import importlib.util

from hnmine.errors import MissingDependency, OptionError, UnknownName

BACKENDS = ("torch", "openvino")
# backend -> (the module that must be importable, the pip extra that installs it)
_EXTRAS = {"openvino": ("openvino", "openvino")}
_DTYPES = {"openvino": ("float32", "bfloat16")}  # what each backend computes in (`auto` picks among these)


def backend_dtypes(name: str) -> tuple[str, ...] | None:
    """The dtypes a backend runs; None: any torch dtype."""
    return _DTYPES.get(name)


def check_backend(name: str, device: str = "cpu", dtype: str = "auto") -> None:
    """An unknown backend, a missing extra, or a device or dtype the backend cannot run fails here, before any stage runs."""
    if name not in BACKENDS:
        raise UnknownName("backend", name, list(BACKENDS))
    if name == "torch":
        return
    if device != "cpu":
        raise OptionError(f"--backend {name} runs on the CPU only (got --device {device}); use --backend torch on a GPU")
    if dtype not in ("auto", *_DTYPES[name]):
        raise OptionError(f"--backend {name} runs at {' or '.join(_DTYPES[name])} (got --dtype {dtype})")
    require_extra(name)


def require_extra(name: str) -> None:
    module, extra = _EXTRAS[name]
    if importlib.util.find_spec(module) is None:
        raise MissingDependency(f"--backend {name} needs the '{extra}' extra: pip install 'hnmine[{extra}]'")


def backend_versions(name: str) -> dict[str, str]:
    """Versions that change what a backend computes (in the embedding and stage keys)."""
    if name == "openvino":
        from hnmine.inference.backends import openvino

        return openvino.key_fields()
    return {}


def backend_record(name: str, dtype: str) -> dict:
    """For a manifest: how the backend ran (precision, quantisation, versions); nothing extra for torch."""
    if name == "openvino":
        from hnmine.inference.backends import openvino

        return openvino.record(dtype)
    return {}


def attach_backend(name: str, st_model, model: str, dtype: str, threads: int):
    """`st_model` (a SentenceTransformer loaded in float32) with its transformer run by `name`."""
    require_extra(name)
    from hnmine.inference.backends import openvino

    return openvino.attach(st_model, model, dtype, threads)
