"""Stage 0, inputs: read the user's files once and write normalised Parquet tables into the run."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from hnmine.io.atomic import write_parquet
from hnmine.io.inputs import InputSpec, load_inputs, resolve_files
from hnmine.progress import Reporter
from hnmine.rundir import RunDir, StageOutcome, file_hash, stage_key

OUTPUTS = ["inputs/corpus.parquet", "inputs/queries.parquet", "inputs/qrels.parquet"]


@dataclass(frozen=True)
class InputOptions:
    spec: InputSpec = InputSpec()
    hide_positives: bool = False
    hide_seed: int = 42


def _key_options(opts: InputOptions) -> dict:
    # Paths are not part of the key: the same bytes read from another place give the same tables.
    spec = replace(opts.spec, data=None, corpus=None, queries=None, qrels=None, pairs=None)
    # The seed only matters when positives are hidden: another --seed must not redo this stage.
    return {"spec": spec, "hide_positives": opts.hide_positives, "hide_seed": opts.hide_seed if opts.hide_positives else None}


def run_inputs(run: RunDir, opts: InputOptions, *, force: bool = False, reporter: Reporter | None = None) -> StageOutcome:
    reporter = reporter or Reporter()
    files = {role: p for role, p in resolve_files(opts.spec).items() if p is not None}
    fingerprints = {role: file_hash(p) for role, p in files.items()}
    key = stage_key("inputs", _key_options(opts), fingerprints)
    if not force and run.up_to_date("inputs", key):
        return run.skipped("inputs")
    started = time.perf_counter()
    loaded = load_inputs(opts.spec)
    for w in loaded.warnings:
        reporter.warn(w)
    qrels, outputs, stats = loaded.qrels, list(OUTPUTS), dict(loaded.stats)
    if opts.hide_positives:
        from hnmine.hide import hide_positives

        qrels, hidden = hide_positives(qrels, seed=opts.hide_seed, min_relevance=opts.spec.min_relevance)
        write_parquet(hidden, run / "inputs/hidden_qrels.parquet")
        outputs.append("inputs/hidden_qrels.parquet")
        stats["hidden_positives"] = hidden.num_rows
    else:
        (run / "inputs/hidden_qrels.parquet").unlink(missing_ok=True)  # stale: `eval --hidden` must not judge by it
    write_parquet(loaded.corpus, run / "inputs/corpus.parquet")
    write_parquet(loaded.queries, run / "inputs/queries.parquet")
    write_parquet(qrels, run / "inputs/qrels.parquet")
    return run.finish(
        "inputs",
        key,
        options={**_key_options(opts), "files": {r: str(p) for r, p in files.items()}},
        inputs=fingerprints,
        outputs=outputs,
        counts={"rows_in": loaded.corpus.num_rows + loaded.queries.num_rows + loaded.qrels.num_rows,
                "rows_out": loaded.corpus.num_rows + loaded.queries.num_rows + qrels.num_rows,
                "documents": loaded.corpus.num_rows, "queries": loaded.queries.num_rows, "judgments": qrels.num_rows},
        stats=stats,
        warnings=loaded.warnings,
        started=started,
    )
