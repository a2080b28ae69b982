"""Filter stage: the selection core lives in hnmine.selection; this module re-exports it."""

from hnmine.methods import DEFAULT_METHOD, effective_options, resolve_options
from hnmine.selection import (
    DROPPED_SCHEMA,
    NEGATIVES_SCHEMA,
    QUERY_SUMMARY_SCHEMA,
    STATUSES,
    FilterOptions,
    FilterResult,
    filter_candidates,
    text_keys,
)

__all__ = [
    "DEFAULT_METHOD",
    "DROPPED_SCHEMA",
    "FilterOptions",
    "FilterResult",
    "NEGATIVES_SCHEMA",
    "QUERY_SUMMARY_SCHEMA",
    "STATUSES",
    "effective_options",
    "filter_candidates",
    "resolve_options",
    "text_keys",
]
