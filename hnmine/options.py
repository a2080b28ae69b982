"""Every option of `hnmine mine` and the stage commands, declared once: its name, type, default, help,
bounds and the stages that read it; and the rules between them.

The CLI flags (`hnmine.cli`), the TOML keys of `--config` (`hnmine.config`), the Python API's keyword
arguments and the checks (`check_options`) all come from the two dataclasses below, so an option
cannot be spelled, bounded or defaulted two ways. A message names the flag (`--num-negatives`).
How a declaration is made and one value checked is hnmine.option_spec's (any command's options: the
helper commands declare theirs the same way, hnmine.command_options); the rules between options are
hnmine.option_rules'. It is longer than 500 lines on purpose: it is the one list of every option of the
pipeline, each with its help and bounds; split in two, where an option is declared would be a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from hnmine.errors import OptionError, UnknownName
from hnmine.option_rules import RULES
from hnmine.option_spec import (
    Spec,
    check_field,
    declared_fields,
    declared_types,
    default_of,
    flag,
    opt,
    spec,
)
from hnmine.option_spec import coerce as coerce_declared
from hnmine.option_spec import registry_names as _names

__all__ = ["Spec", "default_of", "flag", "opt", "spec"]  # the declaration's parts, as other modules name them here

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# The stages in pipeline order, each with the command that runs it on its own. hnmine.stages declares their
# work (tests/test_structure.py ties the two); they are named here, below every module that names a stage.
STAGE_COMMANDS: dict[str, str] = {
    "inputs": "index",
    "index": "index",
    "retrieve": "retrieve",
    "score": "score",
    "filter": "filter",
    "export": "export",
}
STAGE_NAMES: tuple[str, ...] = tuple(STAGE_COMMANDS)


def command_of(stage: str) -> str:
    """The command that runs a stage on its own (`mine` for anything else)."""
    return STAGE_COMMANDS.get(stage, "mine")


MAX_SEED = 2**63 - 1


_IN = ("inputs",)
_PREMINED = ("inputs", "retrieve", "score")  # read by the inputs stage; it decides what retrieve and score do
_MODEL = ("index", "retrieve", "score")
_FILTER = ("filter",)
_OF_METHOD = ("method",)  # a method sets its own default of these (hnmine.methods.base.METHOD_OPTION_FIELDS)
_OF_SAMPLER = ("method", "sampling")


@dataclass(frozen=True)
class Options:
    """What a run computes. The same names are the CLI flags (dashed), the TOML keys and the API's arguments."""

    # inputs
    data: Path | None = opt(
        None,
        "A BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), a pairs file, or a saved `datasets` folder.",
        stages=_IN,
        argument=True,
    )
    split: str | None = opt(None, "Qrels split of a BEIR folder (default: train, or the only one).", stages=_IN)
    corpus: Path | None = opt(None, "Corpus file (Parquet, JSONL, CSV, TSV, optionally .gz); with pairs: extra documents.", stages=_IN)
    queries: Path | None = opt(None, "Queries file.", stages=_IN)
    qrels: Path | None = opt(None, "Judgments file (query id, doc id, relevance).", stages=_IN)
    pairs: Path | None = opt(None, "(query, positive) pairs file; ids are content hashes.", stages=_IN)
    doc_id_column: str | None = opt(None, "Corpus id column (default: _id, doc_id, id…).", stages=_IN)
    doc_text_column: str | None = opt(None, "Corpus text column (default: text, contents…).", stages=_IN)
    doc_title_column: str | None = opt(None, "Corpus title column (default: title, if present).", stages=_IN)
    query_id_column: str | None = opt(None, "Query id column.", stages=_IN)
    query_text_column: str | None = opt(None, "Query text column.", stages=_IN)
    qrels_query_column: str | None = opt(None, "Qrels query id column.", stages=_IN)
    qrels_doc_column: str | None = opt(None, "Qrels document id column.", stages=_IN)
    qrels_score_column: str | None = opt(None, "Qrels relevance column.", stages=_IN)
    pair_query_column: str | None = opt(None, "Pairs file: query column (default: query, anchor).", stages=_IN)
    pair_positive_column: str | None = opt(None, "Pairs file: positive column (text or list of texts).", stages=_IN)
    # A pre-mined dataset is the run's data and its candidates: the retrieve stage takes them from it instead of
    # searching, and the score stage takes its scores as the teacher's when it has some and no --teacher is given.
    premined: Path | None = opt(
        None,
        "An existing mined dataset (FlagEmbedding JSONL, sentence-transformers triplet or n-tuple, Tevatron, a scored "
        "pool; a file, a saved `datasets` folder or a scored pool's folder): its queries, positives and negatives are "
        "the run's, nothing is retrieved, and its scores (if any) are the teacher's. --corpus/--queries: texts found "
        "there keep their ids.",
        stages=_PREMINED,
    )
    premined_format: str | None = opt(
        None,
        "The --premined file's format (default: told by its columns).",
        stages=_PREMINED,
        choices=_names("hnmine.io.premined", "format_names"),
        kind="pre-mined format",
        requires="premined",
    )
    min_relevance: int = opt(1, "Judgments at or above this grade are positives.", stages=_IN, low=-1000, high=1000)
    hide_positives: bool = opt(
        False,
        "Hidden-positive protocol: keep the best-graded positive per query, hide the rest (for `hnmine eval --hidden`).",
        stages=_IN,
        negatable=True,  # a run's option is kept by later commands (hnmine.run_options): --no-… turns it off
    )
    seed: int = opt(42, "Seed for sampling and hidden positives.", stages=("inputs", "filter"), low=0, high=MAX_SEED)
    # model inference
    model: str = opt(
        DEFAULT_MODEL,
        "Dense model: a sentence-transformers name or local path (default: bundled all-MiniLM-L6-v2).",
        stages=_MODEL,
        short=("-m",),
    )
    query_prompt: str | None = opt(None, "Text prepended to queries (instruction models).", stages=("retrieve", "score"))
    corpus_prompt: str | None = opt(None, "Text prepended to documents.", stages=("index", "score"))
    query_prompt_name: str | None = opt(None, "Name of a prompt stored in the model config, for queries.", stages=("retrieve", "score"))
    corpus_prompt_name: str | None = opt(None, "Name of a prompt stored in the model config, for documents.", stages=("index", "score"))
    max_length: int | None = opt(
        None, "Maximum tokens per text (default: the model's; at most its limit).", stages=_MODEL, low=1, high=1_000_000
    )
    dtype: str = opt(
        "auto",
        "auto|float32|bfloat16|float16 (auto: on a CPU the fastest by a timed encode, cached per machine; bf16/fp16 on a GPU).",
        stages=_MODEL,
        choices=lambda: ("auto", "float32", "bfloat16", "float16"),
        kind="dtype",
    )
    backend: str = opt(
        "torch",
        "torch|openvino|auto: what runs the bi-encoder (openvino: CPU only, float32 or bfloat16; pip install "
        "'hnmine[openvino]'; auto: openvino where installed and measured faster on this CPU, cached per machine). "
        "Cross-encoders run on torch.",
        stages=_MODEL,
        choices=lambda: ["auto", *_names("hnmine.inference.backends", "BACKENDS")()],
        kind="backend",
    )
    device: str = opt("cpu", "cpu, cuda, cuda:N, mps, or GPUs to share out (cuda:0,cuda:1).", stages=_MODEL)
    batch_size: int = opt(64, "Texts per model batch.", stages=_MODEL, low=1, high=65536)
    workers: int = opt(
        1,
        "Processes for encoding, cross-encoder scoring and BM25 search (with --device cuda, spread over the GPUs).",
        stages=_MODEL,
        low=1,
        high=256,
    )
    threads: int | None = opt(
        None,
        "Torch threads per process (default: the CPUs shared out among the workers); with the same --threads, any --workers gives the same bytes.",
        stages=_MODEL,
        low=1,
        high=4096,
    )
    normalize: bool = opt(True, "L2-normalise embeddings (cosine scores).", stages=_MODEL, negatable=True)
    # index
    retriever: str = opt(
        "dense",
        "dense|bm25|hybrid (hybrid: both lists fused by reciprocal rank).",
        stages=("index", "retrieve"),
        choices=_names("hnmine.retrievers", "RETRIEVERS"),
        kind="retriever",
    )
    bm25_backend: str = opt(
        "bm25s",
        "bm25s (fast) or rank-bm25 (reference).",
        stages=("index",),
        choices=_names("hnmine.retrievers", "BM25_BACKENDS"),
        kind="BM25 backend",
    )
    bm25_method: str = opt(
        "lucene",
        "BM25 variant: lucene, robertson, atire, bm25l, bm25+.",
        stages=("index",),
        choices=_names("hnmine.retrievers.bm25", "BM25_VARIANTS"),
        kind="BM25 method",
    )
    corpus_embeddings: Path | None = opt(
        None,
        "Precomputed corpus vectors (npy or Parquet): one per row of the run's corpus table (inputs/corpus.parquet), in its order.",
        stages=("index",),
        of_data=True,
    )
    exact_max_docs: int = opt(200_000, "Exact search up to this many documents; IVF above.", stages=("index",), low=1, high=10**12)
    candidate_model: tuple[str, ...] = opt(
        (),
        "Another dense model as a candidate source (repeatable); its list is fused with the others by reciprocal rank.",
        stages=("index", "retrieve"),
    )
    # retrieve
    max_depth: int = opt(
        200, "Candidates retrieved per query (the cap for looking deeper).", stages=("retrieve", "filter"), low=1, high=100_000
    )
    query_embeddings: Path | None = opt(
        None,
        "Precomputed query vectors (npy or Parquet): one per row of the run's queries table (inputs/queries.parquet), in its order.",
        stages=("retrieve", "score"),
        of_data=True,
    )
    rrf_k: int = opt(60, "Reciprocal-rank-fusion constant for several candidate lists.", stages=("retrieve",), low=1, high=1_000_000)
    nprobe: int | None = opt(
        None,
        "IVF lists searched (large corpora; default: the fewest that reach --min-recall).",
        stages=("retrieve",),
        low=1,
        high=1_000_000,
    )
    min_recall: float = opt(
        0.95,
        "Recall@k against exact search an IVF search must reach on a query sample; else search is exact.",
        stages=("retrieve",),
        low=0.0,
        high=1.0,
        low_open=True,
    )
    # score
    teacher: tuple[str, ...] = opt(
        (),
        "Teacher model (repeat for an ensemble; KIND:MODEL sets the kind per teacher). Default: the --model bi-encoder.",
        stages=("score",),
    )
    teacher_type: str = opt(
        "bi-encoder",
        "bi-encoder|cross-encoder, for --teacher values without a KIND: prefix.",
        stages=("score",),
        choices=_names("hnmine.teachers", "TEACHER_KINDS"),
        kind="teacher type",
    )
    rerank_teacher: str | None = opt(
        None,
        "A strong teacher (KIND:MODEL or MODEL; default kind cross-encoder) that scores only the positives and the top "
        "--rerank-budget candidates per query by the first teacher(s), more for queries the filter would leave short; "
        "its scores are the ones the filter uses, and a candidate it did not score is never a negative (docs/methods.md).",
        stages=("score",),
    )
    # None until given, so that a budget given without --rerank-teacher is refused, not silently unused
    rerank_budget: int | None = opt(
        None,
        "With --rerank-teacher: candidates per query it scores first (default 16), doubled (up to all of them) for the "
        "queries the filter would leave short.",
        stages=("score",),
        low=1,
        high=100_000,
        requires="rerank_teacher",
    )
    # filter
    method: str = opt(
        "shifted",
        "Selection method (see `hnmine methods`).",
        stages=_FILTER,
        choices=_names("hnmine.methods", "method_names"),
        kind="method",
    )
    num_negatives: int = opt(5, "Negatives per query.", stages=_FILTER, short=("-n",), low=1, high=1000)
    depth: int = opt(
        50,
        "Candidates considered first; the filter looks deeper (up to --max-depth) for queries left short.",
        stages=_FILTER,
        low=1,
        high=100_000,
    )
    depth_step: int | None = opt(None, "Look-deeper step (default: --depth).", stages=_FILTER, low=1, high=100_000)
    min_negatives: int = opt(1, "Queries with fewer negatives are not exported.", stages=_FILTER, low=0, high=2000)
    range_min: int | None = opt(
        None, "Rank window start (teacher rank, 1-based).", stages=_FILTER, low=1, high=100_000, belongs_to=_OF_METHOD
    )
    range_max: int | None = opt(None, "Rank window end (inclusive).", stages=_FILTER, low=1, high=100_000, belongs_to=_OF_METHOD)
    max_score: float | None = opt(None, "Drop candidates scoring above this (TopK-Abs).", stages=_FILTER, belongs_to=_OF_METHOD)
    max_score_percentile: float | None = opt(
        None,
        "Drop a candidate that any teacher scores above this percentile (0-100) of its own scores of the known positives: "
        "a threshold per teacher, for ensembles and cascades of uncalibrated teachers (docs/methods.md).",
        stages=_FILTER,
        low=0.0,
        high=100.0,
    )
    min_score: float | None = opt(None, "Drop candidates scoring below this.", stages=_FILTER, belongs_to=_OF_METHOD)
    margin: float | None = opt(
        None, "Keep n only if s(n) < s(p) − margin (TopK-MarginPos).", stages=_FILTER, low=0.0, belongs_to=_OF_METHOD
    )
    relative_margin: float | None = opt(
        None,
        "Keep n only if s(n) < s(p) − |s(p)|·m (TopK-PercPos, perc = 1 − m).",
        stages=_FILTER,
        low=0.0,
        belongs_to=_OF_METHOD,
    )
    sampling: str | None = opt(
        None,
        "top|random|softmax|top1-softmax|simans (default: the method's).",
        stages=_FILTER,
        choices=_names("hnmine.methods.samplers", "sampler_names"),
        kind="sampling",
        belongs_to=_OF_METHOD,
    )
    sample_pool: int | None = opt(None, "Pool size for sampled top-k.", stages=_FILTER, low=1, high=100_000, belongs_to=_OF_SAMPLER)
    temperature: float | None = opt(
        None, "Softmax temperature for sampled methods.", stages=_FILTER, low=0.0, low_open=True, belongs_to=_OF_SAMPLER
    )
    simans_a: float | None = opt(None, "SimANS a (default 0.5).", stages=_FILTER, low=0.0, low_open=True, belongs_to=_OF_SAMPLER)
    simans_b: float | None = opt(None, "SimANS b (default 0).", stages=_FILTER, belongs_to=_OF_SAMPLER)
    positive_reference: str = opt(
        "min",
        "min|mean|max of the query's positive scores.",
        stages=_FILTER,
        choices=lambda: ("min", "mean", "max"),
        kind="positive reference",
    )
    dedup_threshold: float = opt(
        0.95, "Drop candidates with cosine ≥ this to a positive (above 1 disables).", stages=_FILTER, low=0.0, high=2.0, low_open=True
    )
    random_negatives: int = opt(0, "Extra random negatives from outside the candidates (STAR).", stages=_FILTER, low=0, high=1000)
    max_negative_reuse: int | None = opt(
        None,
        "No document is a negative of more than K queries: the ones over the cap are dropped (reason negative_reuse_cap) "
        "and replaced by other eligible candidates, chosen so that as many queries as possible stay full (docs/methods.md).",
        stages=_FILTER,
        low=1,
        high=1_000_000_000,
    )
    relabel: bool = opt(
        False,
        "Turn candidates the teacher scores at least --relabel-margin above the query's best known positive into "
        "positives (exported as such, reason relabelled_positive) instead of only keeping them out of the negatives.",
        stages=_FILTER,
        negatable=True,
    )
    # None until given, so that a value given without --relabel is refused, not silently unused; the filter
    # stage resolves None to RELABEL_DEFAULTS.
    relabel_margin: float | None = opt(
        None,
        "With --relabel: how far above the best known positive's score a candidate must score to be relabelled "
        "(teacher's scale; default 0).",
        stages=_FILTER,
        low=-1e6,
        high=1e6,
        requires="relabel",
    )
    relabel_max: int | None = opt(
        None,
        "With --relabel: most candidates relabelled per query, the highest-scoring first (default 1).",
        stages=_FILTER,
        low=1,
        high=100,
        requires="relabel",
    )
    judgments: Path | None = opt(
        None,
        "Relevance judgments for the filter (judgments.parquet, or a BEIR/TREC qrels file): judged relevant "
        "documents become positives, judged non-relevant ones are never dropped as suspected false negatives. "
        "Default: the run's own (from `hnmine review`), if any.",
        stages=_FILTER,
    )
    # export
    format: str = opt(
        "triplet",
        "triplet|n-tuple|labeled-pair|labeled-list|flagembedding|tevatron|scored-pool (distillation: train, queries, documents).",
        stages=("export",),
        short=("-f",),
        choices=_names("hnmine.formats", "format_names"),
        kind="export format",
    )
    file_format: str | None = opt(
        None,
        "parquet|jsonl (default: the format's usual one).",
        stages=("export",),
        choices=lambda: ("parquet", "jsonl"),
        kind="file format",
    )
    with_scores: bool = opt(False, "Include teacher scores (for distillation).", stages=("export",), negatable=True)


