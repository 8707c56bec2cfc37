"""Sample events (the files under events/, shared with `sam local invoke`) and handler modules."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from local_aws.awslambda import load_handler

__all__ = ["continuation_of", "job_id_of", "load_event", "load_function"]

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "events"
FUNCTIONS_DIR = REPO_ROOT / "functions"


def load_function(folder: str) -> ModuleType:
    """Import functions/<folder>/app.py afresh, as a new Lambda sandbox would (see load_handler)."""
    return load_handler(FUNCTIONS_DIR / folder)


def load_event(function: str, case: str) -> dict[str, Any]:
    """events/<function>/<case>.json as a fresh dict (a test may change it freely)."""
    path = EVENTS_DIR / function / f"{case}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no sample event {path.relative_to(REPO_ROOT)}")
    event = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(event, dict):
        raise TypeError(f"{path.relative_to(REPO_ROOT)} does not hold a JSON object")
    return event


def job_id_of(event: dict[str, Any]) -> str:
    """The CodePipeline job id of a Lambda invoke event."""
    return str(event["CodePipeline.job"]["id"])


def continuation_of(event: dict[str, Any], token: str) -> dict[str, Any]:
    """The event CodePipeline sends when it re-invokes an action that returned ``token``: a new job
    (new id) carrying ``data.continuationToken``."""
    again = copy.deepcopy(event)
    job = again["CodePipeline.job"]
    job["id"] = str(uuid.uuid4())
    job.setdefault("data", {})["continuationToken"] = token
    return again
