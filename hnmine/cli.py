"""The command line: thin typer commands. Each parses options, calls one hnmine function, and turns a
named hnmine error into a one-line message and exit code 2. Heavy libraries are imported lazily.

Every command is generated from option declarations (hnmine.option_spec's `opt` fields, made typer
parameters by hnmine.cli_options): the stage commands from the stage declarations (hnmine.stages: which
command runs which stages) and hnmine.options, so every command that runs a stage reading an option
offers it; the helper commands (eval, report, inspect, review, finetune) from their options classes
(hnmine.command_options, hnmine.finetune.options). An option is declared once.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any, Callable

import typer
from typer.core import TyperGroup

from hnmine.cli_options import given_values, name_the_run, parameter, typed
from hnmine.command_options import StageRun
from hnmine.errors import HnmineError, Terminated
from hnmine.options import Options, RunOptions, option_fields, options_for_stages, spec


class _Group(TyperGroup):
    """The command group, with click's usage errors (a value that is not a number, an unknown option, a
    missing argument) printed like every other error: one line `hnmine: error: ...`, exit code 2, where
    click prints a usage block, a hint and the error on four lines."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except typer.TyperException as exc:  # click's ClickException and its usage errors
            if type(exc).__name__ == "NoArgsIsHelpError":  # `hnmine` alone: the help, as click shows it
                exc.show()  # type: ignore[attr-defined]
                sys.exit(getattr(exc, "exit_code", 2))
            message = " ".join(exc.format_message().split()) if hasattr(exc, "format_message") else str(exc)
            ctx = getattr(exc, "ctx", None)
            message = self._owners_of_option(exc, ctx) or message
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None and getattr(ctx, "command_path", "") else ""
            typer.echo(f"hnmine: error: {message}{hint}", err=True)
            sys.exit(2)
        except typer.Abort:
            typer.echo("hnmine: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)

    def _owners_of_option(self, exc: Exception, ctx: Any) -> str:
        """For an option this command lacks but others have (`hnmine retrieve --bm25-backend`), which ones:
        click would suggest a look-alike of this command's (`Did you mean --backend?`), another option."""
        name = getattr(exc, "option_name", None)
        if type(exc).__name__ != "NoSuchOption" or not name or ctx is None:
            return ""
        owners = [n for n, cmd in self.commands.items() if any(name in p.opts or name in p.secondary_opts for p in cmd.params)]
        if not owners:
            return ""
        others = f" (and {', '.join(owners[1:])})" if owners[1:] else ""
        return f"{name} is an option of hnmine {owners[0]}{others}, not of {ctx.command_path}"


app = typer.Typer(
    name="hnmine",
    help="Mine hard negatives for embedding and reranker training, with positive-aware false-negative filtering.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=_Group,
)

P = inspect.Parameter
HELP = {
    "index": "Normalise the inputs and build the dense and/or BM25 index.",
    "retrieve": "Retrieve the top candidates per query (dense, BM25 or hybrid).",
    "score": "Score every (query, candidate) and (query, positive) pair with the teacher(s).",
    "filter": "Choose negatives per query with a method; write negatives, dropped and query_summary tables.",
    "export": "Write training files (sentence-transformers, FlagEmbedding or Tevatron shapes).",
    "mine": "Run every stage: index → retrieve → score → filter → export. Finished, unchanged stages are skipped.",
}


def _fail_or_stop(exc: BaseException, resume: str = "") -> None:
    """A named error: its one line, exit 2. Ctrl-C or SIGTERM: one line, exit 130 or 143."""
    if isinstance(exc, HnmineError):
        _fail(exc)
    word, code = ("interrupted", 130) if isinstance(exc, KeyboardInterrupt) else ("terminated", 143)
    typer.echo(f"hnmine: {word}{resume}", err=True)
    raise typer.Exit(code) from None


def _fail(exc: HnmineError) -> None:
    from hnmine.run_bucket import said_as_uris
    from hnmine.terminal_text import visible

    # the message may quote an id or a path from the user's files: its control characters as escapes
    typer.echo(f"hnmine: error: {visible(said_as_uris(str(exc)))}", err=True)
    raise typer.Exit(exc.exit_code)


def _reporter(quiet: bool):
    from hnmine.progress import Reporter, RichReporter

    return Reporter() if quiet else RichReporter()


def _stage_command(name: str, stages: tuple[str, ...]) -> Callable:
    option_fs = options_for_stages(stages)
    run_fs = list(option_fields(RunOptions))
    # A command that takes no DATA takes the run as a positional RUN too, as the readers name it.
    run_argument = [] if any(spec(f).argument for f in option_fs) else list(option_fields(StageRun))
    typed_as = {f.name: (f, cls) for cls, fs in ((Options, option_fs), (RunOptions, run_fs), (StageRun, run_argument)) for f in fs}

    def command(ctx: typer.Context, **kw: Any) -> None:
        from hnmine.runner import run_command

        # Flags typed on the command line beat the config file; defaults do not. A typed RUN is a typed --out.
        parameter_of = dict(zip(given_values(kw), kw))
        given = {option for option, p in parameter_of.items() if _typed_on_command_line(ctx, p)}
        if "run" in given:
            given.add("out")
        try:
            values = name_the_run(given_values(kw), run_argument + run_fs)
            values = {k: typed(*typed_as[k], v) for k, v in values.items()}
            run, options = _run_and_options(values, given, name, stages, run_fs, option_fs)
            result = run_command(
                run["out"],
                options,
                stages=stages,
                defaults=run["defaults"],
                reset=tuple(run["reset"] or ()),
                replace=run["replace"],
                force=run["force"],
                reporter=_reporter(run["quiet"]),
                engine=run["engine"],
                ray_address=run["ray_address"],
                cache_dir=run["cache_dir"],
                cache_max_size=run["cache_max_size"],
            )
        except (HnmineError, KeyboardInterrupt, Terminated) as exc:
            _fail_or_stop(exc, "; finished stages are kept, rerun the same command to resume")
        _print_result(result, run["json"], run["quiet"])

    params = [P("ctx", P.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    params += [parameter(f, Options) for f in option_fs if spec(f).argument]
    params += [parameter(f, StageRun) for f in run_argument]
    params += [parameter(f, RunOptions) for f in run_fs if f.name == "out"]
    params += [parameter(f, Options) for f in option_fs if not spec(f).argument]
    params += [parameter(f, RunOptions) for f in run_fs if f.name != "out"]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = HELP[name]
    command.__name__ = f"{name}_command"
    command.declared = (*option_fs, *run_fs, *run_argument)  # type: ignore[attr-defined]
    return command


def _typed_on_command_line(ctx: typer.Context, parameter_name: str) -> bool:
    return getattr(ctx.get_parameter_source(parameter_name), "name", "") == "COMMANDLINE"


def _run_and_options(values: dict, given: set, name: str, stages: tuple[str, ...], run_fs: list, option_fs: list) -> tuple[dict, dict]:
    """(the run options, the options given) from the command line over the --config file."""
    from_file = {}
    if values.get("config") is not None:
        from hnmine.config import config_values
        from hnmine.stages import commands

        from_file = config_values(values["config"], name, stages, list(commands()) + ["mine"])
    merged = {**from_file, **{k: values[k] for k in given}}
    run = {f.name: merged.get(f.name, values[f.name]) for f in run_fs}
    if run["out"] is None:
        from hnmine.errors import OptionError

        raise OptionError("--out is needed: the run directory (a flag, or `out` in the --config file)")
    return run, {f.name: merged[f.name] for f in option_fs if f.name in merged}


def _print_result(result, json_: bool, quiet: bool) -> None:
    if json_:
        from hnmine.terminal_text import dumps

        typer.echo(dumps(result.summary(), indent=2))
        return
    if quiet:
        return
    from hnmine.progress import RichReporter

    rep = RichReporter()
    summary = result.summary()
    f = summary.get("filter") or {}
    if f:
        # counted as the report counts them: the candidates a rule dropped, retrieved known positives aside
        known = f.get("dropped_known_positive", 0)
        dropped = sum(v for k, v in f.items() if k.startswith("dropped_") and k != "dropped_known_positive" and isinstance(v, int))
        rep.info(
            f"negatives: {f.get('negatives_total', '?')} for {f.get('queries_full', '?')} full + "
            f"{f.get('queries_short', '?')} short queries; dropped by the rules: {dropped:,} candidates "
            f"({known:,} retrieved known positives aside)"
        )
    rep.info(f"run directory: {summary['run_dir']}")
    if summary.get("export"):
        rep.info(f"training file: {summary['export']}")


def _register_stage_commands() -> None:
    from hnmine.stages import STAGES, commands

    for name, stages in commands().items():
        app.command(name)(_stage_command(name, stages))
    app.command("mine")(_stage_command("mine", tuple(s.name for s in STAGES)))
    app.command("methods")(methods_command)


def methods_command() -> None:
    """List the negative-selection methods with their default values."""
    from hnmine.methods import DEFAULT_METHOD, get_method, method_names

    for name in method_names():
        m = get_method(name)
        defaults = ", ".join(f"{k}={v}" for k, v in sorted(m.defaults.items()) if v is not None)
        mark = " (default)" if name == DEFAULT_METHOD else ""
        typer.echo(f"{name}{mark}: sampling={m.sampling}" + (f", {defaults}" if defaults else ""))


# Helper commands: (name, module, function), imported only when the command runs or its help is shown.
HELPER_COMMANDS = [
    ("eval", "hnmine.cli_eval", "eval_command"),
    ("report", "hnmine.cli_report", "report_command"),
    ("inspect", "hnmine.cli_report", "inspect_command"),
    ("review", "hnmine.review.command", "review_command"),
    ("finetune", "hnmine.cli_finetune", "finetune_command"),
    ("cache", "hnmine.cli_cache", "cache_command"),
]


def _register_helper_commands() -> None:
    import importlib

    for name, module, function in HELPER_COMMANDS:
        app.command(name)(_guarded(getattr(importlib.import_module(module), function)))


def _guarded(fn: Callable) -> Callable:
    """Wrap a command so a named hnmine error becomes a one-line message and exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (HnmineError, KeyboardInterrupt, Terminated) as exc:
            _fail_or_stop(exc)

    return wrapper


def declared_fields(name: str) -> tuple:
    """The declared option fields (hnmine.option_spec) a command's parameters are made from."""
    command = next(c for c in app.registered_commands if c.name == name)
    return getattr(command.callback, "declared", ())


def _version(value: bool) -> None:
    if value:
        from hnmine import __version__

        typer.echo(f"hnmine {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, callback=_version),
) -> None:
    """Mine hard negatives for embedding and reranker training, with positive-aware false-negative filtering."""


_register_stage_commands()
_register_helper_commands()


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)  # unwind (cleanup, stop workers) instead of dying mid-write
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
