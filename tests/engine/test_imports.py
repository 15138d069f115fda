"""The engine's import graph: it never imports the orchestration layers (prefect, blocks,
tasks, flows, deployments) at module level, nor prefect at all; no engine module imports,
directly or through others at module level, a module that imports it back; and the source
registry finds every built-in source kind."""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import strongroom

ROOT = Path(strongroom.__file__).parent
UPPER_LAYERS = {"blocks", "tasks", "flows", "deployments"}
BUILTIN_KINDS = {"files", "neo4j", "postgres", "redis", "s3"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(node: ast.AST, module_level: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements under ``node`` that run (never those under ``if TYPE_CHECKING:``);
    with ``module_level`` only those that run when the module is imported, not in functions."""
    for child in ast.iter_child_nodes(node):
        if module_level and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef |
                                       ast.Lambda):
            continue
        if isinstance(child, ast.If) and _is_type_checking(child):
            for stmt in child.orelse:
                if isinstance(stmt, ast.Import | ast.ImportFrom):
                    yield stmt
                yield from _imports(stmt, module_level)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _imports(child, module_level)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """Absolute names a statement imports; ``from pkg import name`` is pkg.name when that is a
    module, else pkg."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}".rstrip(".")
    for alias in node.names:
        yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def _parse(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(), str(MODULES[module]))


def _graph(module_level: bool) -> dict[str, set[str]]:
    """Module -> engine modules it imports (with ``module_level``: when it is imported)."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        targets = {t for node in _imports(_parse(module), module_level)
                   for t in _targets(module, node)}
        graph[module] = {t for t in targets if t in MODULES and t != module}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str]:
    """The shortest import path from ``start`` back to itself."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node]):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return []


def import_cycles(module_level: bool = True) -> list[list[str]]:
    """One cycle per strongly connected group of engine modules."""
    graph = _graph(module_level)
    reach = {m: _reachable(graph, m) for m in graph}
    cycles, done = [], set()
    for module in sorted(graph):
        if module in done or module not in reach[module]:
            continue
        group = {m for m in reach[module] if module in reach[m]}
        done |= group
        cycles.append(_cycle_through(graph, module))
    return cycles


def test_engine_never_imports_the_orchestration_layers() -> None:
    found = []
    for module in MODULES:
        tree = _parse(module)
        for level, nodes in (("module level", _imports(tree, module_level=True)),
                             ("in a function", _imports(tree, module_level=False))):
            for node in nodes:
                for target in _targets(module, node):
                    top = target.split(".")[0]
                    if top == "prefect" or top.startswith("prefect_") or (
                            level == "module level" and top in UPPER_LAYERS):
                        found.append(f"{module} imports {target} ({level}, line {node.lineno})")
    assert not found, "\n".join(sorted(set(found)))


def test_no_import_cycles_in_the_engine() -> None:
    cycles = import_cycles(module_level=True)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_import_cycle_is_hidden_by_an_import_inside_a_function() -> None:
    """Moving one import of a cycle into a function only defers the circle; lazy imports are
    for third-party drivers, never for engine modules that import each other."""
    cycles = import_cycles(module_level=False)
    assert not cycles, "import cycles (through imports inside functions):\n" + "\n".join(
        " -> ".join(c) for c in cycles)


def test_the_registry_finds_every_builtin_source_kind() -> None:
    from strongroom.sources.registry import kinds

    assert BUILTIN_KINDS <= set(kinds())
