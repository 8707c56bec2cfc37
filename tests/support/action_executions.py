"""CodePipeline's ListActionExecutions for the functions under test: moto 5.2.5 and the emulator lack it.

stage-revert and the execution gate read where an execution's source artifact is from the execution's
Source action (its output artifact's S3 location). :func:`serve_source_action` makes every CodePipeline
client the functions build answer that one operation with the shape AWS documents
(https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_ListActionExecutions.html); every other
operation still goes to moto and the emulator.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from release_pipeline import clients
from release_pipeline.values import S3Location

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def source_action(execution_id: str, location: S3Location) -> dict[str, Any]:
    """The Source action's execution: a CodeStarSourceConnection action whose output is ``location``."""
    return {
        "pipelineExecutionId": execution_id,
        "actionExecutionId": f"{execution_id[:8]}-source",
        "pipelineVersion": 1,
        "stageName": "Source",
        "actionName": "Source",
        "startTime": T0,
        "lastUpdateTime": T0,
        "status": "Succeeded",
        "input": {
            "actionTypeId": {
                "category": "Source",
                "owner": "AWS",
                "provider": "CodeStarSourceConnection",
                "version": "1",
            },
            "configuration": {"BranchName": "main", "FullRepositoryId": "example/app"},
            "inputArtifacts": [],
        },
        "output": {
            "outputArtifacts": [
                {"name": "SourceOutput", "s3location": {"bucket": location.bucket, "key": location.key}}
            ],
            "executionResult": {"externalExecutionId": "3f786850e387550fdab836ed7e6dc881de23001b"},
        },
    }


def gate_action(execution_id: str) -> dict[str, Any]:
    """A Lambda invoke action of the same execution: no output artifact."""
    return {
        "pipelineExecutionId": execution_id,
        "actionExecutionId": f"{execution_id[:8]}-gate",
        "stageName": "CheckChanges",
        "actionName": "WaitForEarlierExecutions",
        "status": "Succeeded",
        "input": {
            "actionTypeId": {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"},
            "inputArtifacts": [],
        },
        "output": {"outputArtifacts": []},
    }


def serve_source_action(monkeypatch: pytest.MonkeyPatch, sources: dict[str, S3Location]) -> list[dict[str, Any]]:
    """Every client from ``clients.codepipeline`` answers ListActionExecutions for the executions in
    ``sources`` (execution id -> its source artifact) with their Source and gate actions, an execution not
    in it with none; returns the requests' filters as they arrive."""
    requests: list[dict[str, Any]] = []
    make = clients.codepipeline

    def answer(params: dict[str, Any], **_: Any) -> Any:  # botocore uses an answer to before-call as the response
        body = json.loads(params.get("body") or b"{}")  # the JSON request, as botocore serialized it
        requests.append(body.get("filter", {}))
        execution_id = body.get("filter", {}).get("pipelineExecutionId", "")
        details = []
        if execution_id in sources:
            details = [gate_action(execution_id), source_action(execution_id, sources[execution_id])]
        return AWSResponse("https://codepipeline.local", 200, HTTPHeaders(), None), {"actionExecutionDetails": details}

    def build(*args: Any, **kwargs: Any) -> Any:
        client = make(*args, **kwargs)
        client.meta.events.register("before-call.codepipeline.ListActionExecutions", answer)
        return client

    monkeypatch.setattr(clients, "codepipeline", build)
    return requests
