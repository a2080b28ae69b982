"""Docs that cannot drift: the CLI reference is the commands' own help, and every command has help."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from hnmine.cli import app
from hnmine.clidoc import command_help, reference

ROOT = Path(__file__).resolve().parent.parent


def test_the_cli_reference_matches_the_code():
    on_disk = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert on_disk == reference(), "docs/cli.md is out of date: run `make docs` (python -m hnmine.clidoc > docs/cli.md)"


def test_every_command_and_every_option_has_help():
    group = get_command(app)
    for name, command in group.commands.items():
        assert (command.help or "").strip(), name
        for param in command.params:
            if param.param_type_name == "option":
                assert (getattr(param, "help", "") or "").strip(), (name, param.name)
        assert "--help" in command_help(name)


def test_every_flag_is_documented_in_the_reference():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for command in get_command(app).commands.values():
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in text, opt
