"""`--config FILE`: options from a TOML file, checked against the option declarations (hnmine.options).

Keys are option names (`num_negatives` or `num-negatives`). Top-level keys apply to every command; a
table named after a stage (`[index]`, `[filter]`…) applies to the commands that run that stage, and a
table named after the command (`[mine]`) to that command, in that order of precedence (flags given on
the command line override all of them). An unknown table or key, a key in a table of a stage that does
not read it, and a value of the wrong type are one-line errors naming the file and the key.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hnmine.errors import InputError, OptionError
from hnmine.options import STAGE_NAMES, Options, RunOptions, coerce, option_fields, spec

RUN_KEYS = {f.name for f in option_fields(RunOptions)} - {"config"}


def read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    path = Path(path)
    if not path.exists():  # a pipe (`--config <(…)`) is read once, as a file is
        raise InputError(f"{path}: no such config file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a config file")
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the first key
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None


def config_values(path: Path, command: str, stages: Sequence[str], commands: Sequence[str]) -> dict[str, Any]:
    """The option values FILE gives `command` (which runs `stages`), checked and typed.

    `commands` are every command name (a table named after another command is skipped, not an error).
    """
    data = read_toml(path)
    stage_names = _all_stage_names()
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for name in tables:
        if name not in stage_names and name not in commands:
            valid = ", ".join(sorted(set(stage_names) | set(commands)))
            raise OptionError(f"{path}: unknown table [{name}] (valid: {valid})")
    layers = [(None, top)] + [(s, tables[s]) for s in stage_names if s in tables and s in stages]
    if command in tables and command not in stage_names:
        layers.append((command, tables[command]))
    out: dict[str, Any] = {}
    for table, values in layers:
        spelled: dict[str, str] = {}
        for raw_key, value in values.items():
            key = raw_key.replace("-", "_")
            within = f"{path}: {'[' + table + '] ' if table else ''}"
            if key in spelled:  # TOML sees two keys; one of the user's values would be dropped silently
                raise OptionError(f"{within}{spelled[key]} and {raw_key} name one option: give it once")
            spelled[key] = raw_key
            out[key] = _checked(key, value, within + raw_key, table, stages)
    # Top-level keys of options this command does not take are for other commands.
    taken = {f.name for f in option_fields(Options) if set(spec(f).stages) & set(stages)} | RUN_KEYS
    return {k: v for k, v in out.items() if k in taken}


def _checked(key: str, value: Any, where: str, table: str | None, stages: Sequence[str]) -> Any:
    options = {f.name: f for f in option_fields(Options)}
    if key in RUN_KEYS:
        if table in _all_stage_names():  # a stage table applies to every command running the stage: not its place
            raise OptionError(
                f"{where}: not an option of the {table} stage (an option of the command: at the top of the file, or under [mine])"
            )
        return coerce(key, value, RunOptions, where=where)
    if key not in options:
        raise OptionError(f"{where}: unknown option")
    if table in _all_stage_names() and table not in spec(options[key]).stages:
        raise OptionError(f"{where}: not an option of the {table} stage")
    return coerce(key, value, Options, where=where)


def _all_stage_names() -> list[str]:
    return list(STAGE_NAMES)
