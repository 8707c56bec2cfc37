"""One working scenario per function: what the emulator holds, the event, the function's environment
from template.yaml, and how to tell that the scenario did what a user expects.

The same scenarios feed the fuzz (its unmutated events), the fault injection and the IAM mutation.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from moto.cloudformation.models import cloudformation_backends

import local_aws
from local_aws.cloudformation import ResolvedTemplate
from release_pipeline import deployment_map, rollout
from tests.integration import test_least_privilege as lp
from tests.support import maps, solution
from tests.support import rollout as fleets
from tests.support.events import continuation_of, load_event

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
    # For a job that returns a continuation token: True when, after CodePipeline's later invocations
    # (``follow``), the job ended as the user expects. ``succeeded`` judges the first invocation alone.
    finished: Callable[[lp.Accounts], bool] | None = None
    # Before each later invocation: what CodePipeline's wait between invocations lets happen
    between: Callable[[lp.Accounts], None] = lambda _: None
    # For a step of a state machine (deploy-target): the events it receives in turn (``event`` is the
    # first), each step's expected answer as (State, Key), and the answers given so far, in order
    steps: list[dict[str, Any]] = field(default_factory=list)
    expected: list[tuple[str, str]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    # For a step function: how many times this execution's change set ran on each target (never above one)
    executions: Callable[[lp.Accounts], dict[str, int]] = lambda _: {}


# A job followed to its end gives up after this many invocations (each scenario's ends in two or three).
MAX_INVOCATIONS = 5


def follow(scenario: Scenario, accounts: lp.Accounts, invoke: Callable[[dict[str, Any]], Any]) -> None:
    """The scenario's event, then each continuation CodePipeline would send (a new job each time) until a
    final result, when the scenario has a ``finished`` check; ``invoke`` runs the handler on an event and
    gives its answer. A state machine's step runs each of its ``steps`` in turn instead (see run_steps)."""
    if scenario.steps:
        run_steps(scenario, invoke)
        return
    event = copy.deepcopy(scenario.event)
    invoke(copy.deepcopy(event))
    for _ in range(MAX_INVOCATIONS - 1):
        if scenario.finished is None:
            return
        results = [r for r in local_aws.job_results(event["CodePipeline.job"]["id"]) if r.accepted]
        if len(results) != 1 or results[0].continuation_token is None:
            return
        scenario.between(accounts)
        event = continuation_of(event, results[0].continuation_token)
        invoke(copy.deepcopy(event))


def run_steps(scenario: Scenario, invoke: Callable[[dict[str, Any]], Any]) -> None:
    """Each step in turn, its answer kept, as the state machine would go on: until a step raises (the
    error propagates: the state machine's Catch ends the wave) or answers other than expected (the state
    machine would branch elsewhere)."""
    for event, (state, _) in zip(scenario.steps, scenario.expected, strict=True):
        answer = invoke(copy.deepcopy(event))
        scenario.answers.append(answer)
        if not isinstance(answer, dict) or answer.get("State") != state:
            return


def _final_result(accounts: lp.Accounts) -> local_aws.ReportedJobResult | None:
    """The last job result CodePipeline accepted (the final invocation's, after ``follow``)."""
    accepted = [r for r in local_aws.job_results() if r.accepted]
    return accepted[-1] if accepted else None


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


# ------------------------------------------------------------------------------ with a deployment map

# The rollout state machine in the scenarios: a Pass state whose output is a released rollout's, so that
# an execution ends at once. start-rollout starts and follows it; what the real definition does is
# deploy-target's (statemachines/rollout.asl.json, run in tests/integration/test_rollout_workflow.py).
ROLLOUT_MACHINE = "release-pipeline-rollout"
_RELEASED_DEFINITION = json.dumps(
    {"StartAt": "Released", "States": {"Released": {"Type": "Pass", "Result": {"Outcome": "RELEASED"}, "End": True}}}
)
_MACHINE_ARN = f"arn:aws:states:{PRIMARY}:{lp.ACCOUNT}:stateMachine:{ROLLOUT_MACHINE}"
_TOPIC_ARN = f"arn:aws:sns:{PRIMARY}:{lp.ACCOUNT}:release-notifications"


