"""template.yaml and the code agree: names, variables, artifacts and environment, in both stage modes."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from local_aws.cloudformation import ResolvedTemplate
from release_pipeline import changes, drift, jobs, regional_store, stage_artifact
from release_pipeline.changes import ChangeDetectionConfig
from release_pipeline.drift import DriftDetectionConfig
from release_pipeline.errors import ConfigurationError
from release_pipeline.gate import ExecutionGateConfig
from release_pipeline.jobs import SOURCE_ARTIFACT
from release_pipeline.map_check import MapCheckConfig
from release_pipeline.parameter_sets import PARAMETER_SET_ACTIONS
from release_pipeline.record_release import RecordReleaseConfig
from release_pipeline.revert import REVERT_STATES, STAGE_EVENT, StageRevertConfig
from release_pipeline.rollout import RolloutConfig
from release_pipeline.stage_artifact import PrepareStageArtifactConfig
from release_pipeline.start_rollout import StartRolloutConfig
from release_pipeline.target_changes import TargetChangesConfig
from tests.support import solution
from tests.support.events import REPO_ROOT

CONFIGS: dict[str, Any] = {
    "PrepareStageArtifactFunction": PrepareStageArtifactConfig,
    "ChangeDetectionFunction": ChangeDetectionConfig,
    "DriftDetectionFunction": DriftDetectionConfig,
    "ExecutionGateFunction": ExecutionGateConfig,
    "RecordReleaseFunction": RecordReleaseConfig,
    "StageRevertFunction": StageRevertConfig,
}
# The functions template.yaml creates only with a deployment map (DeploymentMapPath set).
MAP_CONFIGS: dict[str, Any] = {
    "CheckDeploymentMapFunction": MapCheckConfig,
    "TargetChangeSetsFunction": TargetChangesConfig,
    "DeployTargetFunction": RolloutConfig,
    "StartRolloutFunction": StartRolloutConfig,
}
MAP_PATH = "deployment-map.json"
VARIABLE = re.compile(r"#\{([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)\}")
EXECUTION_CHANGE_SET = "pipeline-#{codepipeline.PipelineExecutionId}"


@pytest.fixture(params=["Yes", "No"], ids=["delete-mode", "retain-mode"])
def resolved(request: pytest.FixtureRequest) -> ResolvedTemplate:
    return solution.resolved(request.param)


def stages(resolved: ResolvedTemplate) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = resolved.resource("Pipeline")["Properties"]["Stages"]
    return result


def actions(resolved: ResolvedTemplate) -> Iterator[tuple[str, dict[str, Any]]]:
    for stage in stages(resolved):
        for action in stage["Actions"]:
            yield stage["Name"], action


def environment(resolved: ResolvedTemplate, function: str) -> dict[str, str]:
    return resolved.function_environment(function)


def lambda_environment(resolved: ResolvedTemplate, function: str) -> dict[str, str]:
    """The function's variables as Lambda gives them: the template's, and AWS_REGION, set by the runtime."""
    return {**environment(resolved, function), "AWS_REGION": resolved.pseudo["AWS::Region"]}


@pytest.mark.parametrize("function", sorted(CONFIGS))
def test_every_function_gets_the_environment_its_config_reads(resolved: ResolvedTemplate, function: str) -> None:
    config = CONFIGS[function].from_env(lambda_environment(resolved, function))
    stacks = getattr(config, "stacks", None)
    if stacks is not None:  # the primary Region is the one the solution (and so the function) runs in
        assert stacks.regions.primary == resolved.pseudo["AWS::Region"]


@pytest.mark.parametrize("function", sorted(CONFIGS))
def test_the_template_sets_no_variable_the_function_does_not_read(resolved: ResolvedTemplate, function: str) -> None:
    assert_every_variable_read(resolved, function, CONFIGS[function])


def assert_every_variable_read(resolved: ResolvedTemplate, function: str, config: Any) -> None:
    """GIVEN a function's template variables WHEN one is left out THEN its configuration fails, or, for a
    variable that may be empty (DEPLOYMENT_MAP_PATH without a map), another value of it gives another
    configuration: every variable is read (Powertools reads its own; only sam local invoke reads the local
    endpoint)."""
    variables = lambda_environment(resolved, function)
    for name in sorted(
        set(variables) - {"AWS_REGION", "LOCAL_ENDPOINT_URL", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"}
    ):
        without = {key: value for key, value in variables.items() if key != name}
        try:
            left_out = config.from_env(without)
        except ConfigurationError as error:
            problem = str(error)
        else:
            assert config.from_env({**variables, name: "probe"}) != left_out, f"{function} never reads {name}"
            continue
        assert name in problem


@pytest.fixture(scope="module")
def with_map() -> ResolvedTemplate:
    return solution.resolved("Yes", DeploymentMapPath=MAP_PATH)


@pytest.mark.parametrize("function", sorted(CONFIGS | MAP_CONFIGS))
def test_with_a_deployment_map_every_function_reads_what_the_template_sets(
    with_map: ResolvedTemplate, function: str
) -> None:
    config = (CONFIGS | MAP_CONFIGS)[function]
    assert config.from_env(lambda_environment(with_map, function))
    assert_every_variable_read(with_map, function, config)


def test_without_a_deployment_map_the_template_makes_none_of_its_functions() -> None:
    for mode in ("Yes", "No"):
        template = solution.resolved(mode)
        assert not template.conditions["HasDeploymentMap"]
        resources = template.raw["Resources"]
        made = [name for name in MAP_CONFIGS if template.conditions.get(resources[name].get("Condition", ""), True)]
        assert made == [], f"made without a map: {made}"


def test_output_variables_used_by_the_pipeline_are_the_ones_the_functions_publish(resolved: ResolvedTemplate) -> None:
    published = {"Changes": set(changes.OUTPUT_VARIABLES), "Drift": set(drift.OUTPUT_VARIABLES)}
    namespaces = {action.get("Namespace") for _, action in actions(resolved)}
    used = set(VARIABLE.findall(json.dumps(stages(resolved))))
    assert used, "the pipeline reads no action variables at all"
    for namespace, name in used:
        assert namespace in namespaces | {"codepipeline"}, f"#{{{namespace}.{name}}} has no such namespace"
        if namespace in published:
            assert name in published[namespace], f"#{{{namespace}.{name}}} is never published"


def test_change_detection_and_drift_detection_actions_carry_their_namespaces(resolved: ResolvedTemplate) -> None:
    by_function = {
        action["Configuration"]["FunctionName"]: action
        for _, action in actions(resolved)
        if action["ActionTypeId"]["Provider"] == "Lambda"
    }
    assert by_function["ChangeDetectionFunction"]["Namespace"] == "Changes"
    assert by_function["DriftDetectionFunction"]["Namespace"] == "Drift"
    user_parameters = json.loads(by_function["ChangeDetectionFunction"]["Configuration"]["UserParameters"])
    assert user_parameters == {"executionId": "#{codepipeline.PipelineExecutionId}"}
    release = json.loads(by_function["RecordReleaseFunction"]["Configuration"]["UserParameters"])
    assert release["executionId"] == "#{codepipeline.PipelineExecutionId}"
    assert [a["Name"] for a in by_function["RecordReleaseFunction"]["InputArtifacts"]] == [SOURCE_ARTIFACT]


def test_the_gate_runs_before_any_change_set_is_created(resolved: ResolvedTemplate) -> None:
    check = next(stage for stage in stages(resolved) if stage["Name"] == "CheckChanges")
    gate = check["Actions"][0]
    assert gate["Configuration"]["FunctionName"] == "ExecutionGateFunction"
    assert json.loads(gate["Configuration"]["UserParameters"]) == {"executionId": "#{codepipeline.PipelineExecutionId}"}
    later = check["Actions"][1:]
    assert later
    assert all(a["RunOrder"] > gate["RunOrder"] for a in later)
    pipeline_name = resolved.resource("Pipeline")["Properties"]["Name"]
    assert environment(resolved, "ExecutionGateFunction")["PIPELINE_NAME"] == pipeline_name
    policy = json.dumps(resolved.function_policy("ExecutionGateFunction"))
    assert f":{pipeline_name}" in policy


def test_every_change_set_action_uses_the_execution_change_set(resolved: ResolvedTemplate) -> None:
    modes = [
        (stage, action["Configuration"])
        for stage, action in actions(resolved)
        if action["Configuration"].get("ActionMode", "").startswith("CHANGE_SET")
    ]
    assert sorted(config["ActionMode"] for _, config in modes) == [
        "CHANGE_SET_EXECUTE",
        "CHANGE_SET_EXECUTE",
        "CHANGE_SET_REPLACE",
        "CHANGE_SET_REPLACE",
    ]
    assert {config["ChangeSetName"] for _, config in modes} == {EXECUTION_CHANGE_SET}
    for function in ("ChangeDetectionFunction", "StageRevertFunction"):
        prefix = environment(resolved, function)["CHANGE_SET_PREFIX"]
        assert EXECUTION_CHANGE_SET.startswith(prefix)
        assert prefix + "#{codepipeline.PipelineExecutionId}" == EXECUTION_CHANGE_SET


def test_production_deploys_come_after_the_approval_and_secondary_before_primary(resolved: ResolvedTemplate) -> None:
    names = [stage["Name"] for stage in stages(resolved)]
    assert names == ["Source", "Validate", "CheckChanges", "Stage", "DeploySecondary", "DeployPrimary", "Release"]
    secondary, primary = stages(resolved)[4], stages(resolved)[5]
    assert secondary["Actions"][0]["Region"] == "eu-west-1"
    assert primary["Actions"][0].get("Region", "us-east-1") == "us-east-1"
    stage = stages(resolved)[3]
    approval = [a for a in stage["Actions"] if a["ActionTypeId"]["Category"] == "Approval"]
    assert len(approval) == 1
    assert "#{Changes.Summary}" in approval[0]["Configuration"]["CustomData"]
    assert approval[0]["Configuration"]["ExternalEntityLink"] == "#{Changes.ReviewUrl}"


def test_stages_after_check_changes_skip_on_the_right_variable(resolved: ResolvedTemplate) -> None:
    expected = {
        "Stage": "#{Changes.HasChanges}",
        "DeploySecondary": "#{Changes.SecondaryHasChanges}",
        "DeployPrimary": "#{Changes.PrimaryHasChanges}",
        "Release": "#{Changes.HasChanges}",
    }
    for stage in stages(resolved):
        if stage["Name"] not in expected:
            assert "BeforeEntry" not in stage
            continue
        (condition,) = stage["BeforeEntry"]["Conditions"]
        (rule,) = condition["Rules"]
        assert condition["Result"] == "SKIP"
        assert rule["RuleTypeId"]["Provider"] == "VariableCheck"
        assert rule["Configuration"] == {"Variable": expected[stage["Name"]], "Operator": "EQ", "Value": "true"}


def test_delete_mode_builds_the_stage_from_the_prepare_stage_artifact_outputs() -> None:
    stage = stages(solution.resolved("Yes"))[3]
    names = [(a["Name"], a["RunOrder"]) for a in stage["Actions"]]
    prepare = stage["Actions"][0]
    assert prepare["Configuration"]["FunctionName"] == "PrepareStageArtifactFunction"
    outputs = [a["Name"] for a in prepare["OutputArtifacts"]]
    assert outputs == [stage_artifact.STAGE_SOURCE_ARTIFACT, stage_artifact.STAGE_CONFIG_ARTIFACT]
    deploy = stage["Actions"][1]["Configuration"]
    assert deploy["TemplatePath"] == f"{stage_artifact.STAGE_SOURCE_ARTIFACT}::app/template.yaml"
    assert deploy["TemplateConfiguration"] == (
        f"{stage_artifact.STAGE_CONFIG_ARTIFACT}::{stage_artifact.CONFIGURATION_FILE}"
    )
    assert names[-1][0] == "RemoveStageStack"
    assert stage["Actions"][-1]["Configuration"]["ActionMode"] == "DELETE_ONLY"
    assert max(order for _, order in names[:-1]) < names[-1][1]


def test_retain_mode_has_no_prepare_stage_artifact_and_never_deletes_the_stage() -> None:
    stage = stages(solution.resolved("No"))[3]
    assert [a["Name"] for a in stage["Actions"]] == ["UpdateStage", "DetectDrift", "Approve"]
    modes = [a["Configuration"].get("ActionMode") for _, a in actions(solution.resolved("No"))]
    assert "DELETE_ONLY" not in modes


JOB_RESULTS = {"codepipeline:PutJobSuccessResult", "codepipeline:PutJobFailureResult"}


def test_only_the_functions_the_pipeline_invokes_may_report_job_results(resolved: ResolvedTemplate) -> None:
    """SAM's CodePipelineLambdaExecutionPolicy: the two job-result actions, on "*" (the job APIs support no
    resource-level permissions), and nothing else; a function no pipeline action invokes holds neither."""
    # every action present: delete mode (retain mode has no PrepareStageArtifact), with and without a map
    invoked = {
        a["Configuration"]["FunctionName"]
        for every in (solution.resolved("Yes"), solution.resolved("Yes", DeploymentMapPath=MAP_PATH))
        for _, a in actions(every)
        if a["ActionTypeId"]["Provider"] == "Lambda"
    }
    assert invoked
    for function in resolved.resources_of_type("AWS::Serverless::Function"):
        statements = resolved.function_policy(function)["Statement"]
        reporting = [s for s in statements if JOB_RESULTS & set(_as_list(s["Action"]))]
        if function in invoked:
            (statement,) = reporting
            assert statement == {"Effect": "Allow", "Action": sorted(JOB_RESULTS, reverse=True), "Resource": "*"}
        else:
            assert reporting == [], function


def test_stage_revert_rule_matches_the_stage_the_function_expects(resolved: ResolvedTemplate) -> None:
    rule = resolved.resource("StageFailedRule")["Properties"]
    env = environment(resolved, "StageRevertFunction")
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == [STAGE_EVENT]
    watched = env["WATCHED_STAGES"].split(",")
    assert pattern["detail"]["stage"] == watched
    assert env["STAGE_NAME"] in watched
    assert set(watched) <= {stage["Name"] for stage in stages(resolved)}
    assert env["STAGE_NAME"] in [stage["Name"] for stage in stages(resolved)]
    assert pattern["detail"]["pipeline"] == [env["PIPELINE_NAME"]]
    assert set(pattern["detail"]["state"]) == REVERT_STATES
    (target,) = rule["Targets"]
    assert target["Arn"] == "StageRevertFunction.Arn"
    assert "DeadLetterConfig" in target


def test_no_lifecycle_rule_can_expire_released_sources(resolved: ResolvedTemplate) -> None:
    bucket = resolved.resource("ArtifactBucket")["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    for rule in bucket["LifecycleConfiguration"]["Rules"]:
        prefix = rule.get("Prefix", rule.get("Filter", {}).get("Prefix"))
        assert prefix, f"lifecycle rule {rule.get('Id')} applies to the whole bucket, releases/ included"
        assert not "releases/".startswith(prefix)
        assert not prefix.startswith("releases")


def test_every_function_is_arm64_python313_with_a_description() -> None:
    resolved = solution.resolved()
    globals_ = resolved.raw["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Architectures"] == ["arm64"]
    functions = resolved.resources_of_type("AWS::Serverless::Function")
    assert len(functions) == 7 + len(MAP_CONFIGS)
    for name, function in functions.items():
        assert function["Properties"].get("Description"), f"{name} has no Description"
        handler = function["Properties"].get("Handler", globals_.get("Handler"))
        assert handler == "app.lambda_handler"
        assert (REPO_ROOT / function["Properties"]["CodeUri"] / "app.py").is_file(), f"{name} has no handler file"


def test_the_regional_store_may_empty_only_its_own_bucket(resolved: ResolvedTemplate) -> None:
    """The custom resource's BucketName is inside the S3 resources its policy names, and nothing wider."""
    bucket = resolved.resource("RegionalArtifactStore")["Properties"]["BucketName"]
    assert re.fullmatch(r"mrd-eu-west-1-[0-9a-f-]{1,36}", bucket)
    assert len(bucket) <= 63
    s3_statements = [
        statement
        for statement in resolved.function_policy("RegionalArtifactStoreFunction")["Statement"]
        if all(str(action).startswith("s3:") for action in _as_list(statement["Action"]))
    ]
    assert s3_statements
    for statement in s3_statements:
        resources = _as_list(statement["Resource"])
        assert all(not resource.endswith(":::*") and ":::*/" not in resource for resource in resources)
        assert any(fnmatch.fnmatchcase(f"arn:aws:s3:::{bucket}", resource) for resource in resources)
    empty = next(s for s in s3_statements if "s3:DeleteObjectVersion" in _as_list(s["Action"]))
    assert any(fnmatch.fnmatchcase(f"arn:aws:s3:::{bucket}/key", r) for r in _as_list(empty["Resource"]))
    assert not any(
        fnmatch.fnmatchcase("arn:aws:s3:::release-pipeline-artifacts/releases/x", r)
        for r in _as_list(empty["Resource"])
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_approval_text_stays_within_codepipeline_limits_with_the_longest_summaries(
    resolved: ResolvedTemplate,
) -> None:
    stage = next(stage for stage in stages(resolved) if stage["Name"] == "Stage")
    approval = next(a for a in stage["Actions"] if a["ActionTypeId"]["Category"] == "Approval")
    longest = {
        "Changes": "c" * jobs.SUMMARY_VARIABLE_LIMIT,
        "Drift": "d" * jobs.SUMMARY_VARIABLE_LIMIT,
    }
    text = VARIABLE.sub(lambda m: longest[m.group(1)], approval["Configuration"]["CustomData"])
    assert "c" * jobs.SUMMARY_VARIABLE_LIMIT in text
    assert len(text) <= 1000


# ---------------------------------------------------------------------------------------------------------
# AWS limits, checked on the template before anything is created
# ---------------------------------------------------------------------------------------------------------

# https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html: at most 4 KB in all
LAMBDA_ENVIRONMENT_LIMIT = 4096
LONGEST_STACK_NAME = "s" * 128  # CloudFormation's limit on a stack name
STACK_UUID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"


def _worst_case_parameters(raw: dict[str, Any]) -> dict[str, str]:
    """Every parameter at its worst: the longest allowed value, or MaxLength characters of '"' (each one
    doubles when the environment is serialised as JSON). A parameter with neither bound is marked, so a
    function environment that uses it fails the check."""
    values = {}
    for name, spec in raw["Parameters"].items():
        if "AllowedValues" in spec:
            values[name] = max((str(v) for v in spec["AllowedValues"]), key=len)
        elif "MaxLength" in spec:
            values[name] = '"' * int(spec["MaxLength"])
        else:
            values[name] = f"<unbounded {name}>"
    return values


def _worst_case_template(stack_name: str = LONGEST_STACK_NAME) -> ResolvedTemplate:
    """template.yaml with every parameter at its worst, the longest stack name, the longest Region code
    the template accepts and the longest partition name, and every resource reference at the longest
    name AWS may generate for its type."""
    raw = solution.solution_template()
    parameters = _worst_case_parameters(raw)
    region = "r" * int(raw["Parameters"]["SecondaryRegion"]["MaxLength"])
    partition, account = "aws-us-gov", "123456789012"

    def arn(service: str, resource: str, in_region: str = region) -> str:
        return f"arn:{partition}:{service}:{in_region}:{account}:{resource}"

    longest = {
        "AWS::SNS::Topic": lambda: {"Ref": arn("sns", "t" * 256)},
        "AWS::KMS::Key": lambda: {"Ref": STACK_UUID, "Arn": arn("kms", f"key/{STACK_UUID}"), "KeyId": STACK_UUID},
        "AWS::IAM::Role": lambda: {"Ref": "r" * 64, "Arn": arn("iam", "role/" + "r" * 64, "")},
        "AWS::S3::Bucket": lambda: {"Ref": "b" * 63, "Arn": f"arn:{partition}:s3:::" + "b" * 63},
        "AWS::SQS::Queue": lambda: {"Ref": "https://q/" + "q" * 80, "Arn": arn("sqs", "q" * 80), "QueueName": "q" * 80},
        # a state machine's name: at most 80 characters
        "AWS::Serverless::StateMachine": lambda: {"Ref": arn("states", "stateMachine:" + "s" * 80), "Name": "s" * 80},
    }
    physical = {
        logical_id: longest[spec["Type"]]()
        for logical_id, spec in raw["Resources"].items()
        if isinstance(spec, dict) and spec["Type"] in longest  # a Fn::ForEach loop is a list
    }
    template = ResolvedTemplate(
        {**solution.REQUIRED_PARAMETERS, **parameters},
        region=region,
        account=account,
        stack_name=stack_name,
        template=raw,
        physical=physical,
    )
    template.pseudo["AWS::Partition"] = partition
    template.pseudo["AWS::StackId"] = arn("cloudformation", f"stack/{stack_name}/{STACK_UUID}")
    pipeline_name = template.resource("Pipeline")["Properties"]["Name"]
    template.physical["Pipeline"] = {"Ref": pipeline_name}
    return template


def _environment_bytes(environment: dict[str, str]) -> int:
    return len(json.dumps(environment, separators=(",", ":")).encode())


def test_no_function_environment_can_exceed_lambdas_4_kb() -> None:
    """Every function's environment, with each parameter at its MaxLength full of '"', the longest stack
    name and the longest generated names, stays under Lambda's 4 KB: `sam deploy` can never fail there
    after half the stack is created."""
    template = _worst_case_template()
    functions = template.resources_of_type("AWS::Serverless::Function")
    assert len(functions) == 7 + len(MAP_CONFIGS)
    resources = set(template.raw["Resources"])
    for function in functions:
        environment = template.function_environment(function)
        text = json.dumps(environment)
        assert "<unbounded" not in text, f"{function}: a parameter without MaxLength reaches its environment"
        unresolved = {value.split(".")[0] for value in environment.values()} & resources
        assert not unresolved, f"{function}: no worst case for {unresolved}"
        size = _environment_bytes(environment)
        assert size < LAMBDA_ENVIRONMENT_LIMIT, f"{function}: {size} bytes at worst"


def test_the_three_parameter_sets_could_not_share_one_environment() -> None:
    """Why the gate reads the sets from the pipeline: in an environment they alone pass 4 KB."""
    sets = _worst_case_parameters(solution.solution_template())
    environment = {name: sets[name] for name in ("StageParameters", "PrimaryParameters", "SecondaryParameters")}
    assert _environment_bytes(environment) > LAMBDA_ENVIRONMENT_LIMIT


def test_the_gate_reads_each_parameter_set_from_the_action_that_receives_it(resolved: ResolvedTemplate) -> None:
    """The gate's table of actions matches the template: each action's ParameterOverrides is exactly its
    parameter, no other action carries one, no set is in the gate's environment, and it may GetPipeline."""
    raw_actions = {
        action["Name"]: action
        for stage in map(_either, resolved.raw["Resources"]["Pipeline"]["Properties"]["Stages"])
        for action in map(_either, stage["Actions"])
        if isinstance(action, dict) and "Name" in action
    }
    for name, label in PARAMETER_SET_ACTIONS.items():
        assert raw_actions[name]["Configuration"]["ParameterOverrides"] == {"Ref": label}
    every = [
        action["Name"] for _, action in actions(resolved) if "ParameterOverrides" in action.get("Configuration", {})
    ]
    assert sorted(every) == sorted(PARAMETER_SET_ACTIONS)
    environment = resolved.function_environment("ExecutionGateFunction")
    assert not any(name.endswith("_PARAMETERS") for name in environment), environment
    policy = resolved.function_policy("ExecutionGateFunction")["Statement"]
    read = next(s for s in policy if "codepipeline:GetPipeline" in _as_list(s["Action"]))
    assert read["Resource"].endswith(":" + resolved.resource("Pipeline")["Properties"]["Name"])


def test_generated_names_fit_their_limits_for_a_128_character_stack_name() -> None:
    template = _worst_case_template()
    pipeline = template.resource("Pipeline")["Properties"]["Name"]
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html: at most 100 characters
    assert len(pipeline) <= 100
    assert re.fullmatch(r"[A-Za-z0-9.@\-_]+", pipeline)
    assert pipeline.startswith("pipeline-")  # the artifact folder the lifecycle rule expires
    assert template.function_environment("ExecutionGateFunction")["PIPELINE_NAME"] == pipeline
    assert template.function_environment("StageRevertFunction")["PIPELINE_NAME"] == pipeline
    store = template.resource("RegionalArtifactStore")["Properties"]
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html
    assert len(store["StackName"]) <= 128
    assert re.fullmatch(r"[A-Za-z][-A-Za-z0-9]*", store["StackName"])
    assert len(store["BucketName"]) <= 63
    stack_resources = [
        resource
        for statement in template.function_policy("RegionalArtifactStoreFunction")["Statement"]
        for resource in _as_list(statement["Resource"])
        if ":cloudformation:" in resource
    ]
    assert any(
        fnmatch.fnmatchcase(f"arn:aws-us-gov:cloudformation:eu-west-1:123456789012:stack/{store['StackName']}/x", r)
        for r in stack_resources
    )
    assert len(template.resource("CommonLayer")["Properties"]["LayerName"]) <= 140
    assert len(f"{template.parameters['ApplicationStackName']}-stage") <= 128
    for name, group in template.resources_of_type("AWS::Logs::LogGroup").items():
        assert len(group["Properties"]["LogGroupName"]) <= 512, name


def test_the_names_do_not_depend_on_the_stack_name() -> None:
    """A short and a long stack name give the same pipeline and store names (the stack id's UUID)."""
    short, long = _worst_case_template("a"), _worst_case_template()
    for logical_id, key in (("Pipeline", "Name"), ("RegionalArtifactStore", "StackName")):
        assert short.resource(logical_id)["Properties"][key] == long.resource(logical_id)["Properties"][key]
        assert STACK_UUID in long.resource(logical_id)["Properties"][key]


# ---------------------------------------------------------------------------------------------------------
# Trust policies, tags and keys: only what AWS documents
# ---------------------------------------------------------------------------------------------------------

# Condition keys a service is documented to set when it assumes a role (confused-deputy prevention).
# CodeBuild: https://docs.aws.amazon.com/codebuild/latest/userguide/setting-up-service-role.html
# CloudFormation (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html)
# and CodePipeline (https://docs.aws.amazon.com/codepipeline/latest/userguide/pipelines-create-service-role-cli.html)
# document their service roles' trust with the principal only.
DOCUMENTED_TRUST_KEYS = {"codebuild.amazonaws.com": {"aws:SourceAccount", "aws:SourceArn"}}


def test_trust_policy_conditions_use_only_keys_the_service_is_documented_to_set(resolved: ResolvedTemplate) -> None:
    roles = resolved.resources_of_type("AWS::IAM::Role")
    assert {"CloudFormationExecutionRole", "PipelineRole", "ValidationRole"} <= set(roles)
    for name, role in roles.items():
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            services = _as_list(statement["Principal"].get("Service", []))
            keys = {key for operator in statement.get("Condition", {}).values() for key in operator}
            for service in services:
                assert keys <= DOCUMENTED_TRUST_KEYS.get(service, set()), f"{name}: {keys} for {service}"
    (statement,) = roles["ValidationRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    for function in resolved.resources_of_type("AWS::Serverless::Function").values():
        assert "AssumeRolePolicyDocument" not in function["Properties"]  # SAM's Lambda trust, no condition


def test_codebuild_roles_hold_the_key_actions_codebuild_documents(resolved: ResolvedTemplate) -> None:
    """https://docs.aws.amazon.com/codebuild/latest/userguide/setting-up-kms.html"""
    documented = {"kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"}
    for project in ("CfnLintProject", "CfnNagProject"):
        role = resolved.resource(project)["Properties"]["ServiceRole"].removesuffix(".Arn")
        key = resolved.resource(project)["Properties"]["EncryptionKey"]
        granted = {
            action
            for statement in resolved.role_policy(role)["Statement"]
            if key in _as_list(statement["Resource"])
            for action in _as_list(statement["Action"])
            if action.startswith("kms:")
        }
        assert granted == documented, role
        # the logs it may write: only its project's log group, where each project has its own streams
        logs = resolved.resource(project)["Properties"]["LogsConfig"]["CloudWatchLogs"]
        writable = {
            resource
            for statement in resolved.role_policy(role)["Statement"]
            if "logs:PutLogEvents" in _as_list(statement["Action"])
            for resource in _as_list(statement["Resource"])
        }
        assert writable == {f"{logs['GroupName']}.Arn"}, project
    streams = [
        resolved.resource(project)["Properties"]["LogsConfig"]["CloudWatchLogs"]["StreamName"]
        for project in ("CfnLintProject", "CfnNagProject")
    ]
    assert len(set(streams)) == 2


def test_the_regional_store_may_tag_what_its_stack_tags(resolved: ResolvedTemplate) -> None:
    """The store stack is created with tags, and CloudFormation tags its resources with them and with its
    own aws:cloudformation:* tags: the function's policy grants every tagging action the resource types'
    create handlers list (CloudFormation registry schemas, as shipped with cfn-lint)."""
    cfn = boto3.client("cloudformation", region_name="eu-west-1")
    sent: dict[str, Any] = {}
    cfn.meta.events.register(
        "provide-client-params.cloudformation.CreateStack", lambda params, **_: sent.update(params)
    )
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id store does not exist")
        stub.add_response("create_stack", {"StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1"})
        regional_store.start_create(cfn, "store", "eu-west-1", "mrd-eu-west-1-x")
    assert sent["Tags"]
    granted = {
        action
        for statement in resolved.function_policy("RegionalArtifactStoreFunction")["Statement"]
        for action in _as_list(statement["Action"])
    }
    types = {spec["Type"] for spec in json.loads(regional_store.artifact_store_template())["Resources"].values()}
    for resource_type in types:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("eu-west-1", resource_type).schema
        tagging = {p for p in schema["handlers"]["create"]["permissions"] if "Tag" in p.split(":")[1]}
        assert tagging <= granted, f"{resource_type}: {tagging - granted}"
    assert {"s3:PutBucketTagging", "kms:TagResource"} <= granted


# CodePipeline ends a Lambda invoke action that keeps continuing after 24 hours; the execution gate
# waits in one (https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html).
LAMBDA_ACTION_MINUTES = 24 * 60
# What an execution does between entering Stage and leaving Release besides the approval: the stage
# stack, drift detection and two production deploys. The gate of the next execution waits through it.
STAGE_AND_DEPLOY_BUDGET_MINUTES = 6 * 60


@pytest.mark.parametrize("value", ["5", "720", "1080"])
def test_no_allowed_approval_timeout_lets_an_approval_outlive_the_gate_behind_it(value: str) -> None:
    """GIVEN any ApprovalTimeoutInMinutes the template accepts THEN the approval expires while an execution
    queued behind it can still wait in the execution gate, with time left for the stage and the deploys;
    CodePipeline's default (7 days) would not."""
    parameter = solution.solution_template()["Parameters"]["ApprovalTimeoutInMinutes"]
    assert parameter["MaxValue"] + STAGE_AND_DEPLOY_BUDGET_MINUTES <= LAMBDA_ACTION_MINUTES
    assert parameter["MinValue"] <= int(value) <= parameter["MaxValue"]
    template = solution.resolved("Yes", ApprovalTimeoutInMinutes=value)
    (approval,) = [a for _, a in actions(template) if a["ActionTypeId"]["Category"] == "Approval"]
    assert int(approval["TimeoutInMinutes"]) == int(value)
    check = next(stage for stage in stages(template) if stage["Name"] == "CheckChanges")
    assert check["Actions"][0]["ActionTypeId"]["Provider"] == "Lambda"  # the gate: a 24-hour action


def test_every_function_logs_to_its_own_group_named_for_its_folder_and_removed_with_the_stack(
    resolved: ResolvedTemplate,
) -> None:
    """The Fn::ForEach loop makes one log group per function: each function's LoggingConfig names its own,
    /aws/lambda/<stack>/<folder under functions/>, kept 90 days and deleted with the stack."""
    functions = resolved.resources_of_type("AWS::Serverless::Function")
    groups = resolved.resources_of_type("AWS::Logs::LogGroup")
    stack = resolved.pseudo["AWS::StackName"]
    named = set()
    for logical_id, function in functions.items():
        group_id = function["Properties"]["LoggingConfig"]["LogGroup"]  # a Ref resolves to the logical id
        group = groups[group_id]
        folder = function["Properties"]["CodeUri"].strip("/").split("/")[-1]
        assert group["Properties"] == {"LogGroupName": f"/aws/lambda/{stack}/{folder}", "RetentionInDays": 90}
        assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == ("Delete", "Delete"), logical_id
        named.add(group_id)
    assert len(named) == len(functions)  # no two functions share a group


def _either(node: Any) -> Any:
    """A stage or action as written: the one an ``Fn::If`` holds when its condition is true."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        return node["Fn::If"][1]
    return node
