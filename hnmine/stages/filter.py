"""Stage filter: choose each query's negatives with a method; every dropped candidate is a row with
its reason. The selection itself is a pure function of tables (hnmine.selection); this module
reads the run's tables, hands it the index's vectors for the near-duplicate rule, and reports."""

from __future__ import annotations

from dataclasses import fields

from hnmine.options import Options, relabel_settings
from hnmine.pipeline import Context, Stage, StageOutput


def filter_options(options: Options):
    """The selection's settings from a run's options (fields of the same names), the method's defaults
    filled in and checked (hnmine.methods.resolve_options)."""
    from hnmine.methods import resolve_options
    from hnmine.selection import FilterOptions

    values = {f.name: getattr(options, f.name) for f in fields(FilterOptions)}
    if values["dedup_threshold"] is not None and values["dedup_threshold"] > 1:
        values["dedup_threshold"] = None  # a cosine is never above 1: the rule is off
    return resolve_options(FilterOptions(**values))


def uses_vectors(ctx: Context) -> bool:
    m = ctx.run.manifest("index")
    return filter_options(ctx.options).dedup_threshold is not None and m is not None and ctx.run.rel("dense_index") in m.outputs


def judgments(ctx: Context):
    """The verdicts the filter applies (hnmine.judgments), folded to one per pair, or None: the run's own
    (hnmine review) and --judgments FILE together. A person's verdict whose texts changed since is set
    aside (ctx.memo["set_aside"]), never applied to another text."""
    if "judgments" not in ctx.memo:
        from hnmine import judgments as j
        from hnmine.journal import run_judgments
        from hnmine.judgment_files import read_judgments

        tables = []
        if ctx.run.exists("judgments") or ctx.run.exists("review_journal"):
            own, set_aside = j.set_aside_changed(run_judgments(ctx.run.path), ctx.table("queries"), ctx.table("corpus"))
            tables.append(own)
            ctx.memo["set_aside"] = set_aside
        if ctx.options.judgments is not None:
            table = read_judgments(ctx.options.judgments)
            _check_names_the_run(ctx, table)
            # a file holding verdicts tied to texts (another run's judgments.parquet) is held to them as the
            # run's own are: they judged texts this run may not have
            table, ctx.memo["file_set_aside"] = j.set_aside_changed(table, ctx.table("queries"), ctx.table("corpus"))
            tables.append(table)
        folded = j.fold_judgments(*tables) if tables else None
        ctx.memo["judgments"] = folded if folded is not None and folded.num_rows else None
    return ctx.memo["judgments"]


def _check_names_the_run(ctx: Context, table) -> None:
    """A --judgments file none of whose rows names a query of this run is another dataset's (or split's)."""
    from hnmine.errors import InputError

    if not table.num_rows:
        return
    queries = set(ctx.table("queries", ["query_id"]).column("query_id").to_pylist())
    if not queries & set(table.column("query_id").to_pylist()):
        raise InputError(
            f"{ctx.options.judgments}: no judgment names a query of this run ({ctx.run.path_of('queries')}): wrong file or split?"
        )


def _sources(ctx: Context) -> dict:
    """The judgments' verdicts (not their times) key the stage: a new verdict reruns filter and export."""
    import hashlib

    table = judgments(ctx)
    if table is None:
        return {}
    rows = sorted(zip(*(table.column(c).to_pylist() for c in ("query_id", "doc_id", "relevance", "source"))))
    return {"judgments": hashlib.sha256(repr(rows).encode()).hexdigest()}


def _check(options: Options) -> None:
    from pathlib import Path

    from hnmine.errors import InputError

    filter_options(options)
    if options.judgments is not None and Path(options.judgments).is_dir():
        raise InputError(f"{options.judgments}: is a folder, expected a judgments file (--judgments)")
    if options.judgments is not None and not Path(options.judgments).is_file():
        raise InputError(f"{options.judgments}: no such file (--judgments)")


def _reads(ctx: Context) -> tuple[str, ...]:
    reads: tuple[str, ...] = ("scores", "corpus", "queries")
    # the calibration keeps each query's best-graded positive; judgments graded relevant below
    # --min-relevance are never negatives (read only where there are some: other runs' keys stay as they were)
    if ctx.options.method == "auto" or below_min_relevance(ctx).num_rows:
        reads += ("qrels",)
    return reads + (("dense_index",) if uses_vectors(ctx) else ())


