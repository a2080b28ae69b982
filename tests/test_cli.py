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
