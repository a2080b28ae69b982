"""Measure a finished run against relevance judgments (`hnmine eval`).

Metrics of one run directory (docs/tables.md):

false negatives  mined negatives that the judgments call relevant. The judgments are either a
                 user's qrels table (rows with relevance >= min_relevance are relevant) or, with
                 `hidden=True`, the positives the hidden-positive protocol held back
                 (`inputs/hidden_qrels.parquet`, see hnmine.hide). Mined (non-random) negatives
                 and random ones are counted separately: random negatives are not the method's
                 choice, so they do not enter `false_negative_rate`.
coverage         share of queries of query_summary.parquet with the full number of negatives
                 (n_negatives >= num_negatives + random_negatives of the filter options).
hardness         median teacher score of the mined negatives / median teacher score of the known
                 positives (scores.parquet rows with is_positive). Close to 1: negatives nearly as
                 relevant as positives. Null, with a note, when a median is missing or the ratio
                 has no meaning (a positive median <= 0, or a negative median < 0, as with logits).
mean_rank        mean teacher rank (`rank`) of the mined negatives; mean_retrieval_rank likewise.
seconds          sum of `seconds` over every manifest of the run (the original time of a stage
                 that was later skipped as up to date).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from hnmine.coverage import full_queries
from hnmine.errors import InputError, MissingColumn, OptionError, RunDirError
from hnmine.rundir import RunDir

# -- reading the run -------------------------------------------------------------------------------


def _run_seconds(run: RunDir) -> float:
    return round(sum(m.seconds for m in run.manifests(strict=True).values()), 3)


# -- judgments -------------------------------------------------------------------------------------


def _relevant_pairs(table: pa.Table, source: str, min_relevance: int | None) -> dict[str, set[str]]:
    """query id -> relevant doc ids. min_relevance None: every row is relevant (hidden positives)."""
    required = ["query_id", "doc_id"] + (["relevance"] if min_relevance is not None else [])
    for col in required:
        if col not in table.column_names:
            raise MissingColumn(source, col, table.column_names)
    qids = table.column("query_id").to_pylist()
    dids = table.column("doc_id").to_pylist()
    rels = table.column("relevance").to_pylist() if min_relevance is not None else [None] * len(qids)
    out: dict[str, set[str]] = {}
    for q, d, r in zip(qids, dids, rels):
        if q is None or d is None:
            continue
        if min_relevance is not None and (r is None or r < min_relevance):
            continue
        out.setdefault(str(q), set()).add(str(d))
    return out


def _median(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else None


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# -- one run ---------------------------------------------------------------------------------------


def evaluate_run(
    run_dir: Path,
    qrels: pa.Table | None = None,
    hidden: bool = False,
    min_relevance: int = 1,
    per_query: bool = False,
) -> dict:
    """Metrics of one run directory as a JSON-ready dict (see the module docstring).

    run_dir        a run directory after the filter stage
    qrels          judgments (query_id, doc_id, relevance), e.g. a user's qrels file read with
                   hnmine.io.inputs.read_qrels; rows with relevance >= min_relevance are relevant
    hidden         judge against the run's hidden positives (inputs/hidden_qrels.parquet)
    per_query      add a "per_query" list (one dict per query of query_summary.parquet)

    With neither qrels nor hidden, the false-negative fields are null and a note says why.
    Raises RunDirError for a missing or unreadable file (naming the stage that writes it),
    MissingColumn for a missing column, OptionError when both qrels and hidden are given, and
    InputError when the judgments name no query of the run (likely the wrong qrels file).
    """
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    run.check_shows_a_run()  # a data folder is named as no run
    if qrels is not None and hidden:
        raise OptionError("give either judgments (--qrels) or --hidden (the run's hidden positives), not both")
    notes: list[str] = []
    negatives = run.read_current("negatives", ["query_id", "doc_id", "rank", "teacher_score", "is_random"], ["retrieval_rank", "method"])
    summary = run.read_current("query_summary", ["query_id", "n_negatives", "shortfall"])
    scores = run.read_current("scores", ["is_positive", "teacher_score"])
    method = _method_of(run, negatives)
    query_ids = [str(q) for q in summary.column("query_id").to_pylist()]
    judgments, judged_by = _judgments(run, qrels, hidden, min_relevance, query_ids, notes)
    fn = _false_negatives(negatives, judgments, query_ids, hidden, min_relevance, notes)
    coverage = _coverage(summary)
    hardness = _hardness(negatives, scores, fn["mined_mask"], notes)
    measured = fn["measured"]
    result = {
        "run": run_dir.name,
        "run_dir": str(run_dir),
        "method": method,
        "judgments": judged_by,
        "queries": coverage["queries"],
        "judged_queries": fn["judged_queries"] if judgments is not None else None,
        "num_negatives": coverage["target"],
        "queries_full": coverage["queries_full"],
        "coverage": _ratio(coverage["queries_full"], coverage["queries"]),
        **_negative_counts(negatives.num_rows, coverage["queries"], fn),
        **hardness,
        "seconds": _run_seconds(run),
        "notes": notes,
    }
    if per_query:
        result["per_query"] = _per_query(
            query_ids, coverage["n_neg"], coverage["full"], fn["neg_q"], fn["is_fn"], fn["mined_mask"], judgments, measured
        )
    return result


def _method_of(run: RunDir, negatives: pa.Table) -> str | None:
    """The selection method the filter ran with (its manifest), else the one its negatives name."""
    filter_manifest = run.manifests(strict=True).get("filter")
    if filter_manifest is None:
        raise RunDirError(
            f"{run.manifest_path('filter')} is missing: it is written by the filter stage (run `hnmine filter` "
            f"or `hnmine mine` on this run first)"
        )
    method = filter_manifest.options.get("selection", {}).get("method")
    if method is None and "method" in negatives.column_names and negatives.num_rows:
        method = negatives.column("method")[0].as_py()
    return method


def _negative_counts(total: int, queries: int, fn: dict) -> dict:
    """The negatives' counts, and the false-negative fields (null when nothing judged them)."""
    measured = fn["measured"]
    return {
        "negatives_total": total,
        "mined_negatives": fn["mined_total"],
        "random_negatives": fn["random_total"],
        "mean_negatives_per_query": total / queries if queries else None,
        "false_negatives": fn["fn_mined"] if measured else None,
        "false_negative_rate": _ratio(fn["fn_mined"], fn["mined_total"]) if measured else None,
        "false_negative_rate_judged_queries": _ratio(fn["fn_mined"], fn["mined_judged"]) if measured else None,
        "queries_with_false_negatives": fn["queries_with_fn"] if measured else None,
        "random_false_negatives": fn["fn_random"] if measured else None,
        "random_false_negative_rate": _ratio(fn["fn_random"], fn["random_total"]) if measured else None,
    }


