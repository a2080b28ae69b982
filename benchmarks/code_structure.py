"""The package's structure in figures: modules, lines, the largest modules and longest functions, imports of
hnmine's own modules made inside functions, and import cycles (between modules and between packages),
counting every import, at module level or inside a function.

    python benchmarks/code_structure.py [PACKAGE_DIR] [--json]

Read from the source with `ast`; nothing is imported or run.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(tree: ast.AST, current: str, is_package: bool, known: set[str]) -> list[tuple[str, bool]]:
    """(imported hnmine module, made inside a function) for every import of the module."""
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, inside) for a in child.names if a.name.split(".")[0] == "hnmine")
            elif isinstance(child, ast.ImportFrom):
                base = resolve(child, current, is_package)
                if base.split(".")[0] != "hnmine":
                    continue
                for a in child.names:  # `from hnmine.x import y`: y is a module when it is one
                    full = f"{base}.{a.name}"
                    out.append((full if full in known else base, inside))
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # imports for the type checker only: never run
            visit(child, inside)

    visit(tree, False)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def owner(name: str, known: set[str]) -> str:
    """The known module an import names (a name inside a module resolves to the module)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def package_of(module: str) -> str:
    """A module's package: hnmine.stages.filter -> hnmine.stages; a root module is its own."""
    parts = module.split(".")
    return ".".join(parts[:2])


def measure(root: Path) -> dict:
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    known = {module_name(p, root) for p in files}
    lines, functions, graph, inner = {}, [], {}, 0
    for p in files:
        name = module_name(p, root)
        text = p.read_text(encoding="utf-8")
        lines[name] = len(text.splitlines())
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
        edges = imports_of(tree, name, p.name == "__init__.py", known)
        inner += sum(1 for _, inside in edges if inside)
        graph[name] = {owner(m, known) for m, _ in edges} - {name, ""}
    packages: dict[str, set[str]] = {}
    for m, targets in graph.items():
        packages.setdefault(package_of(m), set()).update(package_of(t) for t in targets if package_of(t) != package_of(m))
    functions.sort(reverse=True)
    return {
        "modules": len(files),
        "lines": sum(lines.values()),
        "largest_modules": sorted(((n, m) for m, n in lines.items()), reverse=True)[:8],
        "modules_over_500_lines": sum(1 for n in lines.values() if n > 500),
        "longest_functions": functions[:8],
        "functions_over_80_lines": sum(1 for n, _ in functions if n > 80),
        "imports_of_own_modules_inside_functions": inner,
        "module_cycles": cycles(graph),
        "package_cycles": cycles(packages),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default=str(Path(__file__).resolve().parent.parent / "hnmine"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(Path(args.package).resolve())
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"modules {figures['modules']}, lines {figures['lines']:,}")
    print("largest modules: " + ", ".join(f"{m} {n}" for n, m in figures["largest_modules"]))
    print(f"modules over 500 lines: {figures['modules_over_500_lines']}")
    print("longest functions: " + ", ".join(f"{f} {n}" for n, f in figures["longest_functions"]))
    print(f"functions over 80 lines: {figures['functions_over_80_lines']}")
    print(f"imports of hnmine's own modules inside functions: {figures['imports_of_own_modules_inside_functions']}")
    print(f"module cycles: {len(figures['module_cycles'])} " + "; ".join(f"{len(c)} modules" for c in figures["module_cycles"]))
    print(f"package cycles: {len(figures['package_cycles'])} " + "; ".join(" <-> ".join(c) for c in figures["package_cycles"]))


if __name__ == "__main__":
    main()