def below_min_relevance(ctx: Context):
    """(query_id, doc_id) of the qrels rows graded relevant (above 0) but below --min-relevance: no positives,
    yet judged relevant, so never negatives either."""
    if "below_min_relevance" not in ctx.memo:
        import pyarrow as pa
        import pyarrow.compute as pc

        if not ctx.run.exists("qrels"):  # the inputs stage has not run: the run says so when the filter reads it
            return pa.table({"query_id": pa.array([], pa.string()), "doc_id": pa.array([], pa.string())})
        qrels = ctx.table("qrels", ["query_id", "doc_id", "relevance", "is_positive"])
        graded = pc.and_(pc.greater(qrels.column("relevance"), 0), pc.invert(pc.fill_null(qrels.column("is_positive"), False)))
        ctx.memo["below_min_relevance"] = qrels.filter(graded).select(["query_id", "doc_id"])
    return ctx.memo["below_min_relevance"]


def _key(ctx: Context) -> dict:
    o = ctx.options
    relabel = dict(zip(("margin", "max_per_query"), relabel_settings(o))) if o.relabel else None
    return {"selection": filter_options(o), "relabel": relabel}


def _doc_vectors(ctx: Context, corpus_ids: list[str]):
    return vectors_lookup(str(ctx.run.path_of("embeddings")), corpus_ids)


def vectors_lookup(path: str, corpus_ids: list[str]):
    """doc ids -> their rows of the index's vectors (memory-mapped), for the near-duplicate rule."""
    import numpy as np

    vectors = np.load(path, mmap_mode="r")
    row = {d: i for i, d in enumerate(corpus_ids)}

    def lookup(doc_ids: list[str]) -> np.ndarray:
        return np.asarray(vectors[[row[d] for d in doc_ids]], dtype=np.float32)

    return lookup


PARTITION_ROWS = 1 << 17  # about this many scores rows per part (whole queries)


def _select(ctx: Context, scores, corpus, settings, query_ids: list[str], excluded, thresholds=None):
    """The selection (hnmine.selection.filter_candidates) of every query, in parts of whole queries: each query's
    choice depends on its own rows only (randomness is hashed per query), so parts give the whole's tables."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from hnmine.parts import Parts
    from hnmine.selection import FilterResult
    from hnmine.selection.reuse import cap_negative_reuse

    index = pc.index_in(scores.column("query_id"), value_set=pa.array(query_ids, pa.string()))
    if index.null_count or len(set(query_ids)) != len(query_ids) or not query_ids:  # one part: the selection says what is wrong
        items = [{"query_ids": query_ids, "scores": scores}]
        step = Parts("filtering", items, filter_part, _filter_shared(ctx, corpus, settings, excluded, thresholds), hold_doc_vectors)
        return cap_negative_reuse(next(iter(ctx.executor.map(step, ctx.reporter))), settings)
    q = index.to_numpy(zero_copy_only=False)
    order = np.argsort(q, kind="stable")  # rows grouped by query, each query's rows in their order
    per_query = np.bincount(q.astype(np.int64), minlength=len(query_ids)) if len(q) else np.zeros(len(query_ids), np.int64)
    starts = np.r_[0, np.cumsum(per_query)]
    items, a = [], 0
    while a < len(query_ids):
        b = int(np.searchsorted(starts, starts[a] + PARTITION_ROWS, side="right")) - 1
        b = min(max(b, a + 1), len(query_ids))
        rows = pa.array(order[starts[a] : starts[b]])
        items.append({"query_ids": query_ids[a:b], "scores": scores.take(rows)})
        a = b
    shared = _filter_shared(ctx, corpus, settings, excluded, thresholds)
    step = Parts("filtering", items, filter_part, shared, hold_doc_vectors, lambda item: len(item["query_ids"]))
    parts = list(ctx.executor.map(step, ctx.reporter))
    if len(parts) == 1:
        return cap_negative_reuse(parts[0], settings)
    tables = {name: pa.concat_tables([getattr(p, name) for p in parts]) for name in ("negatives", "dropped", "query_summary")}
    spare = pa.concat_tables([p.spare for p in parts]) if parts[0].spare is not None else None
    # the reuse cap holds across queries: applied to the whole, once the parts are together
    return cap_negative_reuse(FilterResult(**tables, stats=merge_stats([p.stats for p in parts]), spare=spare), settings)


def _filter_shared(ctx: Context, corpus, settings, excluded, thresholds) -> dict:
    embeddings = str(ctx.run.path_of("embeddings")) if uses_vectors(ctx) else None
    return {"corpus": corpus, "settings": settings, "excluded": excluded, "embeddings": embeddings, "thresholds": thresholds}


def hold_doc_vectors(shared: dict, device: str):
    """What a filter worker holds: the lookup of the index's vectors (None when the near-duplicate rule is off)."""
    if shared["embeddings"] is None:
        return None
    return vectors_lookup(shared["embeddings"], shared["corpus"].column("doc_id").to_pylist())


