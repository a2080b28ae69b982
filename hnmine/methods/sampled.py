"""Sampled top-k after the PercPos filter (NV-Retriever, arXiv 2407.15831)."""

from hnmine.methods.base import Method

SAMPLED = Method(
    name="sampled",
    rule="PercPos 95% filter, then draw k from the top 10 eligible with p ∝ softmax(s / T)",
    sampling="softmax",
    defaults={"relative_margin": 0.05, "sample_pool": 10, "temperature": 1.0},
    source="NV-Retriever (arXiv 2407.15831): sampled top-k, k = 10",
)

TOP1_SAMPLED = Method(
    name="top1-sampled",
    rule="PercPos 95% filter, keep the top-1, draw the rest from the top 10 as softmax(s / T)",
    sampling="top1-softmax",
    defaults={"relative_margin": 0.05, "sample_pool": 10, "temperature": 1.0},
    source="NV-Retriever (arXiv 2407.15831): top-1 + sampled top-k",
)

METHODS = (SAMPLED, TOP1_SAMPLED)
