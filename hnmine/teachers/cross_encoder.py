"""Cross-encoder teacher: pairs batched across queries and sorted by length, so batches carry little padding."""

from __future__ import annotations

import numpy as np

from hnmine.errors import ModelError
from hnmine.progress import Reporter


def load_cross_encoder(model: str, device: str, max_length: int | None):
    from hnmine.encode import quiet_model_loading, resolve_model

    quiet_model_loading()
    from sentence_transformers import CrossEncoder

    path, _ = resolve_model(model)
    try:
        kwargs = {"device": device}
        if max_length is not None:
            kwargs["max_length"] = max_length
        return CrossEncoder(path, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot load cross-encoder '{model}': {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def score_pairs(ce, queries: list[str], docs: list[str], *, batch_size: int = 64, reporter: Reporter | None = None, dtype: str = "float32") -> np.ndarray:
    """Scores for (queries[i], docs[i]) in the given order, computed in length-sorted batches."""
    import torch

    if dtype != "float32":
        ce.model.to(getattr(torch, dtype))
    n = len(queries)
    lengths = np.fromiter((len(q) + len(d) for q, d in zip(queries, docs)), dtype=np.int64, count=n)
    order = np.argsort(-lengths, kind="stable")
    out = np.empty(n, dtype=np.float32)
    with (reporter or Reporter()).task("cross-encoder scoring", total=n) as advance:
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            with torch.inference_mode():
                s = ce.predict([(queries[i], docs[i]) for i in idx], batch_size=len(idx), show_progress_bar=False, convert_to_numpy=True)
            out[idx] = np.asarray(s, dtype=np.float32).reshape(len(idx), -1)[:, -1]
            advance(len(idx))
    return out
