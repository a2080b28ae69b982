"""How an option is declared and checked, for any command: `opt(...)` fields carrying a `Spec`, and the
checks of one declared value (type, bounds, registry names) with messages that name the flag.

The declarations themselves live in hnmine.options (what a run computes, how a command runs) and in the
helper commands' option classes (hnmine.command_options, hnmine.finetune.options); the typer parameters
are made from them by hnmine.cli_options. This module knows no option by name.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

from hnmine.errors import OptionError, UnknownName


@dataclass(frozen=True)
class Spec:
    """How one option is offered and checked (kept in the dataclass field's metadata)."""

    help: str
    stages: tuple[str, ...]  # the stages whose work reads it; () for options of the run itself or of a helper command
    short: tuple[str, ...] = ()  # extra flags, e.g. "-n"
    low: float | None = None  # bounds, inclusive unless *_open
    high: float | None = None
    low_open: bool = False
    choices: Callable[[], Sequence[str]] | None = None  # registry names (an unknown one lists them)
    kind: str = ""  # what a choice is called in messages ("method", "retriever")
    negatable: bool = False  # a bool shown as --x/--no-x
    argument: bool = False  # positional (DATA, RUN)
    required: bool = False  # the command cannot run without it (--out, RUN)
    metavar: str | None = None
    requires: str | None = None  # a switch this option applies only with: given without it, it is refused
    # choices this option is a parameter of (--temperature of --method and --sampling): a value the run
    # recorded is not taken over when one of them is given anew (hnmine.run_options)
    belongs_to: tuple[str, ...] = ()
    # a value tied to the rows of the run's data (user vectors): not taken over for other data (--replace)
    of_data: bool = False
    # another way to name what the option `alias_of` names (a positional RUN and --out): both given with
    # different values is an error (hnmine.cli_options)
    alias_of: str | None = None
    # how the command line's texts become the value (--seeds 1,2,3 or --seeds 1 --seeds 2: a tuple of ints)
    parse: Callable[[list[str]], Any] | None = None
    file: bool = False  # a path to a file: an existing folder is refused when the command line is read


def opt(default: Any, help: str, *, stages: Sequence[str] = (), **kw: Any) -> Any:
    return field(default=default, metadata={"spec": Spec(help, tuple(stages), **kw)})


def registry_names(module: str, attr: str) -> Callable[[], list[str]]:
    """Registry names, imported only when an option is checked or its help is printed."""

    def names() -> list[str]:
        import importlib

        obj = getattr(importlib.import_module(module), attr)
        return list(obj() if callable(obj) else obj)

    return names


def spec(f) -> Spec:
    return f.metadata["spec"]


@cache
def declared_fields(cls: type) -> tuple:
    return tuple(fields(cls))


@cache
def declared_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def default_of(f) -> Any:
    return f.default if f.default is not MISSING else None


def base_type(tp: Any) -> Any:
    """int for `int | None`, str for `tuple[str, ...]`."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin is tuple:
        return args[0] if args else str
    if args and origin is not None and origin is not tuple:
        return args[0]
    return tp


def coerce(name: str, value: Any, cls: type, where: str | None = None) -> Any:
    """`value` as the option's type, or an OptionError naming the flag (or `where`, e.g. a config key)."""
    f = next((f for f in declared_fields(cls) if f.name == name), None)
    label = where or flag(name)
    if f is None:
        raise OptionError(f"{label}: unknown option")
    tp = declared_types(cls)[name]
    if value is None:
        if type(None) in typing.get_args(tp) or typing.get_origin(tp) is tuple:
            return () if typing.get_origin(tp) is tuple else None
        raise OptionError(f"{label} needs a value")
    if typing.get_origin(tp) is tuple:
        items = [value] if isinstance(value, (str, Path)) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
            raise OptionError(f"{label} must be text or a list of texts, got {value!r}")
        return tuple(items)
    return _coerce_one(base_type(tp), value, label)


def _coerce_one(base: Any, value: Any, label: str) -> Any:
    if base is bool:
        if not isinstance(value, bool):
            raise OptionError(f"{label} must be true or false, got {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise OptionError(f"{label} must be a whole number, got {value!r}")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(f"{label} must be a number, got {value!r}")
        return float(value)
    if base is Path:
        if not isinstance(value, (str, Path)) or str(value) == "":
            raise OptionError(f"{label} must be a path, got {value!r}")
        from hnmine.uri import as_path

        return as_path(value)  # a URI (s3://, gs://) stays text
    if not isinstance(value, str):
        raise OptionError(f"{label} must be text, got {value!r}")
    return value


def check_field(obj: Any, f, cls: type) -> None:
    """One declared option's value on `obj` (an instance of `cls`, or any settings object with fields of the
    same names, such as the filter's): its type, bounds and registry names; those of each item of a tuple."""
    value = getattr(obj, f.name)
    if isinstance(value, tuple):
        for item in value:
            _check_value(item, f, cls)
        return
    _check_value(value, f, cls)


def _check_value(value: Any, f, cls: type) -> None:
    s = spec(f)
    if value is None or isinstance(value, Path):
        return
    name = flag(f.name)
    base = base_type(declared_types(cls)[f.name])
    if base is bool:
        if not isinstance(value, bool):
            raise OptionError(f"{name} must be true or false, got {value!r}")
        return
    if base in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (base is int and not isinstance(value, int)):
            raise OptionError(f"{name} must be {'a whole number' if base is int else 'a number'}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise OptionError(f"{name} must be a finite number, got {value}")
        too_low = s.low is not None and (value <= s.low if s.low_open else value < s.low)
        too_high = s.high is not None and value > s.high
        if too_low or too_high:
            raise OptionError(f"{name} must be {range_text(s)}, got {value}")
        return
    if base is str and not isinstance(value, str):
        raise OptionError(f"{name} must be text, got {value!r}")
    if isinstance(value, str) and s.choices is not None:
        valid = list(s.choices())
        if value not in valid:
            raise UnknownName(s.kind or f.name, value, valid)


def range_text(s: Spec) -> str:
    def num(x: float) -> str:
        return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"

    if s.low is not None and s.high is not None:
        return f"in ({num(s.low)}, {num(s.high)}]" if s.low_open else f"between {num(s.low)} and {num(s.high)}"
    if s.low is not None:
        return f"above {num(s.low)}" if s.low_open else f"at least {num(s.low)}"
    return f"at most {num(s.high)}"  # type: ignore[arg-type]


def check_declared(obj: Any) -> None:
    """Every declared field of `obj` (an instance of an options class): type, bounds, registry names.
    The rules between mine's options are hnmine.options.check_values'."""
    cls: type = type(obj)
    for f in declared_fields(cls):
        check_field(obj, f, cls)
