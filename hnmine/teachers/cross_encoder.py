"""Cross-encoder teacher: pairs batched across queries and sorted by length, so batches carry little padding."""

from __future__ import annotations

import numpy as np

from hnmine.errors import ModelError
from hnmine.progress import Reporter


def check_cross_encoder(model: str, max_length: int | None = None) -> None:
    """Refuse a checkpoint without a trained classifier head: loaded as a cross-encoder, a bi-encoder gets a
    freshly initialised head and gives random scores, different on every run (only a library warning says so)."""
    import json
    from pathlib import Path

    from hnmine.encode import check_max_length, model_path

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


def load_cross_encoder(model: str, device: str, max_length: int | None):
    from hnmine.encode import model_path, quiet_model_loading

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
    order = _longest_first(queries, docs)
    out = np.empty(n, dtype=np.float32)
    with (reporter or Reporter()).task("cross-encoder scoring", total=n) as advance:
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            with torch.inference_mode():
                s = ce.predict([(queries[i], docs[i]) for i in idx], batch_size=len(idx), show_progress_bar=False, convert_to_numpy=True)
            out[idx] = np.asarray(s, dtype=np.float32).reshape(len(idx), -1)[:, -1]
            advance(len(idx))
    return out


def _longest_first(queries: list[str], docs: list[str]) -> np.ndarray:
    """Pair positions by total characters, longest first; ties keep their order (stable), which workers rely on."""
    lengths = np.fromiter((len(q) + len(d) for q, d in zip(queries, docs)), dtype=np.int64, count=len(queries))
    return np.argsort(-lengths, kind="stable")


def score_pairs_with_model(
    model: str,
    queries: list[str],
    docs: list[str],
    *,
    device: str = "cpu",
    max_length: int | None = None,
    batch_size: int = 64,
    dtype: str = "float32",
    workers: int = 1,
    threads: int | None = None,
    reporter: Reporter | None = None,
) -> np.ndarray:
    """score_pairs with the model loaded here, or in worker processes (one device each) when several are asked for.

    Workers get whole length-sorted batches, the very batches one process would run, and every process
    runs torch with the same `threads` (default: the CPUs shared out among the workers), so with a given
    --threads the scores are the same bytes for any number of workers.
    """
    from hnmine.encode import available_cpus
    from hnmine.workers import worker_count

    n_workers = worker_count(device, workers)
    threads = threads or max(1, available_cpus() // n_workers)
    if n_workers == 1:
        ce = load_cross_encoder(model, device, max_length)
        return score_pairs(ce, queries, docs, batch_size=batch_size, reporter=reporter, dtype=dtype, threads=threads)
    from hnmine.workers import split_batches, start_pool, stop_pool, worker_devices

    n = len(queries)
    order = _longest_first(queries, docs)
    out = np.empty(n, dtype=np.float32)
    pool = start_pool(worker_devices(device, workers), _worker_init, (model, max_length, batch_size, dtype), threads)
    try:
        with (reporter or Reporter()).task("cross-encoder scoring", total=n) as advance:
            parts = split_batches(n, batch_size, n_workers)
            futures = [pool.submit(_worker_score, [queries[i] for i in order[a:b]], [docs[i] for i in order[a:b]]) for a, b in parts]
            for (a, b), fut in zip(parts, futures):
                out[order[a:b]] = fut.result()
                advance(b - a)
    except BaseException:
        stop_pool(pool, now=True)
        raise
    stop_pool(pool, now=False)
    return out


_worker_state: dict = {}


def _worker_init(device: str, model: str, max_length: int | None, batch_size: int, dtype: str) -> None:
    import torch

    _worker_state.update(
        ce=load_cross_encoder(model, device, max_length), batch_size=batch_size, dtype=dtype, threads=torch.get_num_threads()
    )


def _worker_score(queries: list[str], docs: list[str]) -> np.ndarray:
    st = _worker_state
    # The part is already length-sorted (stable), so score_pairs keeps its order and batch boundaries.
    return score_pairs(st["ce"], queries, docs, batch_size=st["batch_size"], dtype=st["dtype"], threads=st["threads"])
