"""Stage inputs: read the user's files once and write the normalised tables (corpus, queries, qrels).

Ids are text, spelled as written; texts are kept as read (hnmine.io). With --hide-positives, the
hidden-positive protocol (hnmine.hide) keeps one positive per query and writes the others apart.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from hnmine.options import Options
from hnmine.pipeline import Context, Stage, StageOutput


def input_spec(options: Options):
    from hnmine.io.locate import input_spec as spec_of

    return spec_of(options)


def _check(options: Options) -> None:
    from hnmine.io.locate import resolve_files

    resolve_files(input_spec(options))


def _sources(ctx: Context) -> dict:
    from hnmine.io.hashing import content_hash
    from hnmine.io.locate import resolve_files

    files = resolve_files(input_spec(ctx.options))
    return {f"file:{role}": content_hash(path) for role, path in files.items() if path is not None}


def _key(ctx: Context) -> dict:
    o = ctx.options
    # Paths are not part of the key: the same bytes read from another place give the same tables.
    spec = asdict(replace(input_spec(o), data=None, corpus=None, queries=None, qrels=None, pairs=None, premined=None))
    if o.premined is None:  # the keys of runs without a pre-mined file stay what they were
        del spec["premined"], spec["premined_format"]
    else:
        spec["premined"] = True
    # The seed only matters when positives are hidden: another --seed must not redo this stage.
    return {"spec": spec, "hide_positives": o.hide_positives, "hide_seed": o.seed if o.hide_positives else None}


def _writes(options: Options) -> tuple[str, ...]:
    return (
        ("corpus", "queries", "qrels") + (("hidden_qrels",) if options.hide_positives else ()) + (("premined",) if options.premined else ())
    )


def _work(ctx: Context) -> StageOutput:
    from hnmine.io.inputs import load_inputs
    from hnmine.io.premined import load_premined
    from hnmine.run_identity import input_files, input_identity

    spec = input_spec(ctx.options)
    files = input_files(ctx.options)
    loaded = load_premined(spec) if spec.premined is not None else load_inputs(spec)
    for w in loaded.warnings:
        ctx.reporter.warn(w)

    qrels, stats = loaded.qrels, {**loaded.stats, "files": files, "identity": input_identity(ctx.options, ctx.run.path)}
    tables = {"corpus": loaded.corpus, "queries": loaded.queries}
    if ctx.options.hide_positives:
        from hnmine.hide import hide_positives

        qrels, hidden = hide_positives(qrels, seed=ctx.options.seed, min_relevance=spec.min_relevance)
        tables["hidden_qrels"] = hidden
        stats["hidden_positives"] = hidden.num_rows
    tables["qrels"] = qrels
    if loaded.premined is not None:
        tables["premined"] = loaded.premined
    rows_in = loaded.corpus.num_rows + loaded.queries.num_rows + loaded.qrels.num_rows
    return StageOutput(
        tables=tables,
        counts={
            "rows_in": rows_in,
            "rows_out": loaded.corpus.num_rows + loaded.queries.num_rows + qrels.num_rows,
            "documents": loaded.corpus.num_rows,
            "queries": loaded.queries.num_rows,
            "judgments": qrels.num_rows,
        },
        stats=stats,
        warnings=list(loaded.warnings),
    )


STAGE = Stage(
    name="inputs",
    reads=lambda ctx: (),
    writes=_writes,
    key=_key,
    work=_work,
    sources=_sources,
    check=_check,
)
