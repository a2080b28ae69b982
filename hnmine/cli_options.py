"""Declared options (hnmine.option_spec's `opt` fields) as typer parameters, and the command line's values
back as option objects: one way for every command, stage or helper.

A helper command (eval, report, inspect, review, finetune) is made by `helper_command` from its options
classes and one function: the command parses, names the run (a positional RUN or `--out`, one the other's
alias), builds and checks the option objects, and calls the function. Named hnmine errors propagate (the
main CLI, hnmine.cli, turns them into one line). Only typer is imported here, so `hnmine --help` stays instant.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, List, Optional

import typer

from hnmine.errors import OptionError
from hnmine.option_spec import base_type, check_declared, declared_fields, declared_types, default_of, flag, spec

P = inspect.Parameter
# Python names a parameter cannot take without hiding a module or builtin the command may use.
_RENAMED = ("json", "format", "eval")


def parameter_name(name: str) -> str:
    return name + ("_" if name in _RENAMED else "")


class path(str):  # noqa: N801 (the help shows a type by its class name: `DATA <path>`)
    """A path as the command line gives it: its text, read by `path_text` (typed() makes it a Path)."""


def annotation(tp: Any, parse: Any = None) -> Any:
    """The typer annotation of an option type (a parsed tuple is read as texts: --seeds 1,2,3)."""
    base = base_type(tp)
    if typing.get_origin(tp) is tuple:
        item = str if parse is not None else (path if base is Path else base)
        return Optional[List[item]]  # type: ignore[valid-type]
    if base is Path:
        return Optional[path]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and len(typing.get_args(tp)) > len(args):
        return Optional[args[0]]
    return tp


def parameter(f, cls: type) -> P:
    """The typer parameter of one declared field of `cls`."""
    s = spec(f)
    tp = declared_types(cls)[f.name]
    default = None if isinstance(default_of(f), tuple) else default_of(f)  # a tuple's default is the field's
    # A required option (--out, RUN) is checked once every way to give it is read (--config, its alias),
    # not by click, which would refuse it before.
    help_text = s.help + ("  [required]" if s.required else "")
    path: dict[str, Any] = {"parser": file_text if s.file else path_text} if base_type(tp) is Path else {}
    if s.argument:
        argument = typer.Argument(default, help=help_text, show_default=False, metavar=s.metavar or f.name.upper(), **path)
        return P(parameter_name(f.name), P.POSITIONAL_OR_KEYWORD, default=argument, annotation=annotation(tp, s.parse))
    flags = [f"{flag(f.name)}/--no-{f.name.replace('_', '-')}"] if s.negatable else [flag(f.name)]
    show = default not in (None, ..., False)
    if path:  # the help reads <path>, or <file> for a file to write
        path["metavar"] = "<file>" if s.file else "<path>"
    option = typer.Option(default, *flags, *s.short, help=help_text, show_default=show, **path)
    return P(parameter_name(f.name), P.KEYWORD_ONLY, default=option, annotation=annotation(tp, s.parse))


def path_text(value: str) -> str:
    """A path's text. An empty one (`--out "$RUN"` with RUN unset) would be Path(""), the current folder: a
    run mined there, a folder read as the judgments file. Refused instead."""
    if isinstance(value, str) and value == "":
        raise typer.BadParameter("needs a path, got an empty text")
    return str(value)


def file_text(value: str) -> str:
    """A path to a file (--html, --export): an existing folder is refused before any work."""
    text = path_text(value)
    if "://" in text:  # only the run directory and the inputs may be in a bucket
        raise typer.BadParameter(f"'{text}': this file is written on the local disk; give a local path")
    if Path(text).is_dir():
        raise typer.BadParameter(f"'{text}' is a directory, expected a file")
    return text


def given_values(kw: dict[str, Any]) -> dict[str, Any]:
    """The command's keyword arguments by option name (`json_` -> `json`)."""
    return {(k[:-1] if k.endswith("_") and k[:-1] in _RENAMED else k): v for k, v in kw.items()}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and not value)


def _paths(value: Any) -> list[Path]:
    return [Path(v) for v in (value if isinstance(value, (list, tuple)) else [value])]


def _shown(value: Any) -> str:
    return ", ".join(str(p) for p in _paths(value))


