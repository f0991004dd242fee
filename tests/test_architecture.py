"""The import rules of docs/architecture.md: the library ``dgnn`` imports neither the orchestration
stack (Prefect, MLflow, DVC, Dask) nor the project's other packages; ``adapters`` never imports
``flows`` or ``cli``; ``flows`` never imports ``cli``; no module is over 400 lines and ``flows``
stays under 1,000."""

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
    assert sum(v for k, v in sizes.items() if k.startswith("flows/")) < 1000
