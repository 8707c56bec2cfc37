"""local_aws.events: TestEventPattern matched as EventBridge does."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support import solution
from tests.support.events import load_event

pytestmark = pytest.mark.usefixtures("aws")

PATTERN = {
    "source": ["aws.codepipeline"],
    "detail-type": ["CodePipeline Stage Execution State Change"],
    "detail": {"pipeline": ["release-pipeline"], "stage": ["Stage"], "state": ["FAILED", "STOPPED"]},
}


def matches(event: dict[str, Any], pattern: dict[str, Any] = PATTERN) -> bool:
    events = boto3.client("events", region_name="us-east-1")
    result: bool = events.test_event_pattern(EventPattern=json.dumps(pattern), Event=json.dumps(event))["Result"]
    return result


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("stage-failed", True),
        ("stage-stopped", True),
        ("stage-succeeded", False),
        ("other-pipeline", False),
        ("other-stage", False),
    ],
)
def test_test_event_pattern_matches_like_the_rule(case: str, expected: bool) -> None:
    assert matches(load_event("stage-revert", case)) is expected


@pytest.mark.parametrize(
    ("stage", "state", "expected"),
    [
        ("Stage", "FAILED", True),
        ("DeploySecondary", "FAILED", True),
        ("DeployPrimary", "STOPPED", True),
        ("Stage", "SUCCEEDED", False),
        ("Validate", "FAILED", False),
        ("Release", "FAILED", False),
    ],
)
def test_the_template_rule_matches_failed_or_stopped_deploy_stages(stage: str, state: str, expected: bool) -> None:
    resolved = solution.resolved(physical={"Pipeline": {"Ref": "release-pipeline"}})
    pattern = resolved.resource("StageFailedRule")["Properties"]["EventPattern"]
    event = load_event("stage-revert", "stage-failed")
    event["detail"].update({"stage": stage, "state": state})

    assert matches(event, pattern) is expected


def test_test_event_pattern_refuses_an_event_without_the_common_fields() -> None:
    event = load_event("stage-revert", "stage-failed")
    del event["time"]
    with pytest.raises(ClientError) as error:
        matches(event)
    assert error.value.response["Error"]["Code"] == "InvalidEventPatternException"
    assert "time" in error.value.response["Error"]["Message"]
