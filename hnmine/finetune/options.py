"""The options of a fine-tune comparison: the model, the training budget (the same for every arm), the arms, evaluation."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from hnmine.errors import OptionError, UnknownName
from hnmine.options import DEFAULT_MODEL

# untrained: the model as loaded; in-batch: the sources' (anchor, positive) pairs, no mined negatives;
# mined: each source's pairs with its hard negatives.
ARMS = ("untrained", "in-batch", "mined")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
RUN_MODEL = "run"  # --model run: the dense model the runs were mined with
SEED_MIN, SEED_MAX = 0, 2**32 - 1  # the trainer seeds numpy, which takes no other seed


@dataclass(frozen=True)
class FinetuneOptions:
    model: str = DEFAULT_MODEL
    epochs: float | None = None  # None: 1 epoch, unless max_steps is given
    max_steps: int | None = None
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    seeds: tuple[int, ...] = (1,)
    negatives: int = 1  # hard negatives per (anchor, positive) training row
    loss: str = "mnrl"
    max_length: int | None = None
    device: str = "cpu"
    threads: int | None = None  # torch threads (None: torch's default, the CPUs); results depend on it, so record it
    precision: str = "auto"  # training: auto = float32 on a CPU, bf16 (else fp16) mixed precision on a GPU
    eval_dtype: str = "auto"  # evaluation encoding, the same for every arm: auto as `hnmine mine --dtype auto`
    eval_batch_size: int = 64
    arms: tuple[str, ...] = ARMS

    @property
    def resolved_epochs(self) -> float:
        return 1.0 if self.epochs is None else self.epochs

    def validate(self) -> None:
        from hnmine.finetune.train import LOSSES

        if self.epochs is not None and self.max_steps is not None:
            raise OptionError("give --epochs or --max-steps, not both")
        if self.epochs is not None and not self.epochs > 0:
            raise OptionError("--epochs must be greater than 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise OptionError("--max-steps must be at least 1")
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
        for seed in self.seeds:
            if not SEED_MIN <= seed <= SEED_MAX:
                raise OptionError(f"--seeds must be between {SEED_MIN} and {SEED_MAX:,}, got {seed}")
        if self.negatives < 0:
            raise OptionError("--negatives must be 0 or more")
        if self.max_length is not None and self.max_length < 1:
            raise OptionError("--max-length must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise OptionError("--threads must be at least 1")
        if self.eval_batch_size < 1:
            raise OptionError("--eval-batch-size must be at least 1")
        for name, value in (("precision", self.precision), ("eval dtype", self.eval_dtype)):
            if value not in PRECISIONS:
                raise UnknownName(name, value, list(PRECISIONS))
        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", self.device):
            raise OptionError(f"unknown device '{self.device}' (valid: cpu, cuda, cuda:N, mps; training uses one device)")
        if self.device == "cpu" and self.precision == "float16":
            raise OptionError("--precision float16 needs a GPU; on a CPU use float32 or bfloat16")
        if not self.arms:
            raise OptionError("--arms: give at least one arm")
        for arm in self.arms:
            if arm not in ARMS:
                raise UnknownName("arm", arm, list(ARMS))
        LOSSES.get(self.loss)

    def budget(self) -> dict:
        """What every trained arm shares, for the results table."""
        d = asdict(self)
        for key in ("seeds", "arms", "model", "device", "threads", "eval_dtype", "eval_batch_size"):
            d.pop(key)
        d["epochs"] = None if self.max_steps is not None else self.resolved_epochs
        return d


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
