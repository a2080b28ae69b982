"""The run's own options: what a command on an existing run takes for an option it is not given.

A command never changes an option the user did not change. Every stage's manifest records the options
the stage read, as it ran them (`Manifest.settings`). A later command on the run — a stage command,
`hnmine mine`, or `hnmine.mine(out=...)` — takes each option it is not given (on the command line, in a
--config file, or as an argument) from the run's latest record of it: the last stage that read it. An
option the run never recorded has its default. Every option whose value now differs from what one of
the command's stages last ran with is a change, named on stderr when the command succeeds and in --json:

    filter: --method shifted (the run had naive)

Input files are one choice: a command given any of DATA, --corpus, --queries, --qrels, --pairs or --premined
takes none of the options only the inputs stage reads (the column names, --split…, and --premined-format) from
the record.
`--defaults` takes every option not given from its default instead, as a fresh run would, on the run's own
data: the input files and what reads them (--split, the column names) still come from the record.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hnmine.options import STAGE_NAMES, Options, label, option_fields, options_for_stages, spec

if TYPE_CHECKING:
    from hnmine.rundir import RunDir

INPUT_FILES = ("data", "corpus", "queries", "qrels", "pairs", "premined")
# What says which data the run reads beside the files and the options only the inputs stage reads: a pre-mined
# file's format (its stages decide what retrieve and score do too)
_OF_THE_DATA = ("premined", "premined_format")
_IN_RUN = "run:"  # a recorded path inside the run directory, kept relative so a copied run stays whole


@dataclass(frozen=True)
class OptionChange:
    """An option a command runs a stage with that differs from the stage's last run."""

    stage: str
    option: str
    value: Any  # as recorded (JSON)
    was: Any
    origin: str  # "given" (command line, config file, argument) or the stage whose record it came from

    def line(self, stages: Sequence[str] = ()) -> str:
        where = "" if self.origin == "given" else f", from the {self.origin} stage"
        names = ", ".join(stages or [self.stage])
        return f"{names}: {label(self.option)} {_shown(self.value)} (the run had {_shown(self.was)}{where})"

    def to_json(self) -> dict:
        return {"stage": self.stage, "option": self.option, "value": self.value, "was": self.was, "origin": self.origin}


def change_lines(changes: Sequence[OptionChange]) -> list[str]:
    """One line per changed option and value, naming every stage it changes: `index, retrieve, score: --model …`."""
    grouped: dict[tuple, list[OptionChange]] = {}
    for c in changes:
        grouped.setdefault((c.option, repr(c.value), repr(c.was), c.origin), []).append(c)
    return [group[0].line([c.stage for c in group]) for group in grouped.values()]


# Options naming models by name or path: a model folder inside the run (the API saves a loaded model in
# sources/model) is recorded relative to the run, as the run's own paths are.
_MODEL_OPTIONS = ("model", "candidate_model", "teacher")


def stage_settings(options: Options, stage: str, run_path: Path) -> dict:
    """For a stage's manifest: the options it reads, as JSON, and when (ordering the records of stages)."""
    values = {f.name: _encode(getattr(options, f.name), run_path, f.name in _MODEL_OPTIONS) for f in options_for_stages([stage])}
    return {"recorded_ns": time.time_ns(), "options": values}


def recorded_options(run: RunDir) -> dict[str, tuple[Any, str]]:
    """{option: (value as JSON, stage)} from the latest record of each option among the run's stages."""
    records = []
    for order, name in enumerate(STAGE_NAMES):
        m = run.manifest(name)
        settings = m.settings if m is not None else {}
        values = settings.get("options")
        if isinstance(values, dict) and isinstance(settings.get("recorded_ns"), int):
            records.append((settings["recorded_ns"], order, name, values))
    latest: dict[str, tuple[Any, str]] = {}
    for _, _, name, values in sorted(records, key=lambda r: (r[0], r[1])):
        latest.update({option: (value, name) for option, value in values.items()})
    return latest


