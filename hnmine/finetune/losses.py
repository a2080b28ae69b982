"""The training losses `hnmine finetune` offers, chosen by name (--loss)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hnmine.registry import Registry


@dataclass(frozen=True)
class LossSpec:
    build: Callable  # (model) -> torch.nn.Module
    batch_sampler: str  # the sampler that suits the loss (a BatchSamplers value)
    description: str


def _mnrl(model):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model)


LOSSES: Registry[LossSpec] = Registry("loss")
# In-batch negatives: another row's positive (or negative) is a negative, so a text must not
# appear twice in a batch; the no-duplicates sampler sees to that (byte-identical texts only).
LOSSES.add("mnrl", LossSpec(_mnrl, "no_duplicates", "MultipleNegativesRankingLoss: in-batch negatives plus each row's hard negatives"))
