"""Fine-tune a fresh copy of a sentence-transformers model with SentenceTransformerTrainer, for a fixed budget.

The model is loaded anew from its files for every (arm, seed), so no arm sees another's updates;
nothing is saved (the trainer writes into a temporary folder that is removed afterwards).
Determinism: the trainer seeds Python, numpy and torch with the seed (dropout, shuffling), and the
no-duplicates batch sampler draws its order from the same seed, so one machine gives the same
model for the same seed, data and options.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass

from hnmine.finetune.extras import require_training_extras
from hnmine.finetune.losses import LOSSES
from hnmine.finetune.options import FinetuneOptions
from hnmine.progress import Reporter


@dataclass
class Trained:
    model: object  # the fine-tuned SentenceTransformer
    steps: int
    seconds: float
    precision: str


def training_precision(opts: FinetuneOptions) -> str:
    """What --precision auto means on the device: float32 on a CPU; bf16 (else fp16) mixed precision on a GPU."""
    if opts.precision != "auto":
        return opts.precision
    if opts.device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def load_model(model_path: str, opts: FinetuneOptions):
    """A fresh SentenceTransformer from its files, on the device, with the chosen max length."""
    from hnmine.errors import ModelError
    from hnmine.inference.models import quiet_model_loading

    quiet_model_loading()
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(model_path, device=opts.device)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported as one line
        raise ModelError(f"cannot load model '{model_path}': {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if opts.max_length is not None:
        model.max_seq_length = opts.max_length
    # transformers loads a checkpoint in its saved dtype: the weights train in float32 (mixed precision
    # computes in bf16/fp16 on top of them), whatever the checkpoint holds.
    import torch

    return model.to(torch.float32)


def train_copy(
    model_path: str, rows: dict[str, list[str]], opts: FinetuneOptions, seed: int, *, reporter: Reporter | None = None, label: str = ""
) -> Trained:
    """Fine-tune a fresh copy of the model on `rows` (columns anchor, positive[, negative_1..k])."""
    require_training_extras()
    reporter = reporter or Reporter()
    import transformers
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    class _Trainer(SentenceTransformerTrainer):
        def add_model_card_callback(self, *args, **kwargs) -> None:
            """Nothing is saved, so no model card: this skips its widget examples (and their progress bar)."""

    transformers.set_seed(seed)  # before the model exists, so nothing it draws at load time varies
    model = load_model(model_path, opts)
    spec = LOSSES.get(opts.loss)
    precision = training_precision(opts)
    dataset = Dataset.from_dict(rows)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hnmine-finetune-") as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out,
            num_train_epochs=opts.resolved_epochs,
            max_steps=opts.max_steps if opts.max_steps is not None else -1,
            per_device_train_batch_size=opts.batch_size,
            learning_rate=opts.learning_rate,
            **_warmup(opts.warmup_ratio),
            seed=seed,
            data_seed=seed,
            bf16=precision == "bfloat16",
            fp16=precision == "float16",
            use_cpu=opts.device == "cpu",
            batch_sampler=spec.batch_sampler,
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = _Trainer(model=model, args=args, train_dataset=dataset, loss=spec.build(model))
        trainer.remove_callback(PrinterCallback)  # it prints the trainer's logs on stdout, which holds --json
        total = opts.max_steps or math.ceil(len(trainer.get_train_dataloader()) * opts.resolved_epochs)
        with reporter.task(f"train {label} seed {seed}".strip(), total) as advance:

            class StepProgress(TrainerCallback):
                def on_step_end(self, args, state, control, **kw):
                    advance(1)

            trainer.add_callback(StepProgress())
            trainer.train()
        steps = int(trainer.state.global_step)
    model.eval()
    return Trained(model=model, steps=steps, seconds=time.perf_counter() - started, precision=precision)


def _warmup(ratio: float) -> dict:
    """Transformers 5 takes the warmup ratio as a float warmup_steps and deprecates warmup_ratio; 4 needs warmup_ratio."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"warmup_steps": float(ratio)} if major >= 5 else {"warmup_ratio": ratio}
