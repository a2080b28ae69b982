"""Measure one model on the evaluation set: encode every query and document, search exactly, score.

Every arm is encoded the same way (the same dtype, batch size and max length), so a difference
between arms is the training's. The dtype is cast once on the model to measure: on a CPU with native
bfloat16, bf16 encodes SciFact in 0.56x the float32 time and its top-10 lists agree with float32's
on ~99% of (query, document) pairs (docs/performance.md), a small error shared by every arm.

The texts go through the embedding store (hnmine.inference.cache) under the model's fingerprint (the
sha256 of its weights and settings, hnmine.inference.models.register_loaded): a model measured before,
by this command or another (the untrained model of every comparison, a fine-tune redone with the same
seed), encodes nothing again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hnmine.errors import ModelError
from hnmine.finetune.evalset import EvalSet
from hnmine.finetune.metrics import RetrievalScores, retrieval_scores
from hnmine.progress import Reporter


@dataclass
class Measured:
    scores: RetrievalScores
    seconds: float


def measure(
    model, eval_set: EvalSet, *, dtype: str, batch_size: int, reporter: Reporter | None = None, label: str = "", name: str | None = None
) -> Measured:
    """nDCG@10, Recall@100, MRR@10 of `model` on the evaluation set, encoded at `dtype` (L2-normalised);
    `name`: how `hnmine cache` lists the model's vectors."""
    import torch

    from hnmine.inference.cache import encode_texts
    from hnmine.inference.models import register_loaded
    from hnmine.inference.spec import EncoderSpec

    reporter = reporter or Reporter()
    started = time.perf_counter()
    model.eval()
    model = model.to(getattr(torch, dtype))  # float32 too: a float16 checkpoint loads as float16
    spec = EncoderSpec(
        model=register_loaded(model), dtype=dtype, device=str(model.device), batch_size=batch_size, threads=torch.get_num_threads()
    )
    what = f"evaluate {label}".strip()
    try:
        q = encode_texts(eval_set.query_texts, spec, reporter=reporter, description=f"{what}: queries", label=name or label)
        d = encode_texts(eval_set.doc_texts, spec, reporter=reporter, description=f"{what}: documents", label=name or label)
    except ModelError as exc:
        if "non-finite" not in str(exc):
            raise
        raise ModelError(f"{label or 'the model'}: non-finite embeddings at {dtype} (try --eval-dtype float32)") from None
    scores = retrieval_scores(q, d, eval_set.query_ids, eval_set.doc_ids, eval_set.qrels, eval_set.min_relevance)
    return Measured(scores=scores, seconds=time.perf_counter() - started)
