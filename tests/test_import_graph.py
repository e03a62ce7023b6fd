"""The project's modules import each other without a cycle, even counting imports made inside functions.

An import placed inside a function only to dodge a cycle would show here: every import of a
project module (at module level or in a function body; ``if TYPE_CHECKING:`` blocks aside) is an
edge, and the graph must have no cycle. Imports inside functions stay allowed for what they are
good for (keeping Celery or the URL conf out of processes that never use them).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("loop", "myproject")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(path: Path, name: str, is_package: bool) -> set[str]:
    """Every module name an import statement in ``path`` names, resolved to absolute names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = {
        id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node) for n in ast.walk(node)
    }
    package = name if is_package else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            # ``from loop import storage`` imports the module loop.storage.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(path, name, path.name == "__init__.py"):
            # A module's import also runs its packages' __init__ modules.
            parts = imported.split(".")
            for end in range(1, len(parts) + 1):
                candidate = ".".join(parts[:end])
                if candidate in modules and candidate != name and not name.startswith(candidate + "."):
                    targets.add(candidate)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_project_has_no_import_cycle() -> None:
    graph = import_graph()
    assert {"loop.services.reports", "loop.queue", "loop.tasks", "loop.retry"} <= graph.keys()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_services_enqueue_through_the_queue_and_it_imports_no_service() -> None:
    graph = import_graph()
    assert "loop.queue" in graph["loop.services.reports"] and "loop.queue" in graph["loop.services.imports"]
    assert not {m for m in graph["loop.queue"] if m.startswith(("loop.services", "loop.tasks", "loop.retry"))}


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        # a module-level cycle
        ({"a.py": "import pkg.b\n", "b.py": "from pkg import a\n"}, True),
        # the same cycle, dodged by an import inside a function: still a cycle here
        ({"a.py": "import pkg.b\n", "b.py": "def f():\n    from pkg import a\n"}, True),
        # a relative import closing the loop
        ({"a.py": "from . import b\n", "b.py": "from .a import x\n"}, True),
        # TYPE_CHECKING imports are for the type checker only
        (
            {
                "a.py": "import pkg.b\n",
                "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
            },
            False,
        ),
        ({"a.py": "import pkg.b\n", "b.py": "import json\n"}, False),
    ],
)
def test_the_walk_finds_cycles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], cycle: bool
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in files.items():
        (package / name).write_text(text)
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "ROOT", tmp_path)
    monkeypatch.setattr(this, "PACKAGES", ("pkg",))
    assert (find_cycle(import_graph()) is not None) is cycle
