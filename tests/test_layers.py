"""Imports run one way (docs/ARCHITECTURE.md): no circle, and nothing imports a module of a higher layer.

Every ``import``/``from … import`` of a ``dbmeta_app`` module counts, wherever it stands (inside a function
or under ``TYPE_CHECKING`` too): a type named from a higher layer ties the layers as much as a call does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dbmeta_app"

#: The layer of each top-level module or package of ``dbmeta_app``, lowest first. A module may import its
#: own layer and those below it, never one above.
LAYERS: dict[str, int] = {
    # base: settings, errors, process-wide helpers with no state
    "__init__": 0,
    "config": 0,
    "errors": 0,
    "metrics": 0,
    "scrub": 0,
    "breaker": 0,
    "logging_setup": 0,
    "ownership": 0,
    "redis_url": 0,
    "dialects": 0,
    "curated": 0,
    "sample": 0,
    "tasks": 0,
    # the cache, and database access (engines, the read-only session, the admission bound)
    "cache": 1,
    "db": 1,
    # the schema: introspection, snapshot store, render
    "schema": 2,
    # what is computed from a schema; a profile's open resources
    "preflight": 3,
    "search": 3,
    "examples": 3,
    "profiles": 3,
    # the composition root: builds and closes everything a process holds
    "runtime": 4,
    # the prompt items the faces serve
    "items": 5,
    # the faces
    "facade": 6,
    "api": 6,
    "cli": 6,
    "client": 6,
    "main": 6,
    "__main__": 6,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """The dbmeta_app modules this file imports (a ``from pkg import mod`` names the module when it is one)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "dbmeta_app" or m.startswith("dbmeta_app.")}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in _imports(path, name) if m in files and m != name} for name, path in files.items()
    }


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    if top not in LAYERS:
        pytest.fail(f"{module}: its top-level name {top!r} has no layer in tests/test_layers.py")
    return LAYERS[top]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_every_module_has_a_layer() -> None:
    for module in _graph():
        _layer(module)


def test_no_module_imports_a_higher_layer() -> None:
    graph = _graph()
    upward = sorted(
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in graph.items()
        for target in targets
        if _layer(target) > _layer(module)
    )
    assert upward == []


def test_the_import_graph_has_no_circle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_checks_catch_what_they_are_for() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert (
        _layer("dbmeta_app.api.routes_schema")
        > _layer("dbmeta_app.items.bundle")
        > _layer("dbmeta_app.cache")
    )
