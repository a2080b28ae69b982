"""The score stage's teacher cascade (--rerank-teacher): the strong teacher scores the positives and each query's
budget of candidates by the first teacher(s), and the budget doubles for the queries the filter would leave
short, until none is or they have no candidate left to score. The rule and why the loop lives here:
hnmine.teachers.cascade."""

from __future__ import annotations

from collections.abc import Callable

from hnmine.pipeline import Context


def run_cascade(ctx: Context, table, raw: dict, first, strong_teacher, score: Callable):
    """(scores.parquet: the rows the strong teacher scored, with every teacher's column and its score as
    teacher_score; the cascade's stats). `raw`: the first teachers' scores of every row of `table`, `first`
    their combined score (what ranks the candidates for the budget); `score(teacher, rows)`: the score stage's
    scores of a table's rows by a teacher."""
    import numpy as np
    import pyarrow as pa

    from hnmine.stages.filter import short_queries
    from hnmine.teachers.cascade import DEFAULT_BUDGET, candidate_counts, first_ranks, grow, within_budget

    default = ctx.options.rerank_budget or DEFAULT_BUDGET
    ranks = first_ranks(table, first)
    counts = candidate_counts(table)
    strong = np.full(table.num_rows, np.nan, dtype=np.float32)
    budget: dict[str, int] = {}
    rounds: list[dict] = []
    while True:
        keep = within_budget(table, ranks, budget, default)
        todo = np.flatnonzero(keep & np.isnan(strong))
        if todo.size:
            ctx.reporter.info(f"cascade round {len(rounds) + 1}: {strong_teacher.label} scores {todo.size:,} pairs")
            strong[todo] = score(strong_teacher, table.take(pa.array(todo)))
        scores = _scores_table(table, raw, strong, strong_teacher.label, keep)
        short = short_queries(ctx, scores)
        grown = grow(budget, short, counts, default)
        rounds.append({"pairs_scored": int(todo.size), "queries_short": len(short), "queries_grown": len(grown)})
        if not grown:
            break
        budget.update(grown)
    sizes = [budget.get(q, default) for q in counts]
    stats = {
        "teacher": strong_teacher.label,
        "budget": default,
        "rounds": rounds,
        "strong_pairs_scored": int(np.count_nonzero(~np.isnan(strong))),
        "pairs_first_teacher": table.num_rows,
        "candidates_outside_budget": int(np.count_nonzero(~keep)),
        "queries_grown": len(budget),
        "queries_short": len(short),
        "budgets": {str(b): sizes.count(b) for b in sorted(set(sizes))},
    }
    return scores, stats


def _scores_table(table, raw: dict, strong, strong_label: str, keep):
    """The rows within the budgets, each teacher's own column, the strong teacher's as teacher_score."""
    import numpy as np
    import pyarrow as pa

    rows = pa.array(np.flatnonzero(keep))
    out = table.take(rows)
    if strong_label in raw:  # the same model as a first teacher: its column is the strong one's
        raw = {label: values for label, values in raw.items() if label != strong_label}
    for label, values in raw.items():
        out = out.append_column(f"teacher_{label}", pa.array(values, pa.float32()).take(rows))
    strong_kept = pa.array(strong, pa.float32()).take(rows)
    out = out.append_column(f"teacher_{strong_label}", strong_kept)
    return out.append_column("teacher_score", strong_kept)
