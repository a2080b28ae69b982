"""`build_report`: the data of the false-negative report, as a JSON-able dict.

Reads only the columns it needs and computes with numpy, so a SciFact-size run (about 800
queries, 160k score rows) takes well under a second.
"""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from hnmine import __version__
from hnmine.coverage import full_queries
from hnmine.errors import OptionError, UnknownName
from hnmine.methods.rules import NEAR_DUPLICATE, SAME_TEXT
from hnmine.report import load
from hnmine.report.histogram import histogram, shared_edges
from hnmine.rundir import RunDir

KEPT = "kept"
REQUIRED = ("queries", "corpus", "scores", "negatives", "dropped", "query_summary")  # hnmine.run_layout names
SHORT_QUERIES_SHOWN = 10
DEFAULT_BINS = 40


def normalise_reason(name: str) -> str:
    """`--reason` accepts the table's name or its label ('within margin', 'within-margin')."""
    return "_".join(name.strip().lower().replace("-", " ").split())


def build_report(
    run_dir: str | Path,
    top: int = 20,
    reason: str | None = None,
    *,
    bins: int = DEFAULT_BINS,
    include_points: bool = False,
    per_query: int | None = None,
) -> dict:
    """The report of one run: stages, coverage, score distributions, drop reasons, suspects.

    `top` suspects are listed, optionally only those with `reason` (a drop reason of
    dropped.parquet, or "kept"), at most `per_query` of one query (None or 0: no limit), grouped
    by query. `include_points` adds the (positive score, negative score) pairs behind the HTML
    scatter plot under "points"; they are left out of the JSON output.
    """
    if top < 0:
        raise OptionError(f"--top must be 0 or more, not {top}")
    if per_query is not None and per_query < 0:
        raise OptionError(f"--per-query must be 0 (no limit) or more, not {per_query}")
    run = RunDir(run_dir)
    run.check_shows_a_run()
    run.require_all(*REQUIRED)
    manifests = load.read_manifests(run)
    summary, neg, drop, scores = _tables(run)
    reason_counts = _reason_counts(drop)
    if reason is not None:
        wanted = normalise_reason(reason)
        valid = [KEPT] + [r["reason"] for r in reason_counts]
        if wanted not in valid:
            raise UnknownName("reason", reason, valid)
        reason = wanted
    not_known = load.strings(drop, "reason") != "known_positive"
    report = {
        "run": str(run.path),
        "hnmine_version": __version__,
        "meta": _meta(manifests),
        "stages": _stages(manifests, run),
        "coverage": _coverage(run, summary),
        "funnel": _funnel(neg, drop, scores, not_known),
        "scores": _distributions(neg, drop, scores, not_known, bins),
        "drop_reasons": reason_counts,
        "judgments": _judgments(manifests),
        "negative_reuse": _filter_stat(manifests, "negative_reuse"),
        "suspects": _suspects(run, neg, drop, scores, top, reason, per_query or None),
    }
    if include_points:
        report["points"] = _points(neg, drop, not_known)
    return report


def _tables(run: RunDir):
    """(query_summary, negatives, dropped, scores): only the columns the report uses."""
    summary = run.read_current(
        "query_summary",
        ["query_id", "n_negatives", "shortfall", "status"],
        optional=["n_positives", "n_candidates", "depth_used", "exported", "positive_score"],
    )
    neg = run.read_current(
        "negatives",
        ["query_id", "doc_id", "teacher_score", "positive_score"],
        optional=["rank", "retrieval_rank", "source", "is_random"],
    )
    drop = run.read_current(
        "dropped",
        ["query_id", "doc_id", "teacher_score", "positive_score", "reason"],
        optional=["rank", "retrieval_rank", "source"],
    )
    scores = run.read_current("scores", ["query_id", "doc_id", "is_positive", "teacher_score"])
    return summary, neg, drop, scores


