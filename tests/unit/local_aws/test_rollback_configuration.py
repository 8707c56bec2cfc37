"""local_aws.cloudformation.rollback_triggers: CloudFormation's rollback configuration (CloudWatch alarms
and a monitoring time) validated as AWS validates it and monitored on the emulator's clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local_aws import clock

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

CloudWatchClient = Any  # no mypy-boto3 stubs for CloudWatch in the environment

pytestmark = pytest.mark.usefixtures("aws")

REGION = "us-east-1"
QUEUE = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders"}}
TOPIC = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "events"}}
VERSION = {"Version": {"Type": "String"}}


def template(**resources: Any) -> str:
    return json.dumps({"Parameters": VERSION, "Resources": resources})


def version(value: str) -> list[Any]:
    return [{"ParameterKey": "Version", "ParameterValue": value}]


@pytest.fixture
def cfn() -> CloudFormationClient:
    return boto3.client("cloudformation", region_name=REGION)


@pytest.fixture
def cloudwatch() -> CloudWatchClient:
    return boto3.client("cloudwatch", region_name=REGION)


def make_alarm(cloudwatch: CloudWatchClient, name: str) -> str:
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="Orders",
        MetricName="Errors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    return str(cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"])


def set_state(cloudwatch: CloudWatchClient, name: str, state: Any) -> None:
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")


def bake(*arns: str, minutes: int = 30) -> Any:
    return {
        "RollbackTriggers": [{"Arn": arn, "Type": "AWS::CloudWatch::Alarm"} for arn in arns],
        "MonitoringTimeInMinutes": minutes,
    }


def stack_of(cfn: CloudFormationClient, name: str = "app") -> Any:
    return cfn.describe_stacks(StackName=name)["Stacks"][0]


def body_of(cfn: CloudFormationClient, name: str = "app") -> Any:
    return json.loads(json.dumps(cfn.get_template(StackName=name)["TemplateBody"]))


def parameters_of(cfn: CloudFormationClient, name: str = "app") -> dict[str, str]:
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack_of(cfn, name).get("Parameters", [])}


def statuses(cfn: CloudFormationClient, name: str = "app") -> list[tuple[str, str | None]]:
    """(stack status, reason) of the stack's own events, oldest first."""
    events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    return [
        (e["ResourceStatus"], e.get("ResourceStatusReason"))
        for e in reversed(events)
        if e["ResourceType"] == "AWS::CloudFormation::Stack"
    ]


@pytest.fixture
def released(cfn: CloudFormationClient, cloudwatch: CloudWatchClient) -> tuple[str, str]:
    """Stack "app" at version 1 (a queue), and two alarms in OK; returns the alarms' ARNs."""
    cfn.create_stack(StackName="app", TemplateBody=template(Queue=QUEUE), Parameters=version("1"))
    return make_alarm(cloudwatch, "errors"), make_alarm(cloudwatch, "latency")


def execute_version_2(cfn: CloudFormationClient, configuration: Any) -> None:
    cfn.create_change_set(
        StackName="app",
        ChangeSetName="v2",
        TemplateBody=template(Queue=QUEUE, Topic=TOPIC),
        Parameters=version("2"),
        RollbackConfiguration=configuration,
    )
    cfn.execute_change_set(StackName="app", ChangeSetName="v2", ClientRequestToken="release-2")