def name_the_run(values: dict[str, Any], fs: Sequence) -> dict[str, Any]:
    """The run named by either of its two forms (a positional RUN, `--out`: each field with `alias_of`
    names the other): the value of the form given; both forms naming different paths is an error.
    With `--out` naming the run, a positional argument after RUN moves up (`inspect --out RUN QUERY_ID`)."""
    values = dict(values)
    positional = [f.name for f in fs if spec(f).argument]
    by_name = {f.name: f for f in fs}
    for f in fs:
        target = spec(f).alias_of
        if target is None or _empty(values.get(f.name)):
            continue
        alias, named = values[f.name], values.get(target)
        if _empty(named) or _paths(alias) == _paths(named):
            values[target] = alias
            continue
        after = positional[positional.index(target) + 1 :] if target in positional else []
        if after and values.get(after[0]) is None and not isinstance(named, (list, tuple)):
            values[after[0]], values[target] = named, alias  # inspect --out RUN Q1: Q1 came in RUN's place
            continue
        one, other = (by_name[target], f) if spec(by_name[target]).argument else (f, by_name[target])
        raise OptionError(
            f"{_label(one)} ({_shown(values[one.name])}) and {_label(other)} ({_shown(values[other.name])}) "
            f"name two run directories: give one"
        )
    return values


def _label(f) -> str:
    s = spec(f)
    return (s.metavar or f.name.upper()) if s.argument else flag(f.name)


def check_given(values: dict[str, Any], fs: Sequence) -> None:
    """Every required option has a value (RUN by either of its forms)."""
    for f in fs:
        if not spec(f).required or not _empty(values.get(f.name)):
            continue
        alias = next((g for g in fs if spec(g).alias_of == f.name), None)
        if spec(f).argument and alias is not None:
            name = _label(f)
            raise OptionError(f"{name} is needed (an argument, or {flag(alias.name)} {name})")
        raise OptionError(f"{_label(f)} is needed")


def typed(f, cls: type, value: Any) -> Any:
    """A command-line value as the field's declared type: a path's text as a Path, a list as a tuple (its
    `parse` reads texts such as 1,2,3), a tuple not given as the field's default."""
    s, tp = spec(f), declared_types(cls)[f.name]
    if typing.get_origin(tp) is tuple:
        if _empty(value):
            return default_of(f)
        if s.parse is not None:
            return s.parse(list(value))
        return tuple(as_path(v) for v in value) if base_type(tp) is Path else tuple(value)
    if value is not None and base_type(tp) is Path:
        return as_path(value)
    return value


def as_path(value: Any) -> Any:
    """A path's text as a Path; a URI (s3://, gs://) stays text (hnmine.io.storage)."""
    from hnmine.uri import as_path as typed_path

    return typed_path(value)


def built(cls: type, values: dict[str, Any]) -> Any:
    """An instance of the options class `cls` from command-line values, checked: by its own `validate()`
    where it has one (the rules between its options, then check_declared), else its declared checks."""
    obj = cls(**{f.name: typed(f, cls, values.get(f.name)) for f in declared_fields(cls)})
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    else:
        check_declared(obj)
    return obj


def helper_command(name: str, doc: str, run: Callable[..., None], *classes: type) -> Callable[..., None]:
    """A typer command taking every declared field of `classes` (positional arguments first), which calls
    `run` with one instance of each class."""
    fs = [(f, cls) for cls in classes for f in declared_fields(cls)]

    def command(**kw: Any) -> None:
        values = name_the_run(given_values(kw), [f for f, _ in fs])
        check_given(values, [f for f, _ in fs])
        objs = [built(cls, values) for cls in classes]
        if not any("://" in str(v) for v in values.values()):
            run(*objs)
            return
        from hnmine.run_bucket import runs_on_disk

        with runs_on_disk(name, objs) as local:  # runs and files in a bucket: local copies (hnmine.run_bucket)
            run(*local)

    params = [parameter(f, cls) for f, cls in fs if spec(f).argument]
    params += [parameter(f, cls) for f, cls in fs if not spec(f).argument]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = doc
    command.__name__ = f"{name}_command"
    command.declared = tuple(f for f, _ in fs)  # type: ignore[attr-defined]
    return command
