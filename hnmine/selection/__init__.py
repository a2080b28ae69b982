"""The filter's selection core: from teacher-scored candidates to kept negatives, dropped
candidates and a per-query summary (docs/tables.md: negatives.parquet, dropped.parquet,
query_summary.parquet).

Pure numpy + pyarrow: no model is loaded here. Near-duplicate detection uses vectors handed in by
the caller (`doc_vectors`), typically the embedding cache of the index stage.

Per query:
  1. reference score s(p): min (default), mean or max of the teacher scores of its positives;
  2. candidates: the non-positive rows with retrieval rank <= depth, ranked by teacher score
     (descending; ties broken by retrieval rank, then doc_id) -> teacher rank 1..n;
  3. rules, first match wins, in the order of the reasons of docs/tables.md (each one function
     in hnmine.methods.rules): known_positive, same_text_as_positive,
     near_duplicate_of_positive, outside_rank_window, above_max_score, below_min_score,
     within_margin_of_positive, within_relative_margin_of_positive;
  4. look deeper: fewer than num_negatives eligible -> depth += depth_step (up to max_depth or
     the deepest rank the query has) and redo steps 2-3;
  5. the sampler picks num_negatives of the eligible ones (eligible, not drawn -> not_sampled;
     with sampling "top" the unused eligible ones are not dropped);
  6. random negatives (STAR): random_negatives more, uniform over the corpus outside the query's
     rows in `scores` and never a positive, a same-text or a near-duplicate of one.

Randomness: no generator objects. Every random choice is a counter-based hash (SplitMix64) of
a per-query 64-bit seed, itself SHA-256 of (seed, purpose, query_id), and a counter; results
depend neither on query order nor on batching nor on input row order (hnmine.methods.samplers).

Modules, in the order of the work:
  options           FilterOptions
  prepare           scores.parquet checked, looked up in the corpus, sorted (PreparedRows)
  structural        text codes and cosines to positives, for the structural rules
  reasons           CandidateReasons: the rules applied to candidate rows
  select            Selector: the vectorised path, the look-deeper path, the sampler
  record            SelectionRecord: what each query kept and dropped
  random_negatives  RandomNegatives (STAR)
  tables            FilterResult, the tables (schemas: hnmine.schemas) and stats
  run               filter_candidates
"""

from hnmine.methods.rules import text_keys
from hnmine.selection.options import FilterOptions
from hnmine.selection.run import filter_candidates, make_selector
from hnmine.selection.tables import STATUSES, FilterResult

__all__ = [
    "STATUSES",
    "FilterOptions",
    "FilterResult",
    "filter_candidates",
    "make_selector",
    "text_keys",
]