def resolve_options(
    run: RunDir,
    given: dict[str, Any],
    stages: Sequence[str],
    *,
    defaults: bool = False,
    reset: Sequence[str] = (),
    replace: bool = False,
) -> tuple[Options, list[OptionChange]]:
    """The options a command running `stages` on `run` runs with: `given` ones as given, the others from
    the run's record (unless `defaults`, or named in `reset`), else their defaults; and the changes against
    each stage's last run."""
    from hnmine.options import make_options

    taken = [f.name for f in options_for_stages(stages)]
    record = recorded_options(run)
    if "score" in stages and "filter" not in stages and (given.get("rerank_teacher") or "rerank_teacher" in record):
        # a teacher cascade grows its budgets by the filter's choice (hnmine.teachers.cascade): the run's own
        taken += [f.name for f in options_for_stages(["filter"]) if f.name not in taken]
    if defaults:  # a fresh run's options, on the run's data
        record = {k: v for k, v in record.items() if _names_the_data(k)}
    for name in _reset_names(reset, given, taken):
        record.pop(name, None)
    if any(name in given for name in INPUT_FILES):
        inputs_only = {f.name for f in option_fields(Options) if spec(f).stages == ("inputs",)} | set(_OF_THE_DATA)
        record = {k: v for k, v in record.items() if k not in inputs_only}
    values = dict(given)
    values.update({name: _inherited(name, record[name], run) for name in taken if name not in given and name in record})
    for f in options_for_stages(stages):  # an inherited value of an option whose switch is now off is not the user's
        switch = spec(f).requires
        if switch is not None and f.name not in given and not values.get(switch):
            values.pop(f.name, None)
    _drop_parameters_of_new_choices(values, given, record, stages)
    if replace and any(name in given for name in INPUT_FILES) and _other_data(run, values):
        for f in options_for_stages(stages):  # the user's vectors are rows of the old data
            if spec(f).of_data and f.name not in given:
                values.pop(f.name, None)
    _check_inherited_files(values, given, record, run.path)
    options = make_options(values, stages)
    origin = {name: ("given" if name in given else record[name][1]) for name in values}
    return options, _changes(run, options, stages, origin)


def _inherited(name: str, recorded: tuple[Any, str], run: RunDir) -> Any:
    """The value an option takes from the run's record, checked on its own: a damaged record is named with
    its manifest, never blamed on a flag the user did not type."""
    from types import SimpleNamespace

    from hnmine.errors import OptionError, UnknownName
    from hnmine.options import check_values, coerce

    value, stage = _decode(name, recorded[0], run.path), recorded[1]
    try:
        check_values(SimpleNamespace(**{name: coerce(name, value)}), stages=())  # its type, bounds and names; no rule
    except (OptionError, UnknownName) as exc:
        raise OptionError(
            f"{run.manifest_path(stage)}: the run's record of {label(name)} is damaged ({exc}); give {label(name)}, or --defaults"
        ) from None
    from hnmine.io.fetch import local_copy

    return local_copy(value)  # an input in a bucket: its local copy, fetched again when the object changed


def _reset_names(reset: Sequence[str], given: dict[str, Any], taken: Sequence[str]) -> list[str]:
    """The options named by --reset (`judgments`, `--judgments`, `query-prompt`), each one this command takes."""
    from hnmine.errors import OptionError

    names = []
    for raw in reset:
        name = str(raw).strip().lstrip("-").replace("-", "_")
        if name not in {f.name for f in option_fields(Options)}:
            raise OptionError(f"--reset {raw}: no option of that name (name it as its flag, without the dashes: --reset judgments)")
        if name not in taken:
            raise OptionError(f"--reset {raw}: {label(name)} is not an option of this command")
        if name in given:
            raise OptionError(f"--reset {raw} and {label(name)}: give one (a value, or its default)")
        names.append(name)
    return names


def _check_inherited_files(values: dict[str, Any], given: dict[str, Any], record: dict, run_path: Path) -> None:
    """A file the run's record names that is gone: said as the run's, with what to give instead (the user did
    not type it, so `FILE: no such file (--judgments)` alone would not say where it came from)."""
    from hnmine.errors import OptionError
    from hnmine.options import option_types

    for name, value in values.items():
        if name in given or name not in record or value is None:
            continue
        if Path not in (option_types(Options)[name], *getattr(option_types(Options)[name], "__args__", ())):
            continue
        if Path(value).exists():
            continue
        stage = record[name][1]
        if name in INPUT_FILES:
            hint = f"give {label(name)} where it is now (with --replace for other data)"
        else:
            hint = f"give {label(name)} FILE, or --reset {name.replace('_', '-')} to run without it"
        raise OptionError(f"{value}: no such file or folder: the {label(name)} the run's {stage} stage last ran with; {hint}")


def _other_data(run: RunDir, values: dict[str, Any]) -> bool:
    """Whether the input files in `values` are other data than the run's (hnmine.run_identity)."""
    from hnmine.options import make_options
    from hnmine.run_identity import input_identity, same_inputs

    m = run.manifest("inputs")
    recorded = m.stats.get("identity") if m is not None else None
    if not isinstance(recorded, dict) or not recorded:
        return False
    inputs_only = {f.name for f in option_fields(Options) if spec(f).stages == ("inputs",)} | set(_OF_THE_DATA)
    options = make_options({k: v for k, v in values.items() if k in inputs_only}, ["inputs"])
    return bool(same_inputs(input_identity(options, run.path), recorded))


