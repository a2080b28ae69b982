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


# -- docs/tables.md is the schemas' own description (issue 24, item 3) ---------------------------

_DOC_TYPES = {"string": "string", "int32": "int32", "int64": "int64", "float32": "float", "float64": "double", "bool": "bool"}


def _documented_tables() -> dict[str, list[tuple[str, str]]]:
    """{run path: [(column, type)]} of every `## PATH` section of docs/tables.md that holds a column table;
    a section that says it has another table's columns first ("Columns of candidates.parquet, plus:") gets them."""
    import re

    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in (ROOT / "docs" / "tables.md").read_text(encoding="utf-8").splitlines():
        heading = re.match(r"## (\S+)", line)
        if heading:
            current = heading.group(1)
            sections[current] = []
            continue
        if current is None:
            continue
        inherits = re.search(r"Columns of (\S+), plus:", line)
        if inherits:
            sections[current] = list(sections[inherits.group(1)])
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 2 and cells[0] not in ("column", "---") and "<" not in cells[0]:  # teacher_<name>: one per teacher
            sections[current].append((cells[0], cells[1].split(",")[0].strip()))
    return {path: columns for path, columns in sections.items() if columns}


def test_the_tables_doc_matches_the_schemas():
    """Each table section of docs/tables.md lists its schema's columns, in order, with their types."""
    from hnmine.run_layout import LAYOUT
    from hnmine.schemas import SCHEMAS

    documented = _documented_tables()
    for name, schema in SCHEMAS.items():
        path = LAYOUT[name]
        if name == "hidden_qrels":  # documented as "the same columns" as the qrels
            assert schema == SCHEMAS["qrels"]
            continue
        if name == "finetune_results":  # docs/finetune.md (test below)
            continue
        assert path in documented, f"docs/tables.md has no section for {path}"
        in_code = [(f.name, str(f.type)) for f in schema]
        in_doc = [(column, _DOC_TYPES.get(kind, kind)) for column, kind in documented[path]]
        assert in_doc == in_code, f"docs/tables.md, {path}: documented {in_doc}, the schema has {in_code}"
    assert set(documented) <= {LAYOUT[name] for name in SCHEMAS}, "a table section of docs/tables.md without a schema"


def test_a_finished_run_writes_its_tables_with_the_schemas(finished_tiny):
    """The schemas are what the stages write (scores: one teacher_NAME column per teacher of an ensemble, beyond)."""
    import pyarrow.parquet as pq

    from hnmine.run_layout import LAYOUT
    from hnmine.schemas import SCHEMAS

    _, run = finished_tiny
    for name, schema in SCHEMAS.items():
        path = run / LAYOUT[name]
        if not path.is_file():  # hidden qrels (--hide-positives), judgments (hnmine review): not in a default run
            continue
        written = pq.read_schema(path).remove_metadata()
        assert written == schema, f"{LAYOUT[name]}: written as {written}, the schema is {schema}"


def test_the_finetune_doc_names_every_column_of_its_results():
    """docs/finetune.md's table of finetune/results.parquet groups columns by row (`arm, kind`): each column of
    the schema once, in order, with its type where a row gives one."""
    from hnmine.schemas import FINETUNE_RESULTS_SCHEMA

    text = (ROOT / "docs" / "finetune.md").read_text(encoding="utf-8")
    table = text.split("`finetune/results.parquet`", 1)[1].split("\n\n", 2)[1]
    documented = []
    for line in table.splitlines()[2:]:
        names, kind = (c.strip() for c in line.strip().strip("|").split("|")[:2])
        documented += [(name.strip(), kind) for name in names.split(",")]
    assert [name for name, _ in documented] == FINETUNE_RESULTS_SCHEMA.names
    for name, kind in documented:
        if kind:
            assert _DOC_TYPES.get(kind, kind) == str(FINETUNE_RESULTS_SCHEMA.field(name).type), (name, kind)
