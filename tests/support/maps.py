"""The example application's repository (examples/hello-app) as a source artifact holds it, with its
deployment map, and maps changed from it."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from tests.support.events import REPO_ROOT

__all__ = ["EXAMPLE", "MAP_PATH", "example_map", "example_repository", "with_map"]

EXAMPLE = REPO_ROOT / "examples" / "hello-app"
# The map's path in the application repository (the solution's DeploymentMapPath parameter).
MAP_PATH = "deployment-map.json"


def example_repository() -> dict[str, str]:
    """Every file of the example application by its path in the repository (the folder is the root)."""
    return {
        path.relative_to(EXAMPLE).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(EXAMPLE.rglob("*"))
        if path.is_file()
    }


def example_map() -> dict[str, Any]:
    """The example deployment map as a fresh JSON value (a test may change it freely)."""
    value: dict[str, Any] = json.loads((EXAMPLE / MAP_PATH).read_text(encoding="utf-8"))
    return copy.deepcopy(value)


def with_map(document: dict[str, Any] | str, files: Mapping[str, str] | None = None) -> dict[str, str]:
    """The example repository with ``document`` as its map (a JSON value, or text as written) and
    ``files`` (path to text) added or replaced."""
    repository = example_repository()
    repository[MAP_PATH] = document if isinstance(document, str) else json.dumps(document, indent=2)
    repository.update(files or {})
    return repository