@dataclass(frozen=True)
class RunOptions:
    """How a command runs, not what it computes: never part of a stage key."""

    out: Path | None = opt(None, "Run directory: every stage reads and writes its tables here.", short=("-o",), required=True)
    config: Path | None = opt(None, "TOML file of options (keys as option names, optionally under [mine], [filter]…); flags override it.")
    force: bool = opt(False, "Redo the stage(s) even when up to date.")
    replace: bool = opt(
        False, "Mine other inputs into a run directory that holds a run of other data (its review verdicts on changed texts are set aside)."
    )
    defaults: bool = opt(
        False, "Options not given take their defaults, not the values the run directory last ran with (a fresh run's options)."
    )
    reset: tuple[str, ...] = opt(
        (),
        "An option that takes its default, not the value the run directory last ran with (repeatable: --reset judgments "
        "turns off a --judgments file the run kept).",
    )
    json: bool = opt(False, "Print a machine-readable summary on stdout.")
    quiet: bool = opt(False, "No progress bars or messages on stderr.", short=("-q",))
    engine: str = opt(
        "local",
        "Where the stages run: local (this machine's processes) or ray (a Ray cluster: Ray Data pipelines over the same tables; "
        "needs `pip install hnmine[ray]`). The same run directory, keys and skip rules for both.",
        choices=_names("hnmine.executors", "engine_names"),
        kind="engine",
    )
    ray_address: str | None = opt(
        None,
        "With --engine ray: the cluster to join (host:port of its head, or 'auto'); default $RAY_ADDRESS, "
        "else a Ray started on this machine for the run and stopped after it.",
    )
    cache_dir: Path | None = opt(
        None,
        "Folder of the embedding store (CACHE_DIR/store: one vector per model and text, shared by every run and "
        "command that uses it); default the user's hnmine cache ($HNMINE_CACHE_DIR, else ~/.cache/hnmine). "
        "With --engine ray, a folder every node sees.",
    )
    cache_max_size: str | None = opt(
        None,
        "After the command, prune the embedding store to at most this size (500MB, 2GB…), least recently used first.",
    )


