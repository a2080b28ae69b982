"""Cross-encoder scoring: pairs batched across queries and sorted by length, so batches carry little padding."""

from __future__ import annotations

import numpy as np

from hnmine.errors import ModelError
from hnmine.parts import Layout, Parts, run_in_process
from hnmine.progress import Reporter


def check_cross_encoder(model: str, max_length: int | None = None) -> None:
    """Refuse a checkpoint without a trained classifier head: loaded as a cross-encoder, a bi-encoder gets a
    freshly initialised head and gives random scores, different on every run (only a library warning says so)."""
    import json
    from pathlib import Path

    from hnmine.inference.models import check_max_length, model_path

    path = Path(model_path(model))
    config = path / "config.json"
    if not config.is_file():
        return  # not a local checkpoint: loading it will say what is wrong
    check_max_length(model, max_length)
    try:
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError):
        architectures = []
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        found = ", ".join(map(str, architectures)) or "none"
        raise ModelError(
            f"{model}: not a cross-encoder: its checkpoint has no classifier head (architectures: {found}), "
            f"so its scores would be random; give a cross-encoder (such as cross-encoder/ms-marco-MiniLM-L6-v2) "
            f"or use --teacher-type bi-encoder"
        )


def score_pairs(
    ce,
    queries: list[str],
    docs: list[str],
    *,
    batch_size: int = 64,
    reporter: Reporter | None = None,
    dtype: str = "float32",
    threads: int | None = None,
) -> np.ndarray:
    """Scores for (queries[i], docs[i]) in the given order, computed in length-sorted batches."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    # Always cast, float32 included: transformers loads a checkpoint in the dtype it was saved in.
    ce.model.to(getattr(torch, dtype))
    n = len(queries)
    order = longest_first(queries, docs)
    out = np.empty(n, dtype=np.float32)
    with (reporter or Reporter()).task("cross-encoder scoring", total=n) as advance:
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            with torch.inference_mode():
                s = ce.predict([(queries[i], docs[i]) for i in idx], batch_size=len(idx), show_progress_bar=False, convert_to_numpy=True)
            out[idx] = np.asarray(s, dtype=np.float32).reshape(len(idx), -1)[:, -1]
            advance(len(idx))
    return out


def longest_first(queries: list[str], docs: list[str]) -> np.ndarray:
    """Pair positions by total characters, longest first; ties keep their order (stable), which workers rely on."""
    lengths = np.fromiter((len(q) + len(d) for q, d in zip(queries, docs)), dtype=np.int64, count=len(queries))
    return np.argsort(-lengths, kind="stable")


PART_PAIRS = 8192  # about this many pairs per part (whole batches)


def score_all(
    model: str,
    queries: list[str],
    docs: list[str],
    *,
    max_length: int | None = None,
    batch_size: int = 64,
    dtype: str = "float32",
    layout: Layout | None = None,
    executor=None,
    reporter: Reporter | None = None,
) -> np.ndarray:
    """Scores for (queries[i], docs[i]) by the cross-encoder `model`, run by `executor` (None: here).

    The pairs are sorted longest first over all of them and cut into whole batches; a part is consecutive
    batches, and every worker runs torch with the layout's threads: the same batches, so the same bytes,
    for any number of parts, workers or executors."""
    order = longest_first(queries, docs)
    per_part = max(1, -(-PART_PAIRS // batch_size)) * batch_size
    items = [
        {"queries": [queries[i] for i in order[a : a + per_part]], "docs": [docs[i] for i in order[a : a + per_part]]}
        for a in range(0, len(order), per_part)
    ]
    layout = layout or Layout()
    shared = {"model": model, "max_length": max_length, "batch_size": batch_size, "dtype": dtype, "threads": layout.threads}
    step = Parts("cross-encoder scoring", items, score_part, shared, hold_cross_encoder, lambda item: len(item["queries"]), layout)
    reporter = reporter or Reporter()
    parts = list(executor.map(step, reporter) if executor is not None else run_in_process(step, reporter))
    out = np.empty(len(order), dtype=np.float32)
    out[order] = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return out


def hold_cross_encoder(shared: dict, device: str):
    from hnmine.inference.loading import load_cross_encoder

    return load_cross_encoder(shared["model"], device, shared["max_length"], shared["dtype"])


def score_part(item: dict, shared: dict, model) -> np.ndarray:
    # The part is already longest first (stable), so score_pairs keeps its order and batch boundaries.
    return score_pairs(
        model, item["queries"], item["docs"], batch_size=shared["batch_size"], dtype=shared["dtype"], threads=shared["threads"]
    )
