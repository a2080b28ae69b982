"""The filter's options (docs/methods-reference.md). `None` for a method option means "the
method's default"; hnmine.methods.resolve_options fills those in and validates."""

from __future__ import annotations

from dataclasses import dataclass

from hnmine.methods import DEFAULT_METHOD


@dataclass(frozen=True)
class FilterOptions:
    method: str = DEFAULT_METHOD  # registry name
    num_negatives: int = 5
    depth: int = 50  # initial candidate depth (by retrieval rank, column `rank`)
    depth_step: int | None = None  # look-deeper step; None = depth
    max_depth: int | None = None  # cap; None = everything in the scores table
    min_negatives: int = 1  # query "exported" iff n_negatives >= this
    range_min: int | None = None  # rank window on teacher rank (1-based, inclusive)
    range_max: int | None = None
    max_score: float | None = None
    min_score: float | None = None
    margin: float | None = None  # absolute: keep n when s(n) < s(p) - margin
    relative_margin: float | None = None  # keep n when s(n) < s(p) - abs(s(p))*relative_margin
    sampling: str | None = None  # None = method's default
    sample_pool: int | None = None  # sampled top-k pool size (NV-Retriever k=10)
    temperature: float | None = None
    simans_a: float | None = None  # default 0.5
    simans_b: float | None = None  # default 0.0
    positive_reference: str = "min"  # min|mean|max over the query's positives' teacher scores
    dedup_threshold: float | None = 0.95  # cosine to any positive >= this -> near duplicate
    random_negatives: int = 0  # STAR: extra negatives drawn uniformly from the corpus
    seed: int = 42
