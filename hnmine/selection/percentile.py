"""--max-score-percentile P: a threshold per teacher, from that teacher's own scores of the known positives.

Teachers are not calibrated to one another: a cross-encoder's logits, a bi-encoder's cosines and an ensemble's
z-scores have nothing in common, so one absolute --max-score across them is a known trap (NeMo Automodel, the
2026 trackers). Instead each teacher t gets its own threshold: the P-th percentile (numpy's linear
interpolation) of t's scores of every known positive of the run, and a candidate is dropped
(`above_score_percentile`) when any teacher scores it above its threshold. Which teachers: the `teacher_<label>`
columns of scores.parquet (an ensemble's members, a cascade's first and strong teachers), else `teacher_score`.
The thresholds are computed over the whole run, before the filter's parts (hnmine.stages.filter), and recorded.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hnmine.errors import InputError


def teacher_columns(scores: pa.Table) -> list[str]:
    """The columns of each teacher's own scores: `teacher_<label>`, or `teacher_score` for one teacher."""
    own = [c for c in scores.column_names if c.startswith("teacher_") and c != "teacher_score"]
    return own or ["teacher_score"]


def percentile_thresholds(scores: pa.Table, percentile: float) -> dict[str, float]:
    """Per teacher column: the `percentile`-th percentile of its scores of the known positives (the rows with
    is_positive). A teacher that scored no positive has no threshold (nothing to compare against)."""
    positive = pc.fill_null(scores.column("is_positive"), False)
    out = {}
    for name in teacher_columns(scores):
        values = pc.filter(scores.column(name), positive).to_numpy(zero_copy_only=False).astype(np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            out[name] = float(np.percentile(values, percentile))
    return out


def above_thresholds(scores: pa.Table, thresholds: dict[str, float]) -> np.ndarray:
    """Per row of `scores`: some teacher scored it above its threshold (a teacher column missing from the table
    is an error: the thresholds were computed on other scores)."""
    above = np.zeros(scores.num_rows, dtype=bool)
    for name, threshold in thresholds.items():
        if name not in scores.column_names:
            raise InputError(f"scores.parquet: no column '{name}' (the score percentile thresholds name it)")
        values = scores.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        above |= np.nan_to_num(values, nan=-np.inf) > threshold  # a score that is missing is no teacher's word
    return above
