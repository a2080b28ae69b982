"""The CLI reference (docs/cli.md), generated from the commands' own help so it cannot drift.

    python -m hnmine.clidoc > docs/cli.md      (also: make docs)

tests/test_docs.py fails when docs/cli.md differs from what this prints.
"""

from __future__ import annotations

WIDTH = 100


def command_help(name: str | None) -> str:
    """`hnmine [NAME] --help` as plain text at a fixed width (the same on every terminal)."""
    from typer.main import get_command

    from hnmine.cli import app

    group = get_command(app)
    command = group if name is None else group.commands[name]  # type: ignore[attr-defined]
    parent = group.context_class(group, info_name="hnmine", terminal_width=WIDTH, max_content_width=WIDTH)
    ctx = (
        parent
        if name is None
        else command.context_class(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    )
    return command.get_help(ctx).rstrip() + "\n"


def reference() -> str:
    from typer.main import get_command

    from hnmine.cli import app

    names = list(get_command(app).commands)  # type: ignore[attr-defined]
    parts = [
        "# CLI reference\n",
        "Generated from the commands' own `--help` by `python -m hnmine.clidoc` (`make docs`); a test fails when",
        "this page and the code disagree. Every option of a stage command can also come from a TOML file",
        "(`--config`), under the same name: top-level keys, then tables named after the stages the command runs",
        "(`[index]` … `[export]`, in pipeline order), then the table named after the command (`[mine]`), each",
        "overriding the one before; flags on the command line override them all (the README's Options section).\n",
        "```text",
        command_help(None).rstrip(),
        "```\n",
    ]
    for name in names:
        parts += [f"## hnmine {name}\n", "```text", command_help(name).rstrip(), "```\n"]
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    print(reference(), end="")