def _judgments(
    run: RunDir, qrels: pa.Table | None, hidden: bool, min_relevance: int, query_ids: list[str], notes: list[str]
) -> tuple[dict[str, set[str]] | None, str | None]:
    """(query id -> relevant doc ids, what judged them), from the hidden positives or the user's qrels."""
    named: set[str] = set()  # every query the judgments name, relevant or not
    if hidden:
        if not run.exists("hidden_qrels"):
            raise RunDirError(
                f"{run.path_of('hidden_qrels')} is missing: it is written by the inputs stage with "
                f"--hide-positives (run `hnmine mine --hide-positives` on this run first)"
            )
        table = run.read_current("hidden_qrels", ["query_id", "doc_id"])
        judgments, judged_by = _relevant_pairs(table, str(run.path_of("hidden_qrels")), None), "hidden"
        named = set(judgments)
    elif qrels is not None:
        if qrels.num_rows == 0:
            raise InputError("the qrels hold no judgments")
        judgments, judged_by = _relevant_pairs(qrels, "qrels", min_relevance), "qrels"
        named = {str(q) for q in qrels.column("query_id").to_pylist() if q is not None}
    else:
        notes.append("no judgments given (qrels or hidden): false negatives not measured")
        return None, None
    if named and not named & set(query_ids):
        raise InputError(
            f"the {'hidden positives' if hidden else 'qrels'} name no query of run {run.path} "
            f"({len(named)} judged queries, {len(query_ids)} in the run): wrong qrels file or split?"
        )
    return judgments, judged_by


def _false_negatives(
    negatives: pa.Table, judgments: dict[str, set[str]] | None, query_ids: list[str], hidden: bool, min_relevance: int, notes: list[str]
) -> dict:
    """Mined negatives that the judgments call relevant, and random ones apart."""
    judged_set = {q for q in query_ids if judgments and judgments.get(q)}
    measured = bool(judged_set)
    if judgments is not None and not measured:
        notes.append(
            "no hidden positives in this run (no query had two or more positives): false negatives not measured"
            if hidden
            else f"no judgment with relevance >= {min_relevance} for this run's queries: false negatives not measured"
        )
    neg_q = [str(q) for q in negatives.column("query_id").to_pylist()]
    neg_d = [str(d) for d in negatives.column("doc_id").to_pylist()]
    is_random = np.array([bool(x) for x in negatives.column("is_random").to_pylist()], dtype=bool)
    mined_mask = ~is_random
    if measured and judgments is not None:
        is_fn = np.array([d in judgments.get(q, ()) for q, d in zip(neg_q, neg_d)], dtype=bool)
    else:
        is_fn = np.zeros(negatives.num_rows, dtype=bool)
    in_judged = np.array([q in judged_set for q in neg_q], dtype=bool)
    out = {
        "measured": measured,
        "judged_queries": len(judged_set),
        "neg_q": neg_q,
        "is_fn": is_fn,
        "mined_mask": mined_mask,
        "mined_total": int(mined_mask.sum()),
        "random_total": int(is_random.sum()),
        "fn_mined": int((is_fn & mined_mask).sum()),
        "fn_random": int((is_fn & is_random).sum()),
        "mined_judged": int((mined_mask & in_judged).sum()),
        "queries_with_fn": len({q for q, f, m in zip(neg_q, is_fn, mined_mask) if f and m}),
    }
    if measured and out["mined_total"] == 0:
        notes.append("no mined negatives: the false-negative rate is undefined")
    return out


