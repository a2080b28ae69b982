"""The hidden-positive protocol: hand-computed cases and properties."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hnmine.errors import MissingColumn
from hnmine.hide import QRELS_COLUMNS, choose_kept, hide_positives


def qrels_table(rows: list[tuple[str, str, int]], min_relevance: int = 1) -> pa.Table:
    return pa.table(
        {
            "query_id": pa.array([r[0] for r in rows], pa.string()),
            "doc_id": pa.array([r[1] for r in rows], pa.string()),
            "relevance": pa.array([r[2] for r in rows], pa.int32()),
            "is_positive": pa.array([r[2] >= min_relevance for r in rows], pa.bool_()),
        }
    )


def triples(table: pa.Table) -> set[tuple[str, str, int]]:
    return set(zip(table.column("query_id").to_pylist(), table.column("doc_id").to_pylist(), table.column("relevance").to_pylist()))


def test_best_grade_kept_rest_hidden():
    rows = [
        ("q1", "a", 1),
        ("q1", "b", 3),
        ("q1", "c", 2),  # b has the best grade
        ("q2", "x", 1),  # a single positive: kept
        ("q3", "n", 0),
        ("q3", "p", 2),
        ("q3", "r", 1),  # n is a non-positive: stays in kept
    ]
    kept, hidden = hide_positives(qrels_table(rows), seed=7)
    assert triples(kept) == {("q1", "b", 3), ("q2", "x", 1), ("q3", "n", 0), ("q3", "p", 2)}
    assert triples(hidden) == {("q1", "a", 1), ("q1", "c", 2), ("q3", "r", 1)}
    assert kept.column_names == list(QRELS_COLUMNS) and hidden.column_names == list(QRELS_COLUMNS)
    assert kept.schema.field("relevance").type == pa.int32()
    assert dict(zip(kept.column("doc_id").to_pylist(), kept.column("is_positive").to_pylist()))["n"] is False
    assert all(hidden.column("is_positive").to_pylist())


def test_min_relevance_decides_positives():
    # With min_relevance 2, grade-1 rows are non-positives: never hidden, always kept.
    rows = [("q1", "a", 1), ("q1", "b", 2), ("q1", "c", 3), ("q2", "d", 1)]
    kept, hidden = hide_positives(qrels_table(rows, 2), seed=1, min_relevance=2)
    assert triples(kept) == {("q1", "a", 1), ("q1", "c", 3), ("q2", "d", 1)}
    assert triples(hidden) == {("q1", "b", 2)}
    assert kept.column("is_positive").to_pylist() == [False, True, False]


def test_ties_broken_by_seed_reproducibly():
    rows = [("q1", d, 1) for d in "abcdefgh"]
    table = qrels_table(rows)
    chosen = {}
    for seed in range(20):
        kept, hidden = hide_positives(table, seed=seed)
        assert kept.num_rows == 1 and hidden.num_rows == 7
        chosen[seed] = kept.column("doc_id")[0].as_py()
        assert chosen[seed] == hide_positives(table, seed=seed)[0].column("doc_id")[0].as_py()
        assert chosen[seed] == choose_kept(seed, "q1", {d: 1 for d in "abcdefgh"})
    assert len(set(chosen.values())) > 1  # the seed matters


def test_missing_column_lists_columns():
    with pytest.raises(MissingColumn, match="no column 'relevance'"):
        hide_positives(pa.table({"query_id": ["q"], "doc_id": ["d"]}), seed=0)


def test_empty_table():
    kept, hidden = hide_positives(qrels_table([]), seed=0)
    assert kept.num_rows == 0 and hidden.num_rows == 0


# -- properties -----------------------------------------------------------------------------------

qrels_rows = st.lists(
    st.tuples(st.sampled_from([f"q{i}" for i in range(6)]), st.sampled_from([f"d{i}" for i in range(10)]), st.integers(0, 3)),
    max_size=40,
    unique_by=lambda t: (t[0], t[1]),  # normalised qrels hold one row per (query, doc)
)


@settings(max_examples=150, deadline=None)
@given(rows=qrels_rows, seed=st.integers(0, 2**32), min_rel=st.integers(1, 3), perm_seed=st.randoms())
def test_properties(rows, seed, min_rel, perm_seed):
    table = qrels_table(rows, min_rel)
    kept, hidden = hide_positives(table, seed=seed, min_relevance=min_rel)
    positives = {(q, d, r) for q, d, r in rows if r >= min_rel}
    kept_t, hidden_t = triples(kept), triples(hidden)

    # Every row lands in exactly one table; hidden rows are all positives.
    assert kept.num_rows + hidden.num_rows == len(rows)
    assert kept_t | hidden_t == set(rows) and not (kept_t & hidden_t)
    assert hidden_t <= positives

    # Each query with a positive keeps exactly one, and it has the query's best grade.
    for q in {q for q, _, _ in positives}:
        kept_pos = [(d, r) for qq, d, r in kept_t if qq == q and r >= min_rel]
        assert len(kept_pos) == 1
        assert kept_pos[0][1] == max(r for qq, _, r in positives if qq == q)

    # Same seed, same result; row order irrelevant.
    again_kept, again_hidden = hide_positives(table, seed=seed, min_relevance=min_rel)
    assert again_kept.equals(kept) and again_hidden.equals(hidden)
    shuffled = list(rows)
    perm_seed.shuffle(shuffled)
    s_kept, s_hidden = hide_positives(qrels_table(shuffled, min_rel), seed=seed, min_relevance=min_rel)
    assert triples(s_kept) == kept_t and triples(s_hidden) == hidden_t
