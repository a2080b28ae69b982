"""filter_candidates: from teacher-scored candidates to the filter's three tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa

from hnmine.methods import resolve_options
from hnmine.selection.options import FilterOptions
from hnmine.selection.percentile import percentile_thresholds
from hnmine.selection.prepare import PreparedRows, prepare_rows
from hnmine.selection.random_negatives import RandomNegatives
from hnmine.selection.reasons import CandidateReasons
from hnmine.selection.reuse import cap_negative_reuse
from hnmine.selection.select import Selector
from hnmine.selection.structural import CosineToPositives, DocVectors
from hnmine.selection.tables import FilterResult, build_result

# Queries are selected in chunks of about this many rows: large enough to vectorise well, small
# enough to bound the memory of one doc_vectors call and to report progress often.
_CHUNK_ROWS = 32768


def filter_candidates(
    scores: pa.Table,
    corpus: pa.Table,
    options: FilterOptions,
    doc_vectors: DocVectors | None = None,
    query_ids: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    excluded: pa.Table | None = None,
    reuse_cap: bool = True,
    score_thresholds: dict[str, float] | None = None,
) -> FilterResult:
    """Choose the negatives of every query; see hnmine.selection and docs/tables.md.

    scores       scores.parquet (query_id, doc_id, rank, source, is_positive, teacher_score, ...)
    corpus       corpus.parquet (doc_id, title, text): same-text rule and random negatives
    options      FilterOptions; method defaults are merged in (resolve_options)
    doc_vectors  doc ids -> L2-normalised float32 vectors (n x d) for the near-duplicate rule;
                 None skips that rule (stats["near_duplicate_check"] says so)
    query_ids    query order (queries.parquet), queries without rows included; None = order of
                 first appearance in `scores`
    progress     called with the number of queries finished since the last call
    excluded     (query_id, doc_id, reason) pairs that may never be negatives: candidates among them are
                 dropped with the reason, the others are never drawn as random negatives
    score_thresholds  per teacher column, the --max-score-percentile threshold; None: computed from `scores`
                 (hnmine.selection.percentile; a part of the queries is given the whole run's)
    reuse_cap    apply --max-negative-reuse (hnmine.selection.reuse); False for a part of the queries, whose
                 result keeps its spares for the cap over every part

    Raises OptionError / UnknownName for bad options, InputError for bad rows (null ids, a
    non-finite teacher score, a candidate missing from the corpus, a (query, doc) pair twice).
    """
    opts = resolve_options(options)
    if opts.max_score_percentile is None:
        score_thresholds = None
    elif score_thresholds is None:
        score_thresholds = percentile_thresholds(scores, opts.max_score_percentile)
    rows = prepare_rows(scores, corpus, query_ids, opts.positive_reference, excluded, score_thresholds)
    selector = make_selector(rows, opts, doc_vectors)
    record = selector.new_record()
    random = None
    if opts.random_negatives > 0:
        random = RandomNegatives(rows, opts.random_negatives, opts.seed, selector.reasons.cosine, opts.dedup_threshold)
    for first, last in query_chunks(rows):
        selector.select_queries(first, last, record)
        if random is not None:
            random.draw(first + np.flatnonzero(rows.n_positives[first:last] > 0))
        if progress is not None:
            progress(last - first)
    result = build_result(rows, opts, record, random, _near_duplicate_check(opts, selector))
    return cap_negative_reuse(result, opts) if reuse_cap else result


def make_selector(rows: PreparedRows, opts: FilterOptions, doc_vectors: DocVectors | None = None) -> Selector:
    """A Selector over prepared rows (`opts`: effective options, from resolve_options); the
    near-duplicate rule runs only with doc_vectors and a dedup_threshold."""
    cosine = None
    if doc_vectors is not None and opts.dedup_threshold is not None:
        cosine = CosineToPositives(rows, doc_vectors)
    return Selector(rows, CandidateReasons(rows, opts, cosine), opts)


def query_chunks(rows: PreparedRows) -> Iterator[tuple[int, int]]:
    """(first, last) query ranges of about _CHUNK_ROWS rows each (at least one query)."""
    first, nq = 0, rows.n_queries
    while first < nq:
        last = int(np.searchsorted(rows.query_start, rows.query_start[first] + _CHUNK_ROWS, side="right")) - 1
        last = min(max(last, first + 1), nq)
        yield first, last
        first = last


def _near_duplicate_check(opts: FilterOptions, selector: Selector) -> str:
    if opts.dedup_threshold is None:
        return "disabled"
    if selector.reasons.cosine is None:
        return "skipped: no embeddings"
    return f"cosine >= {opts.dedup_threshold:g}"
