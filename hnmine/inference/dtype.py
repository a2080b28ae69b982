"""`--dtype auto` and `--backend auto` on a CPU: the fastest dtype and backend for this machine, chosen by a
short timed encode.

CPU flags do not predict speed: on one AMD EPYC with `avx512_bf16`, bfloat16 encodes 2.5x faster
than float32; on an Intel Xeon with the same flag it is 1.4x slower. So `auto` times a short encode of
fixed texts at each dtype the CPU runs natively, and keeps the fastest only when it beats float32 by
at least MIN_GAIN; otherwise float32. The choice is cached per machine (CPU model and flags), torch
version, model revision, model kind and thread count, in the user's cache folder, so a rerun needs
neither the probe nor torch, and every stage of a run agrees on the dtype.

`--backend auto` times the same encode with torch and with OpenVINO (each at its own `auto` dtype, or at
the given one) and keeps OpenVINO when it is installed, runs that dtype, and is at least MIN_GAIN faster;
else torch (a GPU, a model object, or no OpenVINO: torch without timing). Cached the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

from hnmine.inference.backends import backend_dtypes, backend_versions
from hnmine.inference.loading import load_cross_encoder, load_sentence_transformer
from hnmine.inference.models import resolve_model
from hnmine.io.user_cache import cache_dir

MIN_GAIN = 0.10  # a dtype other than float32 must be at least this much faster to be chosen
PROBE_TEXTS = 16  # texts per timed batch (cut at the model's limit: about 256 tokens for MiniLM)
PROBE_ROUNDS = 2  # timed batches per dtype, alternating dtypes; the fastest of each counts
_WORDS = (
    "protein cell gene expression analysis patients study results clinical effect treatment increased "
    "reduced associated levels risk model data significant response mechanism function human disease role "
    "pressure flow wing boundary layer surface heat transfer velocity measured theory experiment"
).split()


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str  # what `auto` resolved to
    seconds: dict = field(default_factory=dict)  # dtype -> fastest timed batch (empty: nothing to measure)
    reason: str = ""
    machine: str = ""
    cached: bool = False

    def record(self) -> dict:
        return asdict(self)


def cpu_info() -> tuple[str, frozenset[str]]:
    """(CPU model name, flags) from /proc/cpuinfo; ("", empty) where it cannot be read."""
    name, flags = "", frozenset[str]()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name") and not name:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = frozenset(line.split(":", 1)[1].split())
                if name and flags:
                    break
    except OSError:
        pass
    return name, flags


def native_cpu_dtypes() -> tuple[str, ...]:
    """The dtypes worth timing on this CPU: float32, plus those it computes natively."""
    _, flags = cpu_info()
    out = ["float32"]
    if flags & {"avx512_bf16", "amx_bf16"}:
        out.append("bfloat16")
    if flags & {"avx512_fp16", "amx_fp16"}:
        out.append("float16")
    return tuple(out)


def _torch_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "none"


def _machine() -> str:
    name, flags = cpu_info()
    digest = hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:12]
    return f"{name or 'unknown CPU'} (flags {digest}, {os.cpu_count()} CPUs)"


def cpu_identity() -> str:
    """The CPU's model name and a digest of its flags: what its kernels compute with (not how many there are)."""
    name, flags = cpu_info()
    digest = hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:12]
    return f"{name or 'unknown CPU'} (flags {digest})"


def _choice_path(model: str, revision: str, kind: str, threads: int, backend: str = "torch") -> Path:
    fields = {
        "machine": _machine(),
        "torch": _torch_version(),
        "model": model,
        "revision": revision,
        "kind": kind,
        "threads": threads,
        "candidates": _candidates(backend),
        "min_gain": MIN_GAIN,
    }
    if backend != "torch":  # torch choices keep the file names they always had
        fields.update(backend=backend, backend_versions=backend_versions(backend))
    payload = json.dumps(fields, sort_keys=True)
    return cache_dir() / "dtype-choice" / (hashlib.sha256(payload.encode()).hexdigest()[:32] + ".json")


