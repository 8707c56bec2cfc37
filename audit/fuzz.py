"""Fuzz: mutated job events for every function the pipeline invokes, generated EventBridge events for
stage-revert (hypothesis, fixed seed, derandomized).

A job event whose id is a job id gets exactly one job result and never an exception out of the handler;
an event whose id is not one is refused (BadInputError) before any AWS call. A field the function reads,
dropped or given the wrong type, is a failure, never a success, with a message that is not a Python error
name, and nothing is changed in AWS first.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

import local_aws
from audit import sandbox
from audit.scenarios import SCENARIOS
from audit.table import Row
from local_aws import FakeLambdaContext
from release_pipeline.errors import BadInputError
from tests.integration import test_least_privilege as lp
from tests.support.events import load_event

JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EXAMPLES = 1000
SEED = 20261201
# The same events on every run (CI): generation only, derandomized, no example database, no deadline.
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=(Phase.generate,),
)
# A failure message that only names a Python exception says nothing about the input.
PYTHON_ERROR = re.compile(r"^Unexpected (KeyError|TypeError|AttributeError|ValueError|IndexError|JSONDecodeError)")

_ARTIFACT = r"(\.\d+(\.(name|location(\.s3Location(\.(bucketName|objectKey))?)?))?)?"
_COMMON = (r"", r"CodePipeline\.job", r"CodePipeline\.job\.id", r"CodePipeline\.job\.data")
_USER_PARAMETERS = (r"CodePipeline\.job\.data\.actionConfiguration(\.configuration(\.UserParameters)?)?",)
_CREDENTIALS = (r"CodePipeline\.job\.data\.artifactCredentials(\.(accessKeyId|secretAccessKey|sessionToken))?",)
# The fields each function reads and cannot do without: dropping one, or giving it another type, must
# fail the job. (A continuation token may be dropped, but not retyped.)
REQUIRED: dict[str, tuple[str, ...]] = {
    "prepare-stage-artifact": (
        *_COMMON,
        *_CREDENTIALS,
        r"CodePipeline\.job\.data\.inputArtifacts" + _ARTIFACT,
        r"CodePipeline\.job\.data\.outputArtifacts" + _ARTIFACT,
    ),
    "change-detection": (*_COMMON, *_USER_PARAMETERS),
    "drift-detection": _COMMON,
    "execution-gate": (*_COMMON, *_USER_PARAMETERS),
    "record-release": (
        *_COMMON,
        *_USER_PARAMETERS,
        *_CREDENTIALS,
        r"CodePipeline\.job\.data\.inputArtifacts" + _ARTIFACT,
    ),
    "check-deployment-map": (*_COMMON, *_CREDENTIALS, r"CodePipeline\.job\.data\.inputArtifacts" + _ARTIFACT),
    "target-change-sets": (
        *_COMMON,
        *_USER_PARAMETERS,
        *_CREDENTIALS,
        r"CodePipeline\.job\.data\.inputArtifacts" + _ARTIFACT,
    ),
    # a later invocation follows the execution its token names, and reads nothing else of the job
    "start-rollout": _COMMON,
}
# Fields a function reads on its first invocation only (an event without a continuation token).
FIRST_ONLY: dict[str, tuple[str, ...]] = {
    "start-rollout": (
        *_USER_PARAMETERS,
        *_CREDENTIALS,
        r"CodePipeline\.job\.data\.inputArtifacts" + _ARTIFACT,
    ),
}
# Fields that may be absent but not of another type, for the functions that read them.
NOT_RETYPED: dict[str, tuple[str, ...]] = {
    "prepare-stage-artifact": (r"CodePipeline\.job\.data\.encryptionKey",),
    "change-detection": (r"CodePipeline\.job\.data\.continuationToken",),
    "drift-detection": (r"CodePipeline\.job\.data\.continuationToken",),
    "execution-gate": (r"CodePipeline\.job\.data\.continuationToken",),
    "record-release": (),
    "check-deployment-map": (),
    "target-change-sets": (r"CodePipeline\.job\.data\.continuationToken",),
    "start-rollout": (r"CodePipeline\.job\.data\.continuationToken",),
}
# Continuation tokens each function must refuse (the others never return a token, so never get one).
_NOT_JSON_OBJECTS = ["{", "[1]", '"x"', "1"]
BAD_TOKENS: dict[str, list[str]] = {
    "change-detection": [*_NOT_JSON_OBJECTS, '{"attempt": "many"}', '{"attempt": -1}'],
    "drift-detection": [
        *_NOT_JSON_OBJECTS,
        '{"detections": 1}',
        '{"detections": {"primary": 5}}',
        '{"detections": {}, "settled": {"primary": {"status": "IN_SYNC"}, "secondary": {"status": "IN_SYNC"}}}',
    ],
    "execution-gate": [*_NOT_JSON_OBJECTS, '{"polls": "many"}', '{"polls": -1}', '{"polls": 1e9}'],
    "target-change-sets": [*_NOT_JSON_OBJECTS, '{"polls": "many"}', '{"polls": -1}', '{"polls": 1e9}'],
    "start-rollout": [
        *_NOT_JSON_OBJECTS,
        '{"polls": 1}',
        '{"execution": 5, "polls": 1}',
        '{"execution": "arn:aws:states:us-east-1:123456789012:execution:other-machine:x", "polls": 1}',
        '{"execution": "arn:aws:states:us-east-1:123456789012:execution:release-pipeline-rollout:", "polls": 1}',
        '{"execution": "arn:aws:states:us-east-1:123456789012:execution:release-pipeline-rollout:x", "polls": -1}',
    ],
}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in path)


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def _set(event: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(event, path[:-1])[path[-1]] = value
    return event


def _drop(event: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return {}
    parent = _get(event, path[:-1])
    del parent[path[-1]]
    return event


_VALUES: list[Any] = [None, 0, -1, 1.5, True, "", "x", [], {}, ["x"], {"x": 1}]


def _other_type(value: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([new for new in _VALUES if type(new) is not type(value)])


@dataclass
class Mutation:
    kind: str
    path: str
    required: bool  # a field the function cannot do without was dropped or retyped, or is broken


@st.composite
def mutated(draw: st.DrawFn, function: str, bases: list[dict[str, Any]]) -> tuple[Any, list[Mutation]]:
    event: Any = copy.deepcopy(draw(st.sampled_from(bases)))
    event["CodePipeline.job"]["id"] = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4))
    first = "continuationToken" not in event["CodePipeline.job"]["data"]
    fields = REQUIRED[function] + (FIRST_ONLY.get(function, ()) if first else ())
    required_patterns = [re.compile(p) for p in fields]
    mutations: list[Mutation] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["drop", "retype", "truncate", "oversize", "special"]))
        if kind == "special":
            event, mutation = _special(draw, function, event)
            mutations.append(mutation)
            continue
        if not isinstance(event, dict):
            break
        path = draw(st.sampled_from(list(_paths(event))))
        dotted = _dotted(path)
        value = _get(event, path)
        required = any(p.fullmatch(dotted) for p in required_patterns)
        if kind == "drop":
            # one of several equal entries (a list made longer by an earlier mutation) is not missed
            parent = _get(event, path[:-1]) if path else None
            required = required and not (isinstance(parent, list) and parent.count(value) > 1)
            event = _drop(event, path)
        elif kind == "retype":
            new = draw(_other_type(value))
            event = _set(event, path, new)
            # null stands for an absent field: a field that may be absent may be null
            required = required or (new is not None and any(re.fullmatch(p, dotted) for p in NOT_RETYPED[function]))
        elif kind == "truncate":
            required = False
            if isinstance(value, str | list):
                event = _set(event, path, value[: draw(st.integers(0, max(len(value) - 1, 0)))])
            elif isinstance(value, dict) and value:
                keep = draw(st.sets(st.sampled_from(sorted(value)), max_size=len(value) - 1))
                event = _set(event, path, {k: v for k, v in value.items() if k in keep})
        else:
            required = False
            if isinstance(value, str):
                event = _set(event, path, value * draw(st.integers(2, 4)) + "x" * draw(st.integers(1000, 300_000)))
            elif isinstance(value, list) and value:
                event = _set(event, path, value * draw(st.integers(2, 200)))
        # a change to a field or one of its parents replaces what earlier mutations did there
        mutations = [m for m in mutations if not _replaced(m.path, dotted)]
        mutations.append(Mutation(kind, dotted, required))
    return event, mutations


def _replaced(earlier: str, changed: str) -> bool:
    """Whether a change at ``changed`` replaces what an earlier mutation did at ``earlier``."""
    return changed == "" or earlier == changed or earlier.startswith(changed + ".")


def _special(draw: st.DrawFn, function: str, event: Any) -> tuple[Any, Mutation]:
    choice = draw(st.sampled_from(["parameters", "no-artifacts", "job-id", "token", "not-an-object"]))
    if not isinstance(event, dict) or not isinstance(event.get("CodePipeline.job"), dict):
        choice = "not-an-object"
    job = event.get("CodePipeline.job") if isinstance(event, dict) else None
    data = job.get("data") if isinstance(job, dict) else None
    first = isinstance(data, dict) and "continuationToken" not in data
    fields = REQUIRED[function] + (FIRST_ONLY.get(function, ()) if first else ())
    reads_parameters = any("UserParameters" in p for p in fields)
    if choice == "not-an-object":
        return draw(st.sampled_from([None, [], [event], "event", 7, 1.5, True])), Mutation(choice, "", True)
    if choice == "job-id":
        assert isinstance(job, dict)
        text = draw(st.text(max_size=60) | st.sampled_from(["", "1" * 36, str(uuid.uuid4()).upper()]))
        job["id"] = text
        return event, Mutation(choice, "CodePipeline.job.id", not JOB_ID.fullmatch(text))
    if not isinstance(data, dict):
        return event, Mutation("none", "", False)
    if choice == "parameters":
        broken = draw(
            st.sampled_from(
                [
                    "{",
                    "[]",
                    '"text"',
                    "null",
                    '{"executionId": 5}',
                    '{"executionId": ""}',
                    '{"executionId": "../../etc"}',
                    '{"executionId": "' + "e" * 200 + '"}',
                    '{"commitId": ["a"], "executionId": "e1a2b3c4-0000-4000-8000-000000000001"}',
                ]
            )
        )
        configuration = data.setdefault("actionConfiguration", {}).setdefault("configuration", {})
        if isinstance(configuration, dict):
            configuration["UserParameters"] = broken
        # a commitId of the wrong type is malformed only for record-release, which reads it
        broken_for_function = reads_parameters and ("commitId" not in broken or function == "record-release")
        path = "CodePipeline.job.data.actionConfiguration.configuration.UserParameters"
        return event, Mutation(choice, path, broken_for_function)
    if choice == "no-artifacts":
        key = draw(st.sampled_from(["inputArtifacts", "outputArtifacts"]))
        had = bool(data.get(key))
        data[key] = []
        required = had and any(key in p for p in fields)
        return event, Mutation(choice, f"CodePipeline.job.data.{key}", required)
    bad = BAD_TOKENS.get(function)
    data["continuationToken"] = draw(st.sampled_from(bad or _NOT_JSON_OBJECTS))
    return event, Mutation("token", "CodePipeline.job.data.continuationToken", bad is not None)


def fuzz_job_function(function: str) -> Row:
    row = Row(f"fuzz {function}", "mutated job events")
    target = sandbox.job_functions()[function]
    bases = [load_event(function, "job")]
    with contextlib.suppress(FileNotFoundError):
        bases.append(load_event(function, "continuation"))
    with sandbox.emulator():
        accounts = lp.Accounts()
        scenario = SCENARIOS[function](accounts)
        sandbox.set_environment(scenario.environment)
        for base in bases:  # the scenario's own event stands for the first invocation
            if "continuationToken" not in base["CodePipeline.job"]["data"]:
                base.clear()
                base.update(copy.deepcopy(scenario.event))
        handler = target.handler
        context = FakeLambdaContext(target.folder, memory_limit_in_mb=target.memory_mb)
        handler(copy.deepcopy(scenario.event), context)
        if not scenario.succeeded(accounts):
            # a job result is still checked below, but a success check would prove nothing
            row.breach("the unmutated event does not succeed: the success checks below prove nothing")
        successes = 0

        @seed(SEED)
        @FUZZ_SETTINGS
        @given(mutated(function, bases))
        def run(case: tuple[Any, list[Mutation]]) -> None:
            nonlocal successes
            event, mutations = case
            row.cases += 1
            job = event.get("CodePipeline.job") if isinstance(event, dict) else None
            job_id = job.get("id") if isinstance(job, dict) else None
            valid_id = isinstance(job_id, str) and JOB_ID.fullmatch(job_id) is not None
            scenario.replenish(accounts)
            earlier = len(local_aws.job_results())
            described = "; ".join(f"{m.kind} {m.path or '<event>'}" for m in mutations)
            started = time.perf_counter()
            with sandbox.recording() as log:
                try:
                    handler(event, context)
                    raised: BaseException | None = None
                except Exception as error:  # noqa: BLE001 (whatever escapes the handler is judged)
                    raised = error
            results = list(local_aws.job_results()[earlier:])
            if os.environ.get("AUDIT_TIMES") and time.perf_counter() - started > 1:
                print(f"{function} {described}: {time.perf_counter() - started:.1f}s", flush=True)
            if not valid_id:
                if not isinstance(raised, BadInputError):
                    row.breach(f"{described}: no job id, yet {type(raised).__name__ if raised else 'no error'}")
                if results or log.writes():
                    row.breach(f"{described}: no job id, yet {len(results)} results, writes {log.writes()}")
                return
            if raised is not None:
                row.breach(f"{described}: {type(raised).__name__} escaped the handler: {raised}")
            mine = [r for r in results if r.job_id == job_id]
            if len(mine) != 1 or len(results) != 1:
                row.breach(f"{described}: {len(mine)} results for the job ({len(results)} in all)")
                return
            result = mine[0]
            message = (result.failure_details or {}).get("message", "")
            if result.status == "Succeeded":
                successes += 1
            if any(m.required for m in mutations):
                if result.status == "Succeeded":
                    row.breach(f"{described}: malformed input, yet the job succeeded")
                elif PYTHON_ERROR.match(message):
                    row.breach(f"{described}: unclear failure: {message[:160]}")
                elif log.writes():
                    row.breach(f"{described}: malformed input, yet changed AWS first: {log.writes()}")

        with sandbox.reused_clients():
            run()
    row.figure = f"{row.cases} events, {successes} succeeded"
    return row
