"""The import rules of docs/architecture.md: the library ``dgnn`` imports neither the orchestration
stack (Prefect, MLflow, DVC, Dask) nor the project's other packages; ``adapters`` never imports
``flows`` or ``cli``; ``flows`` never imports ``cli``; no module is over 400 lines and ``flows``
stays under 800; no two modules import each other, directly or round a circle; nothing below
``cli`` writes the process environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "dgnn"
FORBIDDEN = ("prefect", "prefect_dask", "mlflow", "dvc", "dask", "distributed", "flows", "adapters", "cli")
LOWER = {"adapters": {"flows", "cli"}, "flows": {"cli"}}  # package -> the packages it must not import
PACKAGES = ("dgnn", "adapters", "flows", "cli", "benchmarks")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(LIBRARY.rglob("*.py")), ids=lambda p: str(p.relative_to(LIBRARY)))
def test_library_module_imports_no_orchestration(path):
    assert not _imports(path) & set(FORBIDDEN), f"{path} imports {sorted(_imports(path) & set(FORBIDDEN))}"


@pytest.mark.parametrize("package", sorted(LOWER))
def test_adapters_and_flows_never_import_the_layers_above(package):
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & LOWER[package])
                 for p in (ROOT / package).rglob("*.py") if _imports(p) & LOWER[package]}
    assert not offenders, offenders


def test_modules_stay_small_and_flows_thin():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    assert not {k: v for k, v in sizes.items() if v > 400}, "modules over 400 lines"
    assert sum(v for k, v in sizes.items() if k.startswith("flows/")) < 800


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports, anywhere in it (a deferred import still makes a circle:
    it only hides it). ``from package import name`` counts as importing ``package.name`` when that
    is a module, else the package."""
    own, names = _module_name(path), set()
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    found = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != own:
            found.add(name)
    return found


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, groups, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return groups


def test_no_import_circles():
    paths = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    modules = {_module_name(p) for p in paths}
    graph = {_module_name(p): _project_imports(p, modules) for p in paths}
    assert not _circles(graph), _circles(graph)


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


ENVIRON_WRITES = {"update", "setdefault", "pop", "popitem", "clear"}


def _environ_writes(source: str) -> list[int]:
    """Lines of ``source`` that change the process environment: ``os.environ[k] = v`` / ``del``, a
    mutating method of ``os.environ``, ``os.putenv`` / ``os.unsetenv``. A copy (``{**os.environ}``,
    ``dict(os.environ)``) written to is not one."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Subscript) and ast.unparse(t.value) == "os.environ" for t in targets):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                (ast.unparse(node.func.value) == "os.environ" and node.func.attr in ENVIRON_WRITES)
                or ast.unparse(node.func) in ("os.putenv", "os.unsetenv")):
            lines.append(node.lineno)
    return lines


def test_only_the_entry_points_write_the_environment():
    """Settings travel as parameters: nothing below ``cli`` (and the tests) changes ``os.environ``,
    so no behaviour depends on which module was imported or ran first."""
    offenders = {str(p.relative_to(ROOT)): _environ_writes(p.read_text())
                 for package in PACKAGES if package != "cli" for p in (ROOT / package).rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}, offenders


def test_the_environment_write_finder_finds_writes():
    found = _environ_writes("import os\nos.environ['A'] = '1'\ndel os.environ['A']\nos.environ.update(a=1)\n"
                            "os.environ.setdefault('B', '2')\nos.putenv('C', '3')\nenv = {**os.environ}\n"
                            "env['D'] = '4'\nx = os.environ.get('E')\n")
    assert found == [2, 3, 4, 5, 6]


ROOMS = {"mlflow", "dvc", "prefect", "dask", "process"}


def test_adapters_are_one_room_per_outside_tool():
    """Every adapter lives in the room of the tool it adapts (``adapters/<room>/``), none loose."""
    loose = [str(p.relative_to(ROOT)) for p in (ROOT / "adapters").rglob("*.py")
             if p.parent.name not in ROOMS and p != ROOT / "adapters" / "__init__.py"]
    assert not loose, loose


def _function_lengths(path: Path):
    """(name, lines, is a Prefect flow or task) of every function in ``path``, decorators not counted."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decorators = [ast.unparse(d).split("(")[0] for d in node.decorator_list]
            yield node.name, node.end_lineno - node.lineno + 1, bool({"flow", "task"} & set(decorators))


def test_functions_stay_short_and_prefect_tasks_thin():
    """No function over 60 lines; a flow or task body over 40 means logic that belongs in a plain
    function of the library or an adapter."""
    long = {f"{p.relative_to(ROOT)}:{name}": lines for package in PACKAGES for p in (ROOT / package).rglob("*.py")
            for name, lines, prefect in _function_lengths(p) if lines > (40 if prefect else 60)}
    assert not long, long
