"""Samplers: how the negatives are picked from a query's eligible candidates.

Every sampler is "keep the n largest keys" over a pool of eligible candidates (in teacher-rank
order: all of them, or the first `sample_pool`):

    top           key = -teacher rank (deterministic: the highest teacher scores)
    random        key = Gumbel noise                                     (uniform)
    softmax       key = s/T + Gumbel noise                   (p ∝ softmax(s/T), NV-Retriever)
    top1-softmax  as softmax, the first eligible always kept
    simans        key = -a (s - s(p) - b)^2 + Gumbel noise               (SimANS)

Adding independent Gumbel(0, 1) noise to log-weights and keeping the n largest is exactly
sequential sampling without replacement with p ∝ exp(log-weight) (the Gumbel-top-k trick,
Plackett-Luce); it works in log space, so large or tiny weights neither overflow nor underflow.

The noise is a counter-based hash (SplitMix64) of a per-query 64-bit seed and the candidate's
position in the pool, so it needs no generator object, vectorises over many queries at once,
and does not depend on query order, batching or input row order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from hnmine.errors import OptionError
from hnmine.registry import Registry

# log-weights of a pool: (scores, reference positive score per element, effective options)
LogWeights = Callable[[np.ndarray, np.ndarray, Any], np.ndarray]


@dataclass(frozen=True)
class Sampler:
    name: str
    description: str
    log_weights: LogWeights | None  # None: deterministic, the first n of the pool
    keep_first: bool = False  # the best eligible candidate is always kept (top1-softmax)
    # sampler-specific options it reads, with their defaults (None = no default)
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


def simans_log_weights(s: np.ndarray, positive_score, a: float, b: float) -> np.ndarray:
    """log p(n) up to a constant: -a * (s(n) - s(p) - b)^2 (SimANS)."""
    d = np.asarray(s, dtype=np.float64) - positive_score - b
    return -a * d * d


SAMPLERS.add("top", Sampler("top", "the highest teacher scores", None))
SAMPLERS.add(
    "random", Sampler("random", "uniform without replacement", lambda s, sp, o: np.zeros(s.shape[0]), defaults={"sample_pool": None})
)
SAMPLERS.add(
    "softmax",
    Sampler(
        "softmax",
        "softmax(s/T) over the top-k eligible, without replacement",
        lambda s, sp, o: np.asarray(s, dtype=np.float64) / o.temperature,
        defaults={"sample_pool": DEFAULT_SAMPLE_POOL, "temperature": DEFAULT_TEMPERATURE},
    ),
)
SAMPLERS.add(
    "top1-softmax",
    Sampler(
        "top1-softmax",
        "the best one, then softmax(s/T) over the rest of the top-k",
        lambda s, sp, o: np.asarray(s, dtype=np.float64) / o.temperature,
        keep_first=True,
        defaults={"sample_pool": DEFAULT_SAMPLE_POOL, "temperature": DEFAULT_TEMPERATURE},
    ),
)
SAMPLERS.add(
    "simans",
    Sampler(
        "simans",
        "p ∝ exp(-a (s(n) - s(p) - b)^2), without replacement",
        lambda s, sp, o: simans_log_weights(s, sp, o.simans_a, o.simans_b),
        defaults={"sample_pool": None, "simans_a": DEFAULT_SIMANS_A, "simans_b": DEFAULT_SIMANS_B},
    ),
)


def sampler_names() -> list[str]:
    return SAMPLERS.names()


def get_sampler(name: str) -> Sampler:
    return SAMPLERS.get(name)


# ------------------------------------------------------------------------------------ noise

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def query_seed(seed: int, purpose: str, query_id: str) -> int:
    """A 64-bit seed that depends only on (seed, purpose, query id)."""
    digest = hashlib.sha256(f"{seed}\x1f{purpose}\x1f{query_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def hash64(base: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """SplitMix64 output number `counter` of the stream seeded by `base` (elementwise)."""
    z = np.asarray(base, dtype=np.uint64) + (np.asarray(counter, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def uniform01(base: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """Uniform on the open interval (0, 1), 53 random bits."""
    return ((hash64(base, counter) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def gumbel(base: np.ndarray, counter: np.ndarray) -> np.ndarray:
    return -np.log(-np.log(uniform01(base, counter)))


# ------------------------------------------------------------------------------------ drawing


def draw(
    sampler: Sampler,
    segment: np.ndarray,
    position: np.ndarray,
    scores: np.ndarray,
    positive_score: np.ndarray,
    base: np.ndarray,
    n: int,
    opts,
    query_name: Callable[[int], str],
) -> np.ndarray:
    """Pick n per segment (query) from its pool; returns a boolean mask over the inputs.

    segment         query of each eligible candidate (non-decreasing)
    position        0-based position among the query's eligible candidates (teacher order)
    scores          teacher scores; positive_score: the query's reference score, per element
    base            the query's noise seed (query_seed(seed, "sample", query_id)), per element
    query_name(seg) the query id of a segment, for error messages
    Candidates outside the pool (position >= sample_pool) are never picked.
    """
    order = draw_order(sampler, segment, position, scores, positive_score, base, opts, query_name)
    return (order >= 0) & (order < n)


def draw_order(sampler: Sampler, segment, position, scores, positive_score, base, opts, query_name) -> np.ndarray:
    """Each candidate's place in its query's draw (0 = drawn first; -1 outside the pool), the arguments as
    `draw`'s: the n first are the draw of n, and the next ones are what the sampler would draw after them
    (sequential sampling without replacement goes on where it stopped)."""
    size = segment.shape[0]
    in_pool = np.ones(size, dtype=bool) if opts.sample_pool is None else position < opts.sample_pool
    if sampler.log_weights is None:
        return np.where(in_pool, position, -1)
    logw = sampler.log_weights(scores, positive_score, opts)
    if sampler.name == "simans":
        _check_simans(segment, logw, in_pool, scores, positive_score, opts, query_name)
    key = logw + gumbel(base, position)
    if sampler.keep_first:
        key = np.where(position == 0, np.inf, key)
    key = np.where(in_pool, key, -np.inf)
    order = np.lexsort((position, -key, segment))  # by segment, key descending
    seg_sorted = segment[order]
    starts = np.flatnonzero(np.r_[True, seg_sorted[1:] != seg_sorted[:-1]])
    rank_in_seg = np.arange(size) - np.repeat(starts, np.diff(np.r_[starts, size]))
    ranks = np.empty(size, dtype=np.int64)
    ranks[order] = rank_in_seg
    return np.where(in_pool, ranks, -1)


def _check_simans(segment, logw, in_pool, scores, positive_score, opts, query_name) -> None:
    """Raise when every weight of a query's pool is exactly 0 in float64: no candidate is
    anywhere near s(p) + b on this score scale, and the "sample" would be a deterministic pick
    of the closest ones."""
    lw = np.where(in_pool, logw, -np.inf)
    starts = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]])
    top = np.maximum.reduceat(lw, starts)
    dead = np.flatnonzero(np.exp(top) == 0.0)
    if dead.size == 0:
        return
    i = int(starts[dead[0]])
    end = int(starts[dead[0] + 1]) if dead[0] + 1 < starts.size else segment.shape[0]
    pool = scores[i:end][in_pool[i:end]]
    sp = float(np.asarray(positive_score)[i])
    raise OptionError(
        f"simans: every weight exp(-a*(s(n)-s(p)-b)^2) underflows to 0 for query "
        f"'{query_name(int(segment[i]))}' (a={opts.simans_a:g}, b={opts.simans_b:g}, positive "
        f"score {sp:.4g}, candidate scores {float(pool.min()):.4g}..{float(pool.max()):.4g}); the "
        f"teacher scores are on a scale of tens (raw dot products or logits?): use a smaller "
        f"--simans-a (about 1/(score spread)^2) or a teacher with normalised scores"
    )
