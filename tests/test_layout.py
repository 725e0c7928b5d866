"""The source tree's shape: no import cycles, no oversized modules, one `gradscope` namespace."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"engine": "gradscope.engine", "server": "gradscope.server"}
MAX_LINES = 420  # "no module over ~400 lines"


def _modules() -> dict[str, Path]:
    """Every Python module of the installed packages, by its dotted gradscope name."""
    found: dict[str, Path] = {}
    for folder, dotted in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([dotted, *parts])] = path
    return found


def _runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Module-level imports, leaving out `if TYPE_CHECKING:` blocks (annotations only)."""
    out: list[ast.Import | ast.ImportFrom] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        elif isinstance(node, ast.Try) or (
            isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test)
        ):
            out.extend(n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom))
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports when it is loaded."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                # `from pkg import sub` depends on the submodule, not on the whole package
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None (iterative DFS)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    return None


def test_the_graph_sees_imports() -> None:
    graph = import_graph()
    assert "gradscope.engine.shape_ops" in graph["gradscope.engine.tensor"]
    assert "gradscope.server.store.db" in graph["gradscope.server.store"]


def test_cycle_finder_finds_a_cycle() -> None:
    cycle = find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_module_over_400_lines(name: str) -> None:
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by job"


def test_tests_stay_small_too() -> None:
    big = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "tests").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"test modules over {MAX_LINES} lines: {big}"


ARCHITECTURE = ROOT / "docs" / "architecture.md"


def test_the_map_names_every_folder() -> None:
    text = ARCHITECTURE.read_text()
    folders = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "server").iterdir()
        if p.is_dir() and (p / "__init__.py").is_file()
    )
    assert folders, "server/ has packages"
    missing = [f for f in folders if f"`{f}/`" not in text]
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_every_path_the_map_names_exists() -> None:

    text = ARCHITECTURE.read_text()
    named = set(re.findall(r"`((?:engine|server|static|templates)/[\w/.]*)`", text))
    assert len(named) > 10
    gone = sorted(p for p in named if not (ROOT / p.rstrip("/")).exists())
    assert not gone, f"docs/architecture.md names paths that do not exist: {gone}"
