"""Stage 5, export: resolve texts and write training files in the chosen shape."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pyarrow as pa

from hnmine.io.files import read_parquet
from hnmine.encode import doc_texts
from hnmine.errors import UnknownName
from hnmine.formats import FORMATS, Example, Passage
from hnmine.io.atomic import atomic_path, write_parquet
from hnmine.progress import Reporter
from hnmine.rundir import RunDir, StageOutcome, stage_key

FILE_FORMATS = ("parquet", "jsonl")


@dataclass(frozen=True)
class ExportOptions:
    format: str = "triplet"
    file_format: str | None = None  # None: the format's usual one
    with_scores: bool = False

    def validate(self) -> None:
        FORMATS.get(self.format)
        if self.file_format is not None and self.file_format not in FILE_FORMATS:
            raise UnknownName("file format", self.file_format, list(FILE_FORMATS))

    def output_name(self) -> str:
        ext = self.file_format or FORMATS.get(self.format).default_file_format
        return f"export/{self.format}.{ext}"


def run_export(run: RunDir, opts: ExportOptions, *, force: bool = False, reporter: Reporter | None = None) -> StageOutcome:
    opts.validate()
    inputs = {"inputs": run.output_fingerprint("inputs"), "filter": run.output_fingerprint("filter"), "score": run.output_fingerprint("score")}
    key = stage_key("export", opts, inputs)
    out_rel = opts.output_name()
    if not force and run.up_to_date("export", key):
        return run.skipped("export")
    started = time.perf_counter()
    examples, num_negatives = build_examples(run)
    table = FORMATS.get(opts.format).build(examples, num_negatives, opts.with_scores)
    target = run / out_rel
    if out_rel.endswith(".jsonl"):
        write_jsonl(table, target)
    else:
        write_parquet(table, target)
    skipped_short = 0
    if opts.format == "n-tuple":
        skipped_short = sum(1 for ex in examples if len(ex.negatives) < num_negatives)
    return run.finish(
        "export", key, options=opts, inputs=inputs, outputs=[out_rel],
        counts={"rows_in": len(examples), "rows_out": table.num_rows},
        stats={"file": out_rel, "queries": len(examples), "queries_left_out_short": skipped_short}, started=started,
    )


def build_examples(run: RunDir) -> tuple[list[Example], int]:
    """One Example per exported query, in query order, negatives in the filter's order."""
    corpus = read_parquet(run.require("inputs/corpus.parquet"))
    queries = read_parquet(run.require("inputs/queries.parquet"))
    negatives = read_parquet(run.require("negatives.parquet"))
    summary = read_parquet(run.require("query_summary.parquet"))
    scores = read_parquet(run.require("scores.parquet"), columns=["query_id", "doc_id", "is_positive", "teacher_score"])
    filter_manifest = run.manifest("filter") or {}
    num_negatives = int(filter_manifest.get("options", {}).get("num_negatives", 5))
    titles = corpus.column("title").to_pylist()
    full = doc_texts(titles, corpus.column("text").to_pylist())
    doc = {d: (t, x) for d, t, x in zip(corpus.column("doc_id").to_pylist(), titles, full)}
    query_text = dict(zip(queries.column("query_id").to_pylist(), queries.column("text").to_pylist()))
    exported = [q for q, e in zip(summary.column("query_id").to_pylist(), summary.column("exported").to_pylist()) if e]
    pos = scores.filter(scores.column("is_positive"))
    positives: dict[str, list[Passage]] = {}
    for q, d, s in zip(pos.column("query_id").to_pylist(), pos.column("doc_id").to_pylist(), pos.column("teacher_score").to_pylist()):
        positives.setdefault(q, []).append(Passage(d, doc[d][0], doc[d][1], s))
    negs: dict[str, list[Passage]] = {}
    for q, d, s in zip(negatives.column("query_id").to_pylist(), negatives.column("doc_id").to_pylist(), negatives.column("teacher_score").to_pylist()):
        negs.setdefault(q, []).append(Passage(d, doc[d][0], doc[d][1], s))
    examples = []
    for q in exported:
        # Positives by teacher score, best first: a stable, meaningful order.
        ps = sorted(positives.get(q, []), key=lambda p: (-(p.score if p.score is not None else float("-inf")), p.doc_id))
        examples.append(Example(q, query_text[q], ps, negs.get(q, [])))
    return examples, num_negatives


def write_jsonl(table: pa.Table, target) -> None:
    # ensure_ascii=False: non-Latin text stays as its characters, never \u escapes.
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in table.to_pylist():
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
