"""One working scenario per function: what the emulator holds, the event, the function's environment
from template.yaml, and how to tell that the scenario did what a user expects.

The same scenarios feed the fuzz (its unmutated events), the fault injection and the IAM mutation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.cloudformation.models import cloudformation_backends

import local_aws
from tests.integration import test_least_privilege as lp
from tests.support import solution
from tests.support.events import load_event

PRIMARY, SECONDARY = lp.PRIMARY, lp.SECONDARY


@dataclass
class Scenario:
    function: str
    logical_id: str
    event: dict[str, Any]
    environment: dict[str, str]
    # True when the emulator's state (and the job's result) is what the user expects after a success
    succeeded: Callable[[lp.Accounts], bool]
    # Puts back what a success consumes, so that the same event can succeed again (for the fuzz)
    replenish: Callable[[lp.Accounts], None] = lambda _: None


def _job_succeeded(event: dict[str, Any]) -> Callable[[lp.Accounts], bool]:
    job_id = event["CodePipeline.job"]["id"]

    def check(_: lp.Accounts) -> bool:
        results = [r for r in local_aws.job_results(job_id) if r.accepted]
        return len(results) == 1 and results[0].status == "Succeeded"

    return check


def _and(*checks: Callable[[lp.Accounts], bool]) -> Callable[[lp.Accounts], bool]:
    return lambda accounts: all(check(accounts) for check in checks)


def record_release(accounts: lp.Accounts) -> Scenario:
    template = lp.resolved_template()
    event = lp.job_event("record-release", "job", lp.pipeline_artifacts_user(accounts))
    lp.bucket_with_source(accounts, event)

    def recorded(accounts: lp.Accounts) -> bool:
        names = [p["Name"] for p in accounts.client("ssm").describe_parameters()["Parameters"]]
        return names == [solution.release_record(lp.SOLUTION)]

    env = template.function_environment("RecordReleaseFunction")
    return Scenario("record-release", "RecordReleaseFunction", event, env, _and(_job_succeeded(event), recorded))


def change_detection(accounts: lp.Accounts) -> Scenario:
    template = lp.resolved_template()
    accounts.client("sns").create_topic(Name="release-notifications")
    accounts.client("cloudformation", SECONDARY).create_stack(StackName=lp.APP, TemplateBody=lp.APP_TEMPLATE)
    for region, kind in ((PRIMARY, "CREATE"), (SECONDARY, "UPDATE")):
        accounts.client("cloudformation", region).create_change_set(
            StackName=lp.APP, ChangeSetName=f"pipeline-{lp.EXECUTION}", ChangeSetType=kind, TemplateBody=lp.APP_TEMPLATE
        )
    event = load_event("change-detection", "job")
    job_succeeded = _job_succeeded(event)

    def published(accounts: lp.Accounts) -> bool:
        result = next(r for r in local_aws.job_results(event["CodePipeline.job"]["id"]) if r.accepted)
        secondary = accounts.client("cloudformation", SECONDARY).list_change_sets(StackName=lp.APP)["Summaries"]
        return result.output_variables.get("HasChanges") == "true" and secondary == []

    def replenish(accounts: lp.Accounts) -> None:
        """The secondary's empty change set, removed by every success."""
        secondary = accounts.client("cloudformation", SECONDARY)
        if not secondary.list_change_sets(StackName=lp.APP)["Summaries"]:
            secondary.create_change_set(
                StackName=lp.APP, ChangeSetName=f"pipeline-{lp.EXECUTION}", TemplateBody=lp.APP_TEMPLATE
            )

    env = template.function_environment("ChangeDetectionFunction")
    return Scenario(
        "change-detection", "ChangeDetectionFunction", event, env, _and(job_succeeded, published), replenish
    )


def drift_detection(accounts: lp.Accounts) -> Scenario:
    template = lp.resolved_template()
    accounts.client("sns").create_topic(Name="release-notifications")
    for region in (PRIMARY, SECONDARY):
        accounts.client("cloudformation", region).create_stack(StackName=lp.APP, TemplateBody=lp.APP_TEMPLATE)
    event = load_event("drift-detection", "job")
    job_succeeded = _job_succeeded(event)

    def in_sync(_: lp.Accounts) -> bool:
        result = next(r for r in local_aws.job_results(event["CodePipeline.job"]["id"]) if r.accepted)
        return result.output_variables.get("DriftStatus") == "IN_SYNC"

    env = template.function_environment("DriftDetectionFunction")
    return Scenario("drift-detection", "DriftDetectionFunction", event, env, _and(job_succeeded, in_sync))


def prepare_stage_artifact(accounts: lp.Accounts) -> Scenario:
    template = lp.resolved_template("Yes")
    lp.write_release(accounts)
    event = lp.job_event("prepare-stage-artifact", "job", lp.pipeline_artifacts_user(accounts))
    for artifact in event["CodePipeline.job"]["data"]["inputArtifacts"]:
        accounts.client("s3").put_object(
            Bucket=lp.BUCKET, Key=artifact["location"]["s3Location"]["objectKey"], Body=lp.source_zip()
        )
    outputs = [a["location"]["s3Location"]["objectKey"] for a in event["CodePipeline.job"]["data"]["outputArtifacts"]]

    def written(accounts: lp.Accounts) -> bool:
        listed = accounts.client("s3").list_objects_v2(Bucket=lp.BUCKET).get("Contents", [])
        return set(outputs) <= {o["Key"] for o in listed}

    env = template.function_environment("PrepareStageArtifactFunction")
    return Scenario(
        "prepare-stage-artifact", "PrepareStageArtifactFunction", event, env, _and(_job_succeeded(event), written)
    )