def _funnel(neg, drop, scores, not_known) -> dict:
    is_pos = load.bools(scores, "is_positive")
    is_random = load.bools(neg, "is_random") if "is_random" in neg.column_names else np.zeros(neg.num_rows, bool)
    n_candidates, n_kept, n_dropped = int((~is_pos).sum()), int((~is_random).sum()), int(not_known.sum())
    return {
        "scored_rows": scores.num_rows,
        "positives": int(is_pos.sum()),
        "candidates": n_candidates,
        "kept": n_kept,
        "random": int(is_random.sum()),
        "dropped": n_dropped,
        "unused": max(0, n_candidates - n_kept - n_dropped),
    }


def _distributions(neg, drop, scores, not_known, bins: int) -> dict:
    pos_scores = load.floats(scores, "teacher_score")[load.bools(scores, "is_positive")]
    series = {"positives": pos_scores, "kept": load.floats(neg, "teacher_score"), "dropped": load.floats(drop, "teacher_score")[not_known]}
    edges = shared_edges(list(series.values()), bins)
    return {
        "edges": [_f(e) for e in edges],
        "series": {name: {**_stats(vals), "counts": histogram(vals, edges)} for name, vals in series.items()},
    }


def _judgments(manifests: dict[str, dict]) -> dict | None:
    """What relevance verdicts did in the filter (hnmine.judgments): human ones apart from automatic ones."""
    return ((manifests.get("filter") or {}).get("stats") or {}).get("judgments")


def _filter_stat(manifests: dict[str, dict], name: str) -> dict | None:
    """A figure of the filter's stats (negative_reuse: what --max-negative-reuse did), or None."""
    value = ((manifests.get("filter") or {}).get("stats") or {}).get(name)
    return value if isinstance(value, dict) else None


# -- sections ---------------------------------------------------------------------------------


def _meta(manifests: dict[str, dict]) -> dict:
    """Method, models (the score stage's are the teachers) and every stage's warnings."""
    models: list[dict] = []
    for stage, m in manifests.items():
        for role, info in (m.get("models") or {}).items():
            info = info if isinstance(info, dict) else {"name": info}
            if not info.get("name"):
                continue
            entry = {"role": "teacher" if stage == "score" else str(role), "kind": info.get("kind"), "name": str(info["name"])}
            if entry not in models:
                models.append(entry)
    options = ((manifests.get("filter") or {}).get("options") or {}).get("selection") or {}
    method = options.get("method") if isinstance(options, dict) else None
    calibration = ((manifests.get("filter") or {}).get("stats") or {}).get("calibration")
    warnings = [{"stage": stage, "message": str(w)} for stage, m in manifests.items() for w in (m.get("warnings") or [])]
    return {"method": method, "models": models, "warnings": warnings, "calibration": calibration}


def _stages(manifests: dict[str, dict], run: RunDir) -> list[dict]:
    from hnmine.options import STAGE_NAMES
    from hnmine.run_layout import stage_making

    rows = []
    order = list(STAGE_NAMES)
    names = order + [s for s in manifests if s not in order]
    # The tables the report reads are checked current as they are read (so are the stages they come from);
    # a later stage (the export, after `hnmine filter` rerun alone) is checked here.
    last_read = max(order.index(stage_making(t)) for t in REQUIRED)
    for stage in names:
        m = manifests.get(stage)
        if m is None:
            rows.append({"stage": stage, "ran": False, "rows_in": None, "rows_out": None, "seconds": None, "finished_at": None})
            continue
        counts = m.get("counts") or {}
        later = stage in order and order.index(stage) > last_read
        rows.append(
            {
                "stage": stage,
                "ran": True,
                "rows_in": _i(counts.get("rows_in")),
                "rows_out": _i(counts.get("rows_out")),
                "seconds": _f(m.get("seconds"), 3),
                "finished_at": m.get("finished_at"),
                "out_of_date": run.out_of_date(stage) if later else None,
            }
        )
    return rows


