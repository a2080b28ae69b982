"""Stage export: resolve texts and write the training file in the chosen shape (hnmine.formats)."""

from __future__ import annotations

from hnmine.engines import on_engine
from hnmine.options import Options
from hnmine.pipeline import Context, Stage, StageOutput


def export_file(options: Options) -> str:
    from hnmine.formats import get_format
    from hnmine.rundir import export_path

    return export_path(options.format, options.file_format or get_format(options.format).default_file_format)


def _key(ctx: Context) -> dict:
    o = ctx.options
    return {"format": o.format, "file_format": o.file_format, "with_scores": o.with_scores}


@on_engine("export")
def _work(ctx: Context) -> StageOutput:
    from hnmine.formats import build_examples, get_format

    o = ctx.options
    examples, target = build_examples(
        corpus=ctx.table("corpus"),
        queries=ctx.table("queries"),
        negatives=ctx.table("negatives"),
        summary=ctx.table("query_summary"),
        positives=ctx.table("positives"),
    )
    table = get_format(o.format).build(examples, target, o.with_scores)
    rel = export_file(o)
    stats = {"file": rel, "queries": len(examples), "negatives_per_query": target}
    if o.format == "n-tuple":
        stats["queries_left_out_short"] = sum(1 for ex in examples if len(ex.negatives) < target)
    warnings = []
    if table.num_rows == 0:
        warnings.append(empty_export_message(ctx, examples, target))
        ctx.reporter.warn(warnings[-1])
    return StageOutput(tables={rel: table}, counts={"rows_in": len(examples), "rows_out": table.num_rows}, stats=stats, warnings=warnings)


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
    command="export",
    makes=("export/",),
    reads=lambda ctx: ("corpus", "queries", "negatives", "query_summary", "positives"),
    writes=lambda o: (export_file(o),),
    key=_key,
    work=_work,
)