def execution_gate(accounts: lp.Accounts) -> Scenario:
    template = lp.resolved_template()
    env = template.function_environment("ExecutionGateFunction")
    pipeline = accounts.client("codepipeline")
    solution.create_pipeline(accounts.client("iam"), pipeline, env["PIPELINE_NAME"], lp.BUCKET, template=template)
    earlier = pipeline.start_pipeline_execution(name=env["PIPELINE_NAME"])["pipelineExecutionId"]
    local_aws.set_execution_status(env["PIPELINE_NAME"], earlier, "Failed")
    for region in (PRIMARY, SECONDARY):
        accounts.client("cloudformation", region).create_stack(StackName=lp.APP, TemplateBody=lp.APP_TEMPLATE)
    accounts.client("cloudformation", PRIMARY).create_change_set(
        StackName=lp.APP, ChangeSetName=f"pipeline-{earlier}", TemplateBody=lp.APP_TEMPLATE
    )
    stacks = cloudformation_backends[lp.ACCOUNT][SECONDARY].stacks.values()
    next(s for s in stacks).status = "UPDATE_ROLLBACK_COMPLETE"
    execution = pipeline.start_pipeline_execution(name=env["PIPELINE_NAME"])["pipelineExecutionId"]
    event = load_event("execution-gate", "job")
    event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = json.dumps(
        {"executionId": execution}
    )

    def cleaned(accounts: lp.Accounts) -> bool:
        summaries = accounts.client("cloudformation", PRIMARY).list_change_sets(StackName=lp.APP)["Summaries"]
        return not summaries

    return Scenario("execution-gate", "ExecutionGateFunction", event, env, _and(_job_succeeded(event), cleaned))


def stage_revert(accounts: lp.Accounts) -> Scenario:
    """Retain mode, DeployPrimary failed after DeploySecondary ran this execution's change."""
    template = lp.resolved_template("No")
    lp.write_release(accounts)
    accounts.client("sns").create_topic(Name="release-notifications")
    newer = json.loads(lp.APP_TEMPLATE)
    newer["Resources"]["Queue"] = {"Type": "AWS::SQS::Queue"}
    accounts.client("cloudformation").create_stack(StackName=f"{lp.APP}-stage", TemplateBody=json.dumps(newer))
    accounts.client("cloudformation", PRIMARY).create_stack(StackName=lp.APP, TemplateBody=json.dumps(newer))
    primary = next(s for s in cloudformation_backends[lp.ACCOUNT][PRIMARY].stacks.values() if s.name == lp.APP)
    primary.status = "ROLLBACK_COMPLETE"
    secondary = accounts.client("cloudformation", SECONDARY)
    secondary.create_stack(StackName=lp.APP, TemplateBody=lp.APP_TEMPLATE)
    secondary.update_stack(StackName=lp.APP, TemplateBody=json.dumps(newer))
    event = load_event("stage-revert", "stage-failed")
    event["detail"]["execution-id"] = lp.EXECUTION
    event["detail"]["stage"] = "DeployPrimary"
    pipeline = event["detail"]["pipeline"]
    local_aws.set_stage_execution(pipeline, "Stage", lp.EXECUTION, "Succeeded")
    local_aws.set_stage_execution(pipeline, "DeploySecondary", lp.EXECUTION, "Succeeded")
    local_aws.set_stage_execution(pipeline, "DeployPrimary", lp.EXECUTION, "Failed")

    def reverted(accounts: lp.Accounts) -> bool:
        cfn = accounts.client("cloudformation")
        for name, client in ((f"{lp.APP}-stage", cfn), (lp.APP, secondary)):
            body = client.get_template(StackName=name)["TemplateBody"]
            if sorted((json.loads(body) if isinstance(body, str) else body)["Resources"]) != ["Topic"]:
                return False
        summaries = cfn.list_stacks()["StackSummaries"]
        statuses = {s["StackName"]: s["StackStatus"] for s in summaries if s["StackName"] == lp.APP}
        return bool(statuses == {lp.APP: "DELETE_COMPLETE"})

    def replenish(accounts: lp.Accounts) -> None:
        """The stage stack and the secondary back on the newer template, the primary's failed creation."""
        cfn = accounts.client("cloudformation")
        for name, client in ((f"{lp.APP}-stage", cfn), (lp.APP, secondary)):
            body = client.get_template(StackName=name)["TemplateBody"]
            if sorted((json.loads(body) if isinstance(body, str) else body)["Resources"]) == ["Topic"]:
                client.update_stack(StackName=name, TemplateBody=json.dumps(newer))
        stacks = cloudformation_backends[lp.ACCOUNT][PRIMARY].stacks.values()
        if not [s for s in stacks if s.name == lp.APP and s.status != "DELETE_COMPLETE"]:
            cfn.create_stack(StackName=lp.APP, TemplateBody=json.dumps(newer))
            created = [s for s in stacks if s.name == lp.APP and s.status != "DELETE_COMPLETE"]
            created[0].status = "ROLLBACK_COMPLETE"

    env = template.function_environment("StageRevertFunction")
    return Scenario("stage-revert", "StageRevertFunction", event, env, reverted, replenish)


SCENARIOS: dict[str, Callable[[lp.Accounts], Scenario]] = {
    "prepare-stage-artifact": prepare_stage_artifact,
    "change-detection": change_detection,
    "drift-detection": drift_detection,
    "execution-gate": execution_gate,
    "record-release": record_release,
    "stage-revert": stage_revert,
}