def _coverage(run: RunDir, summary) -> dict:
    qids = load.strings(summary, "query_id")
    n_neg = load.ints(summary, "n_negatives", 0)
    shortfall = load.ints(summary, "shortfall", 0)
    status = load.strings(summary, "status")
    target = int((n_neg + shortfall).max()) if len(qids) else 0
    per_query = np.bincount(np.clip(n_neg, 0, None), minlength=target + 1) if len(qids) else np.zeros(1, int)
    statuses: dict[str, int] = {}
    for s in ("ok", "short", "no_candidates", "no_positive"):
        statuses[s] = int((status == s).sum())
    for s in sorted(set(status.tolist()) - set(statuses)):
        statuses[str(s)] = int((status == s).sum())
    exported = int(load.bools(summary, "exported").sum()) if "exported" in summary.column_names else None

    # the queries furthest from the target, first-appearance order among equals
    short_idx = np.flatnonzero(shortfall > 0)
    short_idx = short_idx[np.argsort(-shortfall[short_idx], kind="stable")][:SHORT_QUERIES_SHOWN]
    texts = load.lookup_texts(run, "queries", qids[short_idx].tolist())
    extra = {c: load.ints(summary, c, -1) for c in ("n_candidates", "depth_used", "n_positives") if c in summary.column_names}
    short_rows = []
    for i in short_idx:
        row = {
            "query_id": str(qids[i]),
            "query": texts.get(qids[i], ("", ""))[1],
            "n_negatives": int(n_neg[i]),
            "shortfall": int(shortfall[i]),
            "status": str(status[i]),
        }
        for c, arr in extra.items():
            row[c] = None if arr[i] < 0 else int(arr[i])
        short_rows.append(row)
    return {
        "queries": int(len(qids)),
        "target": target,
        "full": int(full_queries(shortfall).sum()),
        "short": int((shortfall > 0).sum()),
        "status": statuses,
        "exported": exported,
        "negatives_per_query": [int(c) for c in per_query],
        "shortest": short_rows,
    }


def _reason_counts(drop) -> list[dict]:
    total = drop.num_rows
    counts = {}
    if total:
        vc = pc.value_counts(drop.column("reason"))
        counts = {str(v): int(c) for v, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist())}
    order = {r: i for i, r in enumerate(load.REASON_ORDER)}
    names = sorted(counts, key=lambda r: (order.get(r, len(order)), r))
    return [{"reason": r, "count": counts[r], "share": _f(counts[r] / total, 4)} for r in names]


def _suspects(run: RunDir, neg, drop, scores, top: int, reason: str | None, per_query: int | None) -> dict:
    """Kept negatives and dropped candidates, highest teacher score relative to the positive: the
    best `top` with at most `per_query` of one query, grouped by query (a query's rows together, the
    queries in the order of their best row). Each row shows the positive it is compared with:
    the one it repeats (same text), the nearest (near duplicate, when the index's vectors are
    there), else the query's reference positive (`positive_chosen`)."""
    cat = _suspect_candidates(neg, drop, reason)
    delta = cat["teacher"] - cat["positive"]
    valid = np.flatnonzero(np.isfinite(delta))
    ranked = valid[np.argsort(-delta[valid], kind="stable")]
    order = _grouped(ranked, cat["query_id"], top, per_query)
    qids = cat["query_id"][order].tolist()
    shown = _shown_positives(run, cat, order, _positives_of(run, scores, set(qids)))
    docs = load.lookup_texts(run, "corpus", cat["doc_id"][order].tolist() + [d for d, _, _ in shown.values()])
    queries = load.lookup_texts(run, "queries", qids)
    rows = [_suspect_row(n, i, cat, delta, shown.get(i), docs, queries) for n, i in enumerate(order, start=1)]
    above = valid[delta[valid] > 0]
    return {
        "reason": reason,
        "top": top,
        "per_query": per_query,
        "considered": int(len(valid)),
        "above_positive": int(len(above)),
        "queries_above_positive": len(set(cat["query_id"][above].tolist())),
        "rows": rows,
    }


def _suspect_candidates(neg, drop, reason: str | None) -> dict[str, np.ndarray]:
    """The rows a suspect may come from (kept negatives and/or dropped candidates, known positives
    aside unless asked for by name), column by column."""
    reasons = load.strings(drop, "reason")
    parts = []
    if reason in (None, KEPT):
        parts.append((_columns(neg), np.full(neg.num_rows, KEPT, dtype=object), np.ones(neg.num_rows, bool)))
    if reason != KEPT:
        mask = reasons != "known_positive" if reason is None else reasons == reason
        parts.append((_columns(drop), reasons, mask))
    keys = ("query_id", "doc_id", "teacher", "positive", "rank", "retrieval_rank", "source", "status")
    return {k: np.concatenate([{**c, "status": st}[k][m] for c, st, m in parts]) for k in keys}