def filter_part(item: dict, shared: dict, vectors):
    from hnmine.selection import filter_candidates

    return filter_candidates(
        item["scores"],
        shared["corpus"],
        shared["settings"],
        doc_vectors=vectors,
        query_ids=item["query_ids"],
        excluded=shared["excluded"],
        reuse_cap=False,
        score_thresholds=shared["thresholds"],
    )


def merge_stats(parts: list[dict]) -> dict:
    """The stats of the whole from its parts' (hnmine.selection's stats): counts add up; anything else is
    the same in every part (how the near-duplicate rule ran), or the parts disagree: an error, not a guess."""
    merged: dict = {}
    for stats in parts:
        for key, value in stats.items():
            if key not in merged:
                merged[key] = value
            elif isinstance(value, int) and not isinstance(value, bool):
                merged[key] += value
            elif merged[key] != value:
                raise RuntimeError(f"filter parts disagree on {key}: {merged[key]!r} and {value!r}")
    return merged


def choose(ctx: Context, original, quiet: bool = False) -> dict:
    """The filter's choice on a scores table: its settings (method auto resolved), the scores with every verdict
    applied, the verdicts' record, the thresholds and the FilterResult. The filter stage writes it; the score
    stage of a teacher cascade asks it which queries would be short (`short_queries`)."""
    settings = filter_options(ctx.options)
    corpus = ctx.table("corpus")
    queries = ctx.table("queries")
    scores, judged_info, relabelled = _with_verdicts(ctx, original)
    excluded = excluded_pairs(queries, scores, judged_info, below_min_relevance(ctx))
    query_ids = queries.column("query_id").to_pylist()
    vectors = _doc_vectors(ctx, corpus.column("doc_id").to_pylist()) if uses_vectors(ctx) else None
    calibration = None
    if settings.method == "auto":
        from hnmine.options import Options
        from hnmine.selection.calibrate import calibrate

        settings, calibration = calibrate(
            scores,
            ctx.table("qrels"),
            corpus,
            settings,
            default_method=Options.method,
            doc_vectors=vectors,
            positives_hidden=ctx.options.hide_positives,
        )
        if not quiet:
            ctx.reporter.info(f"method auto: {settings.method} ({calibration['reason']})")
    thresholds = None
    if settings.max_score_percentile is not None:  # over the whole run, from the known positives (before verdicts)
        from hnmine.selection.percentile import percentile_thresholds

        thresholds = percentile_thresholds(original, settings.max_score_percentile)
    result = _select(ctx, scores, corpus, settings, query_ids, excluded, thresholds)
    return {
        "settings": settings,
        "scores": scores,
        "judged_info": judged_info,
        "relabelled": relabelled,
        "calibration": calibration,
        "thresholds": thresholds,
        "result": result,
    }


def short_queries(ctx: Context, scores) -> set[str]:
    """The queries with positives that the filter, run on `scores`, leaves with fewer mined negatives than
    --num-negatives (random ones aside)."""
    import pyarrow.compute as pc

    choice = choose(ctx, scores, quiet=True)
    result, wanted = choice["result"], choice["settings"].num_negatives
    mined = result.negatives.filter(pc.invert(result.negatives.column("is_random")))
    have: dict[str, int] = {}
    for q in mined.column("query_id").to_pylist():
        have[q] = have.get(q, 0) + 1
    summary = result.query_summary
    with_positives = summary.filter(pc.greater(summary.column("n_positives"), 0)).column("query_id").to_pylist()
    return {q for q in with_positives if have.get(q, 0) < wanted}


