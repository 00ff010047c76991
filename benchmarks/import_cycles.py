"""Import cycles in ``src/synthmed``: ``python benchmarks/import_cycles.py [--lazy] [--packages]``.

Prints each cycle (a strongly connected component of the import graph) and their count; exits 1
when there is one. Without ``--lazy`` only module-level imports count (imports inside functions
and ``if TYPE_CHECKING:`` blocks are left out); ``--lazy`` counts every import statement.
``--packages`` collapses modules to their room (``synthmed.evaluate``) before looking.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def modules() -> dict[str, Path]:
    out = {}
    for f in (SRC / "synthmed").rglob("*.py"):
        parts = f.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imports(tree: ast.Module, lazy: bool, known: dict[str, Path]) -> set[str]:
    nodes = ast.walk(tree) if lazy else (n for n in tree.body if not isinstance(n, ast.If))
    deps: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synthmed"):
            deps.add(node.module)
            deps.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
        elif isinstance(node, ast.Import):
            deps.update(a.name for a in node.names if a.name.startswith("synthmed"))
    return {d for d in deps if d in known}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def main() -> int:
    lazy, packages = "--lazy" in sys.argv, "--packages" in sys.argv
    known = modules()
    graph = {name: imports(ast.parse(path.read_text()), lazy, known) - {name} for name, path in known.items()}
    if packages:
        room = {m: ".".join(m.split(".")[:2]) for m in known}
        rooms: dict[str, set[str]] = {}
        for name, deps in graph.items():
            rooms.setdefault(room[name], set()).update(room[d] for d in deps if room[d] != room[name])
        graph = rooms
    found = cycles(graph)
    for comp in found:
        print("cycle:", " <-> ".join(comp))
    print(f"{len(found)} import cycles ({'every import' if lazy else 'module-level imports'}, "
          f"{'rooms' if packages else 'modules'})")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
