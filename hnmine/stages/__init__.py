"""The stages in pipeline order, and what follows from their declarations: which stage makes a file,
and which command runs a stage. Importing this is cheap: stage modules import heavy libraries only
inside their work functions."""

from __future__ import annotations

from hnmine.pipeline import Stage
from hnmine.stages import export, filter, index, inputs, retrieve, score

STAGES: tuple[Stage, ...] = (inputs.STAGE, index.STAGE, retrieve.STAGE, score.STAGE, filter.STAGE, export.STAGE)
BY_NAME = {s.name: s for s in STAGES}


def command_of(stage: str) -> str:
    return BY_NAME[stage].command if stage in BY_NAME else "mine"


def commands() -> dict[str, tuple[str, ...]]:
    """Each stage command and the stages it runs, in pipeline order (`mine` runs them all)."""
    out: dict[str, tuple[str, ...]] = {}
    for s in STAGES:
        out[s.command] = out.get(s.command, ()) + (s.name,)
    return out


def stage_making(rel: str) -> str:
    """The stage whose outputs hold `rel` (a run-relative path)."""
    for s in STAGES:
        for made in s.makes:
            if rel == made or rel.startswith(made.rstrip("/") + "/") or (made.endswith("/") and rel.startswith(made)):
                return s.name
    return "mine"


def command_making(rel: str) -> str:
    return command_of(stage_making(rel))
