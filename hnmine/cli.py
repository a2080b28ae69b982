"""The command line: thin typer commands. Each parses options, calls one hnmine function, and turns a
named hnmine error into a one-line message and exit code 2. Heavy libraries are imported lazily.

Option groups are declared once below and composed into each command's signature, so an option
is never defined twice.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from hnmine.errors import HnmineError

app = typer.Typer(
    name="hnmine",
    help="Mine hard negatives for embedding and reranker training, with positive-aware false-negative filtering.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

P = inspect.Parameter


def _opt(name: str, annotation: Any, default: Any, *flags: str, help: str, **kw) -> P:
    return P(name, P.KEYWORD_ONLY, default=typer.Option(default, *flags, help=help, **kw), annotation=annotation)


def _load_config(ctx: typer.Context, param, value: Optional[Path]):
    """Eager: read the TOML file first, so flags given on the command line override it."""
    if value is None:
        return value
    from hnmine.config import load_toml

    try:
        values = load_toml(value, ctx.info_name or "")
    except HnmineError as exc:
        _fail(exc)
    known = {p.name for p in ctx.command.params}
    unknown = sorted(set(values) - known)
    if unknown:
        _fail(HnmineError(f"{value}: unknown option(s) for `hnmine {ctx.info_name}`: {', '.join(unknown)}"))
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return value


RUN_OPTS = [
    _opt("out", Path, ..., "--out", "-o", help="Run directory: every stage reads and writes its tables here."),
]
COMMON_OPTS = [
    _opt("config", Optional[Path], None, "--config", help="TOML file of options (keys as option names); flags override it.",
         is_eager=True, callback=_load_config, expose_value=True),
    _opt("force", bool, False, "--force", help="Redo the stage(s) even when up to date."),
    _opt("json_", bool, False, "--json", help="Print a machine-readable summary on stdout."),
    _opt("quiet", bool, False, "--quiet", "-q", help="No progress bars or messages on stderr."),
]
DATA_ARG = [P("data", P.POSITIONAL_OR_KEYWORD, default=typer.Argument(None, help="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or a pairs file."), annotation=Optional[Path])]
INPUT_OPTS = [
    _opt("split", Optional[str], None, "--split", help="Qrels split of a BEIR folder (default: train, or the only one)."),
    _opt("corpus", Optional[Path], None, "--corpus", help="Corpus file (Parquet, JSONL, CSV, TSV); with pairs: extra documents."),
    _opt("queries", Optional[Path], None, "--queries", help="Queries file."),
    _opt("qrels", Optional[Path], None, "--qrels", help="Judgments file (query id, doc id, relevance)."),
    _opt("pairs", Optional[Path], None, "--pairs", help="(query, positive) pairs file; ids are content hashes."),
    _opt("doc_id_column", Optional[str], None, "--doc-id-column", help="Corpus id column (default: _id, doc_id, id…)."),
    _opt("doc_text_column", Optional[str], None, "--doc-text-column", help="Corpus text column (default: text, contents…)."),
    _opt("doc_title_column", Optional[str], None, "--doc-title-column", help="Corpus title column (default: title, if present)."),
    _opt("query_id_column", Optional[str], None, "--query-id-column", help="Query id column."),
    _opt("query_text_column", Optional[str], None, "--query-text-column", help="Query text column."),
    _opt("qrels_query_column", Optional[str], None, "--qrels-query-column", help="Qrels query id column."),
    _opt("qrels_doc_column", Optional[str], None, "--qrels-doc-column", help="Qrels document id column."),
    _opt("qrels_score_column", Optional[str], None, "--qrels-score-column", help="Qrels relevance column."),
    _opt("pair_query_column", Optional[str], None, "--pair-query-column", help="Pairs file: query column (default: query, anchor)."),
    _opt("pair_positive_column", Optional[str], None, "--pair-positive-column", help="Pairs file: positive column (text or list of texts)."),
    _opt("min_relevance", int, 1, "--min-relevance", help="Judgments at or above this grade are positives."),
    _opt("hide_positives", bool, False, "--hide-positives", help="Hidden-positive protocol: keep the best-graded positive per query, hide the rest (for `hnmine eval --hidden`)."),
]
MODEL_OPTS = [
    _opt("model", str, "all-MiniLM-L6-v2", "--model", "-m", help="Dense model: a sentence-transformers name or local path (default: bundled all-MiniLM-L6-v2)."),
    _opt("query_prompt", Optional[str], None, "--query-prompt", help="Text prepended to queries (instruction models)."),
    _opt("corpus_prompt", Optional[str], None, "--corpus-prompt", help="Text prepended to documents."),
    _opt("query_prompt_name", Optional[str], None, "--query-prompt-name", help="Name of a prompt stored in the model config, for queries."),
    _opt("corpus_prompt_name", Optional[str], None, "--corpus-prompt-name", help="Name of a prompt stored in the model config, for documents."),
    _opt("max_length", Optional[int], None, "--max-length", help="Maximum tokens per text (default: the model's)."),
    _opt("dtype", str, "auto", "--dtype", help="auto|float32|bfloat16|float16 (auto: on a CPU, the fastest by a timed encode, cached per machine; bf16/fp16 on a GPU)."),
    _opt("backend", str, "torch", "--backend", help="torch|openvino: what runs the bi-encoder (openvino: CPU only, float32 or bfloat16; pip install 'hnmine[openvino]'). Cross-encoders run on torch."),
    _opt("device", str, "cpu", "--device", help="cpu, cuda, cuda:N, mps, or GPUs to share out (cuda:0,cuda:1)."),
    _opt("batch_size", int, 64, "--batch-size", help="Texts per model batch."),
    _opt("workers", int, 1, "--workers", help="Processes for encoding, cross-encoder scoring and BM25 search (with --device cuda, spread over the GPUs)."),
    _opt("threads", Optional[int], None, "--threads", help="Torch threads per process (default: the CPUs shared out among the workers); with the same --threads, any --workers gives the same bytes."),
    _opt("normalize", bool, True, "--normalize/--no-normalize", help="L2-normalise embeddings (cosine scores)."),
]
INDEX_OPTS = [
    _opt("retriever", str, "dense", "--retriever", help="dense|bm25|hybrid (hybrid: both lists fused by reciprocal rank)."),
    _opt("bm25_backend", str, "bm25s", "--bm25-backend", help="bm25s (fast) or rank-bm25 (reference)."),
    _opt("bm25_method", str, "lucene", "--bm25-method", help="BM25 variant: lucene, robertson, atire, bm25l, bm25+."),
    _opt("corpus_embeddings", Optional[Path], None, "--corpus-embeddings", help="Precomputed corpus vectors (npy or Parquet), in corpus order."),
    _opt("exact_max_docs", int, 200_000, "--exact-max-docs", help="Exact search up to this many documents; IVF above."),
    _opt("candidate_model", Optional[List[str]], None, "--candidate-model", help="Another dense model as a candidate source (repeatable); its list is fused with the others by reciprocal rank."),
]
RETRIEVE_OPTS = [
    _opt("max_depth", int, 200, "--max-depth", help="Candidates retrieved per query (the cap for looking deeper)."),
    _opt("query_embeddings", Optional[Path], None, "--query-embeddings", help="Precomputed query vectors (npy or Parquet), in query order."),
    _opt("rrf_k", int, 60, "--rrf-k", help="Reciprocal-rank-fusion constant for --retriever hybrid."),
    _opt("nprobe", Optional[int], None, "--nprobe", help="IVF lists searched (large corpora; default: the fewest that reach --min-recall)."),
    _opt("min_recall", float, 0.95, "--min-recall", help="Recall@k against exact search an IVF search must reach on a query sample; else search is exact."),
]
SCORE_OPTS = [
    _opt("teacher", Optional[List[str]], None, "--teacher", help="Teacher model (repeat for an ensemble; KIND:MODEL sets the kind per teacher). Default: the --model bi-encoder."),
    _opt("teacher_type", str, "bi-encoder", "--teacher-type", help="bi-encoder|cross-encoder, for --teacher values without a KIND: prefix."),
]
FILTER_OPTS = [
    _opt("method", Optional[str], None, "--method", help="Selection method (see `hnmine methods`)."),
    _opt("num_negatives", Optional[int], None, "--num-negatives", "-n", help="Negatives per query (default 5)."),
    _opt("depth", int, 50, "--depth", help="Candidates considered first; the filter looks deeper (up to --max-depth) for queries left short."),
    _opt("depth_step", Optional[int], None, "--depth-step", help="Look-deeper step (default: --depth)."),
    _opt("min_negatives", Optional[int], None, "--min-negatives", help="Queries with fewer negatives are not exported (default 1)."),
    _opt("range_min", Optional[int], None, "--range-min", help="Rank window start (teacher rank, 1-based)."),
    _opt("range_max", Optional[int], None, "--range-max", help="Rank window end (inclusive)."),
    _opt("max_score", Optional[float], None, "--max-score", help="Drop candidates scoring above this (TopK-Abs)."),
    _opt("min_score", Optional[float], None, "--min-score", help="Drop candidates scoring below this."),
    _opt("margin", Optional[float], None, "--margin", help="Keep n only if s(n) < s(p) − margin (TopK-MarginPos)."),
    _opt("relative_margin", Optional[float], None, "--relative-margin", help="Keep n only if s(n) < s(p) − |s(p)|·m (TopK-PercPos, perc = 1 − m)."),
    _opt("sampling", Optional[str], None, "--sampling", help="top|random|softmax|top1-softmax|simans (default: the method's)."),
    _opt("sample_pool", Optional[int], None, "--sample-pool", help="Pool size for sampled top-k."),
    _opt("temperature", Optional[float], None, "--temperature", help="Softmax temperature for sampled methods."),
    _opt("simans_a", Optional[float], None, "--simans-a", help="SimANS a (default 0.5)."),
    _opt("simans_b", Optional[float], None, "--simans-b", help="SimANS b (default 0)."),
    _opt("positive_reference", str, "min", "--positive-reference", help="min|mean|max of the query's positive scores."),
    _opt("dedup_threshold", Optional[float], 0.95, "--dedup-threshold", help="Drop candidates with cosine ≥ this to a positive (≥ 1.0001 disables)."),
    _opt("random_negatives", Optional[int], None, "--random-negatives", help="Extra random negatives from outside the candidates (STAR)."),
    _opt("seed", int, 42, "--seed", help="Seed for sampling and hidden positives."),
]
EXPORT_OPTS = [
    _opt("format", str, "triplet", "--format", "-f", help="triplet|n-tuple|labeled-pair|labeled-list|flagembedding|tevatron."),
    _opt("file_format", Optional[str], None, "--file-format", help="parquet|jsonl (default: the format's usual one)."),
    _opt("with_scores", bool, False, "--with-scores", help="Include teacher scores (for distillation)."),
]

ALL_STAGE_OPTS = INPUT_OPTS + MODEL_OPTS + INDEX_OPTS + RETRIEVE_OPTS + SCORE_OPTS + FILTER_OPTS + EXPORT_OPTS
# Which stages each command runs, and which option groups it shows.
STAGE_COMMANDS = {
    "index": (("inputs", "index"), DATA_ARG, INPUT_OPTS + MODEL_OPTS + INDEX_OPTS, "Normalise the inputs and build the dense and/or BM25 index."),
    "retrieve": (("retrieve",), [], MODEL_OPTS + INDEX_OPTS[:1] + RETRIEVE_OPTS, "Retrieve the top candidates per query (dense, BM25 or hybrid)."),
    "score": (("score",), [], MODEL_OPTS + RETRIEVE_OPTS[1:2] + SCORE_OPTS, "Score every (query, candidate) and (query, positive) pair with the teacher(s)."),
    "filter": (("filter",), [], FILTER_OPTS + RETRIEVE_OPTS[:1], "Choose negatives per query with a method; write negatives, dropped and query_summary tables."),
    "export": (("export",), [], EXPORT_OPTS, "Write training files (sentence-transformers, FlagEmbedding or Tevatron shapes)."),
}


def _fail(exc: HnmineError) -> None:
    typer.echo(f"hnmine: error: {exc}", err=True)
    raise typer.Exit(exc.exit_code)


def _reporter(quiet: bool):
    from hnmine.progress import Reporter, RichReporter

    return Reporter() if quiet else RichReporter()


def _make_stage_command(name: str, stages: tuple[str, ...], args: list[P], opts: list[P], help_text: str) -> Callable:
    def command(**kw):
        from hnmine.config import pipeline_options
        from hnmine.pipeline import mine

        out, force, json_, quiet = kw.pop("out"), kw.pop("force"), kw.pop("json_"), kw.pop("quiet")
        kw.pop("config", None)
        try:
            options = pipeline_options(kw)
            result = mine(out, options, force=force, reporter=_reporter(quiet), stages=stages)
        except HnmineError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            typer.echo("hnmine: interrupted; finished stages are kept, rerun the same command to resume", err=True)
            raise typer.Exit(130)
        _print_result(result, json_, quiet)

    command.__signature__ = inspect.Signature(args + RUN_OPTS + opts + COMMON_OPTS)
    command.__doc__ = help_text
    command.__name__ = f"{name}_command"
    return command


def _print_result(result, json_: bool, quiet: bool) -> None:
    if json_:
        typer.echo(json.dumps(result.summary(), indent=2, ensure_ascii=False))
        return
    if quiet:
        return
    from hnmine.progress import RichReporter

    rep = RichReporter()
    summary = result.summary()
    f = summary.get("filter") or {}
    if f:
        rep.info(
            f"negatives: {f.get('negatives_total', '?')} for {f.get('queries_full', '?')} full + {f.get('queries_short', '?')} short queries; "
            f"dropped candidates: {sum(v for k, v in f.items() if k.startswith('dropped_') and isinstance(v, int))}"
        )
    rep.info(f"run directory: {summary['run_dir']}")
    if summary.get("export"):
        rep.info(f"training file: {summary['export']}")


def _register_stage_commands() -> None:
    for name, (stages, args, opts, help_text) in STAGE_COMMANDS.items():
        app.command(name)(_make_stage_command(name, stages, args, opts, help_text))
    app.command("mine")(
        _make_stage_command(
            "mine",
            ("inputs", "index", "retrieve", "score", "filter", "export"),
            DATA_ARG,
            ALL_STAGE_OPTS,
            "Run every stage: index → retrieve → score → filter → export. Finished, unchanged stages are skipped.",
        )
    )


_register_stage_commands()


@app.command("methods")
def methods_command() -> None:
    """List the negative-selection methods with their default values."""
    from hnmine.methods import DEFAULT_METHOD, get_method, method_names

    for name in method_names():
        m = get_method(name)
        defaults = ", ".join(f"{k}={v}" for k, v in sorted(m.defaults.items()) if v is not None)
        mark = " (default)" if name == DEFAULT_METHOD else ""
        typer.echo(f"{name}{mark}: sampling={m.sampling}" + (f", {defaults}" if defaults else ""))


def _register_helper_commands() -> None:
    from hnmine.cli_eval import eval_command
    from hnmine.cli_report import inspect_command, report_command

    for name, fn in (("eval", eval_command), ("report", report_command), ("inspect", inspect_command)):
        app.command(name)(_guarded(fn))


def _guarded(fn: Callable) -> Callable:
    """Wrap a command so a named hnmine error becomes a one-line message and exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HnmineError as exc:
            _fail(exc)

    return wrapper


_register_helper_commands()


def _version(value: bool) -> None:
    if value:
        from hnmine import __version__

        typer.echo(f"hnmine {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, callback=_version),
) -> None:
    """Mine hard negatives for embedding and reranker training, with positive-aware false-negative filtering."""


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