def map_template() -> ResolvedTemplate:
    """The solution with DeploymentMapPath set (its map functions exist only then), resolved as
    lp.resolved_template resolves it."""
    return solution.resolved(
        "No",
        stack_name=lp.SOLUTION,
        physical={
            "ArtifactBucket": {"Ref": lp.BUCKET, "Arn": f"arn:aws:s3:::{lp.BUCKET}"},
            "ArtifactKey": {"Arn": lp.KEY_ID},
            "NotificationTopic": {"Ref": _TOPIC_ARN},
            "Pipeline": {"Ref": "release-pipeline"},
            "CloudFormationExecutionRole": {"Arn": f"arn:aws:iam::{lp.ACCOUNT}:role/cfn-exec"},
            "StageRevertDeadLetterQueue": {"Arn": f"arn:aws:sqs:{PRIMARY}:{lp.ACCOUNT}:dlq"},
            "RolloutStateMachine": {"Ref": _MACHINE_ARN, "Name": ROLLOUT_MACHINE},
        },
        TemplatePath="template.json",
        StageParameters='{"Name": "stage"}',
        DeploymentMapPath=maps.MAP_PATH,
    )


def _map_source(template: ResolvedTemplate, version: str = "2") -> bytes:
    """The application repository at release ``version`` with fleets.THREE_WAVES as its map (three waves,
    four targets in three Regions and two accounts), the template where TemplatePath says."""
    fleet = fleets.THREE_WAVES
    files = {
        template.parameters["TemplatePath"]: fleets.template(version),
        maps.MAP_PATH: json.dumps(fleet.document),
        **{path: json.dumps({"Name": name}) for path, name in fleet.names.items()},
    }
    return solution.source_zip(files)


def _map_release(accounts: lp.Accounts, template: ResolvedTemplate, release: str = "2") -> None:
    """The last release went out with the same map: its record, and its source (at ``release``) kept under
    releases/."""
    key = "releases/r1/source.zip"
    body = _map_source(template, release)
    version = accounts.client("s3").put_object(Bucket=lp.BUCKET, Key=key, Body=body)["VersionId"]
    record = {
        "bucket": lp.BUCKET,
        "key": key,
        "version_id": version,
        "commit_id": "c1",
        "execution_id": "r1",
        "released_at": "2026-11-28T00:00:00+00:00",
        "template_path": template.parameters["TemplatePath"],
        "stage_parameters": {},
    }
    accounts.client("ssm").put_parameter(
        Name=solution.release_record(lp.SOLUTION), Value=json.dumps(record), Type="SecureString", KeyId=lp.KEY_ID
    )


def _map_job(accounts: lp.Accounts, function: str, template: ResolvedTemplate, case: str = "job") -> dict[str, Any]:
    """``function``'s sample job (``case``), its artifact credentials the pipeline's, its Source artifact the
    map's repository in the artifact bucket."""
    event = lp.job_event(function, case, lp.pipeline_artifacts_user(accounts))
    s3 = accounts.client("s3")
    s3.create_bucket(Bucket=lp.BUCKET)
    s3.put_bucket_versioning(Bucket=lp.BUCKET, VersioningConfiguration={"Status": "Enabled"})
    (artifact,) = event["CodePipeline.job"]["data"]["inputArtifacts"]
    s3.put_object(Bucket=lp.BUCKET, Key=artifact["location"]["s3Location"]["objectKey"], Body=_map_source(template))
    return event


