"""The shape of the code: no import cycle, small files, one module name per idea.

The import graph of server/, sync/ and village_kits/ is read from the source with `ast`,
imports inside functions included, so a cycle hidden behind a function-local import fails
here as a module-level one would.
"""

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "sync", "village_kits")
MAX_LINES = 400
# names every package may use: its JSON and HTML route files, the list of its blueprints,
# its demo data, its marker
CONVENTIONAL_NAMES = {"__init__", "api", "pages", "demo", "blueprints"}
# where importing the app's own modules inside a function is the rule: the command line
# (each command loads only what it needs) and the app factory (blueprints after settings)
LOCAL_IMPORTS_ALLOWED = ("server.cli", "server:create_app")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours that `name` (a module or a name inside one) refers to, if any."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(
    module: str, path: Path, known: dict[str, Path] = MODULES
) -> list[tuple[str, int, str | None]]:
    """Each import of one of `known`: (the module imported, its line, the function it sits
    in or None at module level)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inside = function
            if function is None and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inside = child.name
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - child.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                names = [f"{base}.{alias.name}" for alias in child.names]
            for target in {_resolve(name, known) for name in names} - {None}:
                found.append((target, child.lineno, inside))
            visit(child, inside)

    visit(ast.parse(path.read_text(encoding="utf-8")), None)
    return found


def _graph(known: dict[str, Path] = MODULES) -> dict[str, set[str]]:
    """Who imports whom. Importing `server.x.y` also runs `server/x/__init__.py`; those
    implicit edges are left out (a package's __init__ names its parts and blueprints, so
    counting them would make every package a cycle with its own modules)."""
    graph: dict[str, set[str]] = {name: set() for name in known}
    for module, path in known.items():
        graph[module] |= {target for target, _, _ in _imports(module, path, known)} - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    described = []
    for cycle in _cycles(graph):
        ties = [f"{name} imports {', '.join(sorted(graph[name] & set(cycle)))}" for name in cycle]
        described.append(" ↔ ".join(cycle) + "".join(f"\n    {tie}" for tie in ties))
    assert described == [], "import cycles:\n" + "\n".join(described)


def test_the_app_imports_its_own_modules_at_the_top_outside_the_cli_and_the_factory():
    local = [
        f"{path.relative_to(ROOT)}:{line} {function}() imports {target}"
        for module, path in MODULES.items()
        for target, line, function in _imports(module, path)
        if function is not None
        and not module.startswith(LOCAL_IMPORTS_ALLOWED[0])
        and f"{module}:{function}" != LOCAL_IMPORTS_ALLOWED[1]
    ]
    assert local == []


def test_no_file_is_over_400_lines():
    long = {
        str(path.relative_to(ROOT)): lines
        for path in MODULES.values()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_each_module_name_says_one_idea():
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in MODULES.values():
        if path.stem not in CONVENTIONAL_NAMES:
            by_name[path.stem].append(str(path.relative_to(ROOT)))
    twice = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert twice == {}


def test_the_graph_reader_sees_a_cycle_hidden_in_a_function(tmp_path):
    """The reader itself: an import inside a function is an edge, and closes a cycle."""
    package = tmp_path / "probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from probe import b\n")
    (package / "b.py").write_text("def late():\n    from probe.a import thing\n    return thing\n")
    (package / "c.py").write_text("from . import a\n")
    known = {"probe": package / "__init__.py"} | {
        f"probe.{name}": package / f"{name}.py" for name in ("a", "b", "c")
    }

    found = {name: _imports(name, path, known) for name, path in known.items()}

    assert found == {
        "probe": [],
        "probe.a": [("probe.b", 1, None)],
        "probe.b": [("probe.a", 2, "late")],
        "probe.c": [("probe.a", 1, None)],
    }
    assert _cycles(_graph(known)) == [["probe.a", "probe.b"]]
