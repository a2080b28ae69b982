"""The stages in pipeline order. Importing this is cheap: stage modules import heavy libraries only
inside their work functions. Which stage writes which path is the run directory's to say
(hnmine.run_layout); which command runs a stage, the options' (hnmine.options.STAGE_COMMANDS)."""

from __future__ import annotations

from hnmine.options import command_of
from hnmine.pipeline import Stage
from hnmine.run_layout import stage_making
from hnmine.stages import export, filter, index, inputs, retrieve, score

STAGES: tuple[Stage, ...] = (inputs.STAGE, index.STAGE, retrieve.STAGE, score.STAGE, filter.STAGE, export.STAGE)
BY_NAME = {s.name: s for s in STAGES}


def commands() -> dict[str, tuple[str, ...]]:
    """Each stage command and the stages it runs, in pipeline order (`mine` runs them all)."""
    out: dict[str, tuple[str, ...]] = {}
    for s in STAGES:
        out[s.command] = out.get(s.command, ()) + (s.name,)
    return out


def command_making(rel: str) -> str:
    return command_of(stage_making(rel))


__all__ = ["BY_NAME", "STAGES", "command_making", "command_of", "commands", "stage_making"]
