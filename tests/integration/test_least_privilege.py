"""Each function works with exactly the permissions its template policy grants.

moto enforces IAM for these calls: at resource level for S3, and at action level for CloudFormation,
SSM, SNS and CodePipeline, where it checks every request against the resource "*". Every test runs a
function's real handler with the credentials of an IAM user that holds only that function's inline
policy from template.yaml (S3 statements as written; other statements with their resources widened to
"*", since moto can only check their actions), and a control proves enforcement is on: the same run
without one granted action fails.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

import local_aws
from local_aws import FakeLambdaContext
from local_aws.cloudformation import ResolvedTemplate
from local_aws.iam import policy_for_moto
from release_pipeline import clients
from tests.support import solution
from tests.support.events import load_event, load_function

ACCOUNT = "123456789012"
PRIMARY, SECONDARY = "us-east-1", solution.REQUIRED_PARAMETERS["SecondaryRegion"]
BUCKET = "release-pipeline-artifacts"
SOLUTION = "release-solution"
APP = solution.REQUIRED_PARAMETERS["ApplicationStackName"]
KEY_ID = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"
APP_TEMPLATE = json.dumps(
    {
        "Parameters": {"Name": {"Type": "String", "Default": "one"}},
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": {"Ref": "Name"}}}},
    }
)


def resolved_template(delete_stage: str = "No") -> ResolvedTemplate:
    topic_arn = f"arn:aws:sns:{PRIMARY}:{ACCOUNT}:release-notifications"
    return solution.resolved(
        delete_stage,
        stack_name=SOLUTION,
        physical={
            "ArtifactBucket": {"Ref": BUCKET, "Arn": f"arn:aws:s3:::{BUCKET}"},
            "ArtifactKey": {"Arn": KEY_ID},
            "NotificationTopic": {"Ref": topic_arn},
            "Pipeline": {"Ref": "release-pipeline"},
            "CloudFormationExecutionRole": {"Arn": f"arn:aws:iam::{ACCOUNT}:role/cfn-exec"},
            "StageRevertDeadLetterQueue": {"Arn": f"arn:aws:sqs:{PRIMARY}:{ACCOUNT}:dlq"},
        },
        TemplatePath="template.json",
        StageParameters='{"Name": "stage"}',
    )


class Accounts:
    """An administrator for setting up, and users that hold one policy each."""

    def __init__(self) -> None:
        iam = boto3.client("iam", region_name=PRIMARY)
        iam.create_user(UserName="admin")
        iam.put_user_policy(
            UserName="admin",
            PolicyName="all",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ),
        )
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        self.admin = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    def client(self, service: str, region: str = PRIMARY) -> Any:
        return boto3.client(service, region_name=region, **self.admin)  # type: ignore[call-overload]

    def user(self, name: str, policy: dict[str, Any]) -> dict[str, str]:
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="policy", PolicyDocument=json.dumps(policy_for_moto(policy)))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}

    def function_user(self, resolved: ResolvedTemplate, function: str, name: str, drop: str | None) -> dict[str, str]:
        """A user holding ``function``'s inline policy from the template, less ``drop`` when given."""
        policy = resolved.function_policy(function)
        return self.user(name, without(policy, drop) if drop else policy)


@pytest.fixture
def accounts(aws_environment: None) -> Iterator[Accounts]:
    with mock_aws():
        holder: list[Accounts] = []
        # The first three calls (create the administrator) run before anyone has credentials.
        set_initial_no_auth_action_count(3)(lambda: holder.append(Accounts()))()
        try:
            yield holder[0]
        finally:
            clients._session.cache_clear()


