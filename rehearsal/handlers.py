"""Function handlers as the Lambda runtime loads them: functions/<folder>/app.py, imported afresh."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = REPO_ROOT / "functions"


def load_function(folder: str) -> ModuleType:
    """Import functions/<folder>/app.py afresh (see load_handler)."""
    return load_handler(FUNCTIONS_DIR / folder)


def load_handler(code_dir: Path, module_file: str = "app") -> ModuleType:
    """Import <code_dir>/<module_file>.py afresh, under a module name of its own.

    Every handler file is called app.py, so each gets the name ``functions_<folder>_app``; a new
    module object is made on every call, so module-level state never leaks between invocations.
    """
    path = code_dir / f"{module_file}.py"
    if not path.is_file():
        shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        raise FileNotFoundError(f"no handler {shown}")
    name = "functions_" + code_dir.name.replace("-", "_") + "_" + module_file
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