def option_fields(cls: type | None = None) -> tuple:
    """The declared fields of `cls` (default: Options), in declaration order."""
    return declared_fields(Options if cls is None else cls)


def option_types(cls: type | None = None) -> dict[str, Any]:
    return declared_types(Options if cls is None else cls)


def label(name: str) -> str:
    """How the command line names an option: its flag, or its metavar for a positional argument (DATA)."""
    f = next((f for f in option_fields(Options) if f.name == name), None)
    return name.upper() if f is not None and spec(f).argument else flag(name)


def options_for_stages(stages: Sequence[str]) -> list:
    """The Options fields a command running `stages` takes (in declaration order)."""
    wanted = set(stages)
    return [f for f in option_fields(Options) if wanted & set(spec(f).stages)]


def coerce(name: str, value: Any, cls: type | None = None, where: str | None = None) -> Any:
    """`value` as the option's type (an option of `cls`, default Options), or an OptionError naming the flag
    (or `where`, e.g. a config key)."""
    return coerce_declared(name, value, Options if cls is None else cls, where)


# ---------------------------------------------------------------------------------------- checks


def check_values(obj: Any, stages: Sequence[str] | None = None) -> None:
    """Every declared option `obj` has (Options, or the filter's settings): types, bounds, names, and the
    rules between them (hnmine.option_rules). The one place options are checked; messages name the flag.

    `stages`: the stages about to run. A rule between options applies only when those stages read every
    option it names: `hnmine retrieve --max-depth 30` is not refused for --depth (50), a filter option
    that command neither takes nor uses."""
    for f in option_fields(Options):
        if hasattr(obj, f.name):
            check_field(obj, f, Options)
    for f in option_fields(Options):
        switch = spec(f).requires
        if switch and getattr(obj, f.name, None) is not None and hasattr(obj, switch) and not getattr(obj, switch):
            raise OptionError(f"{flag(f.name)} applies only with {flag(switch)}; give both, or neither")
    for needs, rule in RULES:
        if all(getattr(obj, n, None) is not None for n in needs) and (stages is None or _read_by(needs, stages)):
            rule(obj)


