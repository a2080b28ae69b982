"""Loading models, once per process: a SentenceTransformer computing in the dtype it is asked for (always
cast: transformers keeps a checkpoint's saved dtype), run by the backend asked for; a CrossEncoder.

A model object the caller loaded (hnmine.inference.models.register_loaded) is used as it is when it is
what is asked for (device, dtype, maximum length); else a copy made so is, never the caller's object
changed."""

from __future__ import annotations

import weakref
from typing import Any

from hnmine.errors import ModelError, OptionError
from hnmine.inference.models import is_loaded, loaded_model, model_path, quiet_model_loading, resolve_model

_models: dict[tuple, object] = {}
# A loaded model's copy in another dtype, device or maximum length, per object: (its name, asked for) -> copy.
_copies: weakref.WeakKeyDictionary[Any, dict[tuple, Any]] = weakref.WeakKeyDictionary()


def load_sentence_transformer(model: str, *, device: str, dtype: str, max_length: int | None, backend: str = "torch", threads: int = 1):
    """Load (once per process) a SentenceTransformer, offline-first, computing in `dtype` (resolved, never auto)."""
    if is_loaded(model):
        if backend != "torch":
            raise OptionError(f"--backend {backend} needs a model name or path: a loaded model runs as it is, on torch")
        return loaded_as_asked(model, device=device, dtype=dtype, max_length=max_length)
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


def load_cross_encoder(model: str, device: str, max_length: int | None, dtype: str | None = None):
    """A CrossEncoder; `dtype`: the one it computes in (None: the caller casts it, so a loaded one is a copy)."""
    if is_loaded(model):
        return loaded_as_asked(model, device=device, dtype=dtype, max_length=max_length)
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


def loaded_as_asked(name: str, *, device: str, dtype: str | None, max_length: int | None) -> Any:
    """The caller's model object registered as `name` when it is on `device`, in `dtype` (None: a copy, which
    the caller may cast) and cut at `max_length` (None: its own); else a copy made so, kept while the object lives."""
    import torch

    obj = loaded_model(name)
    same = (
        dtype is not None
        and obj.dtype == getattr(torch, dtype)
        and _same_device(obj.device, device)
        and (max_length is None or max_length == obj.max_seq_length)
    )
    if same:
        return obj
    asked = (name, device, dtype, max_length)
    copies = _copies.setdefault(obj, {})
    if asked not in copies:
        import copy

        copies.clear()  # one copy per object: a copy of its earlier weights is of no more use
        made = copy.deepcopy(obj).to(device)
        if dtype is not None:
            made = made.to(getattr(torch, dtype))
        if max_length is not None:
            made.max_seq_length = max_length
        copies[asked] = made
    return copies[asked]


def _same_device(have: Any, asked: str) -> bool:
    """Whether a model on torch device `have` is on the device named `asked` ('cuda' is the current GPU)."""
    import torch

    want = torch.device(asked)
    if want.type != have.type:
        return False
    if want.index is None and want.type == "cuda":
        return have.index == torch.cuda.current_device()
    return want.index is None or want.index == have.index