def check_deployment_map(accounts: lp.Accounts) -> Scenario:
    """Validate: the map of three waves and four targets passes, its numbers as output variables."""
    template = map_template()
    event = _map_job(accounts, "check-deployment-map", template)

    def counted(_: lp.Accounts) -> bool:
        result = next(r for r in local_aws.job_results(event["CodePipeline.job"]["id"]) if r.accepted)
        return result.output_variables.get("Waves") == "3" and result.output_variables.get("Targets") == "4"

    env = template.function_environment("CheckDeploymentMapFunction")
    return Scenario(
        "check-deployment-map", "CheckDeploymentMapFunction", event, env, _and(_job_succeeded(event), counted)
    )


def _targets() -> list[tuple[str, str]]:
    """(account, Region) of each target of the map, in map order."""
    return [(t.account or lp.ACCOUNT, t.region) for t in fleets.THREE_WAVES.targets()]


def target_change_sets(accounts: lp.Accounts) -> Scenario:
    """CheckChanges with a map: the last release went out with the same map, yet no target has a stack.
    The first invocation makes a change set on every target (the one in the other account through its
    deploy role) and waits; the last compares with the released map, publishes the report and succeeds
    with the number of targets that change."""
    template = map_template()
    accounts.client("sns").create_topic(Name="release-notifications")
    event = _map_job(accounts, "target-change-sets", template)
    _map_release(accounts, template)
    env = template.function_environment("TargetChangeSetsFunction")
    stack = env["APPLICATION_STACK_NAME"]
    name = env["CHANGE_SET_PREFIX"] + lp.EXECUTION
    _deploy_roles(accounts)

    def made(_: lp.Accounts) -> bool:
        for account, region in _targets():
            backend = cloudformation_backends[account][region]
            if not any(c.change_set_name == name and c.stack_name == stack for c in backend.change_sets.values()):
                return False
        return True

    def reported(_: lp.Accounts) -> bool:
        final = _final_result(accounts)
        return (
            final is not None
            and final.final
            and final.status == "Succeeded"
            and final.output_variables.get("ChangedTargets") == "4"
            and made(accounts)
        )

    return Scenario(
        "target-change-sets",
        "TargetChangeSetsFunction",
        event,
        env,
        _and(_job_succeeded(event), made),
        finished=reported,
    )


def _deploy_roles(accounts: lp.Accounts) -> None:
    """The deploy role bootstrap/target-account.yaml makes in the other account, trusting the solution's
    account (all it may do there is the target account's business, not the function's policy)."""
    from moto.iam.models import iam_backends

    iam = iam_backends[fleets.OTHER]["global"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": lp.ACCOUNT}, "Action": "sts:AssumeRole"}],
    }
    every = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    deploy, _ = rollout.bootstrap_role_names(lp.ACCOUNT)
    if deploy not in {r.name for r in iam.roles.values()}:
        iam.create_role(
            role_name=deploy,
            assume_role_policy_document=json.dumps(trust),
            path="/",
            permissions_boundary=None,
            description="",
            tags=[],
            max_session_duration=None,
        )
        iam.put_role_policy(deploy, "deploy", json.dumps(every))


