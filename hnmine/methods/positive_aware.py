"""Positive-aware top-k: thresholds from the teacher score (NV-Retriever, GISTEmbed)."""

from hnmine.methods.base import Method

TOPK_ABS = Method(
    name="topk-abs",
    rule="top k among candidates with s(n) <= 0.7",
    sampling="top",
    defaults={"max_score": 0.7},
    source="NV-Retriever (arXiv 2407.15831): TopK-Abs, threshold 0.7",
)

TOPK_MARGINPOS = Method(
    name="topk-marginpos",
    rule="top k among candidates with s(n) < s(p) - 0.05",
    sampling="top",
    defaults={"margin": 0.05},
    source="NV-Retriever (arXiv 2407.15831): TopK-MarginPos, margin 0.05; GISTEmbed absolute margin",
)

TOPK_PERCPOS = Method(
    name="topk-percpos",
    rule="top k among candidates with s(n) < s(p) - |s(p)| * 0.05 (perc = 95%)",
    sampling="top",
    defaults={"relative_margin": 0.05},
    source="NV-Retriever (arXiv 2407.15831): TopK-PercPos, perc 0.95; GISTEmbed relative margin",
)

METHODS = (TOPK_ABS, TOPK_MARGINPOS, TOPK_PERCPOS)
