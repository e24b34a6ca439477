"""The import graph of `echoops/` and `shim/` has no cycles, counting imports inside functions.

An edge goes from a module to the module it names: `from a.b import c` is an edge to `a.b.c`
when that is a module, else to `a.b`. The implicit import of parent packages is not an edge
(a package's `__init__` only re-exports; a submodule importing a sibling is not a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = ("echoops", "shim")


def _modules() -> dict[str, Path]:
    found = {}
    for top in TOP:
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> the internal modules it imports anywhere in its body."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                hit = _resolve(target, modules)
                if hit and hit != mod:
                    graph[mod].add(hit)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_core_imports_no_cli_or_web_framework():
    for mod, path in _modules().items():
        if mod.startswith("echoops.core"):
            text = path.read_text()
            for banned in ("typer", "rich", "bottle"):
                assert f"import {banned}" not in text and f"from {banned}" not in text, (mod, banned)


def test_each_control_is_a_package_that_states_its_interface():
    for control in ("slo", "pager", "portal", "costs", "scale", "scheduler"):
        init = ROOT / "echoops" / "core" / control / "__init__.py"
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), control
        exported = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__all__")
        assert ast.literal_eval(exported.value), control
    flat = sorted(p.stem for p in (ROOT / "echoops" / "core").glob("*.py"))
    controls = {"slo", "pager", "portal", "cost", "costs", "scale", "ledger", "stripe"}
    prefixed = [n for n in flat if n.split("_")[0] in controls]
    assert prefixed == []


def _function_local_imports(tree: ast.AST):
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield node


def test_every_function_local_import_says_why_it_is_lazy():
    """An import inside a function must buy start-up time and say so: `# lazy: <reason>` on its
    line or on a comment line heading its block of imports (see bench/foundation_startup.py)."""
    unexplained = []
    for mod, path in _modules().items():
        lines = path.read_text().splitlines()
        for node in _function_local_imports(ast.parse("\n".join(lines))):
            i = node.lineno - 1
            while i >= 0 and "# lazy:" not in lines[i]:
                text = lines[i].strip()
                if i != node.lineno - 1 and not (text.startswith(("from ", "import ", "#")) or not text):
                    break
                i -= 1
            if i < 0 or "# lazy:" not in lines[i]:
                unexplained.append(f"{mod}:{node.lineno}")
    assert unexplained == []
