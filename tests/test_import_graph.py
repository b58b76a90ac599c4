"""The koqa package imports only downward: its internal module graph has no cycles.

Every ``import``/``from ... import`` in a module counts, at module level or inside a
function (a lazy import is still a dependency: it only hides the cycle until run time),
and under ``if TYPE_CHECKING:`` too.  ``from koqa.x import y`` is an edge to ``koqa.x.y``
when that is a module, else to ``koqa.x``.  A package's ``__init__`` is not implied by
importing one of its submodules (Python runs it first, but the usual package facade that
re-exports its submodules is not a layering cycle).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import koqa

ROOT = Path(koqa.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("koqa", *path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The koqa module that ``name`` (a module or an attribute path) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(_owner(a.name) for a in node.names if a.name.split(".")[0] == "koqa")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            if base.split(".")[0] == "koqa":
                found.update(_owner(f"{base}.{a.name}") for a in node.names)
    return {m for m in found if m and m != module}


def import_graph() -> dict[str, set[str]]:
    return {m: _imported(m, p) for m, p in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None (depth-first, iterative)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}) == ["b", "b2", "b"]


def test_the_walk_sees_function_level_and_from_imports():
    graph = import_graph()
    assert "koqa.reader.onnx_backend" in graph["koqa.reader.loading"]  # imported inside load_reader_parts
    assert {"koqa.api.routes_qa", "koqa.api.routes_docs", "koqa.api.state"} <= graph["koqa.api.app"]


def test_koqa_has_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "koqa.__main__"))
def test_every_module_imports(module):
    importlib.import_module(module)
