"""Option groups: flags (or a TOML config file) → the options of each stage.

The CLI gathers flat keyword options; `pipeline_options` sorts them into one frozen dataclass per
stage. The same names work as TOML keys (`num_negatives = 8` or `num-negatives = 8`), at the top
level or under a table named after the command (`[mine]`, `[filter]`, …).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hnmine.errors import InputError, OptionError


@dataclass(frozen=True)
class PipelineOptions:
    inputs: Any
    index: Any
    retrieve: Any
    score: Any
    filter: Any
    export: Any


def load_toml(path: Path, command: str) -> dict[str, Any]:
    """Flat option mapping from a TOML file: top-level keys, overlaid by the command's own table."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    flat.update(data.get(command, {}) if isinstance(data.get(command), dict) else {})
    return {k.replace("-", "_"): v for k, v in flat.items()}


def pipeline_options(o: dict[str, Any]) -> PipelineOptions:
    """Build every stage's options from the flat flag mapping (missing keys take defaults)."""
    from hnmine.encode import EncoderSpec
    from hnmine.io.inputs import InputSpec
    from hnmine.retrievers import check_retriever, needs_bm25, needs_dense
    from hnmine.retrievers.bm25 import BM25Options
    from hnmine.stages.export import ExportOptions
    from hnmine.stages.filter import FilterOptions
    from hnmine.stages.index import IndexOptions
    from hnmine.stages.inputs import InputOptions
    from hnmine.stages.retrieve import RetrieveOptions
    from hnmine.stages.score import ScoreOptions
    from hnmine.teachers import TEACHER_KINDS, TeacherSpec

    def get(name: str, default: Any = None) -> Any:
        v = o.get(name)
        return default if v is None else v

    def path(name: str) -> Path | None:
        v = o.get(name)
        return Path(v) if v not in (None, "") else None

    spec = InputSpec(
        data=path("data"), split=o.get("split"), corpus=path("corpus"), queries=path("queries"), qrels=path("qrels"),
        pairs=path("pairs"), doc_id_column=o.get("doc_id_column"), doc_text_column=o.get("doc_text_column"),
        doc_title_column=o.get("doc_title_column"), query_id_column=o.get("query_id_column"),
        query_text_column=o.get("query_text_column"), qrels_query_column=o.get("qrels_query_column"),
        qrels_doc_column=o.get("qrels_doc_column"), qrels_score_column=o.get("qrels_score_column"),
        pair_query_column=o.get("pair_query_column"), pair_positive_column=o.get("pair_positive_column"),
        min_relevance=int(get("min_relevance", 1)),
    )
    seed = int(get("seed", 42))
    encoder = EncoderSpec(
        model=get("model", EncoderSpec.model), max_length=o.get("max_length"), dtype=get("dtype", "auto"),
        device=get("device", "cpu"), batch_size=int(get("batch_size", 64)), normalize=bool(get("normalize", True)),
        workers=int(get("workers", 1)), threads=o.get("threads"), backend=get("backend", "torch"),
    )
    encoder.validate()
    retriever = get("retriever", "dense")
    check_retriever(retriever)
    teacher_type = get("teacher_type", "bi-encoder")
    if teacher_type not in TEACHER_KINDS:
        from hnmine.errors import UnknownName

        raise UnknownName("teacher type", teacher_type, list(TEACHER_KINDS))
    teachers = tuple(TeacherSpec.parse(t, teacher_type, encoder.model) for t in (o.get("teacher") or []))
    if not teachers and teacher_type == "cross-encoder":
        raise OptionError("--teacher-type cross-encoder needs --teacher MODEL (a cross-encoder name or path)")
    uses_bi_encoder = not teachers or any(t.kind == "bi-encoder" for t in teachers)
    prompts = dict(
        query_prompt=o.get("query_prompt"), query_prompt_name=o.get("query_prompt_name"),
    )
    corpus_prompts = dict(corpus_prompt=o.get("corpus_prompt"), corpus_prompt_name=o.get("corpus_prompt_name"))
    bm25 = BM25Options(backend=get("bm25_backend", "bm25s"), method=get("bm25_method", "lucene"))
    bm25.validate()
    max_depth = int(get("max_depth", 200))
    depth = int(get("depth", 50))
    if depth > max_depth:
        raise OptionError(f"--depth ({depth}) is larger than --max-depth ({max_depth})")
    filter_fields = (
        "method", "num_negatives", "depth_step", "min_negatives", "range_min", "range_max", "max_score", "min_score",
        "margin", "relative_margin", "sampling", "sample_pool", "temperature", "simans_a", "simans_b",
        "positive_reference", "random_negatives",
    )
    filter_kwargs = {k: o[k] for k in filter_fields if o.get(k) is not None}
    if "dedup_threshold" in o:
        dt = o["dedup_threshold"]
        filter_kwargs["dedup_threshold"] = None if dt is None or (isinstance(dt, (int, float)) and dt >= 1.000001) or dt == "off" else float(dt)
    return PipelineOptions(
        inputs=InputOptions(spec=spec, hide_positives=bool(get("hide_positives", False)), hide_seed=seed),
        index=IndexOptions(
            dense=needs_dense(retriever) or uses_bi_encoder, bm25=needs_bm25(retriever), encoder=encoder,
            bm25_options=bm25, exact_max_docs=int(get("exact_max_docs", 200_000)), corpus_embeddings=path("corpus_embeddings"),
            candidate_models=tuple(o.get("candidate_model") or ()),
            **corpus_prompts,
        ),
        retrieve=RetrieveOptions(
            retriever=retriever, max_depth=max_depth, encoder=encoder, rrf_k=int(get("rrf_k", 60)),
            nprobe=o.get("nprobe"), min_recall=float(get("min_recall", 0.95)), query_embeddings=path("query_embeddings"), **prompts,
        ),
        score=ScoreOptions(teachers=teachers, encoder=encoder, query_embeddings=path("query_embeddings"), **prompts, **corpus_prompts),
        filter=FilterOptions(depth=depth, max_depth=max_depth, seed=seed, **filter_kwargs),
        export=ExportOptions(format=get("format", "triplet"), file_format=o.get("file_format"), with_scores=bool(get("with_scores", False))),
    )
