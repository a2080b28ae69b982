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
# Every number's bounds (inclusive), as `hnmine mine` bounds its own: an infinite or enormous value crashed
# (torch with 10^8 threads: a segmentation fault), trained for ever, or trained to NaN. The shared options
# (batch sizes, --threads, --max-length, --negatives) take mine's bounds.
BOUNDS: dict[str, tuple[float, float]] = {
    "epochs": (0.0, 10_000.0),
    "max_steps": (1, 10**9),
    "batch_size": (2, 65536),
    "learning_rate": (0.0, 1.0),
    "negatives": (0, 1000),
    "max_length": (1, 1_000_000),
    "threads": (1, 4096),
    "eval_batch_size": (1, 65536),
}


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
        for name, (low, high) in BOUNDS.items():
            _check_bounds(name, getattr(self, name), low, high)
        if not self.seeds:
            raise OptionError("--seeds: give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise OptionError(f"--seeds: a seed is repeated ({', '.join(map(str, self.seeds))})")
        for seed in self.seeds:
            if not SEED_MIN <= seed <= SEED_MAX:
                raise OptionError(f"--seeds must be between {SEED_MIN} and {SEED_MAX:,}, got {seed}")
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


def _check_bounds(name: str, value: float | None, low: float, high: float) -> None:
    """An OptionError naming the flag when `value` (None: not given) is not finite or outside [low, high]."""
    import math

    if value is None:
        return
    flag = "--" + name.replace("_", "-")
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionError(f"{flag} must be a finite number, got {value}")
    if not low <= value <= high:
        raise OptionError(f"{flag} must be between {_number(low)} and {_number(high)}, got {value}")


def _number(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


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
