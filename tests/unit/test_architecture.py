"""The package structure holds: no import cycles, no import from a lower layer to a higher one.

Layers, bottom to top (docs/architecture.md): the shared modules; ``sandbox``;
``links``; ``build`` and ``hub``; ``launch`` and ``scheduler``; ``web``;
``services``; ``cli``. Imports are read from the source with ``ast``, so this
needs nothing installed and runs in milliseconds.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "binderlite"
LAYERS = {
    "errors": 0,
    "settings": 0,
    "events": 0,
    "dockerutil": 0,
    "observe": 0,
    "credentials": 1,
    "sandbox": 1,
    "links": 2,
    "builds": 3,
    "hub": 3,
    "workshop": 3,
    "launch": 4,
    "access": 4,
    "scheduler": 4,
    "web": 5,
    "services": 6,
    "cli": 7,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The binderlite modules a file imports at module level (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("binderlite"):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("binderlite"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_top_level_module_has_a_layer():
    tops = {module_name(p).split(".")[1] for p in PACKAGE.rglob("*.py") if module_name(p) != "binderlite"}
    assert tops <= set(LAYERS), f"place these in LAYERS and docs/architecture.md: {tops - set(LAYERS)}"


def test_no_import_goes_up_a_layer():
    upward = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        if layer(module) is not None and layer(target) is not None and layer(target) > layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_packages_do_not_import_each_other_both_ways():
    edges = {(m.split(".")[1], t.split(".")[1]) for m, ts in graph().items() for t in ts if "." in m and "." in t}
    both = sorted({tuple(sorted(e)) for e in edges if e[0] != e[1] and (e[1], e[0]) in edges})
    assert not both, both


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in edges.get(node, ()):  # a module that is a package's face counts as the package
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif not state.get(nxt):
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if not state.get(node):
            visit(node, [node])
    assert not cycles, cycles
