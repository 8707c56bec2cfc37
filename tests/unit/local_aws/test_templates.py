"""local_aws.cloudformation.templates: a template read as CloudFormation reads it, Fn::ForEach included."""

from __future__ import annotations

from typing import Any

from local_aws.cloudformation import ResolvedTemplate
from local_aws.cloudformation.templates import expand_for_each

LOOP: dict[str, Any] = {
    "Transform": ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"],
    "Mappings": {"Folders": {"Gate": {"Name": "execution-gate"}, "Revert": {"Name": "stage-revert"}}},
    "Resources": {
        "Topic": {"Type": "AWS::SNS::Topic"},
        "Fn::ForEach::Groups": [
            "Function",
            ["Gate", "Revert"],
            {
                "${Function}LogGroup": {
                    "Type": "AWS::Logs::LogGroup",
                    "Properties": {
                        "LogGroupName": {
                            "Fn::Sub": [
                                "/aws/lambda/${AWS::StackName}/${Folder}",
                                {"Folder": {"Fn::FindInMap": ["Folders", {"Ref": "Function"}, "Name"]}},
                            ]
                        }
                    },
                }
            },
        ],
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-q"}}},
    },
}


def test_a_for_each_loop_becomes_its_resources_in_its_place() -> None:
    expanded = expand_for_each(LOOP, {"AWS::StackName": "solution", "AWS::Region": "us-east-1"})

    assert list(expanded["Resources"]) == ["Topic", "GateLogGroup", "RevertLogGroup", "Queue"]
    assert expanded["Resources"]["RevertLogGroup"]["Properties"]["LogGroupName"] == "/aws/lambda/solution/stage-revert"
    # what is outside the loop is kept as written, for the resolver to resolve
    assert expanded["Resources"]["Queue"] == LOOP["Resources"]["Queue"]
    assert "Fn::ForEach::Groups" in LOOP["Resources"]  # the template given is not changed


def test_a_template_without_loops_is_returned_as_it_is() -> None:
    plain = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}

    assert expand_for_each(plain, {"AWS::StackName": "solution"}) is plain


def test_the_resolved_template_reads_the_loops_resources() -> None:
    template = ResolvedTemplate({}, stack_name="solution", template=LOOP)

    assert set(template.resources_of_type("AWS::Logs::LogGroup")) == {"GateLogGroup", "RevertLogGroup"}
    assert template.resource("Queue")["Properties"]["QueueName"] == "solution-q"
