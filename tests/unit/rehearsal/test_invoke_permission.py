"""EventBridge may invoke a function only where a permission of the template allows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from local_aws.cloudformation import ResolvedTemplate
from rehearsal.emulator import Emulator
from rehearsal.solution import Function, Solution

ACCOUNT = "123456789012"
NAME = "release-solution-StageRevertFunction-ABC"
ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{NAME}"
RULE = f"arn:aws:events:us-east-1:{ACCOUNT}:rule/release-solution-StageFailedRule-XYZ"
GRANT: dict[str, Any] = {
    "FunctionName": NAME,
    "Action": "lambda:InvokeFunction",
    "Principal": "events.amazonaws.com",
    "SourceArn": RULE,
}


def allowed(**changes: Any) -> bool:
    properties = {key: value for key, value in {**GRANT, **changes}.items() if value is not None}
    raw = {"Resources": {"Permission": {"Type": "AWS::Lambda::Permission", "Properties": properties}}}
    template = ResolvedTemplate({}, template=raw)
    solution = Solution(Emulator(), template, "release-solution", "us-east-1", "eu-west-1", "p", {}, {}, {})
    function = Function("StageRevertFunction", NAME, ARN, Path("."), "app.lambda_handler", 60, 256, ())
    return solution.may_invoke(function, "events.amazonaws.com", RULE)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"FunctionName": ARN},
        {"FunctionName": f"{ACCOUNT}:function:{NAME}"},
        {"SourceArn": f"arn:aws:events:us-east-1:{ACCOUNT}:rule/release-solution-*"},
        {"SourceArn": None},
        {"Action": "lambda:*"},
        {"Principal": "*"},
        {"SourceAccount": ACCOUNT},
    ],
)
def test_grants_that_let_the_rule_invoke(changes: dict[str, Any]) -> None:
    assert allowed(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"Principal": "sns.amazonaws.com"},
        {"SourceArn": f"arn:aws:events:us-east-1:{ACCOUNT}:rule/another-rule"},
        {"FunctionName": "another-function"},
        {"FunctionName": f"{NAME}:live"},  # an alias: the unqualified function is not granted
        {"FunctionName": f"{ARN}:1"},
        {"Action": "lambda:GetFunction"},
        {"SourceAccount": "999999999999"},
    ],
)
def test_grants_that_do_not(changes: dict[str, Any]) -> None:
    assert not allowed(**changes)