def run_as(
    monkeypatch: pytest.MonkeyPatch, key: dict[str, str], environment: dict[str, str], call: Callable[[], Any]
) -> Any:
    """Run ``call`` as the function would: its environment and only its own credentials."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    monkeypatch.setenv("AWS_REGION", PRIMARY)
    clients._session.cache_clear()
    try:
        set_initial_no_auth_action_count(0)(call)()
        return None
    finally:
        clients._session.cache_clear()


def without(policy: dict[str, Any], action: str) -> dict[str, Any]:
    """``policy`` with ``action`` removed from every statement."""
    statements = []
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        kept = [a for a in actions if a != action]
        if kept:
            statements.append({**statement, "Action": kept})
    return {"Version": "2012-10-17", "Statement": statements}


def source_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("template.json", APP_TEMPLATE)
    return buffer.getvalue()


def job_event(function: str, case: str, artifact_key: dict[str, str]) -> dict[str, Any]:
    event = load_event(function, case)
    credentials = event["CodePipeline.job"]["data"]["artifactCredentials"]
    credentials["accessKeyId"] = artifact_key["AccessKeyId"]
    credentials["secretAccessKey"] = artifact_key["SecretAccessKey"]
    credentials["sessionToken"] = ""
    return event


def pipeline_artifacts_user(accounts: Accounts) -> dict[str, str]:
    """Stands for the job's artifact credentials: the pipeline's objects only, not releases/."""
    return accounts.user(
        "artifacts",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                    "Resource": f"arn:aws:s3:::{BUCKET}/release-pipeline/*",
                }
            ],
        },
    )


def bucket_with_source(accounts: Accounts, event: dict[str, Any]) -> None:
    s3 = accounts.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for artifact in event["CodePipeline.job"]["data"]["inputArtifacts"]:
        s3.put_object(Bucket=BUCKET, Key=artifact["location"]["s3Location"]["objectKey"], Body=source_zip())


def final_result(event: dict[str, Any]) -> local_aws.ReportedJobResult:
    results = [r for r in local_aws.job_results(event["CodePipeline.job"]["id"]) if r.accepted]
    assert len(results) == 1, results
    return results[0]


@pytest.mark.parametrize("drop", [None, "ssm:PutParameter"])
def test_record_release_needs_only_its_policy(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext, drop: str | None
) -> None:
    resolved = resolved_template()
    user = accounts.function_user(resolved, "RecordReleaseFunction", "record-release", drop)
    event = job_event("record-release", "job", pipeline_artifacts_user(accounts))
    bucket_with_source(accounts, event)
    handler = load_function("record-release").lambda_handler
    run_as(
        monkeypatch,
        user,
        resolved.function_environment("RecordReleaseFunction"),
        lambda: handler(event, lambda_context),
    )
    result = final_result(event)
    ssm = accounts.client("ssm")
    names = [p["Name"] for p in ssm.describe_parameters()["Parameters"]]
    if drop is None:
        assert result.status == "Succeeded"
        assert names == [solution.release_record(SOLUTION)]
    else:
        assert result.status == "Failed"
        assert names == []


@pytest.mark.parametrize("drop", [None, "cloudformation:DescribeChangeSet", "cloudformation:DeleteChangeSet"])
def test_change_detection_needs_only_its_policy(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext, drop: str | None
) -> None:
    """A first release of the primary and an empty change set on the secondary, which is removed."""
    resolved = resolved_template()
    user = accounts.function_user(resolved, "ChangeDetectionFunction", "change-detection", drop)
    env = resolved.function_environment("ChangeDetectionFunction")
    accounts.client("sns").create_topic(Name="release-notifications")
    accounts.client("cloudformation", SECONDARY).create_stack(StackName=APP, TemplateBody=APP_TEMPLATE)
    for region, kind in ((PRIMARY, "CREATE"), (SECONDARY, "UPDATE")):
        accounts.client("cloudformation", region).create_change_set(
            StackName=APP,
            ChangeSetName=f"pipeline-{EXECUTION}",
            ChangeSetType=kind,
            TemplateBody=APP_TEMPLATE,
        )
    event = load_event("change-detection", "job")
    handler = load_function("change-detection").lambda_handler
    run_as(monkeypatch, user, env, lambda: handler(event, lambda_context))
    result = final_result(event)
    if drop is None:
        assert result.status == "Succeeded"
        assert result.output_variables["HasChanges"] == "true"
        assert accounts.client("cloudformation", SECONDARY).list_change_sets(StackName=APP)["Summaries"] == []
    else:
        assert result.status == "Failed"
        assert not result.output_variables


@pytest.mark.parametrize("drop", [None, "cloudformation:DetectStackDrift"])
def test_drift_detection_needs_only_its_policy(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext, drop: str | None
) -> None:
    resolved = resolved_template()
    user = accounts.function_user(resolved, "DriftDetectionFunction", "drift-detection", drop)
    accounts.client("sns").create_topic(Name="release-notifications")
    for region in (PRIMARY, SECONDARY):
        accounts.client("cloudformation", region).create_stack(StackName=APP, TemplateBody=APP_TEMPLATE)
    event = load_event("drift-detection", "job")
    handler = load_function("drift-detection").lambda_handler
    run_as(
        monkeypatch,
        user,
        resolved.function_environment("DriftDetectionFunction"),
        lambda: handler(event, lambda_context),
    )
    result = final_result(event)
    if drop is None:
        assert result.status == "Succeeded"
        assert result.output_variables["DriftStatus"] == "IN_SYNC"
    else:
        assert result.status == "Failed"


def write_release(accounts: Accounts) -> None:
    s3 = accounts.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = f"releases/{EXECUTION}/source.zip"
    version = s3.put_object(Bucket=BUCKET, Key=key, Body=source_zip())["VersionId"]
    record = {
        "bucket": BUCKET,
        "key": key,
        "version_id": version,
        "commit_id": "a" * 40,
        "execution_id": EXECUTION,
        "released_at": "2026-11-28T00:00:00+00:00",
        "template_path": "template.json",
        "stage_parameters": {"Name": "released"},
    }
    accounts.client("ssm").put_parameter(
        Name=solution.release_record(SOLUTION), Value=json.dumps(record), Type="SecureString", KeyId=KEY_ID
    )


@pytest.mark.parametrize("drop", [None, "ssm:GetParameter"])
def test_prepare_stage_artifact_needs_only_its_policy(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext, drop: str | None
) -> None:
    resolved = resolved_template("Yes")
    user = accounts.function_user(resolved, "PrepareStageArtifactFunction", "prepare-stage-artifact", drop)
    write_release(accounts)
    event = job_event("prepare-stage-artifact", "job", pipeline_artifacts_user(accounts))
    for artifact in event["CodePipeline.job"]["data"]["inputArtifacts"]:
        accounts.client("s3").put_object(
            Bucket=BUCKET, Key=artifact["location"]["s3Location"]["objectKey"], Body=source_zip()
        )
    handler = load_function("prepare-stage-artifact").lambda_handler
    run_as(
        monkeypatch,
        user,
        resolved.function_environment("PrepareStageArtifactFunction"),
        lambda: handler(event, lambda_context),
    )
    result = final_result(event)
    assert result.status == ("Succeeded" if drop is None else "Failed")


@pytest.mark.parametrize(
    "drop",
    [
        None,
        "cloudformation:UpdateStack",
        "cloudformation:DeleteStack",
        "cloudformation:GetTemplateSummary",
        "cloudformation:DescribeStackEvents",
        "cloudformation:DeleteChangeSet",
        "sns:Publish",
    ],
)
def test_stage_revert_needs_only_its_policy(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext, drop: str | None
) -> None:
    """Retain mode, DeployPrimary failed after DeploySecondary ran this execution's change: the stage is
    reverted to the release, the primary whose first creation failed is removed, the secondary returns
    to the release (its last operation is examined through its events), and the topic is told."""
    resolved = resolved_template("No")
    user = accounts.function_user(resolved, "StageRevertFunction", "stage-revert", drop)
    write_release(accounts)
    accounts.client("sns").create_topic(Name="release-notifications")
    newer = json.loads(APP_TEMPLATE)
    newer["Resources"]["Queue"] = {"Type": "AWS::SQS::Queue"}
    accounts.client("cloudformation").create_stack(StackName=f"{APP}-stage", TemplateBody=json.dumps(newer))
    accounts.client("cloudformation", PRIMARY).create_stack(StackName=APP, TemplateBody=json.dumps(newer))
    local_aws.set_stack_status(APP, PRIMARY, "ROLLBACK_COMPLETE", account_id=ACCOUNT)
    secondary = accounts.client("cloudformation", SECONDARY)
    secondary.create_stack(StackName=APP, TemplateBody=APP_TEMPLATE)
    secondary.update_stack(StackName=APP, TemplateBody=json.dumps(newer))
    event = load_event("stage-revert", "stage-failed")
    event["detail"]["execution-id"] = EXECUTION
    event["detail"]["stage"] = "DeployPrimary"
    pipeline = event["detail"]["pipeline"]
    local_aws.set_stage_execution(pipeline, "Stage", EXECUTION, "Succeeded")
    local_aws.set_stage_execution(pipeline, "DeploySecondary", EXECUTION, "Succeeded")
    local_aws.set_stage_execution(pipeline, "DeployPrimary", EXECUTION, "Failed")
    handler = load_function("stage-revert").lambda_handler
    env = resolved.function_environment("StageRevertFunction")
    if drop is None:
        run_as(monkeypatch, user, env, lambda: handler(event, lambda_context))
    else:
        with pytest.raises(Exception, match=r"AccessDenied|not authorized"):
            run_as(monkeypatch, user, env, lambda: handler(event, lambda_context))
        return
    cfn = accounts.client("cloudformation")
    for name, client in ((f"{APP}-stage", cfn), (APP, secondary)):
        body = client.get_template(StackName=name)["TemplateBody"]
        assert sorted((json.loads(body) if isinstance(body, str) else body)["Resources"]) == ["Topic"]
    stacks = cfn.list_stacks()["StackSummaries"]
    assert {s["StackName"]: s["StackStatus"] for s in stacks if s["StackName"] == APP} == {APP: "DELETE_COMPLETE"}


@pytest.mark.parametrize(
    "drop",
    [
        None,
        "codepipeline:ListPipelineExecutions",
        "codepipeline:GetPipeline",
        "cloudformation:DeleteChangeSet",
        "cloudformation:DescribeStackEvents",
    ],
)
def test_execution_gate_needs_only_its_policy(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext, drop: str | None
) -> None:
    """An earlier, finished execution left a change set on the primary (removed); the secondary's last
    update was rolled back (its events are read to see who started it)."""
    resolved = resolved_template()
    user = accounts.function_user(resolved, "ExecutionGateFunction", "execution-gate", drop)
    env = resolved.function_environment("ExecutionGateFunction")
    pipeline = accounts.client("codepipeline")
    solution.create_pipeline(accounts.client("iam"), pipeline, env["PIPELINE_NAME"], BUCKET, template=resolved)
    earlier = pipeline.start_pipeline_execution(name=env["PIPELINE_NAME"])["pipelineExecutionId"]
    local_aws.set_execution_status(env["PIPELINE_NAME"], earlier, "Failed")
    for region in (PRIMARY, SECONDARY):
        accounts.client("cloudformation", region).create_stack(StackName=APP, TemplateBody=APP_TEMPLATE)
    accounts.client("cloudformation", PRIMARY).create_change_set(
        StackName=APP, ChangeSetName=f"pipeline-{earlier}", TemplateBody=APP_TEMPLATE
    )
    local_aws.set_stack_status(APP, SECONDARY, "UPDATE_ROLLBACK_COMPLETE", account_id=ACCOUNT)
    execution = pipeline.start_pipeline_execution(name=env["PIPELINE_NAME"])["pipelineExecutionId"]
    event = load_event("execution-gate", "job")
    event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = json.dumps(
        {"executionId": execution}
    )
    handler = load_function("execution-gate").lambda_handler
    run_as(monkeypatch, user, env, lambda: handler(event, lambda_context))
    result = final_result(event)
    assert result.status == ("Succeeded" if drop is None else "Failed")
    if drop is None:
        assert accounts.client("cloudformation", PRIMARY).list_change_sets(StackName=APP)["Summaries"] == []
