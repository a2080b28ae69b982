"""CLI: help for every command, exit codes and one-line messages."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hnmine.cli import app

runner = CliRunner()
COMMANDS = ["index", "retrieve", "score", "filter", "export", "mine", "methods", "eval", "report", "inspect", "review", "finetune"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert len(result.output.strip().splitlines()) > 3


def test_top_level_help_lists_commands_and_is_fast():
    # --help imports none of the numerical libraries (each costs a large share of a second, torch several).
    code = (
        "import sys; from hnmine.cli import main; sys.argv = ['hnmine', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = {'torch', 'sentence_transformers', 'numpy', 'pyarrow', 'faiss', 'bm25s', 'rich.table'} & set(sys.modules)\n"
        "assert not heavy, sorted(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    result = runner.invoke(app, ["--help"])
    for command in COMMANDS:
        assert command in result.output


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "hnmine", "methods", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "methods" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "hnmine", "no-such-command"], capture_output=True, text=True)
    assert bad.returncode == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--retriever", "sparse"], "unknown retriever 'sparse' (valid: bm25, dense, hybrid)"),
        (["--format", "xml"], "unknown export format 'xml' (valid:"),
        (["--method", "best"], "unknown method 'best' (valid:"),
        (["--dtype", "int4"], "unknown dtype 'int4' (valid:"),
        (["--range-min", "5", "--range-max", "3"], "range"),
        (["--depth", "300"], "--depth (300) is larger than --max-depth (200)"),
    ],
)
def test_bad_options_exit_2_with_one_line(tiny_beir, tmp_path, args, message):
    run = tmp_path / "run"
    result = runner.invoke(app, ["mine", str(tiny_beir), "--out", str(run), "--quiet", *args])
    assert result.exit_code == 2, result.output
    err = result.output.strip()
    assert err.startswith("hnmine: error:") and message in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err
    assert not (run / "manifests").exists()  # nothing was written


def test_missing_input_file(tmp_path):
    result = runner.invoke(app, ["mine", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "nope: no such file or folder" in result.output


def test_stage_before_its_input_exists(tmp_path):
    result = runner.invoke(app, ["filter", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "has not run here" in result.output


def test_config_file_sets_options_and_flags_override(tiny_beir, tmp_path):
    cfg = tmp_path / "hn.toml"
    cfg.write_text('retriever = "sparse"\n[mine]\nnum-negatives = 2\n')
    result = runner.invoke(app, ["mine", str(tiny_beir), "--out", str(tmp_path / "r"), "--config", str(cfg), "--quiet"])
    assert result.exit_code == 2 and "unknown retriever 'sparse'" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("no_such_option = 1\n")
    result = runner.invoke(app, ["mine", str(tiny_beir), "--out", str(tmp_path / "r"), "--config", str(bad)])
    assert result.exit_code == 2 and f"{bad}: no_such_option: unknown option" in result.output


def test_methods_lists_every_method():
    result = runner.invoke(app, ["methods"])
    for name in ["naive", "shifted", "topk-abs", "topk-marginpos", "topk-percpos", "sampled", "top1-sampled", "simans"]:
        assert name in result.output


# --- one option system for every command (issue 24, item 4) -----------------------------------------------


def _one_line(result, *fragments: str) -> str:
    """Exit 2, one line `hnmine: error: ...` on stderr holding every fragment, nothing on stdout."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hnmine: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == "" and "Traceback" not in result.stderr
    return lines[0]


def _copied(finished_tiny, tmp_path, name: str = "run"):
    import shutil

    _, done = finished_tiny
    run = tmp_path / name
    shutil.copytree(done, run)
    return run


