"""A pre-mined dataset as the candidate source (--premined): its lists are the candidates, nothing is searched;
and its scores as the teacher's, where it has them. Pure functions over the run's tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hnmine.schemas import CANDIDATE_SCHEMA

SOURCE = "premined"  # the candidates' `source`


def candidates_from_premined(premined: pa.Table, qrels: pa.Table) -> pa.Table:
    """The candidate table of a pre-mined run: every document its file lists for a query, in its rank, with the
    file's score (null where it has none); `is_positive` from the run's qrels (a positive hidden by
    --hide-positives is a candidate like any other)."""
    positives = qrels.filter(qrels.column("is_positive"))
    is_positive = pc.is_in(_pair_keys(premined), value_set=_pair_keys(positives).combine_chunks())
    n = premined.num_rows
    return pa.table(
        {
            "query_id": premined.column("query_id"),
            "doc_id": premined.column("doc_id"),
            "rank": premined.column("rank"),
            "score": premined.column("score"),
            "source": pa.array([SOURCE] * n, pa.string()),
            "is_positive": is_positive,
            "dense_score": pa.nulls(n, pa.float32()),
            "bm25_score": pa.nulls(n, pa.float32()),
        },
        schema=CANDIDATE_SCHEMA,
    )


def check_the_runs_file(run, premined) -> None:
    """A stage command given another --premined file than the one the run's inputs stage read (`hnmine retrieve
    --premined OTHER`) would name one file and use the other's lists: refused (RunDirError)."""
    from pathlib import Path

    from hnmine.errors import RunDirError
    from hnmine.io.hashing import content_hash

    m = run.manifest("inputs")
    read = ((m.stats.get("identity") or {}).get("premined") if m is not None else None) or {}
    if not isinstance(read, dict) or not read or not Path(premined).exists():
        return  # no pre-mined file read yet: reading its table says what to run
    if read.get("path") == str(Path(premined).resolve()) or read.get("sha256") == content_hash(Path(premined)):
        return
    raise RunDirError(
        f"{run.path}: its inputs stage read --premined {read.get('path') or '(given in memory)'}, not {premined}; rerun "
        f"`hnmine index --premined {premined}` (or `hnmine mine`) with --out {run.path}"
    )


def _pair_keys(table: pa.Table) -> pa.ChunkedArray:
    """query id and doc id joined by a character neither holds as written (NUL), to match pairs in Arrow."""
    return pc.binary_join_element_wise(table.column("query_id"), table.column("doc_id"), "\x00")


def premined_scores(table: pa.Table, file: str) -> np.ndarray:
    """The teacher's scores of the score stage's rows (candidates, and the positives added to them): the file's.
    A pair the file has no score of (a positive it does not list) is an error: no score is made up."""
    from hnmine.errors import InputError

    scores = table.column("score")
    if scores.null_count:
        i = int(np.flatnonzero(scores.is_null().to_numpy(zero_copy_only=False))[0])
        what = "positive" if table.column("is_positive")[i].as_py() else "candidate"
        raise InputError(
            f"{file}: no score of query {table.column('query_id')[i]} and its {what} {table.column('doc_id')[i]}; the file's "
            f"scores are the teacher's only when every pair has one: give --teacher to score every pair"
        )
    return scores.to_numpy().astype(np.float32)
