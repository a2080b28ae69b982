"""The filter rules, each in one place.

A candidate is dropped by the first rule that matches, in the order of REASONS (the order of the
reasons in docs/tables.md). The first three need data beyond the score (qrels, corpus text,
embeddings) and are computed by the filter stage; the score rules below are pure, vectorised
functions of a query's candidates.

All comparisons are made in float64 on the float32 teacher scores; thresholds are float64.
"""

from __future__ import annotations

import numpy as np

KNOWN_POSITIVE = "known_positive"
SAME_TEXT = "same_text_as_positive"
NEAR_DUPLICATE = "near_duplicate_of_positive"
OUTSIDE_RANK_WINDOW = "outside_rank_window"
ABOVE_MAX_SCORE = "above_max_score"
BELOW_MIN_SCORE = "below_min_score"
WITHIN_MARGIN = "within_margin_of_positive"
WITHIN_RELATIVE_MARGIN = "within_relative_margin_of_positive"
NOT_SAMPLED = "not_sampled"

REASONS: tuple[str, ...] = (
    KNOWN_POSITIVE,
    SAME_TEXT,
    NEAR_DUPLICATE,
    OUTSIDE_RANK_WINDOW,
    ABOVE_MAX_SCORE,
    BELOW_MIN_SCORE,
    WITHIN_MARGIN,
    WITHIN_RELATIVE_MARGIN,
    NOT_SAMPLED,
)
REASON_CODE = {r: i for i, r in enumerate(REASONS)}


def outside_rank_window(teacher_rank: np.ndarray, range_min: int | None, range_max: int | None) -> np.ndarray:
    """Teacher rank (1-based) outside [range_min, range_max], both inclusive (shifted top-k)."""
    out = np.zeros(teacher_rank.shape, dtype=bool)
    if range_min is not None:
        out |= teacher_rank < range_min
    if range_max is not None:
        out |= teacher_rank > range_max
    return out


def above_max_score(s: np.ndarray, max_score: float | None) -> np.ndarray:
    """TopK-Abs: drop n when s(n) > max_score."""
    if max_score is None:
        return np.zeros(s.shape, dtype=bool)
    return s > max_score


def below_min_score(s: np.ndarray, min_score: float | None) -> np.ndarray:
    """Drop n when s(n) < min_score (too easy to teach anything)."""
    if min_score is None:
        return np.zeros(s.shape, dtype=bool)
    return s < min_score


def margin_threshold(positive_score, margin: float):
    """TopK-MarginPos / GISTEmbed absolute: a negative must score below s(p) - margin."""
    return positive_score - margin


def relative_margin_threshold(positive_score, relative_margin: float):
    """TopK-PercPos / GISTEmbed relative, sign-safe: s(p) - |s(p)| * m.

    Written as s(p) * (1 - m) the threshold rises *above* s(p) when s(p) < 0 (a published bug);
    this form stays at or below s(p) for every sign.
    """
    return positive_score - np.abs(positive_score) * relative_margin


def within_margin(s: np.ndarray, positive_score, margin: float | None) -> np.ndarray:
    """Keep n only when s(n) < s(p) - margin; drop the rest."""
    if margin is None:
        return np.zeros(s.shape, dtype=bool)
    return s >= margin_threshold(positive_score, margin)


def within_relative_margin(s: np.ndarray, positive_score, relative_margin: float | None) -> np.ndarray:
    """Keep n only when s(n) < s(p) - |s(p)| * relative_margin; drop the rest."""
    if relative_margin is None:
        return np.zeros(s.shape, dtype=bool)
    return s >= relative_margin_threshold(positive_score, relative_margin)


def score_reasons(s: np.ndarray, positive_score: np.ndarray | float, opts) -> np.ndarray:
    """First matching score rule per candidate, as a reason code (int8; -1 = passes them all).

    Covers the rules that depend only on the candidate's and the positive's teacher scores
    (max/min score, absolute and relative margin), so they can be computed once for every row,
    whatever depth a query ends up using. `positive_score` is a scalar or one value per row;
    `opts` is an effective (resolved) FilterOptions.
    """
    reason = np.full(s.shape, -1, dtype=np.int8)
    checks = (
        (ABOVE_MAX_SCORE, opts.max_score, lambda: above_max_score(s, opts.max_score)),
        (BELOW_MIN_SCORE, opts.min_score, lambda: below_min_score(s, opts.min_score)),
        (WITHIN_MARGIN, opts.margin, lambda: within_margin(s, positive_score, opts.margin)),
        (WITHIN_RELATIVE_MARGIN, opts.relative_margin,
         lambda: within_relative_margin(s, positive_score, opts.relative_margin)),
    )
    for name, value, mask_fn in checks:
        if value is None:
            continue
        hit = mask_fn() & (reason < 0)
        reason[hit] = REASON_CODE[name]
    return reason