def _names_the_data(name: str) -> bool:
    """An option that says which data the run reads and how (not a choice of what to compute from it)."""
    return name in INPUT_FILES or name in _OF_THE_DATA or name == "split" or name.endswith("_column")


def _drop_parameters_of_new_choices(values: dict[str, Any], given: dict[str, Any], record: dict, stages: Sequence[str]) -> None:
    """An inherited parameter of a choice given anew is dropped: after `--method topk-abs --max-score 0.6`,
    `--method naive` is naive (its own defaults), not naive capped at 0.6, and `--method shifted` after
    `--sampling random` samples as shifted does. Declaration order puts --method before --sampling before
    the sampler's parameters, so a choice dropped here counts as given anew for what belongs to it."""
    anew = {name for name in given if name in record and _plain(given[name]) != record[name][0]}
    for f in options_for_stages(stages):
        if f.name in given or not set(spec(f).belongs_to) & anew:
            continue
        if values.pop(f.name, None) is not None:
            anew.add(f.name)


def _plain(value: Any) -> Any:
    """A given value as the record holds it (JSON)."""
    return list(value) if isinstance(value, tuple) else str(value) if isinstance(value, Path) else value


def _changes(run: RunDir, options: Options, stages: Sequence[str], origin: dict[str, str]) -> list[OptionChange]:
    out = []
    for stage in stages:
        m = run.manifest(stage)
        before = m.settings.get("options") if m is not None else None
        if not isinstance(before, dict):
            continue  # the stage has not run here (or an older hnmine ran it): nothing it had
        for f in options_for_stages([stage]):
            now = _encode(getattr(options, f.name), run.path, f.name in _MODEL_OPTIONS)
            if f.name in before and before[f.name] != now:
                # shown as paths one can open: a path inside the run is recorded as `run:REL`, not printed so
                value, was = (_decode(f.name, v, run.path) for v in (now, before[f.name]))
                out.append(OptionChange(stage, f.name, value, was, origin.get(f.name, "given")))
    return out


def _encode(value: Any, run_path: Path, names_model: bool = False) -> Any:
    if isinstance(value, Path):
        from hnmine.io.fetch import uri_of

        uri = uri_of(value)  # a local copy of an input in a bucket is recorded as its URI
        if uri is not None:
            return uri
        absolute = value.resolve()
        root = Path(run_path).resolve()
        return _IN_RUN + str(absolute.relative_to(root)) if absolute.is_relative_to(root) else str(absolute)
    if isinstance(value, tuple):
        return [_encode(v, run_path, names_model) for v in value]
    if names_model and isinstance(value, str) and value and Path(value).exists() and _encode(Path(value), run_path).startswith(_IN_RUN):
        return _encode(Path(value), run_path)
    return value


def _decode(name: str, value: Any, run_path: Path) -> Any:
    from hnmine.options import option_types

    is_path = Path in (option_types(Options)[name], *getattr(option_types(Options)[name], "__args__", ()))
    if isinstance(value, list) and name in _MODEL_OPTIONS:
        return [_decode(name, v, run_path) for v in value]
    if (is_path or name in _MODEL_OPTIONS) and isinstance(value, str) and value.startswith(_IN_RUN):
        return str(Path(run_path) / value[len(_IN_RUN) :])
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(_shown, value)) or "(none)"
    if isinstance(value, str) and (not value or value != value.strip()):
        return f"'{value}'"  # an empty text, or spaces at an end, seen (a prompt's "query: ")
    return str(value)


def follow_moved_inputs(run: RunDir, options: Options) -> None:
    """The inputs stage was up to date with inputs read from another place (the same bytes, moved): the run
    now knows them by their new paths, so an edit there later is an edit of its own inputs."""
    from dataclasses import replace as with_

    m = run.manifest("inputs")
    if m is None or not isinstance(m.stats.get("identity"), dict):
        return
    from hnmine.run_identity import input_files, input_identity, same_inputs

    now = input_identity(options, run.path)
    if same_inputs(now, m.stats["identity"]):
        return
    # the record of the options names the new paths too: a later command that takes DATA from the run
    # (`hnmine index --out RUN`) reads the files where they are now, not where they were
    held = m.settings.get("options")
    recorded: dict = held if isinstance(held, dict) else {}
    current = stage_settings(options, "inputs", run.path)["options"]
    paths = {name: current[name] for name in INPUT_FILES}
    if now != m.stats["identity"] or any(recorded.get(name) != value for name, value in paths.items()):
        files = input_files(options)
        run.write_manifest(
            with_(m, stats={**m.stats, "identity": now, "files": files}, settings={**m.settings, "options": {**recorded, **paths}})
        )