def _work(ctx: Context) -> StageOutput:
    original = ctx.table("scores")
    queries = ctx.table("queries")
    choice = choose(ctx, original)
    settings, scores, judged_info, relabelled = choice["settings"], choice["scores"], choice["judged_info"], choice["relabelled"]
    calibration, thresholds, result = choice["calibration"], choice["thresholds"], choice["result"]
    stats = dict(result.stats)
    if thresholds is not None:
        stats["score_percentile"] = {"percentile": settings.max_score_percentile, "thresholds": thresholds}
    stats["queries_sharing_text"] = same_text_queries(queries)
    if calibration is not None:
        stats["calibration"] = calibration
    warnings = _set_aside_warnings(ctx, stats) + _cascade_warnings(ctx)
    if judged_info is not None:
        stats["judgments"] = judged_info["counts"]
        stats["relabelled"] = relabelled
        unscored = judged_info["unscored_positives"].num_rows
        if unscored:
            warnings.append(
                f"{unscored} documents judged relevant are not candidates of this run (the teacher never "
                f"scored them): they are never negatives (random ones included), but are not exported as "
                f"positives either; add them to the qrels to train on them"
            )
            ctx.reporter.warn(warnings[-1])
    if stats.get("queries_short"):
        warnings.append(shortfall_message(result.negatives, result.query_summary, settings))
        ctx.reporter.warn(warnings[-1])
    dropped = _name_promoted(result.dropped, scores) if judged_info is not None else result.dropped
    return StageOutput(
        tables={
            "negatives": result.negatives,
            "dropped": dropped,
            "query_summary": result.query_summary,
            "positives": positives_table(scores),
        },
        counts={"rows_in": original.num_rows, "rows_out": result.negatives.num_rows, "dropped": dropped.num_rows},
        stats=stats,
        warnings=warnings,
    )


def _cascade_warnings(ctx: Context) -> list[str]:
    """A teacher cascade grew its budgets for the filter options its score stage ran with
    (hnmine.teachers.cascade): other ones may leave queries short that growing would fill."""
    from hnmine.pipeline import jsonable

    m = ctx.run.manifest("score")
    rerank = (m.options or {}).get("rerank") if m is not None and isinstance(m.options, dict) else None
    if not isinstance(rerank, dict) or rerank.get("filter") == jsonable(_key(ctx)):
        return []
    warning = (
        f"the teacher cascade's budgets were grown for other filter options than these; `hnmine score --out {ctx.run.path}` "
        f"(or `hnmine mine`) grows them for these"
    )
    ctx.reporter.warn(warning)
    return [warning]


def _set_aside_warnings(ctx: Context, stats: dict) -> list[str]:
    """A warning for the run's own verdicts and one for the --judgments file's that were set aside (their
    texts changed); `stats["verdicts_set_aside"]` counts both."""
    from hnmine.judgments import set_aside_message

    warnings = []
    own, in_file = ctx.memo.get("set_aside"), ctx.memo.get("file_set_aside")
    if own is not None and own.num_rows:
        warnings.append(f"{set_aside_message(own)}; review them again with `hnmine review {ctx.run.path}`")
    if in_file is not None and in_file.num_rows:
        warnings.append(f"{ctx.options.judgments}: {set_aside_message(in_file)}")
    for w in warnings:
        ctx.reporter.warn(w)
    aside = sum(t.num_rows for t in (own, in_file) if t is not None)
    if aside:
        stats["verdicts_set_aside"] = aside
    return warnings


def _with_verdicts(ctx: Context, scores):
    """The scores with every verdict applied (hnmine.judgments): the run's or --judgments, and with --relabel
    the teacher's own (a person's verdict on the same pair wins). Returns (scores, info or None, relabelled count)."""
    from hnmine.judgments import apply_judgments, fold_judgments

    judged = judgments(ctx)
    tables = [judged] if judged is not None else []
    relabelled = 0
    if ctx.options.relabel:
        from hnmine.selection.relabel import relabel_judgments

        teacher = relabel_judgments(scores, *relabel_settings(ctx.options), time="")
        relabelled = teacher.num_rows
        tables.append(teacher)
    if not tables:
        return scores, None, 0
    applied, info = apply_judgments(scores, fold_judgments(*tables))
    return applied, info, relabelled


