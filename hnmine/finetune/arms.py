"""The arms of a comparison and the training rows each one gets.

untrained   the model as loaded: no training, measured once (it does not depend on a seed)
in-batch    every distinct (anchor, positive) pair of the sources, no mined negatives: the other
            rows of a batch are the only negatives (the baseline a miner has to beat)
<source>    one arm per source: its pairs, each with `negatives` of its hard negatives

A trained arm gets one row per (anchor, positive). With --negatives K a row carries K hard
negatives, drawn at random (seeded) from the pair's negatives in the export, so that every seed
sees another draw from the whole exported set, and the spread over seeds includes that choice.
A pair with fewer than K negatives is left out of its arm and counted (a method that leaves
queries short trains on fewer pairs: that is part of what it does to the model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hnmine.finetune.sources import TrainingPair, TrainingSource

UNTRAINED, IN_BATCH, MINED = "untrained", "in-batch", "mined"


@dataclass
class Arm:
    name: str
    kind: str  # untrained, in-batch or mined
    pairs: list[TrainingPair]
    source: TrainingSource | None = None

    @property
    def trained(self) -> bool:
        return self.kind != UNTRAINED


def build_arms(sources: list[TrainingSource], kinds: tuple[str, ...]) -> list[Arm]:
    """The arms to run, in the order untrained, in-batch, then the sources as given; names made unique."""
    arms: list[Arm] = []
    if UNTRAINED in kinds:
        arms.append(Arm(UNTRAINED, UNTRAINED, []))
    if IN_BATCH in kinds:
        seen: dict[tuple[str, str], None] = {}
        for s in sources:
            seen.update(dict.fromkeys((p.anchor, p.positive) for p in s.pairs))
        arms.append(Arm(IN_BATCH, IN_BATCH, [TrainingPair(a, p, ()) for a, p in seen]))
    if MINED in kinds:
        taken = {a.name for a in arms}
        for s in sources:
            name, n = s.label, 2
            while name in taken:  # two runs named alike (a/run, b/run), or a run named "in-batch"
                name, n = f"{s.label}-{n}", n + 1
            taken.add(name)
            arms.append(Arm(name, MINED, s.pairs, s))
    return arms


def training_rows(arm: Arm, negatives: int, seed: int) -> tuple[dict[str, list[str]], int]:
    """(columns for the trainer, pairs left out for want of negatives) of a trained arm."""
    k = negatives if arm.kind == MINED else 0
    rng = np.random.default_rng(seed)
    cols: dict[str, list[str]] = {"anchor": [], "positive": [], **{f"negative_{i + 1}": [] for i in range(k)}}
    left_out = 0
    for pair in arm.pairs:
        if len(pair.negatives) < k:
            left_out += 1
            continue
        cols["anchor"].append(pair.anchor)
        cols["positive"].append(pair.positive)
        if k:
            chosen = np.sort(rng.choice(len(pair.negatives), size=k, replace=False))
            for i, j in enumerate(chosen):
                cols[f"negative_{i + 1}"].append(pair.negatives[j])
    return cols, left_out
