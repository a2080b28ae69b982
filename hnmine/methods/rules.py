"""The filter rules, each in one place, one function each, in the order of REASONS.

A candidate is dropped by the first rule that matches, in the order of REASONS (the order of the
reasons in docs/tables.md). Every rule is a pure, vectorised function of per-candidate values;
the selection code (hnmine.selection) gathers those values (text codes, cosines, teacher ranks,
scores) and applies the rules, and never re-implements one.

All score comparisons are made in float64 on the float32 teacher scores; thresholds are float64.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KNOWN_POSITIVE = "known_positive"
# Candidates that became positives by a verdict (hnmine.judgments): a person's or a file's, or the teacher's
# (--relabel). The selection sees them as known positives; the filter stage names why they are positives.
JUDGED_RELEVANT = "judged_relevant"
RELABELLED = "relabelled_positive"
# A positive of another query with exactly the same text: as a negative it would contradict that
# query's training row (the same anchor text with the document as positive and as negative).
SAME_TEXT_QUERY_POSITIVE = "positive_of_same_text_query"
SAME_TEXT = "same_text_as_positive"
NEAR_DUPLICATE = "near_duplicate_of_positive"
OUTSIDE_RANK_WINDOW = "outside_rank_window"
ABOVE_MAX_SCORE = "above_max_score"
# Some teacher scored it above the --max-score-percentile of its own scores of the known positives
# (hnmine.selection.percentile).
ABOVE_SCORE_PERCENTILE = "above_score_percentile"
BELOW_MIN_SCORE = "below_min_score"
WITHIN_MARGIN = "within_margin_of_positive"
WITHIN_RELATIVE_MARGIN = "within_relative_margin_of_positive"
# The text of a candidate ranked above it for the same query that passed every rule: a second copy of one
# text adds nothing to a query's negatives (an n-tuple row of identical negatives).
SAME_TEXT_NEGATIVE = "same_text_as_negative"
NOT_SAMPLED = "not_sampled"
# Chosen, but the document is already a negative of --max-negative-reuse other queries (hnmine.selection.reuse).
NEGATIVE_REUSE_CAP = "negative_reuse_cap"

REASONS: tuple[str, ...] = (
    KNOWN_POSITIVE,
    JUDGED_RELEVANT,
    RELABELLED,
    SAME_TEXT_QUERY_POSITIVE,
    SAME_TEXT,
    NEAR_DUPLICATE,
    OUTSIDE_RANK_WINDOW,
    ABOVE_MAX_SCORE,
    ABOVE_SCORE_PERCENTILE,
    BELOW_MIN_SCORE,
    WITHIN_MARGIN,
    WITHIN_RELATIVE_MARGIN,
    SAME_TEXT_NEGATIVE,
    NOT_SAMPLED,
    NEGATIVE_REUSE_CAP,
)
REASON_CODE = {r: i for i, r in enumerate(REASONS)}
# The rules that drop a candidate because it may be relevant (a suspected false negative). A candidate
# a person judged not relevant (hnmine.judgments) is exempt from them; the others still apply.
FALSE_NEGATIVE_RULES: tuple[str, ...] = (
    SAME_TEXT,
    NEAR_DUPLICATE,
    OUTSIDE_RANK_WINDOW,
    ABOVE_MAX_SCORE,
    ABOVE_SCORE_PERCENTILE,
    WITHIN_MARGIN,
    WITHIN_RELATIVE_MARGIN,
)


class ScoreRuleOptions(Protocol):
    """The options the score rules read (an effective FilterOptions has them all)."""

    @property
    def max_score(self) -> float | None: ...
    @property
    def min_score(self) -> float | None: ...
    @property
    def margin(self) -> float | None: ...
    @property
    def relative_margin(self) -> float | None: ...


# ------------------------------------------------------------------ 1. known_positive


def known_positive(is_positive: np.ndarray) -> np.ndarray:
    """A known positive (qrels) is never a negative; retrieved ones are written as dropped."""
    return np.asarray(is_positive, dtype=bool)


# ------------------------------------------------------------------ 2. same_text_as_positive


def text_keys(titles: pa.Array, texts: pa.Array) -> pa.Array:
    """Normalised title + text compared by the same-text rule: title and text joined with a
    space, Unicode NFC, every run of whitespace collapsed to one space, trimmed; case-sensitive
    (a copy of a passage keeps its casing; case variants are left to the near-duplicate rule).

    Equivalent to Python's `" ".join(unicodedata.normalize("NFC", title + " " + text).split())`.
    """
    titles = pc.fill_null(titles, "")
    texts = pc.fill_null(texts, "")
    joined = pc.binary_join_element_wise(titles, texts, " ")
    joined = pc.utf8_normalize(joined, form="NFC")
    words = pc.utf8_split_whitespace(joined)
    return pc.utf8_trim_whitespace(pc.binary_join(words, " "))


def same_text_as_positive(query: np.ndarray, text: np.ndarray, positive_query: np.ndarray, positive_text: np.ndarray) -> np.ndarray:
    """Per element i: text[i] is the text of one of query[i]'s positives.

    Texts are integer codes of `text_keys` (equal codes for equal keys); positive_query and
    positive_text list every (query, text) of a positive.
    """
    if positive_text.size == 0 or text.size == 0:
        return np.zeros(text.shape, dtype=bool)
    n_texts = int(max(text.max(), positive_text.max())) + 1
    pairs = np.unique(positive_query * n_texts + positive_text)  # sorted (query, text) keys
    key = query * n_texts + text
    return pairs[np.minimum(np.searchsorted(pairs, key), pairs.size - 1)] == key


def same_text_as_negative(query: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Per element i of candidates that passed every other rule, grouped by query in teacher order: an
    earlier element of the same query has the same text (codes of `text_keys`). The first copy stays."""
    repeat = np.zeros(text.shape, dtype=bool)
    if text.size < 2:
        return repeat
    key = query.astype(np.int64) * (int(text.max()) + 1) + text
    _, first = np.unique(key, return_index=True)
    repeat[:] = True
    repeat[first] = False
    return repeat


