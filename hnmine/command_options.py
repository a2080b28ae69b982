"""The options of the helper commands (report, inspect, review, eval, cache), declared as `hnmine mine`'s are
(hnmine.option_spec's `opt`), and the two ways to name a run.

An option several commands take (--json, --quiet, --model, --device, --threads, --min-relevance) is
declared once, in hnmine.options, and copied here by `shared` (its help may say what this command does
with it). A run is named the same way on every command: readers take a positional RUN and `--out`/`-o`
as its alias; the stage commands that take no DATA take `--out` and a positional RUN as its alias.
hnmine.finetune.options declares finetune's. hnmine.cli_options makes the typer parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hnmine.errors import OptionError
from hnmine.option_spec import check_declared, opt, registry_names
from hnmine.options import shared

_RUN_HELP = "Run directory (the --out of `hnmine mine`)."


def run_argument(help: str = _RUN_HELP, metavar: str = "RUN", many: bool = False) -> Any:
    """A reader's positional RUN (`many`: one or more)."""
    return opt(() if many else None, help, argument=True, required=True, metavar=metavar)


def out_alias(of: str = "run", name: str = "RUN", what: str = "the run directory", many: bool = False) -> Any:
    """A reader's `--out`/`-o`: the run as the stage commands name it, another way to give `of`."""
    help = f"The same as {name}" + (" (repeatable)" if many else "") + f": {what}, named as the stage commands name a run."
    return opt(() if many else None, help, short=("-o",), alias_of=of)


@dataclass(frozen=True)
class StageRun:
    """The positional RUN of a stage command that takes no DATA (retrieve, score, filter, export)."""

    run: Path | None = opt(
        None,
        "The same as --out: the run directory, named as report, inspect and review name it.",
        argument=True,
        alias_of="out",
        metavar="RUN",
    )


@dataclass(frozen=True)
class ReportOptions:
    run: Path | None = run_argument()
    out: Path | None = out_alias()
    top: int = opt(20, "How many suspected false negatives to list.", low=0)
    per_query: int = opt(3, "At most this many suspects of one query (0: no limit); a query's suspects are listed together.", low=0)
    reason: str | None = opt(None, "List only suspects with this drop reason, or 'kept' for kept negatives.")
    json: bool = shared("json", help="Print the report as JSON on stdout, for scripts.")
    html: Path | None = opt(None, "Also write a self-contained HTML page with plots to this file.", file=True)


@dataclass(frozen=True)
class InspectOptions:
    run: Path | None = run_argument()
    query_id: str | None = opt(None, "The query's id (or use --query).", argument=True, metavar="QUERY_ID")
    out: Path | None = out_alias()
    query: str | None = opt(None, "Find the query whose text contains this (case-insensitive).")
    json: bool = shared("json", help="Print the query's story as JSON on stdout.")


@dataclass(frozen=True)
class ReviewOptions:
    run: Path | None = run_argument()
    out: Path | None = out_alias()
    top: int | None = opt(None, "Walk the report's first N suspects (default 100; every suspect with --query).", low=1)
    reason: str | None = opt(None, "Only suspects with this drop reason, or 'kept' for kept negatives.")
    query: str | None = opt(None, "Only the suspects of this query id.")
    min_gap: float | None = opt(None, "Only suspects with Δ (teacher score − positive score) at least this.")
    export: Path | None = opt(None, "Do not open the app: write the run's judgments to this qrels file.", file=True)
    qrels_format: str = opt(
        "beir",
        "Format of --export: beir (TSV with header) or trec (qid 0 docid rel).",
        choices=registry_names("hnmine.judgment_files", "QRELS_FORMATS"),
        kind="qrels format",
    )

    def suspect_filters(self) -> list[str]:
        """The flags given that choose which suspects to walk."""
        chosen = (("--top", self.top), ("--reason", self.reason), ("--query", self.query), ("--min-gap", self.min_gap))
        return [name for name, value in chosen if value is not None]


@dataclass(frozen=True)
class EvalOptions:
    runs: tuple[Path, ...] = run_argument("Run directories (after the filter stage); several are compared in one table.", many=True)
    out: tuple[Path, ...] = out_alias("runs", "RUN", "a run directory", many=True)
    qrels: Path | None = opt(
        None,
        "Judgments file: BEIR qrels TSV `query-id corpus-id score`, JSONL/CSV/Parquet, or under another name "
        "(`.qrels`, `.txt`) BEIR or TREC qrels text, as `hnmine review --export` writes.",
    )
    hidden: bool = opt(False, "Judge against the run's hidden positives (runs mined with --hide-positives).")
    min_relevance: int = shared("min_relevance")
    json: bool = shared("json", help="Print the metrics as JSON.")
    markdown: bool = opt(False, "Print a Markdown table (for docs/methods.md).")


def one_output_format(o: Any) -> None:
    """--json and --markdown (eval, finetune): one of them."""
    if o.json and o.markdown:
        raise OptionError("--json and --markdown: choose one output format")


@dataclass(frozen=True)
class CacheOptions:
    """`hnmine cache`: the embedding store listed by model, or pruned."""

    cache_dir: Path | None = shared("cache_dir", help="The store's folder is CACHE_DIR/store (default: the user's hnmine cache).")
    model: str | None = opt(None, "Only this model's vectors: its name or path as the runs gave it.")
    prune: bool = opt(False, "Remove what --model, --older-than and --max-size choose; without it, list the store.")
    older_than: str | None = opt(None, "With --prune: vectors last used longer ago than this (45m, 12h, 30d, 2w).")
    max_size: str | None = opt(
        None, "With --prune: the least recently used vectors, until the store (or --model's part of it) is at most this (500MB, 2GB)."
    )
    json: bool = shared("json", help="Print the listing (and what was pruned) as JSON.")

    def validate(self) -> None:
        from hnmine.inference.store import parse_age, parse_size

        check_declared(self)
        if not self.prune:
            given = [name for name, value in (("--older-than", self.older_than), ("--max-size", self.max_size)) if value is not None]
            if given:
                raise OptionError(f"{given[0]} chooses what --prune removes: give --prune too")
        elif self.model is None and self.older_than is None and self.max_size is None:
            raise OptionError("--prune needs what to remove: --model NAME, --older-than AGE or --max-size SIZE")
        if self.older_than is not None:
            parse_age(self.older_than, "--older-than")
        if self.max_size is not None:
            parse_size(self.max_size, "--max-size")
