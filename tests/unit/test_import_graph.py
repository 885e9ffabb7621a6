"""The application's import graph: no circle anywhere, and the layers point one way.

Read from the source with ``ast`` (nothing is imported), so a circle that Python happens to
tolerate at run time (a name looked up late) still fails here. An edge is an explicit import of
one of our modules; ``from package import name`` counts as an import of ``package.name`` when that
is a module, else of ``package``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from config.settings import PROJECT_ROOT

PACKAGES = ("api", "config", "models", "services", "tasks", "workers")
# Which top-level packages each may import (ARCHITECTURE.md's table; models for the handles).
ALLOWED = {
    "config": {"config"},
    "models": {"models", "config"},
    "services": {"services", "models", "config"},
    "workers": {"workers", "config"},
    "tasks": {"tasks", "services", "workers", "models", "config"},
    "api": {"api", "services", "tasks", "models", "config"},
}
# Libraries that belong to the doors, not to the use cases.
DOOR_LIBRARIES = {"falcon", "celery", "kombu", "gunicorn", "spectree"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """Every module of ours that ``path`` imports, and every third-party top-level name."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield candidate if candidate in modules else node.module


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {target for target in _imports(path, modules) if target in modules and target != name}
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle_anywhere() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_layers_point_one_way() -> None:
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        top = name.split(".")[0]
        for target in _imports(path, modules):
            target_top = target.split(".")[0]
            if target_top in PACKAGES and target_top not in ALLOWED[top]:
                wrong.append(f"{name} imports {target}")
            if top == "services" and target_top in DOOR_LIBRARIES:
                wrong.append(f"{name} imports {target} (services know nothing of HTTP or Celery)")
    assert wrong == []


def test_domain_packages_do_not_import_in_a_circle() -> None:
    """Between the packages of ``services`` too, dependencies point one way."""
    graph: dict[str, set[str]] = {}
    for name, targets in _graph().items():
        if name.startswith("services."):
            package = name.split(".")[1]
            graph.setdefault(package, set()).update(
                t.split(".")[1] for t in targets if t.startswith("services.") and t.split(".")[1] != package
            )
    for targets in list(graph.values()):
        for target in targets:
            graph.setdefault(target, set())
    assert _cycles(graph) == []