def probe_texts() -> list[str]:
    """Fixed texts, each longer than a typical model limit, so every timed batch is full length."""
    n = len(_WORDS)
    return [" ".join(_WORDS[(i * 7 + j * 3) % n] for j in range(300)) for i in range(PROBE_TEXTS)]


def _candidates(backend: str) -> tuple[str, ...]:
    """The native dtypes of this CPU that `backend` runs (int8 is never a candidate: `auto` does not quantise)."""
    runs = backend_dtypes(backend)
    return tuple(d for d in native_cpu_dtypes() if runs is None or d in runs)


@cache
def choose_cpu_dtype(model: str, kind: str, threads: int, backend: str = "torch") -> DtypeChoice:
    """The dtype `auto` means for this model on this CPU and backend (see the module docstring)."""
    candidates = _candidates(backend)
    if candidates == ("float32",):
        return DtypeChoice("float32", reason="no native bfloat16 or float16 on this CPU", machine=_machine())
    revision = resolve_model(model)[1]
    path = _choice_path(model, revision, kind, threads, backend)
    saved = _saved_choice(path, candidates)
    if saved is not None:
        return saved
    seconds = _time_dtypes(model, kind, candidates, threads, backend)
    best = min(seconds, key=lambda d: seconds[d])
    if best != "float32" and seconds[best] <= (1 - MIN_GAIN) * seconds["float32"]:
        dtype, reason = best, f"{seconds['float32'] / seconds[best]:.2f}x faster than float32 on this CPU"
    else:
        dtype, reason = "float32", f"no other dtype was at least {MIN_GAIN:.0%} faster than float32 on this CPU"
    choice = DtypeChoice(dtype, seconds, reason, _machine())
    try:
        from hnmine.io.atomic import write_json

        write_json(choice.record(), path)
    except Exception:  # noqa: BLE001 - an unwritable cache only means measuring again next time
        pass
    return choice


def _saved_choice(path: Path, candidates: tuple[str, ...]) -> DtypeChoice | None:
    """The choice saved at `path` when it is whole: a dtype among `candidates`, timings in seconds per
    candidate, texts for the reason and machine. None (measure again) when there is none, or it is damaged:
    it decides every run's dtype on this machine and goes into their manifests."""
    import math

    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("dtype") not in candidates:
        return None
    seconds, reason, machine = saved.get("seconds", {}), saved.get("reason", ""), saved.get("machine", "")
    timings_ok = isinstance(seconds, dict) and all(
        d in candidates and not isinstance(t, bool) and isinstance(t, (int, float)) and math.isfinite(t) for d, t in seconds.items()
    )
    if not (timings_ok and isinstance(reason, str) and isinstance(machine, str)):
        return None
    return DtypeChoice(saved["dtype"], dict(seconds), reason, machine, cached=True)


def _cross_encoder_run(ce, pairs: list[tuple[str, str]]) -> Callable[[], object]:
    return lambda: ce.predict(pairs, batch_size=len(pairs), show_progress_bar=False)


def _encoder_run(model, texts: list[str]) -> Callable[[], object]:
    return lambda: model.encode(texts, batch_size=len(texts), show_progress_bar=False)


def _time_dtypes(model: str, kind: str, candidates: tuple[str, ...], threads: int, backend: str = "torch") -> dict[str, float]:
    """The fastest of PROBE_ROUNDS timed batches per dtype, dtypes alternating (drift hits all alike)."""
    import torch

    torch.set_num_threads(threads)
    texts = probe_texts()
    runners: dict[str, Callable[[], object]] = {}
    for dtype in candidates:
        if kind == "cross-encoder":
            ce = load_cross_encoder(model, "cpu", None)
            ce.model.to(getattr(torch, dtype))
            runners[dtype] = _cross_encoder_run(ce, [(t[:200], t) for t in texts])
        else:
            runners[dtype] = _encoder_run(
                load_sentence_transformer(model, device="cpu", dtype=dtype, max_length=None, backend=backend, threads=threads), texts
            )
    return fastest_runs(runners)


