"""The filter's settings (docs/methods-reference.md), the fields of hnmine.options.Options the
selection reads, with the same names and defaults (declared there once). `None` for a method option
means "the method's default"; hnmine.methods.resolve_options fills those in and validates. A
dedup_threshold of None turns the near-duplicate rule off; `max_depth` None means every candidate."""

from __future__ import annotations

from dataclasses import dataclass

from hnmine.options import Options


@dataclass(frozen=True)
class FilterOptions:
    method: str = Options.method  # registry name
    num_negatives: int = Options.num_negatives
    depth: int = Options.depth  # initial candidate depth (by retrieval rank, column `rank`)
    depth_step: int | None = None  # look-deeper step; None = depth
    max_depth: int | None = None  # cap; None = everything in the scores table
    min_negatives: int = Options.min_negatives  # query "exported" iff n_negatives >= this
    range_min: int | None = None  # rank window on teacher rank (1-based, inclusive)
    range_max: int | None = None
    max_score: float | None = None
    max_score_percentile: float | None = None  # per teacher: percentile of its own scores of the known positives
    min_score: float | None = None
    margin: float | None = None  # absolute: keep n when s(n) < s(p) - margin
    relative_margin: float | None = None  # keep n when s(n) < s(p) - abs(s(p))*relative_margin
    sampling: str | None = None  # None = method's default
    sample_pool: int | None = None  # sampled top-k pool size (NV-Retriever k=10)
    temperature: float | None = None
    simans_a: float | None = None  # default 0.5
    simans_b: float | None = None  # default 0.0
    positive_reference: str = Options.positive_reference  # min|mean|max over the query's positives' teacher scores
    dedup_threshold: float | None = Options.dedup_threshold  # cosine to any positive >= this -> near duplicate
    random_negatives: int = Options.random_negatives  # STAR: extra negatives drawn uniformly from the corpus
    max_negative_reuse: int | None = None  # no document a negative of more than this many queries (None: no cap)
    seed: int = Options.seed
