"""Compare what training data does to a model: every arm fine-tuned for the same budget, all measured alike.

compare_arms() is the library entry point of `hnmine finetune`: it reads the sources (run exports or
training files) and the evaluation split, runs each arm for each seed (the untrained model once),
writes RUN/finetune/results.parquet into every run directory given, and returns the rows and the
per-arm summary.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hnmine.errors import InputError, OptionError, RunDirError
from hnmine.finetune.arms import IN_BATCH, MINED, Arm, build_arms, training_rows
from hnmine.finetune.evalset import EvalSet, load_eval_set
from hnmine.finetune.options import RUN_MODEL, FinetuneOptions
from hnmine.finetune.results import summarize, write_results
from hnmine.finetune.sources import TrainingSource, load_source
from hnmine.progress import Reporter


@dataclass
class Comparison:
    rows: list[dict]
    summary: list[dict]
    eval: dict
    model: dict
    sources: list[dict]
    results_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "eval": self.eval,
            "model": self.model,
            "sources": self.sources,
            "summary": self.summary,
            "rows": self.rows,
            "results_files": self.results_files,
            "warnings": self.warnings,
        }


def run_model_name(sources: list[TrainingSource]) -> str:
    """--model run: the dense model the run directories were indexed with (they must agree)."""
    names = {}
    for s in sources:
        if s.run_dir is None:
            continue
        from hnmine.rundir import RunDir

        manifest = RunDir(s.run_dir).manifest("index")
        name = (manifest.models.get("dense") or {}).get("name") if manifest is not None else None
        if not isinstance(name, str):
            raise RunDirError(f"{s.run_dir}: no dense model in manifests/index.json; give --model NAME")
        names[s.label] = name
    if not names:
        raise OptionError("--model run needs a run directory among the sources (a training file names no model)")
    if len(set(names.values())) > 1:
        raise OptionError(
            "--model run: the runs were mined with different models ("
            + ", ".join(f"{k}: {v}" for k, v in names.items())
            + "); give --model NAME"
        )
    return next(iter(names.values()))


def _eval_dtype(opts: FinetuneOptions, model: str) -> str:
    from hnmine.inference.spec import effective_dtype

    return effective_dtype(opts.eval_dtype, opts.device, model)


def compare_arms(
    sources: list[Path],
    eval_data: Path,
    eval_split: str,
    opts: FinetuneOptions,
    *,
    min_relevance: int = 1,
    reporter: Reporter | None = None,
    write: bool = True,
    cache_dir: Path | None = None,
) -> Comparison:
    """Run every arm for every seed and measure it (see the module docstring and hnmine.finetune.arms);
    `cache_dir`: where the embedding store is (hnmine.inference.store), which the evaluation encodes through."""
    from hnmine.inference.store import store_scope

    with store_scope(cache_dir):
        return _compare_arms(sources, eval_data, eval_split, opts, min_relevance, reporter or Reporter(), write)


def _compare_arms(
    sources: list[Path], eval_data: Path, eval_split: str, opts: FinetuneOptions, min_relevance: int, reporter: Reporter, write: bool
) -> Comparison:
    from hnmine.inference.models import resolve_model

    opts.validate()
    opts, loaded, arms = _prepare_arms(sources, opts)
    eval_set = load_eval_set(Path(eval_data), eval_split, min_relevance)
    warnings = list(eval_set.warnings) + _overlap_warnings(loaded, eval_set)
    for w in warnings:
        reporter.warn(w)
    import torch

    if opts.threads is not None:
        torch.set_num_threads(opts.threads)  # before the dtype probe and any model: all of them run with it
    model_name = run_model_name(loaded) if opts.model == RUN_MODEL else opts.model
    model_path, revision = resolve_model(model_name)
    eval_dtype = _eval_dtype(opts, model_name)
    common = _common_fields(opts, model_name, revision, eval_set, eval_split, eval_dtype, torch.get_num_threads())
    rows: list[dict] = []
    for arm in arms:
        for seed in opts.seeds if arm.trained else (None,):
            row = _run_cell(arm, seed, (model_name, model_path), eval_set, eval_dtype, opts, reporter)
            rows.append({**common, **row})

    files = []
    if write:
        for s in loaded:
            if s.run_dir is not None:
                files.append(str(write_results(rows, s.run_dir)))
    return Comparison(
        rows=rows,
        summary=summarize(rows),
        eval={**eval_set.describe(), "dtype": eval_dtype, "batch_size": opts.eval_batch_size},
        model={"name": model_name, "path": model_path, "revision": revision, "max_length": opts.max_length},
        sources=[
            {"arm": a.name, "path": str(a.source.path), "file": str(a.source.file), "shape": a.source.shape, **a.source.stats}
            for a in arms
            if a.source is not None
        ],
        results_files=files,
        warnings=warnings,
    )


def _prepare_arms(sources: list[Path], opts: FinetuneOptions) -> tuple[FinetuneOptions, list, list]:
    """Check the sources and options that fail fast, load the sources and build the arms."""
    from hnmine.finetune.device import pin_device
    from hnmine.finetune.extras import require_training_extras

    if not sources:
        raise OptionError("give at least one run directory or training file")
    if any(kind in opts.arms for kind in (IN_BATCH, MINED)):
        require_training_extras()  # before minutes of reading and encoding, not after
    opts = replace(opts, device=pin_device(opts.device))
    loaded = [load_source(Path(p)) for p in sources]
    arms = build_arms(loaded, opts.arms)
    for arm in arms:
        if arm.kind == MINED and opts.negatives and not any(len(p.negatives) >= opts.negatives for p in arm.pairs):
            raise InputError(
                f"{arm.source.file if arm.source else 'the runs'}: no (anchor, positive) pair has {opts.negatives} negative(s) to train with (--negatives)"
            )
    return opts, loaded, arms


def _common_fields(
    opts: FinetuneOptions, model_name: str, revision: str | None, eval_set, eval_split: str, eval_dtype: str, threads: int
) -> dict:
    """The fields every result row shares: the training budget, the model and the evaluation set."""
    from hnmine import __version__
    from hnmine.finetune.losses import LOSSES

    budget = opts.budget()
    return {
        **{k: budget[k] for k in ("epochs", "max_steps", "batch_size", "learning_rate", "warmup_ratio", "loss")},
        "batch_sampler": LOSSES.get(opts.loss).batch_sampler,
        "model": model_name,
        "model_revision": revision,
        "max_length": opts.max_length,
        "device": opts.device,
        "threads": threads,
        "eval_data": str(eval_set.data),
        "eval_split": eval_split,
        "eval_queries": len(eval_set.query_ids),
        "eval_documents": len(eval_set.doc_ids),
        "eval_dtype": eval_dtype,
        "hnmine_version": __version__,
    }


def _run_cell(
    arm: Arm, seed: int | None, base: tuple[str, str], eval_set: EvalSet, eval_dtype: str, opts: FinetuneOptions, reporter: Reporter
) -> dict:
    """Train (unless untrained) and measure one arm at one seed: the row's own columns. `base`: the model's (name, path)."""
    from hnmine.finetune.retrieval import measure
    from hnmine.finetune.train import load_model, train_copy

    model_name, model_path = base
    label = arm.name if seed is None else f"{arm.name} (seed {seed})"
    row: dict[str, Any] = {
        "arm": arm.name,
        "kind": arm.kind,
        "seed": seed,
        "source": str(arm.source.path) if arm.source else None,
        "train_pairs": len(arm.pairs),
    }
    if arm.trained:
        cols, left_out = training_rows(arm, opts.negatives, seed or 0)
        trained = train_copy(model_path, cols, opts, seed or 0, reporter=reporter, label=arm.name)
        model = trained.model
        row.update(
            train_rows=len(cols["anchor"]),
            pairs_left_out=left_out,
            negatives=opts.negatives if arm.kind == MINED else 0,
            steps=trained.steps,
            precision=trained.precision,
            train_seconds=round(trained.seconds, 2),
        )
    else:
        model = load_model(model_path, opts)
        row.update(
            train_rows=0,
            pairs_left_out=0,
            negatives=0,
            steps=0,
            train_seconds=0.0,
            **dict.fromkeys(("epochs", "max_steps", "batch_size", "learning_rate", "warmup_ratio", "loss", "batch_sampler")),
        )
    row["max_length"] = int(model.max_seq_length)  # type: ignore[attr-defined]  # the model's own when --max-length is not given
    shown = model_name if not arm.trained else f"{model_name} fine-tuned ({label})"
    measured = measure(model, eval_set, dtype=eval_dtype, batch_size=opts.eval_batch_size, reporter=reporter, label=label, name=shown)
    del model
    gc.collect()  # one model at a time: a trained copy is freed before the next one is loaded
    row.update(
        measured.scores.as_dict(),
        eval_seconds=round(measured.seconds, 2),
        finished_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    reporter.info(
        f"{label}: nDCG@10 {row['ndcg_at_10']:.4f}  Recall@100 {row['recall_at_100']:.4f}  "
        f"MRR@10 {row['mrr_at_10']:.4f}  ({row['train_seconds'] + row['eval_seconds']:.0f} s)"
    )
    return row


def _overlap_warnings(sources: list[TrainingSource], eval_set: EvalSet) -> list[str]:
    """Evaluation queries that are also training anchors make every trained arm look better than it is."""
    anchors = {p.anchor for s in sources for p in s.pairs}
    shared = sum(1 for t in eval_set.query_texts if t in anchors)
    if not shared:
        return []
    return [
        f"{shared} of {len(eval_set.query_texts)} evaluation queries ({eval_set.split}) are training anchors: "
        "the scores of trained arms are inflated; evaluate on a held-out split"
    ]
