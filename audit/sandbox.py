"""What every audit check shares: a clean fake AWS environment, the functions as template.yaml declares
them, the emulator, and a record of the AWS calls a handler makes."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import botocore.model
from moto import mock_aws

import local_aws
from release_pipeline import clients
from tests.support.events import load_function
from tests.support.solution import solution_template

REGION = "us-east-1"
_FAKE_SETTINGS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
# Calls that change something in AWS (the job result calls are counted apart).
_WRITE_PREFIXES = (
    "Put",
    "Create",
    "Delete",
    "Update",
    "Start",
    "Stop",
    "Execute",
    "Detect",
    "Publish",
    "Continue",
    "Cancel",
    "Set",
    "Tag",
    "Untag",
    "Copy",
    "Upload",
    "Retry",
)
# The functions with a working scenario (audit.scenarios): all but the custom resource, whose AWS calls
# run in another Region's CloudFormation stack (its unit tests cover it). deploy-target's scenario is a
# sequence of the rollout state machine's steps (tests/integration/test_rollout_workflow.py runs it through
# the real definition).
SCENARIO_FUNCTIONS = (
    "prepare-stage-artifact",
    "change-detection",
    "drift-detection",
    "execution-gate",
    "record-release",
    "stage-revert",
    "check-deployment-map",
    "target-change-sets",
    "start-rollout",
    "deploy-target",
)
# The functions that exist only with a deployment map (template.yaml's condition HasDeploymentMap): their
# policies are read from the template resolved with DeploymentMapPath.
MAP_FUNCTIONS = frozenset({"check-deployment-map", "target-change-sets", "start-rollout", "deploy-target"})
RESULT_CALLS = frozenset({"PutJobSuccessResult", "PutJobFailureResult"})


def prepare_process() -> None:
    """Fake credentials and Region, no AWS settings from the machine, the emulator's operations."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(_FAKE_SETTINGS)
    empty = tempfile.mkdtemp(prefix="audit-aws-")
    os.environ["AWS_CONFIG_FILE"] = os.path.join(empty, "config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(empty, "credentials")
    # the handlers' logs would bury the table: thousands of invocations, each logging its result
    logging.disable(logging.CRITICAL)
    local_aws.install()


@contextmanager
def emulator() -> Iterator[None]:
    """A fresh emulator (every service in-process) with fresh clients."""
    clients._session.cache_clear()
    with mock_aws():
        try:
            yield
        finally:
            clients._session.cache_clear()


@contextmanager
def reused_clients() -> Iterator[None]:
    """Clients made once per service, Region and credentials while the block runs, as a warm Lambda
    sandbox could keep them: the fuzz sends thousands of events, and making a client costs more than
    the call it makes."""
    original = clients._client
    made: dict[tuple[Any, ...], Any] = {}

    def client(service: str, region: str, **kwargs: Any) -> Any:
        key = (service, region, tuple(sorted(kwargs.items())))
        if key not in made:
            made[key] = original(service, region, **kwargs)
        return made[key]

    clients._client = client
    try:
        yield
    finally:
        clients._client = original


def set_environment(variables: dict[str, str]) -> None:
    for name, value in variables.items():
        os.environ[name] = value
    os.environ["AWS_REGION"] = REGION


@dataclass(frozen=True)
class Function:
    """A function of template.yaml: its logical id, its folder under functions/, memory and timeout."""

    logical_id: str
    folder: str
    memory_mb: int
    timeout_s: int

    @property
    def handler(self) -> Callable[[Any, Any], Any]:
        module: ModuleType = _module(self.folder)
        handler: Callable[[Any, Any], Any] = module.lambda_handler
        return handler


@cache
def _module(folder: str) -> ModuleType:
    return load_function(folder)


def functions() -> dict[str, Function]:
    """Every function of template.yaml by folder name, with Globals applied."""
    template = solution_template()
    defaults = template.get("Globals", {}).get("Function", {})
    found: dict[str, Function] = {}
    for logical_id, resource in template["Resources"].items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue  # a Fn::ForEach loop (a list) makes log groups, never a function
        properties = resource["Properties"]
        folder = str(properties["CodeUri"]).strip("/").split("/")[-1]
        found[folder] = Function(
            logical_id=logical_id,
            folder=folder,
            memory_mb=int(properties.get("MemorySize", defaults.get("MemorySize", 128))),
            timeout_s=int(properties.get("Timeout", defaults.get("Timeout", 3))),
        )
    return found


def job_functions() -> dict[str, Function]:
    """The functions the pipeline invokes as Lambda actions (they report a job result)."""
    template = solution_template()
    by_logical = {f.logical_id: f for f in functions().values()}
    invoked: dict[str, Function] = {}
    for action in _lambda_actions(template["Resources"]["Pipeline"]["Properties"]):
        target = action.get("Configuration", {}).get("FunctionName")
        if isinstance(target, dict) and target.get("Ref") in by_logical:
            function = by_logical[target["Ref"]]
            invoked[function.folder] = function
    return dict(sorted(invoked.items()))


def state_machine_functions() -> dict[str, Function]:
    """The functions a state machine of the template invokes as its tasks (named in its
    DefinitionSubstitutions): invoked synchronously, their errors handled by the state machine's Retry and
    Catch."""
    template = solution_template()
    by_logical = {f.logical_id: f for f in functions().values()}
    invoked: dict[str, Function] = {}
    for resource in template["Resources"].values():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::StateMachine":
            continue
        for value in resource["Properties"].get("DefinitionSubstitutions", {}).values():
            if isinstance(value, dict) and "Fn::GetAtt" in value:
                attribute = value["Fn::GetAtt"]
                logical_id = attribute.split(".")[0] if isinstance(attribute, str) else attribute[0]
                if logical_id in by_logical:
                    invoked[by_logical[logical_id].folder] = by_logical[logical_id]
    return dict(sorted(invoked.items()))


def _lambda_actions(node: Any) -> Iterator[dict[str, Any]]:
    """Lambda invoke actions anywhere under ``node`` (conditions' branches included)."""
    if isinstance(node, dict):
        type_id = node.get("ActionTypeId")
        if isinstance(type_id, dict) and type_id.get("Provider") == "Lambda":
            yield node
        for value in node.values():
            yield from _lambda_actions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _lambda_actions(value)


class CallLog:
    """Every AWS operation a handler calls, in order, as (service, operation)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, model: botocore.model.OperationModel, **_: Any) -> None:
        self.calls.append((model.service_model.service_id.hyphenize(), model.name))

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[1] not in RESULT_CALLS and c[1].startswith(_WRITE_PREFIXES)]


@contextmanager
def recording() -> Iterator[CallLog]:
    """Record every operation called through the functions' clients while the block runs."""
    log = CallLog()
    session = clients._session()
    session.events.register("before-call", _recorder(log), unique_id="audit-call-log")
    try:
        yield log
    finally:
        session.events.unregister("before-call", unique_id="audit-call-log")


def _recorder(log: CallLog) -> Callable[..., None]:
    def record(model: botocore.model.OperationModel, **kwargs: Any) -> None:
        log(model)

    return record
