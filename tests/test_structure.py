"""The package's structure keeps its shape (issue 24): read from the source with `ast`
(benchmarks/code_structure.py, which prints the same figures), nothing imported."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hnmine"
sys.path.insert(0, str(ROOT / "benchmarks"))

import code_structure  # noqa: E402


@pytest.fixture(scope="module")
def figures() -> dict:
    return code_structure.measure(PACKAGE)


def test_no_import_cycle_between_modules_or_packages(figures):
    """Every import counts, at module level or inside a function: a lower layer never imports a higher one."""
    assert figures["module_cycles"] == []
    assert figures["package_cycles"] == []


def test_no_function_over_80_lines(figures):
    long = [(name, n) for n, name in figures["longest_functions"] if n > 80]
    assert long == []


def test_a_module_over_500_lines_says_why():
    """A long module is split along a seam, or its docstring gives the reason it is not."""
    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 500 and "longer than 500 lines" not in (ast.get_docstring(ast.parse(text)) or "").lower():
            unexplained.append(str(path.relative_to(ROOT)))
    assert unexplained == []


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_executors_name_no_stage_and_stages_name_no_executor():
    """One stage, any executor: an executor runs parts (hnmine.parts) and knows no stage; a stage maps its
    parts on ctx.executor and knows no engine."""
    for path in (PACKAGE / "executors").rglob("*.py"):
        assert not {m for m in _imports(path) if m.startswith("hnmine.stages")}, path
        text = path.read_text(encoding="utf-8")
        for stage in ("inputs", "index", "retrieve", "score", "filter", "export"):
            assert f'"{stage}"' not in text, (path, stage)
    for path in (PACKAGE / "stages").rglob("*.py"):
        assert not {m for m in _imports(path) if m.startswith(("hnmine.executors", "ray"))}, path


def test_the_option_registry_names_the_stages_the_pipeline_runs():
    """hnmine.options names the stages and their commands below every module that needs them; hnmine.stages
    declares their work: the two lists are the same, in the same order."""
    from hnmine.options import STAGE_NAMES
    from hnmine.stages import STAGES

    assert tuple(s.name for s in STAGES) == STAGE_NAMES
    from hnmine.rundir import LAYOUT, stage_making

    assert {stage_making(rel) for rel in LAYOUT.values()} - {"mine"} == set(STAGE_NAMES)
