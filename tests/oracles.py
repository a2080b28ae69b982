"""Reciprocal rank fusion of several ranked lists."""

from __future__ import annotations

RRF_K = 60


def rrf(lists: dict[str, list[str]], k: int = RRF_K) -> list[tuple[str, float, str]]:
    """Fuse ranked doc-id lists → [(doc_id, score, sources)] sorted by score, ties by first appearance.

    score(d) = Σ over lists containing d of 1 / (k + rank), rank 1-based (Cormack et al., 2009).
    """
    scores: dict[str, float] = {}
    sources: dict[str, list[str]] = {}
    for name, ranked in lists.items():
        for rank, doc_id in enumerate(ranked, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
            sources.setdefault(doc_id, []).append(name)
    order = sorted(scores, key=lambda d: (-scores[d], d))
    return [(d, scores[d], "+".join(sources[d])) for d in order]
