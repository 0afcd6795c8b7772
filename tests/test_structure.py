"""The package's shape: imports run one way (no cycle inside melody_utils) and every module and
function stays readable in one sitting (limits from the house style)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "melody_utils"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _trees() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.glob("*.py"))}


def import_graph(trees: dict[str, ast.Module]) -> dict[str, set[str]]:
    """module -> the package modules it imports, anywhere in its source (function bodies included)."""
    graph = {name: set() for name in trees}
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:  # from . import x / from .x import y
                targets = [node.module] if node.module else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("melody_utils"):
                rest = node.module.split(".")[1:]
                targets = rest[:1] if rest else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1] for a in node.names if a.name.startswith("melody_utils.")]
            else:
                continue
            graph[name] |= {t.split(".")[0] for t in targets if t and t.split(".")[0] in trees and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_inside_the_package():
    graph = import_graph(_trees())
    assert graph["cli"] >= {"metrics", "train", "checkpoint"} and "cli" not in graph["metrics"]  # the graph is real
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def sizes() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(lines, module) and (lines, module.function) for the package, largest first."""
    modules, functions = [], []
    for name, tree in _trees().items():
        modules.append((len((PACKAGE / f"{name}.py").read_text().splitlines()), name))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
    return sorted(modules, reverse=True), sorted(functions, reverse=True)


def test_modules_and_functions_stay_small():
    modules, functions = sizes()
    print(f"largest module: {modules[0][1]}.py, {modules[0][0]} lines; "
          f"largest function: {functions[0][1]}, {functions[0][0]} lines")
    too_long = [f"{m}.py ({n} lines)" for n, m in modules if n > MAX_MODULE_LINES]
    too_long += [f"{f} ({n} lines)" for n, f in functions if n > MAX_FUNCTION_LINES]
    assert not too_long, f"over {MAX_MODULE_LINES} lines per module / {MAX_FUNCTION_LINES} per function: {too_long}"
