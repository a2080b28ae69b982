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


# -- every page is reachable, none repeats itself (issue 23, item 16) --------------------------


def _links(page: Path) -> set[Path]:
    """The local Markdown pages `page` links to (`[text](docs/x.md)`, `(x.md#anchor)`), resolved."""
    import re

    out = set()
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0]
        if path and "://" not in path and path.endswith(".md"):
            out.add((page.parent / path).resolve())
    return out


def test_every_doc_is_linked_from_the_readme_or_a_linked_doc():
    reached, todo = set(), [(ROOT / "README.md").resolve()]
    while todo:
        page = todo.pop()
        if page in reached or not page.is_file():
            continue
        reached.add(page)
        todo.extend(_links(page))
    unlinked = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.resolve() not in reached)
    assert not unlinked, f"docs linked from nowhere (link them from README.md or a linked doc): {unlinked}"


def test_no_doc_repeats_a_section():
    """docs/quality.md held its sections 3 and 4 twice, with different numbers."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        lines = page.read_text(encoding="utf-8").splitlines()
        in_code, headings = False, []
        for line in lines:
            in_code ^= line.startswith("```")
            if not in_code and line.startswith("#"):
                headings.append(line.strip())
        repeated = sorted({h for h in headings if headings.count(h) > 1})
        assert not repeated, f"{page.name} repeats {repeated}"