@pytest.mark.parametrize("command", ["retrieve", "score", "filter", "export"])
def test_a_stage_command_takes_the_run_as_its_argument(finished_tiny, tmp_path, command):
    """`hnmine filter runs/x` (the way report, inspect and review name a run) was 'Got unexpected extra
    argument': these commands take no DATA, so a positional RUN is --out."""
    import json

    from conftest import invoke

    run = _copied(finished_tiny, tmp_path)
    result = invoke([command, run, "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["run_dir"] == str(run) and all(s["skipped"] for s in summary["stages"])
    same = invoke([command, run, "--out", run, "--json", "--quiet"])  # both forms, one path: as either alone
    assert same.exit_code == 0, same.output


@pytest.mark.parametrize(
    "positional, aliased",
    [
        (["report", "{run}", "--json"], ["report", "--out", "{run}", "--json"]),
        (["report", "{run}", "--json", "--top", "2"], ["report", "-o", "{run}", "--json", "--top", "2"]),
        (["inspect", "{run}", "q1", "--json"], ["inspect", "--out", "{run}", "q1", "--json"]),
        (["inspect", "{run}", "--query", "espresso", "--json"], ["inspect", "-o", "{run}", "--query", "espresso", "--json"]),
        (["eval", "{run}", "{run2}", "--json"], ["eval", "--out", "{run}", "-o", "{run2}", "--json"]),
    ],
    ids=["report", "report-short", "inspect", "inspect-query", "eval"],
)
def test_a_reader_takes_the_run_as_out(finished_tiny, tmp_path, positional, aliased):
    """`hnmine report --out runs/x` (the way stage commands name a run) was 'No such option: --out'."""
    from conftest import invoke

    runs = {"{run}": str(_copied(finished_tiny, tmp_path)), "{run2}": str(_copied(finished_tiny, tmp_path, "run2"))}
    expected = invoke([runs.get(a, a) for a in positional])
    assert expected.exit_code == 0, expected.output
    result = invoke([runs.get(a, a) for a in aliased])
    assert result.exit_code == 0, result.output
    assert result.stdout == expected.stdout


def test_review_and_finetune_take_the_run_as_out(finished_tiny, tmp_path):
    from conftest import invoke

    run = _copied(finished_tiny, tmp_path)
    result = invoke(["review", "--out", run, "--export", tmp_path / "q.tsv"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "q.tsv").read_text().startswith("query-id\tcorpus-id\tscore")
    # finetune's sources are runs or training files: --out names one as well (here, one that is not there)
    _one_line(invoke(["finetune", "--out", tmp_path / "nope", "--eval", tmp_path]), "nope", "no such run directory or training file")


@pytest.mark.parametrize(
    "args",
    [
        ["filter", "{run}", "--out", "{other}", "--quiet"],
        ["report", "{run}", "--out", "{other}"],
        ["inspect", "{run}", "q1", "-o", "{other}"],
        ["review", "{run}", "--out", "{other}", "--export", "{other}/q.tsv"],
        ["eval", "{run}", "--out", "{other}"],
        ["finetune", "{run}", "--out", "{other}", "--eval", "{other}"],
    ],
    ids=["filter", "report", "inspect", "review", "eval", "finetune"],
)
def test_both_forms_naming_two_runs_is_one_line(finished_tiny, tmp_path, args):
    """RUN and --out both given, naming different folders: which one was meant is not guessed."""
    from conftest import invoke, snapshot

    run = _copied(finished_tiny, tmp_path)
    other = tmp_path / "other"
    before = snapshot(run)
    line = _one_line(invoke([{"{run}": run, "{other}": other}.get(a, a) for a in args]), "name two run directories", str(other))
    assert str(run) in line and snapshot(run) == before and not other.exists()


@pytest.mark.parametrize("command", ["report", "inspect", "review", "eval", "finetune"])
def test_a_reader_without_its_run_names_both_forms(command):
    from conftest import invoke

    _one_line(invoke([command]), "is needed", "--out")


@pytest.mark.parametrize(
    "command, argument, alias",
    [("filter", "RUN", "--out"), ("export", "RUN", "--out"), ("report", "RUN", "-o, --out"), ("eval", "RUN", "-o, --out")],
)
def test_the_help_names_the_other_form(command, argument, alias):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert f"[{argument}]" in result.output.splitlines()[0]  # the usage line
    hint = "The same as --out" if command in ("filter", "export") else "The same as RUN"
    assert alias in result.output and hint in result.output


def test_every_command_s_options_are_declared_fields():
    """Every parameter of every command comes from a declared field (hnmine.options' `opt`): none is
    hand-declared with its own help and default. eval, report, inspect, review and finetune declared
    theirs in their typer signatures."""
    from typer.main import get_command

    from hnmine.cli import declared_fields

    group = get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        declared = {f.name: f for f in declared_fields(name)}
        for param in command.params:
            if param.name == "help":
                continue
            key = param.name.rstrip("_")
            assert key in declared, (name, param.name)
            assert param.help is None or param.help.startswith(declared[key].metadata["spec"].help.split("  [")[0][:40]), (name, key)


def test_an_option_several_commands_take_is_declared_once():
    """--json, --quiet, --model, --device, --threads and --min-relevance: one declaration (default, bounds,
    short flag) wherever a command takes them; --min-relevance's default was written out three times."""
    from dataclasses import fields

    from hnmine.cli import declared_fields
    from hnmine.options import Options, RunOptions

    home = {f.name: f for cls in (Options, RunOptions) for f in fields(cls)}
    seen: dict[str, list[str]] = {}
    for name in COMMANDS:
        for f in declared_fields(name):
            if f.name in ("json", "quiet", "model", "device", "threads", "min_relevance"):
                ours, theirs = f.metadata["spec"], home[f.name].metadata["spec"]
                assert f.default == home[f.name].default, (name, f.name)
                bounds = (ours.low, ours.high, ours.low_open, ours.short)
                assert bounds == (theirs.low, theirs.high, theirs.low_open, theirs.short), (name, f.name)
                seen.setdefault(f.name, []).append(name)
    assert {"eval", "finetune", "mine"} <= set(seen["min_relevance"])
    assert {"report", "inspect", "eval", "finetune", "mine"} <= set(seen["json"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "{run}", "--min-relevance", "5000"], "--min-relevance must be between -1,000 and 1,000, got 5000"),
        (["report", "{run}", "--top", "-1"], "--top must be at least 0, got -1"),
        (["report", "{run}", "--per-query", "-2"], "--per-query must be at least 0, got -2"),
        (["review", "{run}", "--top", "0"], "--top must be at least 1, got 0"),
        (["review", "{run}", "--export", "{run}/q.tsv", "--qrels-format", "csv"], "unknown qrels format 'csv' (valid: beir, trec)"),
    ],
)
def test_helper_options_are_checked_as_stage_options_are(finished_tiny, tmp_path, args, message):
    """Bounds and names of the helper commands' options are declared and checked as mine's are: eval took
    --min-relevance 5000 (mine refuses it), report's bounds were click's ('Invalid value for --top')."""
    from conftest import invoke

    run = _copied(finished_tiny, tmp_path)
    _one_line(invoke([str(a).replace("{run}", str(run)) for a in args]), message)
    assert not (run / "q.tsv").exists()
