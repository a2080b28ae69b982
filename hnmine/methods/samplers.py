"""Samplers: how the negatives are picked from a query's eligible candidates.

A sampler gets the eligible candidates' teacher scores in teacher-rank order (highest first) and
returns the positions it picks. The filter stage only calls a sampler when there are more
eligible candidates than negatives wanted; otherwise it keeps them all.

Sampling without replacement is done with the Gumbel-top-k trick: add independent Gumbel(0, 1)
noise to the log-weights and keep the k largest. This is exactly sequential sampling without
replacement with probability proportional to exp(log-weight) (Plackett-Luce), and it works in
log space, so large or tiny weights neither overflow nor underflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from hnmine.errors import OptionError
from hnmine.registry import Registry

# A sampler: (eligible scores, highest first; n wanted (< len); reference positive score;
#             effective options; lazily made per-query generator; query id) -> positions picked.
SampleFn = Callable[[np.ndarray, int, float, Any, Callable[[], np.random.Generator], str], np.ndarray]


@dataclass(frozen=True)
class Sampler:
    name: str
    fn: SampleFn
    description: str
    # Which sampler-specific options it reads, with their defaults (None = no default).
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))


SAMPLERS: Registry[Sampler] = Registry("sampling")

# Sampler-specific options: set with a sampler that does not read them is an OptionError.
SAMPLER_OPTION_FIELDS = ("sample_pool", "temperature", "simans_a", "simans_b")

# NV-Retriever's sampled top-k draws from the top 10 eligible candidates.
DEFAULT_SAMPLE_POOL = 10
# softmax(s / T) with T = 1 is the published rule (softmax of the raw relevance scores).
DEFAULT_TEMPERATURE = 1.0
# microsoft/SimXNS code defaults.
DEFAULT_SIMANS_A = 0.5
DEFAULT_SIMANS_B = 0.0


def _pool(s: np.ndarray, opts) -> np.ndarray:
    return s if opts.sample_pool is None else s[: opts.sample_pool]


def gumbel_top_k(log_weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k positions drawn without replacement with p ∝ exp(log_weights), sorted ascending."""
    keys = log_weights + rng.gumbel(size=log_weights.shape[0])
    picked = np.argsort(-keys, kind="stable")[:k]
    return np.sort(picked)


def sample_top(s, n, positive_score, opts, rng, query_id):
    """The n highest teacher scores."""
    return np.arange(n)


def sample_random(s, n, positive_score, opts, rng, query_id):
    """Uniform without replacement from the pool (all eligible, or the top `sample_pool`)."""
    pool = _pool(s, opts)
    return gumbel_top_k(np.zeros(pool.shape[0]), n, rng())


def sample_softmax(s, n, positive_score, opts, rng, query_id):
    """NV-Retriever sampled top-k: from the top `sample_pool` eligible, p ∝ softmax(s / T)."""
    pool = _pool(s, opts)
    return gumbel_top_k(pool / opts.temperature, n, rng())


def sample_top1_softmax(s, n, positive_score, opts, rng, query_id):
    """NV-Retriever top-1 + sampled: keep the best one, draw the other n-1 as `softmax`."""
    pool = _pool(s, opts)
    if n == 1:
        return np.arange(1)
    rest = gumbel_top_k(pool[1:] / opts.temperature, n - 1, rng()) + 1
    return np.concatenate([[0], rest])


def simans_log_weights(s: np.ndarray, positive_score: float, a: float, b: float) -> np.ndarray:
    """log p(n) up to a constant: -a * (s(n) - s(p) - b)^2 (SimANS)."""
    d = s.astype(np.float64) - positive_score - b
    return -a * d * d


def sample_simans(s, n, positive_score, opts, rng, query_id):
    """SimANS: p(n) ∝ exp(-a (s(n) - s(p) - b)^2), without replacement, from the pool."""
    pool = _pool(s, opts)
    logw = simans_log_weights(pool, positive_score, opts.simans_a, opts.simans_b)
    top = float(logw.max())
    if np.exp(top) == 0.0:
        # Every weight is exactly 0 in float64: no candidate is anywhere near s(p) + b on this
        # score scale, and the "sample" would be a deterministic pick of the closest ones.
        raise OptionError(
            f"simans: every weight exp(-a*(s(n)-s(p)-b)^2) underflows to 0 for query '{query_id}' "
            f"(a={opts.simans_a:g}, b={opts.simans_b:g}, positive score {positive_score:.4g}, "
            f"candidate scores {float(pool.min()):.4g}..{float(pool.max()):.4g}); the teacher scores "
            f"are on a scale of tens (raw dot products or logits?): use a smaller --simans-a "
            f"(about 1/(score spread)^2) or a teacher with normalised scores"
        )
    return gumbel_top_k(logw, n, rng())


SAMPLERS.add("top", Sampler("top", sample_top, "the highest teacher scores"))
SAMPLERS.add("random", Sampler("random", sample_random, "uniform without replacement",
                               {"sample_pool": None}))
SAMPLERS.add("softmax", Sampler(
    "softmax", sample_softmax, "softmax(s/T) over the top-k eligible, without replacement",
    {"sample_pool": DEFAULT_SAMPLE_POOL, "temperature": DEFAULT_TEMPERATURE}))
SAMPLERS.add("top1-softmax", Sampler(
    "top1-softmax", sample_top1_softmax, "the best one, then softmax(s/T) over the rest of the top-k",
    {"sample_pool": DEFAULT_SAMPLE_POOL, "temperature": DEFAULT_TEMPERATURE}))
SAMPLERS.add("simans", Sampler(
    "simans", sample_simans, "p ∝ exp(-a (s(n) - s(p) - b)^2), without replacement",
    {"sample_pool": None, "simans_a": DEFAULT_SIMANS_A, "simans_b": DEFAULT_SIMANS_B}))


def sampler_names() -> list[str]:
    return SAMPLERS.names()


def get_sampler(name: str) -> Sampler:
    return SAMPLERS.get(name)
