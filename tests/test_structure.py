"""Package structure: no import cycles, no private names across modules, small modules and functions.

Imports are read with ``ast`` from the source, imports inside functions included (a lazy
import still ties two modules together). Limits: a library module stays under
``MAX_MODULE_LINES`` lines and a function (docstring included) under
``MAX_FUNCTION_LINES``; ``LONG_ALLOWED`` names the data tables kept longer, with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "isonet_ij"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
#: function qualname -> why it may be longer (data tables only)
LONG_ALLOWED: dict[str, str] = {}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(current: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(name: str, path: Path, known: set[str]):
    """(imported module, imported names) pairs of one module, lazy imports included."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("isonet_ij"):
                    yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(name, is_package, node.level, node.module)
            if not mod.startswith("isonet_ij"):
                continue
            names = [a.name for a in node.names]
            sub = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in known]
            if sub:  # ``from . import grid``: the submodules themselves
                for s in sub:
                    yield s, []
                rest = [n for n in names if f"{mod}.{n}" not in known]
                if rest:
                    yield mod, rest
            else:
                yield mod, names


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        deps = set()
        for mod, _ in imports_of(name, path, known):
            while mod not in known and "." in mod:
                mod = mod.rsplit(".", 1)[0]
            if mod in known and mod != name:
                deps.add(mod)
        graph[name] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            # a package's __init__ re-exporting its own submodules is not a cycle
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

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _without_package_reexports(graph):
    """Drop edges from a package ``__init__`` to its own submodules (flat re-exports)."""
    return {v: {w for w in ws if not w.startswith(v + ".")} for v, ws in graph.items()}


def _module_aliases(name: str, path: Path, known: set[str]) -> dict[str, str]:
    """Local names bound to package modules (``from . import grid``, ``import isonet_ij.x as y``)."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = _resolve(name, is_package, node.level, node.module)
            for a in node.names:
                if f"{mod}.{a.name}" in known:
                    aliases[a.asname or a.name] = f"{mod}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in known and a.asname:
                    aliases[a.asname] = a.name
    return aliases


def private_imports() -> list[str]:
    """Private names of another module used here: imported, or reached as ``module._name``."""
    mods = modules()
    known = set(mods)
    bad = []
    for name, path in mods.items():
        for mod, names in imports_of(name, path, known):
            for n in names:
                if n.startswith("_") and not n.startswith("__") and mod != name:
                    bad.append(f"{name} imports {mod}.{n}")
        aliases = _module_aliases(name, path, known)
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                bad.append(f"{name} uses {aliases[node.value.id]}.{node.attr}")
    return sorted(set(bad))


def long_functions() -> list[str]:
    bad = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                qual = f"{name}.{node.name}"
                if n > MAX_FUNCTION_LINES and qual not in LONG_ALLOWED:
                    bad.append(f"{qual} ({n} lines)")
    return bad


def long_modules() -> list[str]:
    return [f"{name} ({n} lines)" for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES]


def test_cycle_finder_sees_a_lazy_cycle(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles_counting_lazy_imports():
    assert find_cycles(_without_package_reexports(import_graph())) == []


def test_no_module_imports_another_modules_private_names():
    assert private_imports() == []


@pytest.mark.parametrize("check", [long_modules, long_functions], ids=["modules", "functions"])
def test_modules_and_functions_stay_small(check):
    assert check() == []


if __name__ == "__main__":  # a report for refactoring: python tests/test_structure.py
    print("cycles:", find_cycles(_without_package_reexports(import_graph())))
    print("private imports:", *private_imports(), sep="\n  ")
    print("long modules:", *long_modules(), sep="\n  ")
    print("long functions:", *long_functions(), sep="\n  ")