def test_a_change_set_with_two_alarms_and_30_minutes_stays_in_progress_until_the_clock_passes_them(
    cfn: CloudFormationClient, released: tuple[str, str]
) -> None:
    """GIVEN a change set carrying two alarms and 30 minutes WHEN it is executed THEN the stack stays
    UPDATE_IN_PROGRESS (the change set EXECUTE_IN_PROGRESS) until the clock passes 30 minutes, then
    completes with the new template, parameters and rollback configuration."""
    cfn.create_change_set(
        StackName="app",
        ChangeSetName="v2",
        TemplateBody=template(Queue=QUEUE, Topic=TOPIC),
        Parameters=version("2"),
        RollbackConfiguration=bake(*released),
    )
    assert cfn.describe_change_set(StackName="app", ChangeSetName="v2")["RollbackConfiguration"] == bake(*released)

    cfn.execute_change_set(StackName="app", ChangeSetName="v2", ClientRequestToken="release-2")

    assert stack_of(cfn)["StackStatus"] == "UPDATE_IN_PROGRESS"
    assert stack_of(cfn)["RollbackConfiguration"] == bake(*released)
    assert cfn.describe_change_set(StackName="app", ChangeSetName="v2")["ExecutionStatus"] == "EXECUTE_IN_PROGRESS"
    clock.advance(timedelta(minutes=29))
    assert [s["StackStatus"] for s in cfn.list_stacks()["StackSummaries"]] == ["UPDATE_IN_PROGRESS"]
    assert ("UPDATE_COMPLETE", None) not in statuses(cfn)

    clock.advance(timedelta(minutes=2))

    stack = stack_of(cfn)
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert body_of(cfn)["Resources"] == {"Queue": QUEUE, "Topic": TOPIC}
    assert parameters_of(cfn) == {"Version": "2"}
    assert stack["RollbackConfiguration"] == bake(*released)
    assert statuses(cfn)[-3:] == [
        ("UPDATE_IN_PROGRESS", "User Initiated"),
        ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", None),
        ("UPDATE_COMPLETE", None),
    ]
    tokens = {e.get("ClientRequestToken") for e in cfn.describe_stack_events(StackName="app")["StackEvents"][:3]}
    assert tokens == {"release-2"}
    assert cfn.describe_change_set(StackName="app", ChangeSetName="v2")["ExecutionStatus"] == "EXECUTE_COMPLETE"


def test_an_alarm_at_minute_10_rolls_back_to_the_previous_template_and_parameters_and_never_completes(
    cfn: CloudFormationClient, cloudwatch: CloudWatchClient, released: tuple[str, str]
) -> None:
    """GIVEN a change set monitored for 30 minutes WHEN one alarm goes to ALARM at minute 10 (and back to
    OK a minute later, before anyone reads the stack) THEN the update rolls back to version 1 at once and
    never completes, whatever the clock does."""
    execute_version_2(cfn, bake(*released))
    clock.advance(timedelta(minutes=10))

    set_state(cloudwatch, "latency", "ALARM")
    clock.advance(timedelta(minutes=1))
    set_state(cloudwatch, "latency", "OK")
    clock.advance(timedelta(minutes=60))

    stack = stack_of(cfn)
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert released[1] in stack["StackStatusReason"]
    assert body_of(cfn)["Resources"] == {"Queue": QUEUE}
    assert parameters_of(cfn) == {"Version": "1"}
    assert [r["LogicalResourceId"] for r in cfn.list_stack_resources(StackName="app")["StackResourceSummaries"]] == [
        "Queue"
    ]
    assert stack["RollbackConfiguration"] == {}  # the stack's configuration before the update
    assert boto3.client("sns", region_name=REGION).list_topics()["Topics"] == []
    after_release = statuses(cfn)[statuses(cfn).index(("UPDATE_IN_PROGRESS", "User Initiated")) :]
    assert after_release == [
        ("UPDATE_IN_PROGRESS", "User Initiated"),
        ("UPDATE_ROLLBACK_IN_PROGRESS", stack["StackStatusReason"]),
        ("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", None),
        ("UPDATE_ROLLBACK_COMPLETE", None),
    ]
    assert cfn.describe_change_set(StackName="app", ChangeSetName="v2")["ExecutionStatus"] == "EXECUTE_FAILED"


def test_an_alarm_firing_after_the_monitoring_time_has_no_effect(
    cfn: CloudFormationClient, cloudwatch: CloudWatchClient, released: tuple[str, str]
) -> None:
    execute_version_2(cfn, bake(*released))
    clock.advance(timedelta(minutes=31))

    set_state(cloudwatch, "errors", "ALARM")  # nobody read the stack since minute 0

    assert stack_of(cfn)["StackStatus"] == "UPDATE_COMPLETE"
    assert parameters_of(cfn) == {"Version": "2"}
    assert not [status for status, _ in statuses(cfn) if "ROLLBACK" in status]


