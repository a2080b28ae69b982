"""The one place the rules are applied to candidate rows (both selection paths call it)."""

from __future__ import annotations

import numpy as np

from hnmine.methods.rules import (
    ABOVE_SCORE_PERCENTILE,
    FALSE_NEGATIVE_RULES,
    KNOWN_POSITIVE,
    NEAR_DUPLICATE,
    OUTSIDE_RANK_WINDOW,
    REASON_CODE,
    SAME_TEXT,
    SAME_TEXT_NEGATIVE,
    known_positive,
    near_duplicate_of_positive,
    outside_rank_window,
    same_text_as_negative,
    score_reasons,
)
from hnmine.selection.options import FilterOptions
from hnmine.selection.prepare import PreparedRows
from hnmine.selection.structural import CosineToPositives, corpus_text_codes, has_text_of_a_positive

NOT_DROPPED = -1  # the reason code of a candidate that passes every rule (eligible)
_SUSPICION_CODES = np.array([REASON_CODE[r] for r in FALSE_NEGATIVE_RULES], dtype=np.int8)


class CandidateReasons:
    """Reason codes (REASON_CODE, first matching rule) of candidate rows.

    What does not depend on depth is computed once for every row: known positive, same text and
    the score rules. The near-duplicate rule needs vectors, so it is computed for a row the
    first time the row is inside a query's depth. The rank window depends on the depth (a
    deeper candidate can take a low teacher rank), so it is applied on every call.
    """

    def __init__(self, rows: PreparedRows, opts: FilterOptions, cosine: CosineToPositives | None) -> None:
        self.rows = rows
        self.opts = opts
        self.cosine = cosine
        self.structural = np.full(rows.query.size, NOT_DROPPED, dtype=np.int8)
        self.structural[known_positive(rows.is_positive)] = REASON_CODE[KNOWN_POSITIVE]
        cand = rows.cand_rows
        # one text key per document, for both same-text rules (the candidates' and the positives')
        doc_code = corpus_text_codes(rows, np.concatenate([rows.corpus_row[cand], rows.corpus_row[rows.pos_rows]]))
        same_text = has_text_of_a_positive(rows, rows.query[cand], rows.corpus_row[cand], doc_code)
        self.text_code = np.full(rows.query.size, -1, dtype=np.int64)
        self.text_code[cand] = doc_code[rows.corpus_row[cand]]
        self.structural[cand[same_text]] = REASON_CODE[SAME_TEXT]
        excluded = cand[rows.excluded_code[cand] >= 0]  # earlier in REASONS than the same-text rule
        self.structural[excluded] = rows.excluded_code[excluded]
        self.near_duplicate_checked = np.zeros(rows.query.size, dtype=bool)
        with np.errstate(invalid="ignore"):  # s(p) is NaN for queries without positives
            self.score_reason = score_reasons(rows.score, rows.positive_score[rows.query], opts)
        # codes follow REASONS: the first matching rule is the lowest code
        percentile = REASON_CODE[ABOVE_SCORE_PERCENTILE]
        self.score_reason[rows.above_percentile & ((self.score_reason < 0) | (self.score_reason > percentile))] = percentile
        # A candidate judged not relevant is never dropped as a suspected false negative.
        self.exempt = rows.judged_not_relevant
        suspicion = np.isin(self.structural, _SUSPICION_CODES) & self.exempt
        self.structural[suspicion] = NOT_DROPPED
        self.score_reason[np.isin(self.score_reason, _SUSPICION_CODES) & self.exempt] = NOT_DROPPED
        self.near_duplicate_checked[self.exempt] = True

    def codes(self, cand_rows: np.ndarray, teacher_rank: np.ndarray) -> np.ndarray:
        """The reason code of each of `cand_rows` (NOT_DROPPED: eligible).

        cand_rows     candidate rows of one or more queries, each query's rows at its depth
        teacher_rank  their 1-based teacher rank within their query at that depth
        """
        self._check_near_duplicates(cand_rows)
        structural = self.structural[cand_rows]
        code = np.where(structural != NOT_DROPPED, structural, self.score_reason[cand_rows])
        if self.opts.range_min is not None or self.opts.range_max is not None:
            window = outside_rank_window(teacher_rank, self.opts.range_min, self.opts.range_max)
            code[window & (structural == NOT_DROPPED) & ~self.exempt[cand_rows]] = REASON_CODE[OUTSIDE_RANK_WINDOW]
        # Last: only what passed every rule can repeat the text of a negative ranked above it.
        eligible = np.flatnonzero(code == NOT_DROPPED)
        repeat = same_text_as_negative(self.rows.query[cand_rows[eligible]], self.text_code[cand_rows[eligible]])
        code[eligible[repeat]] = REASON_CODE[SAME_TEXT_NEGATIVE]
        return code

    def _check_near_duplicates(self, cand_rows: np.ndarray) -> None:
        """Apply the near-duplicate rule to those of `cand_rows` not checked yet (one
        doc_vectors call) that no earlier rule drops."""
        if self.cosine is None:
            return
        unchecked = ~self.near_duplicate_checked[cand_rows]
        todo = cand_rows[unchecked & (self.structural[cand_rows] == NOT_DROPPED)]
        if todo.size == 0:
            return
        self.near_duplicate_checked[todo] = True
        cosine = self.cosine.max_cosine(self.rows.query[todo], self.rows.corpus_row[todo])
        near = todo[near_duplicate_of_positive(cosine, self.opts.dedup_threshold)]
        self.structural[near] = REASON_CODE[NEAR_DUPLICATE]
