"""The encoder of a run: model, dtype, device, batching and process layout (`EncoderSpec`), and what of it
goes into the keys (`encoder_key`, `backend_key`) and the manifests (`dtype_record`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from hnmine.errors import ModelError, OptionError
from hnmine.inference.backends import backend_record, backend_versions, check_backend
from hnmine.inference.dtype import choose_cpu_backend, choose_cpu_dtype
from hnmine.inference.models import check_max_length, model_key, resolve_model
from hnmine.inference.pool import available_cpus, worker_count, worker_devices
from hnmine.options import DEFAULT_MODEL, Options
from hnmine.parts import Layout

DTYPES = ("auto", "float32", "bfloat16", "float16")
# How the store encodes a text (hnmine.inference.rowwise): padded to its token count rounded up to 8, in a
# batch of that padded length. Part of the bi-encoder's stage keys and the store's identity, so vectors made
# another way (padded to the batch's longest, or the exact-length batches of before) are never mixed with these.
ENCODING = "length-buckets-8"


@dataclass(frozen=True)
class EncoderSpec:
    # Defaults are the options' (hnmine.options), declared there once.
    model: str = Options.model
    max_length: int | None = Options.max_length
    dtype: str = Options.dtype
    device: str = Options.device
    batch_size: int = Options.batch_size
    normalize: bool = Options.normalize
    workers: int = Options.workers  # encoding processes
    threads: int | None = Options.threads  # torch threads per process; None: the CPUs shared out among the workers
    backend: str = Options.backend  # what runs the transformer (hnmine.inference.backends, or auto); part of every key when not torch

    @classmethod
    def from_options(cls, options, model: str | None = None) -> EncoderSpec:
        """The encoder settings of a run's options (fields of the same names)."""
        from dataclasses import fields

        spec = cls(**{f.name: getattr(options, f.name) for f in fields(cls)})
        return replace(spec, model=model) if model else spec

    def resolved_threads(self) -> int:
        """Intra-op threads of every process that runs the model (main or worker).

        The same number in every process makes the same batches give the same bytes, whatever --workers is.
        """
        return self.threads or max(1, available_cpus() // worker_count(self.device, self.workers))

    def resolved_dtype(self, kind: str = "bi-encoder", model: str | None = None) -> str:
        return effective_dtype(
            self.dtype, self.device, model or self.model, kind=kind, threads=self.resolved_threads(), backend=self.backend_for(kind)
        )

    def backend_for(self, kind: str = "bi-encoder") -> str:
        """--backend runs bi-encoders (`auto` resolved: hnmine.inference.dtype.choose_cpu_backend); cross-encoders
        run on torch (their manifests say so)."""
        if kind != "bi-encoder":
            return "torch"
        if self.backend != "auto":
            return self.backend
        return choose_cpu_backend(self.model, self.dtype, self.device, self.resolved_threads()).backend

    def layout(self) -> Layout:
        """The workers a model step runs on (hnmine.parts): one per device, each with the run's thread count."""
        return Layout(devices=tuple(worker_devices(self.device, self.workers)), threads=self.resolved_threads())

    def for_workers(self, kind: str = "bi-encoder") -> EncoderSpec:
        """What a worker runs: the dtype and threads resolved here (a worker, a Ray node, must not choose its own)."""
        return replace(self, dtype=self.resolved_dtype(kind), backend=self.backend_for(kind), threads=self.resolved_threads(), workers=1)

    def on(self, device: str) -> EncoderSpec:
        """The spec as one worker runs it, on its own device."""
        return replace(self, device=device)

    def load(self):
        """The SentenceTransformer this spec runs (loaded once per process)."""
        from hnmine.inference.loading import load_sentence_transformer

        threads = self.resolved_threads()
        return load_sentence_transformer(
            self.model,
            device=self.device,
            dtype=self.resolved_dtype(),
            max_length=self.max_length,
            backend=self.backend_for(),
            threads=threads,
        )

    def validate(self) -> None:
        if self.dtype not in DTYPES:
            from hnmine.errors import UnknownName

            raise UnknownName("dtype", self.dtype, list(DTYPES))
        if self.batch_size < 1:
            raise OptionError("--batch-size must be at least 1")
        if self.workers < 1:
            raise OptionError("--workers must be at least 1")
        if self.max_length is not None and self.max_length < 1:
            raise OptionError("--max-length must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise OptionError("--threads must be at least 1")
        if self.backend != "auto":  # auto never fails: torch where OpenVINO cannot run or is not installed
            check_backend(self.backend, self.device, self.dtype)
        # Checked here, before any stage runs, so a typo fails in a second and writes nothing.
        import re

        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?|cuda(:\d+)?(,cuda(:\d+)?)+", self.device):
            raise OptionError(f"unknown device '{self.device}' (valid: cpu, cuda, cuda:N, mps, or a list such as cuda:0,cuda:1)")
        if self.model.startswith(("/", "./", "../")) and not Path(self.model).exists():
            raise ModelError(f"{self.model}: no such model folder")
        check_max_length(self.model, self.max_length)


def effective_dtype(
    dtype: str, device: str, model: str = DEFAULT_MODEL, *, kind: str = "bi-encoder", threads: int | None = None, backend: str = "torch"
) -> str:
    """What `dtype` means on `device`: 'auto' is measured on a CPU (hnmine.inference.dtype), bf16 or fp16 on a GPU."""
    if dtype != "auto":
        return dtype
    if device == "cpu":
        return choose_cpu_dtype(model, kind, threads or available_cpus(), backend).dtype
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def encoder_key(spec: EncoderSpec, kind: str = "bi-encoder") -> dict:
    """What about an encoder changes its vectors or scores, for stage keys: `auto` resolved, process layout left out.

    Resolving `auto` may time the model once on this machine (hnmine.inference.dtype); call this only
    for a stage that runs the model.
    """
    d = {k: v for k, v in vars(spec).items() if k not in ("device", "workers", "threads", "backend")}
    d["model"] = model_key(spec.model)
    d["revision"] = resolve_model(spec.model)[1]
    d["dtype"] = spec.resolved_dtype(kind)
    d.update(backend_key(spec, kind))
    if kind == "bi-encoder":
        # A bi-encoder's vector does not depend on its batch (hnmine.inference.rowwise): the batch size is no
        # part of what it computes, and the way it is kept so is.
        del d["batch_size"]
        d["encoding"] = ENCODING
    return d


def encoder_identity(spec: EncoderSpec, prompt: str | None, prompt_name: str | None) -> dict:
    """What makes a bi-encoder's vector of a text these bytes: the embedding store's identity (hnmine.inference.store).

    The model by its key and revision (a model object by the sha256 of its weights and settings), the dtype
    and backend as resolved, the package versions that compute, max length, prompt, normalisation, torch
    threads, and the device: the CPU's model and flags, or the GPU's name. Not the batch size or order
    (hnmine.inference.rowwise), nor where the store lies."""
    from hnmine.inference.store import STORE_FORMAT

    backend = spec.backend_for()
    return {
        "format": STORE_FORMAT,
        "encoding": ENCODING,
        "model": model_key(spec.model),
        "revision": resolve_model(spec.model)[1],
        "dtype": spec.resolved_dtype(),
        "backend": backend,
        "versions": {**package_versions(), **backend_versions(backend)},
        "max_length": spec.max_length,
        "prompt": prompt,
        "prompt_name": prompt_name,
        "normalize": spec.normalize,
        "threads": spec.resolved_threads(),
        "device": device_identity(spec.device),
    }


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "sentence-transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "none"
    return out


def device_identity(device: str) -> str:
    """The hardware that computes: the CPU (model name and flags), or the GPUs' names."""
    from hnmine.inference.dtype import cpu_identity

    if device == "cpu":
        return "cpu: " + cpu_identity()
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            from hnmine.inference.pool import listed_devices

            names = sorted({torch.cuda.get_device_name(torch.device(d)) for d in listed_devices(device)})
            return "cuda: " + ", ".join(names)
    return device


def backend_key(spec: EncoderSpec, kind: str = "bi-encoder") -> dict:
    """The backend's part of a key: nothing for torch (so torch keys are what they were), else its name and versions."""
    backend = spec.backend_for(kind)
    if backend == "torch":
        return {}
    return {"backend": backend, "backend_versions": backend_versions(backend)}


def dtype_record(spec: EncoderSpec, kind: str = "bi-encoder", model: str | None = None) -> dict:
    """For a manifest: the backend, the dtype used and, for `auto` on a CPU, how each was chosen."""
    dtype = spec.resolved_dtype(kind, model)
    backend = spec.backend_for(kind)
    rec = {"backend": backend, **backend_record(backend, dtype), "dtype": dtype}
    if spec.backend == "auto" and kind == "bi-encoder":
        rec["backend_choice"] = choose_cpu_backend(model or spec.model, spec.dtype, spec.device, spec.resolved_threads()).record()
    if spec.dtype != "auto" or spec.device != "cpu":
        return {**rec, "dtype_choice": "given" if spec.dtype != "auto" else "device default"}
    return {**rec, "dtype_choice": choose_cpu_dtype(model or spec.model, kind, spec.resolved_threads(), backend).record()}