def test_an_alarm_already_in_alarm_rolls_back_at_once_even_with_no_monitoring_time(
    cfn: CloudFormationClient, cloudwatch: CloudWatchClient, released: tuple[str, str]
) -> None:
    """AWS: "If you specify 0 for this parameter, CloudFormation still monitors the specified rollback
    triggers during stack creation and update operations"."""
    set_state(cloudwatch, "errors", "ALARM")

    execute_version_2(cfn, bake(*released, minutes=0))

    assert stack_of(cfn)["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert released[0] in stack_of(cfn)["StackStatusReason"]
    assert parameters_of(cfn) == {"Version": "1"}


def test_triggers_with_no_monitoring_time_and_no_alarm_complete_at_once(
    cfn: CloudFormationClient, released: tuple[str, str]
) -> None:
    execute_version_2(cfn, bake(*released, minutes=0))

    assert stack_of(cfn)["StackStatus"] == "UPDATE_COMPLETE"
    assert parameters_of(cfn) == {"Version": "2"}


def test_a_stack_without_a_rollback_configuration_describes_an_empty_one(cfn: CloudFormationClient) -> None:
    cfn.create_stack(StackName="app", TemplateBody=template(Queue=QUEUE), Parameters=version("1"))
    cfn.create_change_set(
        StackName="app", ChangeSetName="v2", TemplateBody=template(Queue=QUEUE, Topic=TOPIC), Parameters=version("2")
    )

    assert stack_of(cfn)["RollbackConfiguration"] == {}
    assert cfn.describe_change_set(StackName="app", ChangeSetName="v2")["RollbackConfiguration"] == {}
    cfn.execute_change_set(StackName="app", ChangeSetName="v2")
    assert stack_of(cfn)["StackStatus"] == "UPDATE_COMPLETE"


def test_the_stack_keeps_its_triggers_for_a_later_update_that_gives_none(
    cfn: CloudFormationClient, cloudwatch: CloudWatchClient, released: tuple[str, str]
) -> None:
    """AWS: "CloudFormation saves the rollback triggers specified for a stack and applies them to any
    subsequent update operations for the stack, unless you specify otherwise"; an empty list removes them."""
    execute_version_2(cfn, bake(*released, minutes=0))
    set_state(cloudwatch, "errors", "ALARM")

    cfn.update_stack(StackName="app", TemplateBody=template(Queue=QUEUE), Parameters=version("3"))

    assert stack_of(cfn)["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert parameters_of(cfn) == {"Version": "2"}
    cfn.update_stack(
        StackName="app",
        TemplateBody=template(Queue=QUEUE),
        Parameters=version("3"),
        RollbackConfiguration={"RollbackTriggers": []},
    )
    assert stack_of(cfn)["StackStatus"] == "UPDATE_COMPLETE"
    assert stack_of(cfn)["RollbackConfiguration"] == {"RollbackTriggers": [], "MonitoringTimeInMinutes": 0}


def test_a_second_update_on_a_stack_still_monitoring_is_refused(
    cfn: CloudFormationClient, released: tuple[str, str]
) -> None:
    """An UpdateStack monitored for 30 minutes keeps the stack UPDATE_IN_PROGRESS, in which CloudFormation
    refuses another update or UPDATE change set; once monitoring ends, both are accepted again."""
    cfn.update_stack(
        StackName="app",
        TemplateBody=template(Queue=QUEUE, Topic=TOPIC),
        Parameters=version("2"),
        RollbackConfiguration=bake(*released),
    )

    for attempt in (
        lambda: cfn.update_stack(StackName="app", TemplateBody=template(Queue=QUEUE), Parameters=version("3")),
        lambda: cfn.create_change_set(
            StackName="app", ChangeSetName="v3", TemplateBody=template(Queue=QUEUE), Parameters=version("3")
        ),
    ):
        with pytest.raises(ClientError, match="is in UPDATE_IN_PROGRESS state and can not be updated") as refused:
            attempt()
        assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert stack_of(cfn)["StackStatus"] == "UPDATE_IN_PROGRESS"

    clock.advance(timedelta(minutes=31))
    assert stack_of(cfn)["StackStatus"] == "UPDATE_COMPLETE"
    assert parameters_of(cfn) == {"Version": "2"}
    cfn.update_stack(StackName="app", TemplateBody=template(Queue=QUEUE), Parameters=version("3"))
    assert stack_of(cfn)["StackStatus"] == "UPDATE_IN_PROGRESS"  # the saved configuration monitors it too


def test_a_first_creation_with_a_firing_alarm_ends_rollback_complete_with_nothing_created(
    cfn: CloudFormationClient, cloudwatch: CloudWatchClient
) -> None:
    arn = make_alarm(cloudwatch, "errors")
    set_state(cloudwatch, "errors", "ALARM")
    exported = {"Queue": {"Value": {"Ref": "Queue"}, "Export": {"Name": "orders-queue"}}}
    body = json.dumps({"Parameters": VERSION, "Resources": {"Queue": QUEUE}, "Outputs": exported})

    cfn.create_stack(StackName="app", TemplateBody=body, Parameters=version("1"), RollbackConfiguration=bake(arn))

    stack = stack_of(cfn)
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert arn in stack["StackStatusReason"]
    assert "Outputs" not in stack
    assert cfn.list_exports()["Exports"] == []
    assert cfn.list_stack_resources(StackName="app")["StackResourceSummaries"] == []
    assert boto3.client("sqs", region_name=REGION).list_queues().get("QueueUrls", []) == []
    assert ("CREATE_COMPLETE", None) not in statuses(cfn)
    assert statuses(cfn)[-1] == ("ROLLBACK_COMPLETE", None)
    with pytest.raises(ClientError, match="is in ROLLBACK_COMPLETE state and can not be updated"):
        cfn.update_stack(StackName="app", TemplateBody=template(Queue=QUEUE), Parameters=version("2"))


def test_a_first_creation_stays_in_progress_while_monitored_then_completes(
    cfn: CloudFormationClient, cloudwatch: CloudWatchClient
) -> None:
    arn = make_alarm(cloudwatch, "errors")
    cfn.create_stack(
        StackName="app",
        TemplateBody=template(Queue=QUEUE),
        Parameters=version("1"),
        RollbackConfiguration=bake(arn, minutes=10),
        ClientRequestToken="first",
    )
    assert stack_of(cfn)["StackStatus"] == "CREATE_IN_PROGRESS"
    assert ("CREATE_COMPLETE", None) not in statuses(cfn)

    clock.advance(timedelta(minutes=11))

    stack = stack_of(cfn)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert "LastUpdatedTime" not in stack
    assert statuses(cfn) == [("CREATE_IN_PROGRESS", "User Initiated"), ("CREATE_COMPLETE", None)]
    assert {e.get("ClientRequestToken") for e in cfn.describe_stack_events(StackName="app")["StackEvents"]} == {"first"}
    assert [r["LogicalResourceId"] for r in cfn.list_stack_resources(StackName="app")["StackResourceSummaries"]] == [
        "Queue"
    ]


def test_a_first_release_whose_alarm_fires_while_monitored_deletes_what_it_created(
    cfn: CloudFormationClient, cloudwatch: CloudWatchClient
) -> None:
    """A creation's resources exist while CloudFormation monitors it (CREATE_IN_PROGRESS); an alarm then
    rolls it back to ROLLBACK_COMPLETE and deletes them."""
    arn = make_alarm(cloudwatch, "errors")
    sqs = boto3.client("sqs", region_name=REGION)
    cfn.create_change_set(
        StackName="app",
        ChangeSetName="first",
        ChangeSetType="CREATE",
        TemplateBody=template(Queue=QUEUE),
        Parameters=version("1"),
        RollbackConfiguration=bake(arn, minutes=15),
    )
    cfn.execute_change_set(StackName="app", ChangeSetName="first")
    clock.advance(timedelta(minutes=5))
    assert stack_of(cfn)["StackStatus"] == "CREATE_IN_PROGRESS"
    assert len(sqs.list_queues().get("QueueUrls", [])) == 1

    set_state(cloudwatch, "errors", "ALARM")

    assert stack_of(cfn)["StackStatus"] == "ROLLBACK_COMPLETE"
    assert cfn.list_stack_resources(StackName="app")["StackResourceSummaries"] == []
    assert sqs.list_queues().get("QueueUrls", []) == []
    clock.advance(timedelta(minutes=30))
    assert stack_of(cfn)["StackStatus"] == "ROLLBACK_COMPLETE"


def test_a_missing_alarm_fails_the_operation_and_rolls_it_back(
    cfn: CloudFormationClient, released: tuple[str, str]
) -> None:
    """AWS: "If a specified trigger is missing, the entire stack operation fails and is rolled back": the
    calls succeed and the stack rolls back. An alarm of the same name in another Region is missing too."""
    elsewhere = make_alarm(boto3.client("cloudwatch", region_name="eu-west-1"), "errors")

    for arn in (released[0].replace(":alarm:errors", ":alarm:deleted"), elsewhere):
        cfn.update_stack(
            StackName="app",
            TemplateBody=template(Queue=QUEUE, Topic=TOPIC),
            Parameters=version("2"),
            RollbackConfiguration=bake(arn),
        )

        stack = stack_of(cfn)
        assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
        assert arn in stack["StackStatusReason"]
        assert parameters_of(cfn) == {"Version": "1"}


def test_an_alarm_deleted_while_monitored_rolls_the_operation_back(
    cfn: CloudFormationClient, cloudwatch: CloudWatchClient, released: tuple[str, str]
) -> None:
    execute_version_2(cfn, bake(*released))
    clock.advance(timedelta(minutes=10))

    cloudwatch.delete_alarms(AlarmNames=["errors"])
    clock.advance(timedelta(minutes=30))

    assert stack_of(cfn)["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert released[0] in stack_of(cfn)["StackStatusReason"]


TRIGGER: Any = {"Arn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:errors", "Type": "AWS::CloudWatch::Alarm"}
REFUSED: dict[str, tuple[Any, str, str]] = {
    "6 triggers": (
        {"RollbackTriggers": [TRIGGER] * 6},
        "1 validation error detected: Value '[",
        "at 'rollbackConfiguration.rollbackTriggers' failed to satisfy constraint: "
        "Member must have length less than or equal to 5",
    ),
    "181 minutes": (
        {"RollbackTriggers": [TRIGGER], "MonitoringTimeInMinutes": 181},
        "1 validation error detected: Value '181' at 'rollbackConfiguration.monitoringTimeInMinutes'",
        "failed to satisfy constraint: Member must have value less than or equal to 180",
    ),
    "wrong type": (
        {"RollbackTriggers": [{**TRIGGER, "Type": "AWS::SNS::Topic"}]},
        "AWS::SNS::Topic",
        "AWS::CloudWatch::Alarm or AWS::CloudWatch::CompositeAlarm",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_an_invalid_rollback_configuration_is_refused_and_changes_nothing(cfn: CloudFormationClient, case: str) -> None:
    """CreateChangeSet, CreateStack and UpdateStack each refuse it with ValidationError: no change set, no
    stack, the live stack untouched."""
    configuration, *expected = REFUSED[case]
    cfn.create_stack(StackName="live", TemplateBody=template(Queue=QUEUE), Parameters=version("1"))
    calls: dict[str, Callable[[], object]] = {
        "CreateChangeSet": lambda: cfn.create_change_set(
            StackName="live",
            ChangeSetName="v2",
            TemplateBody=template(Queue=QUEUE, Topic=TOPIC),
            Parameters=version("2"),
            RollbackConfiguration=configuration,
        ),
        "CreateStack": lambda: cfn.create_stack(
            StackName="app",
            TemplateBody=template(Queue=QUEUE),
            Parameters=version("1"),
            RollbackConfiguration=configuration,
        ),
        "UpdateStack": lambda: cfn.update_stack(
            StackName="live",
            TemplateBody=template(Queue=QUEUE, Topic=TOPIC),
            Parameters=version("2"),
            RollbackConfiguration=configuration,
        ),
    }

    for operation, call in calls.items():
        with pytest.raises(ClientError) as refused:
            call()

        assert refused.value.response["Error"]["Code"] == "ValidationError", operation
        for part in expected:
            assert part in refused.value.response["Error"]["Message"], operation
    assert [s["StackName"] for s in cfn.describe_stacks()["Stacks"]] == ["live"]
    assert cfn.list_change_sets(StackName="live")["Summaries"] == []
    assert (stack_of(cfn, "live")["StackStatus"], parameters_of(cfn, "live")) == ("CREATE_COMPLETE", {"Version": "1"})


def test_both_limits_broken_are_both_reported(cfn: CloudFormationClient) -> None:
    both: Any = {"RollbackTriggers": [TRIGGER] * 6, "MonitoringTimeInMinutes": 181}

    with pytest.raises(ClientError) as refused:
        cfn.create_stack(
            StackName="app", TemplateBody=template(Queue=QUEUE), Parameters=version("1"), RollbackConfiguration=both
        )

    message = refused.value.response["Error"]["Message"]
    assert message.startswith("2 validation errors detected: Value '[")
    assert "less than or equal to 5; Value '181' at 'rollbackConfiguration.monitoringTimeInMinutes'" in message


def test_a_monitoring_time_without_triggers_still_waits_before_the_update_completes(
    cfn: CloudFormationClient, released: tuple[str, str]
) -> None:
    """AWS: "If you specify a monitoring period but don't specify any rollback triggers, CloudFormation
    still waits the specified period of time before cleaning up old resources after update operations"."""
    execute_version_2(cfn, {"MonitoringTimeInMinutes": 20})

    clock.advance(timedelta(minutes=19))
    assert stack_of(cfn)["StackStatus"] == "UPDATE_IN_PROGRESS"
    clock.advance(timedelta(minutes=2))
    assert stack_of(cfn)["StackStatus"] == "UPDATE_COMPLETE"
    assert stack_of(cfn)["RollbackConfiguration"] == {"MonitoringTimeInMinutes": 20}
