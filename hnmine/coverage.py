"""What a "full" query is, defined once (the filter's counts, the report and `hnmine eval` use it).

A query is full when it got every negative it was meant to get: --num-negatives mined ones plus
--random-negatives random ones, i.e. its query_summary `shortfall` is 0. A query without a positive
or without candidates is never full (its shortfall is the whole target, which is at least 1).
"""

from __future__ import annotations

import numpy as np


def full_queries(shortfall: np.ndarray) -> np.ndarray:
    """Per query of query_summary.parquet: True when it got all its negatives."""
    return np.asarray(shortfall) == 0
