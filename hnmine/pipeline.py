"""The stages in order, and `mine`, which runs them all. Each stage skips itself when up to date."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hnmine.io.files import read_parquet
from hnmine.config import PipelineOptions
from hnmine.io.atomic import write_parquet
from hnmine.progress import Reporter
from hnmine.rundir import STAGES, RunDir, StageOutcome, stage_key

STAGE_ORDER = STAGES


@dataclass
class MineResult:
    run_dir: Path
    outcomes: list[StageOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        filt = next((o for o in self.outcomes if o.stage == "filter"), None)
        export = next((o for o in self.outcomes if o.stage == "export"), None)
        return {
            "run_dir": str(self.run_dir),
            "seconds": round(self.seconds, 3),
            "stages": [o.summary() for o in self.outcomes],
            "filter": (filt.manifest.get("stats", {}) if filt else {}),
            "export": str(self.run_dir / export.manifest["stats"]["file"]) if export and export.manifest.get("stats") else None,
        }


def run_stage(name: str, run: RunDir, options: PipelineOptions, *, force: bool = False, reporter: Reporter | None = None) -> StageOutcome:
    reporter = reporter or Reporter()
    run.ensure_writable()
    if name == "inputs":
        from hnmine.stages.inputs import run_inputs

        return run_inputs(run, options.inputs, force=force, reporter=reporter)
    if name == "index":
        from hnmine.stages.index import run_index

        return run_index(run, options.index, force=force, reporter=reporter)
    if name == "retrieve":
        from hnmine.stages.retrieve import run_retrieve

        return run_retrieve(run, options.retrieve, force=force, reporter=reporter)
    if name == "score":
        from hnmine.stages.score import run_score

        return run_score(run, options.score, force=force, reporter=reporter)
    if name == "filter":
        return run_filter(run, options.filter, force=force, reporter=reporter)
    if name == "export":
        from hnmine.stages.export import run_export

        return run_export(run, options.export, force=force, reporter=reporter)
    raise ValueError(name)


def mine(run_dir: Path, options: PipelineOptions, *, force: bool = False, reporter: Reporter | None = None, stages=STAGE_ORDER) -> MineResult:
    reporter = reporter or Reporter()
    started = time.perf_counter()
    run = RunDir(run_dir)
    result = MineResult(run_dir=Path(run_dir))
    # Check every option before any work, so a bad value fails in a second, not after encoding.
    _validate(options)
    for name in stages:
        outcome = run_stage(name, run, options, force=force, reporter=reporter)
        verb = "skipped (up to date)" if outcome.skipped else f"done in {outcome.seconds:.1f}s"
        counts = outcome.manifest.get("counts", {})
        reporter.info(f"[bold]{name:<8}[/bold] {verb}  rows in {counts.get('rows_in', '-')}, out {counts.get('rows_out', '-')}")
        result.outcomes.append(outcome)
    result.seconds = time.perf_counter() - started
    return result


def _validate(options: PipelineOptions) -> None:
    from hnmine.methods import resolve_options

    options.retrieve.validate()
    options.export.validate()
    resolve_options(options.filter)


# --- the filter stage's run-directory wrapper (the selection rules live in hnmine.stages.filter) ---


def _doc_vectors(run: RunDir, corpus_ids: list[str]):
    path = run / "index/dense/embeddings.npy"
    if not path.exists():
        return None
    vectors = np.load(path, mmap_mode="r")
    row = {d: i for i, d in enumerate(corpus_ids)}

    def lookup(doc_ids: list[str]) -> np.ndarray:
        return np.asarray(vectors[[row[d] for d in doc_ids]], dtype=np.float32)

    return lookup


def run_filter(run: RunDir, opts, *, force: bool = False, reporter: Reporter | None = None) -> StageOutcome:
    from hnmine.methods import resolve_options
    from hnmine.stages.filter import filter_candidates

    reporter = reporter or Reporter()
    effective = resolve_options(opts)
    inputs = {"inputs": run.output_fingerprint("inputs"), "score": run.output_fingerprint("score")}
    uses_vectors = effective.dedup_threshold is not None and (run / "index/dense/embeddings.npy").exists()
    if uses_vectors:
        inputs["index"] = run.output_fingerprint("index")
    key = stage_key("filter", effective, inputs)
    if not force and run.up_to_date("filter", key):
        return run.skipped("filter")
    started = time.perf_counter()
    scores = read_parquet(run.require("scores.parquet"))
    corpus = read_parquet(run.require("inputs/corpus.parquet"))
    queries = read_parquet(run.require("inputs/queries.parquet"), columns=["query_id"])
    query_ids = queries.column("query_id").to_pylist()
    vectors = _doc_vectors(run, corpus.column("doc_id").to_pylist()) if uses_vectors else None
    with reporter.task("filtering", total=len(query_ids)) as advance:
        result = filter_candidates(scores, corpus, opts, doc_vectors=vectors, query_ids=query_ids, progress=advance)
    write_parquet(result.negatives, run / "negatives.parquet")
    write_parquet(result.dropped, run / "dropped.parquet")
    write_parquet(result.query_summary, run / "query_summary.parquet")
    stats = dict(result.stats)
    short = stats.get("queries_short", 0)
    if short:
        reporter.warn(f"{short} queries have fewer than {effective.num_negatives} negatives (see query_summary.parquet)")
    return run.finish(
        "filter", key, options=effective, inputs=inputs,
        outputs=["negatives.parquet", "dropped.parquet", "query_summary.parquet"],
        counts={"rows_in": scores.num_rows, "rows_out": result.negatives.num_rows, "dropped": result.dropped.num_rows},
        stats=stats, started=started,
    )


def summary_json(result: MineResult) -> str:
    return json.dumps(result.summary(), indent=2, ensure_ascii=False)

