"""The package's shape: subpackages in one order, imports running one way (no cycle between
modules, none between subpackages), every module and function readable in one sitting (limits
from the house style), and every module's tests in the file named after it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "melody_utils"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
MAX_LOOSE_MODULES = 8  # modules at the top of the package, beside the subpackages
MIN_SUBPACKAGES = 5
MAX_BOOL_CHECKS = 3  # hand-written isinstance(x, bool): settings check their own types in one place
TESTS = Path(__file__).resolve().parent
# Modules without a tests/test_<module>.py, and why: where their behaviour is tested instead.
TESTED_ELSEWHERE = {
    # The Limit every setting declares: tested through the settings that use it, test_args.py
    # (every field of every config section, bad values fuzzed), test_config.py and test_settings.py.
    "checks",
}
# The subpackages in the order a note travels through them: each may import only from those
# before it (and from the loose modules at the top). docs/architecture.md draws the same picture.
LAYERS = ("music", "data", "model", "train", "generate", "display", "evaluate", "notebook", "cli")


def module_name(path: Path) -> str:
    """melody_utils/generate/sample.py -> 'generate.sample'; a package's __init__ -> the package."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def _trees() -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The package modules one ``from ... import ...`` names (dotted, relative to melody_utils)."""
    if node.level:
        base = current.split(".") if is_package else current.split(".")[:-1]
        if current == "__init__":
            base = []
        base = base[: len(base) - (node.level - 1)]
    elif (node.module or "").split(".")[0] == "melody_utils":
        base = []
        node = ast.ImportFrom(module=".".join(node.module.split(".")[1:]) or None, names=node.names, level=1)
    else:
        return []
    head = base + (node.module.split(".") if node.module else [])
    return [".".join(head + [a.name]) for a in node.names] + [".".join(head)]


def import_graph(trees) -> dict[str, set[str]]:
    """module -> the package modules it imports, anywhere in its source (function bodies included)."""
    graph = {name: set() for name in trees}
    for name, (path, tree) in trees.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                targets = _resolve(name, is_package, node)
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".", 1)[1] for a in node.names if a.name.startswith("melody_utils.")]
            else:
                continue
            graph[name] |= {t for t in targets if t in trees and t != name}
    return graph


def subpackage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """subpackage (or loose module) -> the others it imports from."""
    top = lambda m: m.split(".")[0]  # noqa: E731
    out = {}
    for m, deps in graph.items():
        out.setdefault(top(m), set()).update(top(d) for d in deps if top(d) != top(m))
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
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


def test_the_import_graph_is_real():
    graph = import_graph(_trees())
    assert graph["cli.commands"] >= {"evaluate.report", "train.loop", "model.checkpoint", "cli.args"}
    assert "generate.controls" in graph["generate.sample"]  # a sibling, imported relatively
    assert "cli.commands" in graph["cli"] and "cli" in graph["__main__"]  # a package and its __init__
    sub = subpackage_graph(graph)
    assert "music" in sub["generate"] and "generate" not in sub["music"]


def test_no_import_cycle_between_modules():
    cycle = find_cycle(import_graph(_trees()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_subpackages_import_one_way():
    sub = subpackage_graph(import_graph(_trees()))
    assert set(LAYERS) <= set(sub), f"missing subpackages: {set(LAYERS) - set(sub)}"
    assert find_cycle(sub) is None, "import cycle between subpackages: " + " -> ".join(find_cycle(sub))
    upward = [f"{a} -> {b}" for a in LAYERS for b in sub[a] if b in LAYERS and LAYERS.index(b) > LAYERS.index(a)]
    assert not upward, f"a subpackage imports one that comes after it in {LAYERS}: {upward}"
    loose = [m for m in sub if m not in LAYERS and m not in ("__init__", "__main__")]
    wrong = [f"{m} -> {d}" for m in loose for d in sub[m] if d in LAYERS]
    assert not wrong, f"a loose module imports a subpackage (loose modules sit below them all): {wrong}"


def test_the_package_is_laid_out_in_subpackages():
    subpackages = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()]
    loose = [p.name for p in PACKAGE.glob("*.py")]
    assert len(subpackages) >= MIN_SUBPACKAGES, subpackages
    assert len(loose) <= MAX_LOOSE_MODULES, f"{len(loose)} loose modules at the top: {sorted(loose)}"


def sizes() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(lines, module) and (lines, module.function) for the package, largest first."""
    modules, functions = [], []
    for name, (path, tree) in _trees().items():
        modules.append((len(path.read_text().splitlines()), name))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
    return sorted(modules, reverse=True), sorted(functions, reverse=True)


def test_modules_and_functions_stay_small():
    modules, functions = sizes()
    print(f"largest module: {modules[0][1]}, {modules[0][0]} lines; "
          f"largest function: {functions[0][1]}, {functions[0][0]} lines")
    too_long = [f"{m} ({n} lines)" for n, m in modules if n > MAX_MODULE_LINES]
    too_long += [f"{f} ({n} lines)" for n, f in functions if n > MAX_FUNCTION_LINES]
    assert not too_long, f"over {MAX_MODULE_LINES} lines per module / {MAX_FUNCTION_LINES} per function: {too_long}"


def bool_checks() -> list[str]:
    """Where the package writes ``isinstance(x, bool)`` by hand."""
    found = []
    for name, (_, tree) in _trees().items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2
                    and "bool" in ast.unparse(node.args[1])):
                found.append(f"{name}:{node.lineno}")
    return found


def test_type_checks_live_in_one_place():
    found = bool_checks()
    assert len(found) <= MAX_BOOL_CHECKS, f"{len(found)} hand-written isinstance(x, bool) checks: {found}"


def test_every_module_has_its_test_file():
    """The tests of melody_utils/<subpackage>/<module>.py are in tests/test_<module>.py (a flat folder,
    so module names are unique), unless TESTED_ELSEWHERE names the module."""
    names = [p.stem for p in PACKAGE.rglob("*.py") if p.stem not in ("__init__", "__main__")]
    twins = sorted({n for n in names if names.count(n) > 1})
    assert not twins, f"modules sharing a name would share tests/test_<name>.py: {twins}"
    missing = [n for n in sorted(names) if n not in TESTED_ELSEWHERE and not (TESTS / f"test_{n}.py").is_file()]
    assert not missing, f"modules without tests/test_<module>.py: {missing} (or say in TESTED_ELSEWHERE why not)"
    stale = sorted(n for n in TESTED_ELSEWHERE if n not in names or (TESTS / f"test_{n}.py").is_file())
    assert not stale, f"TESTED_ELSEWHERE names modules that are gone or have their own test file now: {stale}"
