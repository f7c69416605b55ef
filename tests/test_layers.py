"""The package's floors (docs/design.md, "Layering"): every import, lazy ones included, goes to the same floor
or a lower one, and no two modules import each other, directly or round a loop."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parents[1] / "avfewshot"
DESIGN = PACKAGE.parent / "docs" / "design.md"


def floors_from_design() -> Dict[str, int]:
    """The floor table of docs/design.md: lines ``<n>. `a`, `b`, ...`` between the layering markers."""
    text = DESIGN.read_text()
    block = text.split("<!-- floors -->")[1]
    floors: Dict[str, int] = {}
    for line in block.splitlines():
        match = re.match(r"\s*(\d+)\.\s+(.*)", line)
        if match:
            for name in re.findall(r"`([\w.]+)`", match.group(2)):
                floors[name] = int(match.group(1))
    return floors


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> Dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def runtime_nodes(tree: ast.AST):
    """Every node, except the bodies of ``if TYPE_CHECKING:`` (imports for annotations only, never executed)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
                continue
            todo.append(child)


def imports_of(name: str, path: Path, known: Set[str]) -> Set[str]:
    """Every avfewshot module ``path`` imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: Set[str] = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "avfewshot")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "avfewshot":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {m for m in found if m in known and m != name}


def floor_of(module: str, floors: Dict[str, int]) -> int:
    parts = module.split(".")
    for size in range(len(parts), 1, -1):  # the most specific entry: avfewshot.engine.build, then avfewshot.engine
        key = ".".join(parts[1:size])
        if key in floors:
            return floors[key]
    raise AssertionError(f"{module} is on no floor of docs/design.md; add it to the floor table")


def graph() -> Dict[str, Set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def test_design_lists_floors():
    floors = floors_from_design()
    assert {"errors", "data", "encoders", "methods", "engine", "experiments", "api", "cli", "commands"} <= set(floors)
    assert floors["data"] < floors["methods"] < floors["engine"] < floors["experiments"] < floors["api"] < floors["cli"]


def test_no_upward_import():
    floors = floors_from_design()
    upward: List[str] = []
    for module, targets in graph().items():
        if module == "avfewshot":
            continue  # the package facade: __version__ and the lazily loaded API (PEP 562)
        for target in targets:
            if target != "avfewshot" and floor_of(target, floors) > floor_of(module, floors):
                upward.append(f"{module} (floor {floor_of(module, floors)}) imports {target} (floor {floor_of(target, floors)})")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    edges = {m: {t for t in ts if t != "avfewshot"} for m, ts in graph().items() if m != "avfewshot"}
    # a package imports its own submodules from __init__ (re-exports); a submodule naming its package means those
    # re-exports, so the edge submodule -> package is kept only when the package is not the submodule's parent
    for module, targets in edges.items():
        edges[module] = {t for t in targets if not module.startswith(t + ".")}
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    cycles: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The walker must see a function-level relative import (how most of this package imports)."""
    src = tmp_path / "avfewshot" / "engine"
    src.mkdir(parents=True)
    mod = src / "x.py"
    mod.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import trainer\n"
                   "def f():\n    from ..api import run\n    from . import build\n")
    known = {"avfewshot.api", "avfewshot.engine.build", "avfewshot.engine.x", "avfewshot.engine.trainer"}
    assert imports_of("avfewshot.engine.x", mod, known) == {"avfewshot.api", "avfewshot.engine.build"}