def _read_by(names: Sequence[str], stages: Sequence[str]) -> bool:
    declared = {f.name: f for f in option_fields(Options)}
    return all(n not in declared or set(spec(declared[n]).stages) & set(stages) for n in names)


# What --relabel uses for an option not given (the fields default to None, so a value given without
# --relabel can be told from the default and refused).
RELABEL_DEFAULTS = {"relabel_margin": 0.0, "relabel_max": 1}


def relabel_settings(o: Any) -> tuple[float, int]:
    """(margin, most per query) that --relabel runs with: the given values, else RELABEL_DEFAULTS."""
    margin = o.relabel_margin if o.relabel_margin is not None else RELABEL_DEFAULTS["relabel_margin"]
    most = o.relabel_max if o.relabel_max is not None else RELABEL_DEFAULTS["relabel_max"]
    return float(margin), int(most)


def check_options(options: Options, stages: Sequence[str] | None = None) -> None:
    """Every bound and every rule between options (those the stages read), before any work; one-line
    OptionError/UnknownName."""
    check_values(options, stages)


def check_engine(name: str) -> None:
    """An engine name from the registry (hnmine.executors); an unknown one lists the valid names."""
    valid = _names("hnmine.executors", "engine_names")()
    if name not in valid:
        raise UnknownName("engine", name, valid)


def make_options(values: dict[str, Any], stages: Sequence[str] | None = None) -> Options:
    """Options from plain values (API keyword arguments, a config file), coerced, then checked (the rules
    between options: those the `stages` read, all of them when None)."""
    known = {f.name for f in option_fields(Options)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise OptionError(f"unknown option(s): {', '.join(unknown)}")
    options = Options(**{k: coerce(k, v) for k, v in values.items()})
    check_options(options, stages)
    return options


@cache
def _declared_here() -> dict[str, Any]:
    return {f.name: f for cls in (Options, RunOptions) for f in option_fields(cls)}


def shared(name: str, **changes: Any) -> Any:
    """A field of another command's options class declared as Options' or RunOptions' `name` is (--json,
    --model, --min-relevance...): the same type, default, bounds and short flag, read by no stage; `changes`
    (a help that says what this command does with it) replace parts of its Spec."""
    from dataclasses import field, replace

    f = _declared_here()[name]
    return field(default=f.default, metadata={"spec": replace(spec(f), stages=(), **changes)})
