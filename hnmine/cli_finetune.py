"""`hnmine finetune`: fine-tune a model on runs' training data and measure it on held-out judgments.

Thin: parses options into hnmine.finetune.options.FinetuneOptions, calls
hnmine.finetune.compare.compare_arms and prints. Named hnmine errors propagate; the main CLI turns
them into a one-line message and exit 2. Heavy libraries are imported inside the command.
"""

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from hnmine.finetune.options import FinetuneOptions

_DEFAULTS = FinetuneOptions()  # each default is declared once, on FinetuneOptions


# Long only by its signature: typer reads each option's flag and help from it.
def finetune_command(
    sources: Annotated[
        List[Path],
        typer.Argument(
            help="Run directories (their export/ training file) or training files (Parquet, JSONL, CSV) to compare.", show_default=False
        ),
    ],
    eval_data: Annotated[
        Path,
        typer.Option(
            "--eval", help="BEIR folder with the held-out judgments (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).", show_default=False
        ),
    ],
    eval_split: Annotated[
        str, typer.Option("--eval-split", help="Qrels split to measure on; never the split the runs were mined from.")
    ] = "test",
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="Model to fine-tune: a sentence-transformers name or path, or 'run' (the runs' dense model)."),
    ] = _DEFAULTS.model,
    epochs: Annotated[
        Optional[float], typer.Option("--epochs", help="Training epochs (default 1); or give --max-steps.")
    ] = _DEFAULTS.epochs,
    max_steps: Annotated[
        Optional[int], typer.Option("--max-steps", help="Training steps (instead of --epochs): the same number for every arm.")
    ] = _DEFAULTS.max_steps,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Training rows per batch (the in-batch negatives of a row are the others).")
    ] = _DEFAULTS.batch_size,
    learning_rate: Annotated[
        float, typer.Option("--learning-rate", help="Peak learning rate (linear decay after warm-up).")
    ] = _DEFAULTS.learning_rate,
    warmup_ratio: Annotated[
        float, typer.Option("--warmup-ratio", help="Share of the steps spent warming up the learning rate.")
    ] = _DEFAULTS.warmup_ratio,
    seeds: Annotated[
        Optional[List[str]],
        typer.Option(
            "--seeds", help="Seeds, comma-separated or repeated (1,2,3): each trained arm once per seed; mean and spread per arm."
        ),
    ] = None,
    negatives: Annotated[
        int,
        typer.Option(
            "--negatives", help="Hard negatives per training row, drawn (seeded) from each (anchor, positive)'s exported negatives."
        ),
    ] = _DEFAULTS.negatives,
    loss: Annotated[
        str, typer.Option("--loss", help="Training loss: mnrl (MultipleNegativesRankingLoss, no-duplicates batches).")
    ] = _DEFAULTS.loss,
    max_length: Annotated[
        Optional[int], typer.Option("--max-length", help="Maximum tokens per text, in training and evaluation (default: the model's).")
    ] = _DEFAULTS.max_length,
    device: Annotated[
        str, typer.Option("--device", help="cpu, cuda, cuda:N or mps: the one device for training and evaluation.")
    ] = _DEFAULTS.device,
    threads: Annotated[
        Optional[int],
        typer.Option(
            "--threads", help="Torch threads (default: torch's, the CPUs); the same seed gives the same model with the same count."
        ),
    ] = _DEFAULTS.threads,
    precision: Annotated[
        str,
        typer.Option(
            "--precision", help="Training precision: auto (float32 on a CPU, bf16/fp16 mixed on a GPU), float32, bfloat16, float16."
        ),
    ] = _DEFAULTS.precision,
    eval_dtype: Annotated[
        str,
        typer.Option(
            "--eval-dtype",
            help="Evaluation encoding dtype, the same for every arm: auto (as `mine --dtype auto`), float32, bfloat16, float16.",
        ),
    ] = _DEFAULTS.eval_dtype,
    eval_batch_size: Annotated[
        int, typer.Option("--eval-batch-size", help="Texts per batch when encoding the evaluation set.")
    ] = _DEFAULTS.eval_batch_size,
    arms: Annotated[
        Optional[List[str]],
        typer.Option(
            "--arms",
            help="Arms to run, comma-separated: untrained, in-batch (the sources' pairs, no mined negatives), mined (each source).",
        ),
    ] = None,
    min_relevance: Annotated[int, typer.Option("--min-relevance", help="A judgment with relevance >= this is relevant.")] = 1,
    json_: Annotated[bool, typer.Option("--json", help="Print every row and the per-arm summary as JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the per-arm summary as a Markdown table.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Fine-tune a copy of a model on each run's export, and measure it against the untrained model and in-batch-only training."""
    from hnmine.errors import OptionError
    from hnmine.finetune.options import ARMS, FinetuneOptions, parse_list, parse_seeds
    from hnmine.progress import Reporter, RichReporter

    if json_ and markdown:
        raise OptionError("--json and --markdown: choose one output format")
    opts = FinetuneOptions(
        model=model,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_ratio=warmup_ratio,
        seeds=parse_seeds(seeds) if seeds else (1,),
        negatives=negatives,
        loss=loss,
        max_length=max_length,
        device=device,
        threads=threads,
        precision=precision,
        eval_dtype=eval_dtype,
        eval_batch_size=eval_batch_size,
        arms=parse_list(arms) if arms else ARMS,
    )
    from hnmine.finetune.compare import compare_arms

    _check_results_writable(sources)
    reporter = Reporter() if quiet else RichReporter()
    result = compare_arms(sources, eval_data, eval_split, opts, min_relevance=min_relevance, reporter=reporter)
    if json_:
        from hnmine.terminal_text import dumps

        typer.echo(dumps(result.as_json(), indent=2))
    elif markdown:
        from hnmine.finetune.results import markdown_table

        typer.echo(markdown_table(result.summary))
    else:
        _print_rich(result)


def _check_results_writable(sources: List[Path]) -> None:
    """Each run directory among the sources gets RUN/finetune/results.parquet once every arm has trained:
    find out now that it cannot, not after the training (a probe file, created and removed)."""
    import os
    import tempfile

    from hnmine.errors import RunDirError
    from hnmine.finetune.results import RESULTS_FILE

    for source in sources:
        if not source.is_dir():
            continue  # a training file: no results are written for it
        target = source / RESULTS_FILE
        folder = target.parent if os.path.lexists(target.parent) else source
        try:
            fd, probe = tempfile.mkstemp(prefix=".hnmine-probe-", suffix=".tmp", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise RunDirError(
                f"{target}: cannot write the fine-tune results ({exc.strerror or exc}); "
                f"make the run directory writable, or give its training file instead of the run directory"
            ) from None


def _print_rich(result) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from hnmine.finetune.metrics import METRICS
    from hnmine.finetune.results import METRIC_HEADERS, format_stat
    from hnmine.terminal_text import visible

    # paths and run names as text, never markup, their control characters as visible escapes
    title = Text(visible(f"{result.eval['data']} · {result.eval['split']} · {result.eval['queries']} queries"))
    table = Table(show_header=True, header_style="bold", title=title)
    table.add_column("arm", no_wrap=True)
    table.add_column("runs", justify="right")
    for m in METRICS:
        table.add_column(METRIC_HEADERS[m], justify="right", no_wrap=True)
    for s in result.summary:
        table.add_row(Text(visible(s["arm"])), str(s["runs"]), *(format_stat(s[m]) for m in METRICS))
    out = Console()
    if not out.is_terminal:
        out = Console(width=1000)  # piped: never fold a cell
    out.print(table)
    err = Console(stderr=True)
    for path in result.results_files:
        err.print(f"results: {visible(path)}", markup=False, highlight=False)