def _coverage(summary: pa.Table) -> dict:
    """Full queries, by the one definition of a full query (hnmine.coverage)."""
    n_neg = np.array([int(x or 0) for x in summary.column("n_negatives").to_pylist()], dtype=np.int64)
    shortfall = np.array([int(x or 0) for x in summary.column("shortfall").to_pylist()], dtype=np.int64)
    queries = summary.num_rows
    full = full_queries(shortfall)
    return {
        "queries": queries,
        "n_neg": n_neg,
        "full": full,
        "queries_full": int(full.sum()),
        "target": int((n_neg + shortfall).max()) if queries else None,
    }


def _hardness(negatives: pa.Table, scores: pa.Table, mined_mask: np.ndarray, notes: list[str]) -> dict:
    """Median scores of mined negatives and positives, their ratio where it means something, mean ranks."""
    tscore = negatives.column("teacher_score").to_numpy(zero_copy_only=False).astype(np.float64)
    median_neg = _median(tscore[mined_mask]) if negatives.num_rows else None
    pos_mask = np.array([bool(x) for x in scores.column("is_positive").to_pylist()], dtype=bool)
    pos_scores = (
        scores.column("teacher_score").to_numpy(zero_copy_only=False).astype(np.float64)[pos_mask] if scores.num_rows else np.array([])
    )
    median_pos = _median(pos_scores)
    hardness = None
    if median_neg is None:
        notes.append("hardness: no scored mined negatives")
    elif median_pos is None:
        notes.append("hardness: no scored positives in scores.parquet")
    elif median_pos <= 0:
        notes.append(
            f"hardness: the median positive score is {median_pos:.4g} (<= 0), a ratio means nothing; compare median_negative_score instead"
        )
    elif median_neg < 0:
        notes.append(
            f"hardness: the median negative score is {median_neg:.4g} (< 0), a ratio means nothing; compare median_negative_score instead"
        )
    else:
        hardness = median_neg / median_pos

    def mean_of(column: str) -> float | None:
        if column not in negatives.column_names:
            return None
        values = negatives.column(column).to_numpy(zero_copy_only=False).astype(np.float64)[mined_mask]
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else None

    return {
        "median_negative_score": median_neg,
        "median_positive_score": median_pos,
        "hardness": hardness,
        "mean_rank": mean_of("rank"),
        "mean_retrieval_rank": mean_of("retrieval_rank"),
    }


def _per_query(query_ids, n_neg, full, neg_q, is_fn, mined_mask, judgments, measured) -> list[dict]:
    mined: dict[str, int] = {}
    fns: dict[str, int] = {}
    for q, f, m in zip(neg_q, is_fn, mined_mask):
        if m:
            mined[q] = mined.get(q, 0) + 1
            if f:
                fns[q] = fns.get(q, 0) + 1
    return [
        {
            "query_id": q,
            "n_negatives": int(n),
            "mined_negatives": mined.get(q, 0),
            "full": bool(ok),
            "relevant_judged": len(judgments.get(q, ())) if judgments is not None else None,
            "false_negatives": fns.get(q, 0) if measured else None,
        }
        for q, n, ok in zip(query_ids, n_neg, full)
    ]


def compare_runs(
    run_dirs: Iterable[Path],
    qrels: pa.Table | None = None,
    hidden: bool = False,
    min_relevance: int = 1,
    per_query: bool = False,
) -> list[dict]:
    """evaluate_run for each run, in the given order, against the same judgments.

    Runs whose folder names collide are named by their full path in the "run" field.
    """
    results = [evaluate_run(Path(r), qrels=qrels, hidden=hidden, min_relevance=min_relevance, per_query=per_query) for r in run_dirs]
    names = [r["run"] for r in results]
    for r in results:
        if names.count(r["run"]) > 1:
            r["run"] = r["run_dir"]
    return results