# ------------------------------------------------------------------ 3. near_duplicate_of_positive


def near_duplicate_of_positive(max_cosine: np.ndarray, threshold: float | None) -> np.ndarray:
    """Cosine to the closest of the query's positives >= threshold (None: the rule is off).

    `max_cosine` is -inf where the query has no positive with a vector.
    """
    if threshold is None:
        return np.zeros(max_cosine.shape, dtype=bool)
    return max_cosine >= threshold


# ------------------------------------------------------------------ 4. outside_rank_window


def outside_rank_window(teacher_rank: np.ndarray, range_min: int | None, range_max: int | None) -> np.ndarray:
    """Teacher rank (1-based) outside [range_min, range_max], both inclusive (shifted top-k)."""
    out = np.zeros(teacher_rank.shape, dtype=bool)
    if range_min is not None:
        out |= teacher_rank < range_min
    if range_max is not None:
        out |= teacher_rank > range_max
    return out


# ------------------------------------------------------------------ 5.-8. the score rules


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


def margin_threshold(positive_score: np.ndarray | float, margin: float) -> np.ndarray | float:
    """TopK-MarginPos / GISTEmbed absolute: a negative must score below s(p) - margin."""
    return positive_score - margin


def relative_margin_threshold(positive_score: np.ndarray | float, relative_margin: float) -> np.ndarray | float:
    """TopK-PercPos / GISTEmbed relative, sign-safe: s(p) - |s(p)| * m.

    Written as s(p) * (1 - m) the threshold rises *above* s(p) when s(p) < 0 (a published bug);
    this form stays at or below s(p) for every sign.
    """
    return positive_score - np.abs(positive_score) * relative_margin


def within_margin_of_positive(s: np.ndarray, positive_score: np.ndarray | float, margin: float | None) -> np.ndarray:
    """Keep n only when s(n) < s(p) - margin; drop the rest."""
    if margin is None:
        return np.zeros(s.shape, dtype=bool)
    return s >= margin_threshold(positive_score, margin)


def within_relative_margin_of_positive(s: np.ndarray, positive_score: np.ndarray | float, relative_margin: float | None) -> np.ndarray:
    """Keep n only when s(n) < s(p) - |s(p)| * relative_margin; drop the rest."""
    if relative_margin is None:
        return np.zeros(s.shape, dtype=bool)
    return s >= relative_margin_threshold(positive_score, relative_margin)


def score_reasons(s: np.ndarray, positive_score: np.ndarray | float, opts: ScoreRuleOptions) -> np.ndarray:
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
        (WITHIN_MARGIN, opts.margin, lambda: within_margin_of_positive(s, positive_score, opts.margin)),
        (WITHIN_RELATIVE_MARGIN, opts.relative_margin, lambda: within_relative_margin_of_positive(s, positive_score, opts.relative_margin)),
    )
    for name, value, mask_fn in checks:
        if value is None:
            continue
        hit = mask_fn() & (reason < 0)
        reason[hit] = REASON_CODE[name]
    return reason