def _grouped(ranked: np.ndarray, query_ids: np.ndarray, top: int, per_query: int | None) -> list[int]:
    """The first `top` of `ranked` taking at most `per_query` of one query, then each query's rows
    together, the queries in the order of their best row."""
    groups: dict[str, list[int]] = {}
    taken = 0
    for i in ranked.tolist():
        if taken >= top:
            break
        rows = groups.setdefault(query_ids[i], [])
        if per_query is not None and len(rows) >= per_query:
            continue
        rows.append(i)
        taken += 1
    return [i for rows in groups.values() for i in rows]


def _suspect_row(n: int, i: int, cat: dict, delta: np.ndarray, shown: tuple | None, docs: dict, queries: dict) -> dict:
    q, d = cat["query_id"][i], cat["doc_id"][i]
    pos_id, pos_score, chosen = shown if shown else (None, None, None)
    return {
        "n": n,
        "query_id": str(q),
        "query": queries.get(q, ("", ""))[1],
        "positive_id": pos_id,
        "positive_title": docs.get(pos_id, ("", ""))[0] if pos_id else "",
        "positive": docs.get(pos_id, ("", ""))[1] if pos_id else "",
        "positive_score": _f(cat["positive"][i]),  # the query's reference score: Δ is measured from it
        "positive_doc_score": _f(pos_score),  # the shown positive's own teacher score
        "positive_chosen": chosen,  # same_text, nearest or reference: why this positive is shown
        "doc_id": str(d),
        "suspect_title": docs.get(d, ("", ""))[0],
        "suspect": docs.get(d, ("", ""))[1],
        "teacher_score": _f(cat["teacher"][i]),
        "delta": _f(delta[i]),
        "status": str(cat["status"][i]),
        "rank": None if cat["rank"][i] < 0 else int(cat["rank"][i]),
        "retrieval_rank": None if cat["retrieval_rank"][i] < 0 else int(cat["retrieval_rank"][i]),
        "source": cat["source"][i],
    }


def _shown_positives(run: RunDir, cat: dict, order: list[int], positives: dict) -> dict[int, tuple[str, float, str]]:
    """{row: (positive doc, its teacher score, why chosen)}: for a same-text suspect the positive
    whose text it repeats, for a near duplicate the positive nearest by the index's vectors (when
    the run has them), otherwise the positive whose score is the reference (or nearest to it)."""
    shown: dict[int, tuple[str, float, str]] = {}
    same = [i for i in order if cat["status"][i] == SAME_TEXT and positives.get(cat["query_id"][i])]
    if same:
        ids = [cat["doc_id"][i] for i in same] + [d for i in same for d, _ in positives[cat["query_id"][i]]]
        texts = load.lookup_texts(run, "corpus", ids)
        for i in same:
            key = _text_key(*texts.get(cat["doc_id"][i], ("", "")))
            match = [(d, s) for d, s in positives[cat["query_id"][i]] if _text_key(*texts.get(d, ("", ""))) == key]
            if match:
                shown[i] = (*match[0], "same_text")
    near = [i for i in order if cat["status"][i] == NEAR_DUPLICATE and positives.get(cat["query_id"][i])]
    for i, doc in _nearest_by_vector(run, [(i, cat["doc_id"][i], positives[cat["query_id"][i]]) for i in near]).items():
        shown[i] = (*doc, "nearest")
    for i in order:
        cands = positives.get(cat["query_id"][i], [])
        if i not in shown and cands:
            shown[i] = (*min(cands, key=lambda d_s: abs(d_s[1] - cat["positive"][i])), "reference")
    return shown


def _text_key(title: str, text: str) -> str:
    """What the same-text rule compares (hnmine.methods.rules.text_keys), in Python."""
    return " ".join(unicodedata.normalize("NFC", (title or "") + " " + (text or "")).split())