def fastest_runs(runners: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Each runner's fastest of PROBE_ROUNDS timed runs, after one untimed warm-up each (first-call allocations
    and kernel selection are not its speed); the runners alternate, so a drift in load hits them alike."""
    import torch

    best = {name: float("inf") for name in runners}
    with torch.inference_mode():
        for run in runners.values():
            run()
        for _ in range(PROBE_ROUNDS):
            for name, run in runners.items():
                started = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - started)
    return {name: round(s, 4) for name, s in best.items()}


# ---------------------------------------------------------------------------------------- --backend auto


@dataclass(frozen=True)
class BackendChoice:
    backend: str  # what `auto` resolved to
    seconds: dict = field(default_factory=dict)  # backend -> fastest timed batch (empty: nothing measured)
    dtypes: dict = field(default_factory=dict)  # backend -> the dtype it was timed at
    reason: str = ""
    machine: str = ""
    cached: bool = False

    def record(self) -> dict:
        return asdict(self)


@cache
def choose_cpu_backend(model: str, dtype: str, device: str, threads: int) -> BackendChoice:
    """The backend `auto` means for this bi-encoder at `dtype` (given or auto) on this machine (module docstring)."""
    import importlib.util

    from hnmine.inference.models import is_loaded

    if device != "cpu":
        return BackendChoice("torch", reason="OpenVINO runs on the CPU only")
    if is_loaded(model):
        return BackendChoice("torch", reason="a model object runs on torch")
    if importlib.util.find_spec("openvino") is None:
        return BackendChoice("torch", reason="OpenVINO is not installed (pip install 'hnmine[openvino]')")
    runs = backend_dtypes("openvino") or ()
    if dtype != "auto" and dtype not in runs:
        return BackendChoice("torch", reason=f"OpenVINO does not run {dtype}")
    dtypes = {b: dtype if dtype != "auto" else choose_cpu_dtype(model, "bi-encoder", threads, b).dtype for b in ("torch", "openvino")}
    fields = {"machine": _machine(), "model": model, "revision": resolve_model(model)[1], "threads": threads, "dtypes": dtypes}
    fields.update(min_gain=MIN_GAIN, torch=_torch_version(), openvino=backend_versions("openvino"))
    path = cache_dir() / "backend-choice" / (hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32] + ".json")
    saved = _saved_backend(path)
    if saved is not None:
        return saved
    seconds = _time_backends(model, dtypes, threads)
    if seconds["openvino"] <= (1 - MIN_GAIN) * seconds["torch"]:
        backend, reason = "openvino", f"{seconds['torch'] / seconds['openvino']:.2f}x faster than torch on this CPU"
    else:
        backend, reason = "torch", f"OpenVINO was not at least {MIN_GAIN:.0%} faster than torch on this CPU"
    choice = BackendChoice(backend, seconds, dtypes, reason, _machine())
    try:
        from hnmine.io.atomic import write_json

        write_json(choice.record(), path)
    except Exception:  # noqa: BLE001 - an unwritable cache only means measuring again next time
        pass
    return choice


def _saved_backend(path: Path) -> BackendChoice | None:
    """The choice saved at `path` when it is whole (it decides the backend of every run here); else None."""
    import math

    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("backend") not in ("torch", "openvino"):
        return None
    seconds, dtypes = saved.get("seconds"), saved.get("dtypes")
    if not isinstance(seconds, dict) or not isinstance(dtypes, dict):
        return None
    ok = (
        all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in seconds.values())
        and isinstance(saved.get("reason", ""), str)
        and isinstance(saved.get("machine", ""), str)
    )
    if not ok:
        return None
    return BackendChoice(saved["backend"], dict(seconds), dict(dtypes), saved.get("reason", ""), saved.get("machine", ""), cached=True)


def _time_backends(model: str, dtypes: dict[str, str], threads: int) -> dict[str, float]:
    """The fastest of PROBE_ROUNDS timed batches per backend, backends alternating."""
    import torch

    torch.set_num_threads(threads)
    texts = probe_texts()
    runners = {
        b: _encoder_run(load_sentence_transformer(model, device="cpu", dtype=d, max_length=None, backend=b, threads=threads), texts)
        for b, d in dtypes.items()
    }
    return fastest_runs(runners)
