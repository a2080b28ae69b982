"""Stage export: resolve texts and write the training file in the chosen shape (hnmine.formats)."""

from __future__ import annotations

from hnmine.options import Options
from hnmine.pipeline import Context, Stage, StageOutput


def export_files(options: Options) -> list[str]:
    """The files the export writes: export/<format>.<ext>, or one per table of a layout of several (the first is
    the training table)."""
    from hnmine.formats import get_format
    from hnmine.run_layout import export_path

    spec = get_format(options.format)
    ext = options.file_format or spec.default_file_format
    return [export_path(options.format, ext, t) for t in spec.tables] or [export_path(options.format, ext)]


def export_file(options: Options) -> str:
    """The training file (the summary's `export`, the table `hnmine.mine` gives back)."""
    return export_files(options)[0]


def _key(ctx: Context) -> dict:
    o = ctx.options
    return {"format": o.format, "file_format": o.file_format, "with_scores": o.with_scores}


EXPORT_QUERIES = 2048  # queries per part


def _work(ctx: Context) -> StageOutput:
    import pyarrow as pa

    from hnmine.formats import get_format, negatives_target
    from hnmine.parts import Parts

    o = ctx.options
    queries, summary = ctx.table("queries"), ctx.table("query_summary")
    negatives, positives = ctx.table("negatives"), ctx.table("positives")
    target = negatives_target(summary)
    query_ids = queries.column("query_id").to_pylist()
    neg_rows, pos_rows = rows_by_query(negatives, query_ids), rows_by_query(positives, query_ids)
    items = []
    for a in range(0, max(len(query_ids), 1), EXPORT_QUERIES):
        b = min(a + EXPORT_QUERIES, len(query_ids))
        items.append(
            {
                "queries": queries.slice(a, b - a),
                "summary": summary.slice(a, b - a),
                "negatives": negatives.take(neg_rows(a, b)),
                "positives": positives.take(pos_rows(a, b)),
            }
        )
    shared = {"corpus": ctx.table("corpus"), "target": target, "format": o.format, "with_scores": o.with_scores}
    step = Parts("exporting", items, export_part, shared, hold_documents, lambda item: item["queries"].num_rows)
    parts = list(ctx.executor.map(step, ctx.reporter))
    tables = [t for t, _, _ in parts if t.num_rows] or [get_format(o.format).build([], target, o.with_scores)]
    table = pa.concat_tables([t.cast(tables[0].schema) for t in tables])  # an empty part's list columns may have null types
    n_examples, short = sum(n for _, n, _ in parts), sum(k for _, _, k in parts)
    rel = export_file(o)
    stats = {"file": rel, "queries": n_examples, "negatives_per_query": target}
    split = get_format(o.format).split
    written = {rel: table}
    if split is not None:  # a layout of several tables (the scored pool): each its own file
        written = dict(zip(export_files(o), split(table).values()))
        stats["files"] = list(written)
        if "document_ids" in table.column_names and table.num_rows:  # PyLate trains on the first n_ways of each row
            import pyarrow.compute as pc

            stats["documents_per_query_min"] = int(pc.min(pc.list_value_length(table.column("document_ids"))).as_py())
    if o.format == "n-tuple":
        stats["queries_left_out_short"] = short
    warnings = []
    if table.num_rows == 0:
        warnings.append(empty_export_message(ctx, range(n_examples), target))
        ctx.reporter.warn(warnings[-1])
    return StageOutput(tables=written, counts={"rows_in": n_examples, "rows_out": table.num_rows}, stats=stats, warnings=warnings)


def rows_by_query(table, query_ids: list[str]):
    """rows(a, b): the rows of `table` whose query is among query_ids[a:b], grouped in query order, each
    query's rows in table order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    q = pc.index_in(table.column("query_id"), value_set=pa.array(query_ids, pa.string())).fill_null(len(query_ids))
    q = q.to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(q, kind="stable")
    starts = np.searchsorted(q[order], np.arange(len(query_ids) + 1))

    def rows(a: int, b: int) -> pa.Array:
        return pa.array(order[starts[a] : starts[b]], pa.int64())

    return rows


def hold_documents(shared: dict, device: str) -> dict:
    """What an export worker holds: every document's title and text by id."""
    from hnmine.formats import documents

    return documents(shared["corpus"])


def export_part(item: dict, shared: dict, docs: dict):
    """Some queries' examples in the chosen format: (table, examples, examples short of the target)."""
    from hnmine.formats import build_examples, get_format

    examples, _ = build_examples(
        docs=docs,
        queries=item["queries"],
        negatives=item["negatives"],
        summary=item["summary"],
        positives=item["positives"],
        target=shared["target"],
    )
    table = get_format(shared["format"]).build(examples, shared["target"], shared["with_scores"])
    return table, len(examples), sum(1 for ex in examples if len(ex.negatives) < shared["target"])


def empty_export_message(ctx: Context, examples, target: int) -> str:
    """Why the training file is empty, in numbers that hold whichever command runs the export: `hnmine
    export` on its own has the defaults of the filter's options, not the values the filter ran with."""
    import pyarrow.compute as pc

    o = ctx.options
    if not examples:
        most = pc.max(ctx.table("query_summary", ["n_negatives"]).column("n_negatives")).as_py() or 0
        if o.min_negatives > most:  # these options explain it (they are the filter's, or agree with its tables)
            why = f"no query has at least --min-negatives ({o.min_negatives}) negatives"
        else:
            why = f"no query has the filter's --min-negatives negatives (the most any query has is {most})"
        return (
            f"the training file is empty: {why}; see `hnmine report {ctx.run.path}` for the drop reasons, then lower "
            "--min-negatives, use a method with a smaller window or margin, or retrieve deeper (--max-depth)"
        )
    return (
        f"the training file is empty: no query has the full {target} negatives the "
        f"{o.format} format needs; lower --num-negatives or use another --format"
    )


STAGE = Stage(
    name="export",
    reads=lambda ctx: ("corpus", "queries", "negatives", "query_summary", "positives"),
    writes=lambda o: tuple(export_files(o)),
    key=_key,
    work=_work,
)