def start_rollout(accounts: lp.Accounts) -> Scenario:
    """DeployWaves: the first invocation starts the rollout execution of the reviewed map (named after the
    pipeline execution) and waits; the next finds it released, reports it and succeeds."""
    template = map_template()
    accounts.client("sns").create_topic(Name="release-notifications")
    event = _map_job(accounts, "start-rollout", template)
    env = template.function_environment("StartRolloutFunction")
    sfn = accounts.client("stepfunctions")
    principal = {"Service": "states.amazonaws.com"}
    trust = {"Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]}
    role = accounts.client("iam").create_role(RoleName="rollout", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    created = sfn.create_state_machine(name=ROLLOUT_MACHINE, definition=_RELEASED_DEFINITION, roleArn=role["Arn"])
    arn = created["stateMachineArn"]
    assert arn == env["STATE_MACHINE_ARN"], (arn, env["STATE_MACHINE_ARN"])
    execution = f"{arn.replace(':stateMachine:', ':execution:')}:{lp.EXECUTION}"

    def started(_: lp.Accounts) -> bool:
        listed = sfn.list_executions(stateMachineArn=arn)["executions"]
        if [e["name"] for e in listed] != [lp.EXECUTION]:
            return False
        document = json.loads(sfn.describe_execution(executionArn=execution)["input"])
        keys = [t["Key"] for wave in document["Waves"] for t in wave["Targets"]]
        stack = env["APPLICATION_STACK_NAME"]
        expected = [rollout.target_key(a, r, stack) for a, r in _targets()]
        return keys == expected

    def closed(_: lp.Accounts) -> None:
        """The execution ends (a Pass state) while CodePipeline waits to invoke the action again."""
        deadline = time.monotonic() + 10
        while sfn.describe_execution(executionArn=execution)["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.01)

    def released(_: lp.Accounts) -> bool:
        final = _final_result(accounts)
        return (
            final is not None
            and final.final
            and final.status == "Succeeded"
            and final.output_variables.get("Outcome") == "RELEASED"
            and final.output_variables.get("Targets") == "4"
        )

    return Scenario(
        "start-rollout",
        "StartRolloutFunction",
        event,
        env,
        _and(_job_succeeded(event), started),
        finished=_and(started, released),
        between=closed,
    )


def deploy_target(accounts: lp.Accounts) -> Scenario:
    """The rollout's steps for two targets of the map, each running release 1 with a reviewed change set to
    release 2: the canary (the solution's account) executed and checked to DONE, the target in the other
    account (through its deploy role) executed and checked to DONE; then, a later wave having failed, the
    canary returned to release 1 (the update started, then followed to RETURNED)."""
    template = map_template()
    env = template.function_environment("DeployTargetFunction")
    s3 = accounts.client("s3")
    s3.create_bucket(Bucket=lp.BUCKET)
    s3.put_bucket_versioning(Bucket=lp.BUCKET, VersioningConfiguration={"Status": "Enabled"})
    _map_release(accounts, template, release="1")
    _deploy_roles(accounts)
    stack = env["APPLICATION_STACK_NAME"]
    change_set = f"pipeline-{lp.EXECUTION}"
    fleet = fleets.THREE_WAVES
    canary, _, other, _ = fleet.targets()
    parsed = deployment_map.parse(
        json.dumps(fleet.document), read_file=fleet.parameter_file, default_stack_name=stack, home_account=lp.ACCOUNT
    )
    document = rollout.workflow_input(
        parsed,
        execution_id=lp.EXECUTION,
        change_set_name=change_set,
        partition="aws",
        home_execution_role_arn=f"arn:aws:iam::{lp.ACCOUNT}:role/cfn-exec",
        poll_seconds=30,
    )
    by_region = {t["Region"]: t for t in document["Targets"]}
    home, away = by_region[canary.region], by_region[other.region]
    for entry, spec in ((home, canary), (away, other)):
        client = _target_cloudformation(accounts, entry["Region"], spec.account)
        parameters = [{"ParameterKey": "Name", "ParameterValue": fleet.names[spec.parameter_file]}]
        client.create_stack(StackName=stack, TemplateBody=fleets.template("1"), Parameters=parameters)
        client.create_change_set(
            StackName=stack, ChangeSetName=change_set, TemplateBody=fleets.template("2"), Parameters=parameters
        )
    began = datetime.now(UTC).isoformat()

    def step(action: str, entry: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {"Action": action, "Target": entry, "PollSeconds": 30, **more}

    steps = [
        step("execute", home),
        step("status", home, StartedAt=began),
        step("execute", away),
        step("status", away, StartedAt=began),
        step("return", home),
        step("return", home, StartedAt=began),
    ]
    expected = [
        (rollout.IN_PROGRESS, home["Key"]),
        (rollout.DONE, home["Key"]),
        (rollout.IN_PROGRESS, away["Key"]),
        (rollout.DONE, away["Key"]),
        (rollout.IN_PROGRESS, home["Key"]),
        (rollout.RETURNED, home["Key"]),
    ]

    def executions(_: lp.Accounts) -> dict[str, int]:
        """How many updates of each target ran under this execution's execute token."""
        counted = {}
        for entry, spec in ((home, canary), (away, other)):
            client = _target_cloudformation(accounts, entry["Region"], spec.account)
            events = client.describe_stack_events(StackName=stack)["StackEvents"]
            counted[entry["Key"]] = sum(
                1
                for e in events
                if e.get("ClientRequestToken") == rollout.EXECUTE_TOKEN_PREFIX + lp.EXECUTION
                and e["ResourceType"] == "AWS::CloudFormation::Stack"
                and e["ResourceStatus"] == "UPDATE_COMPLETE"
            )
        return counted

    def deployed_and_returned(_: lp.Accounts) -> bool:
        answered = [(a.get("State"), a.get("Key")) for a in scenario.answers if isinstance(a, dict)]
        values = {
            entry["Key"]: fleets.value(_target_cloudformation(accounts, entry["Region"], spec.account), stack)
            for entry, spec in ((home, canary), (away, other))
        }
        once = executions(accounts) == {home["Key"]: 1, away["Key"]: 1}
        return answered == expected and values == {home["Key"]: "1", away["Key"]: "2"} and once

    scenario = Scenario(
        "deploy-target",
        "DeployTargetFunction",
        steps[0],
        env,
        deployed_and_returned,
        steps=steps,
        expected=expected,
        executions=executions,
    )
    return scenario


def _target_cloudformation(accounts: lp.Accounts, region: str, account: str | None) -> Any:
    """The administrator's CloudFormation in a target's Region and account (through the deploy role in
    another account)."""
    if account is None:
        return accounts.client("cloudformation", region)
    deploy, _ = rollout.bootstrap_role_names(lp.ACCOUNT)
    role = f"arn:aws:iam::{account}:role/{deploy}"
    credentials = accounts.client("sts").assume_role(RoleArn=role, RoleSessionName="audit")["Credentials"]
    return boto3.client(
        "cloudformation",
        region_name=region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def drift_detection_with_map(accounts: lp.Accounts) -> Scenario:
    """DetectDrift with a map: every target of the map (one in the other account, through its deploy role)
    runs release 2 untouched; the job ends IN_SYNC."""
    template = map_template()
    accounts.client("sns").create_topic(Name="release-notifications")
    event = _map_job(accounts, "drift-detection", template, "deployment-map")
    _deploy_roles(accounts)
    env = template.function_environment("DriftDetectionFunction")
    fleet = fleets.THREE_WAVES
    for spec in fleet.targets():
        parameters = [{"ParameterKey": "Name", "ParameterValue": fleet.names[spec.parameter_file]}]
        client = _target_cloudformation(accounts, spec.region, spec.account)
        client.create_stack(StackName=lp.APP, TemplateBody=fleets.template("2"), Parameters=parameters)

    def in_sync(_: lp.Accounts) -> bool:
        final = _final_result(accounts)
        return (
            final is not None
            and final.final
            and final.status == "Succeeded"
            and final.output_variables.get("DriftStatus") == "IN_SYNC"
        )

    return Scenario("drift-detection", "DriftDetectionFunction", event, env, _job_succeeded(event), finished=in_sync)


# The scenarios of functions that work otherwise with a deployment map (their map-only statements are
# proven with these).
MAP_SCENARIOS: dict[str, Callable[[lp.Accounts], Scenario]] = {
    "drift-detection": drift_detection_with_map,
}


SCENARIOS: dict[str, Callable[[lp.Accounts], Scenario]] = {
    "prepare-stage-artifact": prepare_stage_artifact,
    "change-detection": change_detection,
    "drift-detection": drift_detection,
    "execution-gate": execution_gate,
    "record-release": record_release,
    "stage-revert": stage_revert,
    "check-deployment-map": check_deployment_map,
    "target-change-sets": target_change_sets,
    "start-rollout": start_rollout,
    "deploy-target": deploy_target,
}
