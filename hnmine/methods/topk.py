"""Top-k by teacher score, plain or shifted (NV-Retriever, arXiv 2407.15831)."""

from hnmine.methods.base import Method

NAIVE = Method(
    name="naive",
    rule="the k candidates with the highest teacher scores",
    sampling="top",
    source="NV-Retriever (arXiv 2407.15831): Naive Top-K",
)

# "Skip the first N = 10": the rank window is 1-based and inclusive, so it starts at rank 11.
SHIFTED = Method(
    name="shifted",
    rule="skip the first 10 by teacher rank, then the top k (teacher rank >= 11)",
    sampling="top",
    defaults={"range_min": 11},
    source="NV-Retriever (arXiv 2407.15831): Top-K shifted by N, N = 10",
)

METHODS = (NAIVE, SHIFTED)
