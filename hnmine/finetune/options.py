"""The options of a fine-tune comparison: the model, the training budget (the same for every arm), the arms, evaluation."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from hnmine.command_options import out_alias, run_argument
from hnmine.errors import OptionError
from hnmine.option_spec import check_declared, opt
from hnmine.options import shared

# untrained: the model as loaded; in-batch: the sources' (anchor, positive) pairs, no mined negatives;
# mined: each source's pairs with its hard negatives.
ARMS = ("untrained", "in-batch", "mined")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
RUN_MODEL = "run"  # --model run: the dense model the runs were mined with
SEED_MIN, SEED_MAX = 0, 2**32 - 1  # the trainer seeds numpy, which takes no other seed


def parse_seeds(values: list[str] | None) -> tuple[int, ...]:
    """`--seeds 1,2,3` or `--seeds 1 --seeds 2` (typer options take one value each)."""
    seeds: list[int] = []
    for value in values or []:
        for part in re.split(r"[,\s]+", value.strip()):
            if not part:
                continue
            try:
                seeds.append(int(part))
            except ValueError:
                raise OptionError(f"--seeds: '{part}' is not an integer") from None
    return tuple(seeds)


def parse_list(values: list[str] | None) -> tuple[str, ...]:
    """Comma-separated or repeated values, in order, without repeats."""
    out: list[str] = []
    for value in values or []:
        out += [p.strip() for p in value.split(",") if p.strip()]
    return tuple(dict.fromkeys(out))


# Every number is bounded (inclusive), as `hnmine mine` bounds its own: an infinite or enormous value crashed
# (torch with 10^8 threads: a segmentation fault), trained for ever, or trained to NaN. The options finetune
# shares with mine (--model, --device, --threads, --max-length) are mine's declarations (hnmine.options.shared).
@dataclass(frozen=True)
class FinetuneOptions:
    """What every arm is trained and measured with (the results table records the training budget)."""

    model: str = shared("model", help="Model to fine-tune: a sentence-transformers name or path, or 'run' (the runs' dense model).")
    epochs: float | None = opt(None, "Training epochs (default 1); or give --max-steps.", low=0.0, high=10_000.0)
    max_steps: int | None = opt(None, "Training steps (instead of --epochs): the same number for every arm.", low=1, high=10**9)
    batch_size: int = opt(32, "Training rows per batch (the in-batch negatives of a row are the others).", low=2, high=65536)
    learning_rate: float = opt(2e-5, "Peak learning rate (linear decay after warm-up).", low=0.0, high=1.0)
    warmup_ratio: float = opt(0.1, "Share of the steps spent warming up the learning rate.")
    seeds: tuple[int, ...] = opt(
        (1,),
        "Seeds, comma-separated or repeated (1,2,3): each trained arm once per seed; mean and spread per arm.",
        low=SEED_MIN,
        high=SEED_MAX,
        parse=parse_seeds,
    )
    negatives: int = opt(
        1, "Hard negatives per training row, drawn (seeded) from each (anchor, positive)'s exported negatives.", low=0, high=1000
    )
    loss: str = opt("mnrl", "Training loss: mnrl (MultipleNegativesRankingLoss, no-duplicates batches).")
    max_length: int | None = shared("max_length", help="Maximum tokens per text, in training and evaluation (default: the model's).")
    device: str = shared("device", help="cpu, cuda, cuda:N or mps: the one device for training and evaluation.")
    # torch threads (None: torch's default, the CPUs); results depend on it, so it is recorded
    threads: int | None = shared(
        "threads", help="Torch threads (default: torch's, the CPUs); the same seed gives the same model with the same count."
    )
    # training: auto = float32 on a CPU, bf16 (else fp16) mixed precision on a GPU
    precision: str = opt(
        "auto",
        "Training precision: auto (float32 on a CPU, bf16/fp16 mixed on a GPU), float32, bfloat16, float16.",
        choices=lambda: PRECISIONS,
        kind="precision",
    )
    eval_dtype: str = opt(
        "auto",
        "Evaluation encoding dtype, the same for every arm: auto (as `mine --dtype auto`), float32, bfloat16, float16.",
        choices=lambda: PRECISIONS,
        kind="eval dtype",
    )
    eval_batch_size: int = opt(64, "Texts per batch when encoding the evaluation set.", low=1, high=65536)
    arms: tuple[str, ...] = opt(
        ARMS,
        "Arms to run, comma-separated: untrained, in-batch (the sources' pairs, no mined negatives), mined (each source).",
        choices=lambda: ARMS,
        kind="arm",
        parse=parse_list,
    )

    @property
    def resolved_epochs(self) -> float:
        return 1.0 if self.epochs is None else self.epochs

    def validate(self) -> None:
        from hnmine.finetune.losses import LOSSES

        if self.epochs is not None and self.max_steps is not None:
            raise OptionError("give --epochs or --max-steps, not both")
        if self.epochs is not None and not self.epochs > 0:
            raise OptionError("--epochs must be greater than 0")
        if self.batch_size < 2:
            raise OptionError("--batch-size must be at least 2 (in-batch negatives need a second example)")
        if not self.learning_rate > 0:
            raise OptionError("--learning-rate must be greater than 0")
        if not 0 <= self.warmup_ratio < 1:
            raise OptionError("--warmup-ratio must be in [0, 1)")
        if not self.seeds:
            raise OptionError("--seeds: give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise OptionError(f"--seeds: a seed is repeated ({', '.join(map(str, self.seeds))})")
        if not self.arms:
            raise OptionError("--arms: give at least one arm")
        check_declared(self)  # every number's bounds, the precisions and arms
        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", self.device):
            raise OptionError(f"unknown device '{self.device}' (valid: cpu, cuda, cuda:N, mps; training uses one device)")
        if self.device == "cpu" and self.precision == "float16":
            raise OptionError("--precision float16 needs a GPU; on a CPU use float32 or bfloat16")
        LOSSES.get(self.loss)

    def budget(self) -> dict:
        """What every trained arm shares, for the results table."""
        d = asdict(self)
        for key in ("seeds", "arms", "model", "device", "threads", "eval_dtype", "eval_batch_size"):
            d.pop(key)
        d["epochs"] = None if self.max_steps is not None else self.resolved_epochs
        return d


@dataclass(frozen=True)
class FinetuneCommand:
    """The rest of `hnmine finetune`'s options: what it trains on, what it measures against, what it prints."""

    sources: tuple[Path, ...] = run_argument(
        "Run directories (their export/ training file) or training files (Parquet, JSONL, CSV) to compare.", "SOURCE", many=True
    )
    out: tuple[Path, ...] = out_alias("sources", "SOURCE", "a run directory or training file", many=True)
    eval: Path | None = opt(
        None, "BEIR folder with the held-out judgments (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).", required=True
    )
    eval_split: str = opt("test", "Qrels split to measure on; never the split the runs were mined from.")
    min_relevance: int = shared("min_relevance")
    cache_dir: Path | None = shared(
        "cache_dir", help="The embedding store's folder is CACHE_DIR/store: each model's evaluation vectors are encoded once."
    )
    json: bool = shared("json", help="Print every row and the per-arm summary as JSON.")
    markdown: bool = opt(False, "Print the per-arm summary as a Markdown table.")
    quiet: bool = shared("quiet")