def _nearest_by_vector(run: RunDir, wanted: list[tuple[int, str, list]]) -> dict[int, tuple[str, float]]:
    """{row: (positive, score)}: of each (row, document, the query's positives), the positive whose
    vector in the index (index/dense/embeddings.npy, rows in corpus order) is nearest by cosine.
    Empty when the run has no dense index (BM25 only) or its vectors do not match the corpus."""
    path = run.path_of("embeddings")
    if not wanted or not path.is_file():
        return {}
    ids = load.strings(run.read_current("corpus", ["doc_id"]), "doc_id").tolist()
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return {}
    if vectors.ndim != 2 or len(vectors) != len(ids):
        return {}
    row = {d: k for k, d in enumerate(ids)}
    out = {}
    for i, doc, positives in wanted:
        known = [(d, s) for d, s in positives if d in row]
        if doc not in row or not known:
            continue
        pos = np.asarray(vectors[[row[d] for d, _ in known]], dtype=np.float64)
        vec = np.asarray(vectors[row[doc]], dtype=np.float64)
        cosine = pos @ vec / np.maximum(np.linalg.norm(pos, axis=1) * np.linalg.norm(vec), 1e-12)
        out[i] = known[int(np.argmax(cosine))]
    return out


def _columns(table) -> dict[str, np.ndarray]:
    """The columns of negatives/dropped that a suspect row shows, as numpy."""
    n = table.num_rows
    names = table.column_names
    return {
        "query_id": load.strings(table, "query_id"),
        "doc_id": load.strings(table, "doc_id"),
        "teacher": load.floats(table, "teacher_score"),
        "positive": load.floats(table, "positive_score"),
        "rank": load.ints(table, "rank") if "rank" in names else np.full(n, -1),
        "retrieval_rank": load.ints(table, "retrieval_rank") if "retrieval_rank" in names else np.full(n, -1),
        "source": load.strings(table, "source") if "source" in names else np.full(n, None, dtype=object),
    }


def _positives_of(run: RunDir, scores, qids: set) -> dict[str, list[tuple[str, float]]]:
    """{query: [(positive doc, teacher score)]} for the given queries: the known positives, and those
    a verdict added (positives.parquet, when the filter wrote it)."""
    out: dict[str, list[tuple[str, float]]] = {}
    if not qids:
        return out
    tables = [scores.filter(scores.column("is_positive"))]
    if run.path_of("positives").is_file():
        tables.append(run.read_current("positives", ["query_id", "doc_id", "teacher_score"]))
    seen = set()
    for pos in tables:
        for qi, di, s in zip(load.strings(pos, "query_id"), load.strings(pos, "doc_id"), load.floats(pos, "teacher_score")):
            if qi in qids and np.isfinite(s) and (qi, di) not in seen:
                seen.add((qi, di))
                out.setdefault(qi, []).append((di, float(s)))
    return out


def _points(neg, drop, not_known) -> dict:
    def pairs(table, mask):
        x, y = load.floats(table, "positive_score"), load.floats(table, "teacher_score")
        ok = mask & np.isfinite(x) & np.isfinite(y)
        return {"positive_score": x[ok].round(5).tolist(), "teacher_score": y[ok].round(5).tolist()}

    return {"kept": pairs(neg, np.ones(neg.num_rows, bool)), "dropped": pairs(drop, not_known)}


# -- numbers ----------------------------------------------------------------------------------


def _stats(values: np.ndarray) -> dict:
    values = values[np.isfinite(values)]
    if not values.size:
        return {"n": 0, "min": None, "p25": None, "median": None, "p75": None, "max": None, "mean": None}
    p25, med, p75 = np.percentile(values, [25, 50, 75])
    return {
        "n": int(values.size),
        "min": _f(values.min()),
        "p25": _f(p25),
        "median": _f(med),
        "p75": _f(p75),
        "max": _f(values.max()),
        "mean": _f(values.mean()),
    }


def _f(x, digits: int = 6):
    """A float for JSON: rounded (float32 noise off), None for null/NaN."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else round(x, digits)


def _i(x):
    return None if x is None else int(x)
