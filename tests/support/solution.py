"""The solution's template as the tests deploy it: the parameters it requires, the template resolved for
them (cached), and a function's environment set exactly as the template wires it."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

import pytest

from local_aws.cloudformation import ResolvedTemplate, load_template
from tests.support.events import REPO_ROOT

TEMPLATE = REPO_ROOT / "template.yaml"
# The parameters template.yaml has no default for.
REQUIRED_PARAMETERS = {
    "ConnectionArn": "arn:aws:codeconnections:us-east-1:123456789012:connection/abc",
    "RepositoryId": "example/app",
    "TemplatePath": "app/template.yaml",
    "ApplicationStackName": "demo-app",
    "SecondaryRegion": "eu-west-1",
    "CloudFormationExecutionPolicyArn": "arn:aws:iam::123456789012:policy/deploy-bound",
}
# The artifact bucket the sample events under events/ name.
ARTIFACT_BUCKET = "release-pipeline-artifacts"
# The UUID in the solution stack's id (AWS::StackId): it names the installation's release record.
STACK_UUID = "5b7e9a10-3c2d-4f10-9a4e-0a1b2c3d4e5f"

_Frozen = tuple[tuple[str, str], ...]


@cache
def solution_template() -> dict[str, Any]:
    """template.yaml, read once (never changed by ResolvedTemplate)."""
    return load_template(TEMPLATE)


def resolved(
    delete_stage: str = "Yes",
    *,
    region: str = "us-east-1",
    stack_name: str = "release-solution",
    stack_uuid: str = STACK_UUID,
    physical: Mapping[str, Mapping[str, str]] | None = None,
    **overrides: str,
) -> ResolvedTemplate:
    """template.yaml resolved for REQUIRED_PARAMETERS, DeleteStageStack=``delete_stage`` and any other
    parameter given by name (``TemplatePath="template.json"``), installed as the stack whose id ends in
    ``stack_uuid``; one instance per distinct set of values."""
    frozen_physical = tuple(sorted((name, tuple(sorted(values.items()))) for name, values in (physical or {}).items()))
    return _resolved(delete_stage, region, stack_name, stack_uuid, tuple(sorted(overrides.items())), frozen_physical)


def release_record(stack_name: str, stack_uuid: str = STACK_UUID) -> str:
    """The release record parameter of the installation whose stack id ends in ``stack_uuid``."""
    return f"/{stack_name}/release/{stack_uuid}/record"


@lru_cache(maxsize=64)
def _resolved(
    delete_stage: str,
    region: str,
    stack_name: str,
    stack_uuid: str,
    overrides: _Frozen,
    physical: tuple[tuple[str, _Frozen], ...],
) -> ResolvedTemplate:
    template = ResolvedTemplate(
        {**REQUIRED_PARAMETERS, "DeleteStageStack": delete_stage, **dict(overrides)},
        region=region,
        stack_name=stack_name,
        template=solution_template(),
        physical={name: dict(values) for name, values in physical},
    )
    account = template.pseudo["AWS::AccountId"]
    template.pseudo["AWS::StackId"] = f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/{stack_uuid}"
    return template


def apply_environment(monkeypatch: pytest.MonkeyPatch, logical_id: str, template: ResolvedTemplate) -> dict[str, str]:
    """Set the function's variables exactly as ``template`` gives them (Globals included) and AWS_REGION
    to the template's Region; returns the variables."""
    environment = template.function_environment(logical_id)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_REGION", template.pseudo["AWS::Region"])
    return environment


def source_zip(files: Mapping[str, str]) -> bytes:
    """A source artifact: a zip holding ``files`` (path to text)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def create_pipeline(
    iam: Any, codepipeline: Any, name: str, bucket: str = ARTIFACT_BUCKET, template: ResolvedTemplate | None = None
) -> None:
    """A pipeline named ``name`` in moto, enough for the execution APIs (StartPipelineExecution,
    ListPipelineExecutions) and GetPipeline the gate reads: a source, then an approval or, with
    ``template``, the template's own stages (the actions whose ParameterOverrides carry the sets)."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "codepipeline.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    source = {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"}
    approval = {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"}
    codepipeline.create_pipeline(
        pipeline={
            "name": name,
            "roleArn": role,
            "artifactStore": {"type": "S3", "location": bucket},
            "stages": [
                {
                    "name": "Source",
                    "actions": [
                        {
                            "name": "Source",
                            "actionTypeId": source,
                            "configuration": {"S3Bucket": bucket, "S3ObjectKey": "source.zip"},
                            "outputArtifacts": [{"name": "SourceOutput"}],
                        }
                    ],
                },
                *(
                    pipeline_stages(template)
                    if template is not None
                    else [{"name": "Stage", "actions": [{"name": "Approve", "actionTypeId": approval}]}]
                ),
            ],
        }
    )


def pipeline_stages(template: ResolvedTemplate) -> list[dict[str, Any]]:
    """The template's pipeline stages after Source, in the CodePipeline API's shape (camelCase names;
    each action's configuration as written)."""

    def action(spec: Mapping[str, Any]) -> dict[str, Any]:
        type_id = {key[0].lower() + key[1:]: value for key, value in spec["ActionTypeId"].items()}
        return {"name": spec["Name"], "actionTypeId": type_id, "configuration": spec.get("Configuration", {})}

    stages = template.resource("Pipeline")["Properties"]["Stages"]
    return [
        {"name": stage["Name"], "actions": [action(spec) for spec in stage["Actions"]]}
        for stage in stages
        if stage["Name"] != "Source"
    ]
