"""The import rule of docs/architecture.md: the library ``dgnn`` never imports the orchestration
stack (Prefect, MLflow, DVC, Dask) nor ``flows``; only ``flows`` does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "dgnn"
FORBIDDEN = ("prefect", "prefect_dask", "mlflow", "dvc", "dask", "distributed", "flows")


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