def excluded_pairs(queries, scores, judged_info, graded_below=None):
    """(query_id, doc_id, reason) pairs that may never be negatives although they are not positives in the
    scores: documents judged relevant that are not candidates (so never drawn as random negatives), those the
    qrels grade relevant below --min-relevance (`graded_below`), and the positives of every other query with
    the same text (hnmine.selection.exclusions)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from hnmine.methods.rules import JUDGED_RELEVANT
    from hnmine.selection.exclusions import EXCLUDED_SCHEMA, same_text_query_positives

    positives = scores.filter(pc.fill_null(scores.column("is_positive"), False)).select(["query_id", "doc_id"])
    parts = []
    if graded_below is not None and graded_below.num_rows:  # (a verdict may have made one a positive since)
        known = set(zip(positives.column("query_id").to_pylist(), positives.column("doc_id").to_pylist()))
        keep = [(q, d) not in known for q, d in zip(graded_below.column("query_id").to_pylist(), graded_below.column("doc_id").to_pylist())]
        below = graded_below.filter(pa.array(keep, pa.bool_()))
        parts.append(below.append_column("reason", pa.array([JUDGED_RELEVANT] * below.num_rows, pa.string())).cast(EXCLUDED_SCHEMA))
    if judged_info is not None and judged_info["unscored_positives"].num_rows:
        unscored = judged_info["unscored_positives"].select(["query_id", "doc_id"])
        positives = pa.concat_tables([positives.cast(unscored.schema), unscored])
        reason = pa.array([JUDGED_RELEVANT] * unscored.num_rows, pa.string())
        parts.append(unscored.append_column("reason", reason).cast(EXCLUDED_SCHEMA))
    parts.append(same_text_query_positives(queries, positives))
    return pa.concat_tables(parts)


def same_text_queries(queries) -> int:
    """How many queries share their text with another query (their positives are excluded from each other's negatives)."""
    from hnmine.selection.exclusions import same_text_groups

    return sum(len(group) for group in same_text_groups(queries))


def _name_promoted(dropped, scores):
    """Known positives that a verdict made positive are dropped as judged_relevant or relabelled_positive."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from hnmine.methods.rules import JUDGED_RELEVANT, KNOWN_POSITIVE, RELABELLED

    judged = scores.filter(pc.and_(pc.greater(pc.fill_null(scores.column("judged_relevance"), 0), 0), pc.is_valid(scores.column("judged"))))
    source = {(q, d): s for q, d, s in zip(*(judged.column(c).to_pylist() for c in ("query_id", "doc_id", "judged")))}
    reasons = dropped.column("reason").to_pylist()
    keys = zip(dropped.column("query_id").to_pylist(), dropped.column("doc_id").to_pylist())
    renamed = [
        (RELABELLED if source[k] == "teacher" else JUDGED_RELEVANT) if r == KNOWN_POSITIVE and k in source else r
        for r, k in zip(reasons, keys)
    ]
    return dropped.set_column(dropped.column_names.index("reason"), "reason", pa.array(renamed, pa.string()))


def positives_table(scores):
    """The positives the export trains on (docs/tables.md, positives.parquet): the known ones and those a
    verdict added, with their teacher scores and where each comes from."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from hnmine.schemas import POSITIVES_SCHEMA

    pos = scores.filter(pc.fill_null(scores.column("is_positive"), False))
    judged = pos.column("judged").to_pylist() if "judged" in pos.column_names else [None] * pos.num_rows
    relevance = pos.column("judged_relevance").to_pylist() if "judged_relevance" in pos.column_names else [None] * pos.num_rows
    origin = [
        "relabelled" if j == "teacher" and (r or 0) > 0 else f"judged:{j}" if j and (r or 0) > 0 else "qrels"
        for j, r in zip(judged, relevance)
    ]
    return pa.table(
        {
            "query_id": pc.cast(pos.column("query_id"), pa.string()),
            "doc_id": pc.cast(pos.column("doc_id"), pa.string()),
            "teacher_score": pc.cast(pos.column("teacher_score"), pa.float32()),
            "origin": pa.array(origin, pa.string()),
        },
        schema=POSITIVES_SCHEMA,
    )


def shortfall_message(negatives, summary, settings) -> str:
    """Which queries are short of what: mined negatives and random ones are counted apart."""
    import numpy as np
    import pyarrow.compute as pc

    queries = summary.filter(pc.greater(summary.column("n_positives"), 0)).column("query_id")
    per_query = negatives.group_by(["query_id", "is_random"]).aggregate([([], "count_all")])
    counts = {(q, r): n for q, r, n in zip(*(per_query.column(c).to_pylist() for c in ("query_id", "is_random", "count_all")))}
    hard = np.array([counts.get((q, False), 0) for q in queries.to_pylist()])
    rand = np.array([counts.get((q, True), 0) for q in queries.to_pylist()])
    parts = []
    if (hard < settings.num_negatives).any():
        parts.append(f"{int((hard < settings.num_negatives).sum())} queries have fewer than {settings.num_negatives} negatives")
    if settings.random_negatives and (rand < settings.random_negatives).any():
        parts.append(
            f"{int((rand < settings.random_negatives).sum())} queries have fewer than {settings.random_negatives} random negatives"
        )
    return "; ".join(parts or [f"{len(queries)} queries are short"]) + " (see query_summary.parquet)"


STAGE = Stage(
    name="filter",
    reads=_reads,
    writes=lambda o: ("negatives", "dropped", "query_summary", "positives"),
    key=_key,
    work=_work,
    sources=_sources,
    check=_check,
)
