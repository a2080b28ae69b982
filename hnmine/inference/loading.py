"""Loading models, once per process: a SentenceTransformer computing in the dtype it is asked for (always
cast: transformers keeps a checkpoint's saved dtype), run by the backend asked for; a CrossEncoder."""

from __future__ import annotations

from hnmine.errors import ModelError
from hnmine.inference.models import model_path, quiet_model_loading, resolve_model

_models: dict[tuple, object] = {}


def load_sentence_transformer(model: str, *, device: str, dtype: str, max_length: int | None, backend: str = "torch", threads: int = 1):
    """Load (once per process) a SentenceTransformer, offline-first, computing in `dtype` (resolved, never auto)."""
    path, revision = resolve_model(model)
    # The revision (a local folder's contents) is part of the key: a folder changed on disk in a long-lived
    # process (a notebook) is loaded afresh; a backend other than torch fixes its thread count when it compiles.
    key = (model, revision, device, dtype, max_length, backend, threads if backend != "torch" else None)
    if key in _models:
        return _models[key]
    quiet_model_loading()
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        st = SentenceTransformer(path, device=device)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported as one line
        raise ModelError(f"cannot load model '{model}': {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    # transformers loads a checkpoint in the dtype it was saved in (a float16 hub checkpoint stays float16):
    # cast always, float32 included, so the dtype in the keys and the manifest is the one that computes.
    if backend != "torch":
        from hnmine.inference.backends import attach_backend

        st = attach_backend(backend, st.to(torch.float32), model, dtype, threads)
    else:
        st = st.to(getattr(torch, dtype))
    if max_length is not None:
        st.max_seq_length = max_length
    _models[key] = st
    return st


def load_cross_encoder(model: str, device: str, max_length: int | None):
    quiet_model_loading()
    from sentence_transformers import CrossEncoder

    path = model_path(model)
    try:
        kwargs: dict[str, object] = {"device": device}
        if max_length is not None:
            kwargs["max_length"] = max_length
        return CrossEncoder(path, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot load cross-encoder '{model}': {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
