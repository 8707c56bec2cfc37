"""The layer's dependencies point one way: each module imports only modules listed before it (type-only
imports included), so value types never pull in a job, and nothing but job code imports ``jobs``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.events import REPO_ROOT

PACKAGE = REPO_ROOT / "layers" / "common" / "release_pipeline"
# Lowest first: a module may import only modules before it in this list.
ORDER = [
    "values",
    "errors",
    "parameter_sets",
    "deployment_map",
    "config",
    "clients",
    "notifications",
    "artifacts",
    "stacks",
    "releases",
    "rollout",
    # an execution's review across a map's targets: used by the gate (a job module) and by stage-revert
    "review",
    "jobs",
    "gate",
    "changes",
    "target_changes",
    "stage_artifact",
    "drift",
    "map_check",
    "record_release",
    "revert",
    "regional_store",
    "start_rollout",
]
JOB_MODULES = {
    "gate",
    "changes",
    "target_changes",
    "stage_artifact",
    "drift",
    "map_check",
    "record_release",
    "start_rollout",
}


def package_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "release_pipeline":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("release_pipeline."):
            found.add(str(node.module).split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("release_pipeline."))
    return found


def test_every_module_of_the_package_has_its_place() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}

    assert modules == set(ORDER)


@pytest.mark.parametrize("module", ORDER)
def test_a_module_imports_only_modules_below_it(module: str) -> None:
    allowed = set(ORDER[: ORDER.index(module)])

    assert package_imports(PACKAGE / f"{module}.py") <= allowed


def test_only_job_code_imports_the_job_module() -> None:
    importers = {module for module in ORDER if "jobs" in package_imports(PACKAGE / f"{module}.py")}

    assert importers == JOB_MODULES
