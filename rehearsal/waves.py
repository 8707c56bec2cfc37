"""What the rehearsal needs for an application with a deployment map: the target accounts bootstrapped as
bootstrap/target-account.yaml makes them, every target's stack as a fingerprint, and the map's scenario
events (an alarm that fires during a bake).

A target account is another account of the emulator (moto keeps one set of backends per account id). The
rehearsal stands in for the platform team that deploys the bootstrap template there: with IAM checks off
for the while, it creates the deploy role and the CloudFormation execution role from the template's own
resolved properties (their policies in the form moto can check, see local_aws.iam), and an administrator
of that account for the rehearsal's own reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from local_aws.cloudformation import ResolvedTemplate, load_template
from local_aws.iam import AccessKey, create_principal, policy_for_moto
from rehearsal.emulator import UNCHECKED
from rehearsal.paths import ROOT

if TYPE_CHECKING:
    from rehearsal.solution import Solution

BOOTSTRAP = ROOT / "bootstrap" / "target-account.yaml"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class MapTarget:
    """One target of the map, where it is and what it is called."""

    wave: str
    account: str
    region: str
    stack: str

    @property
    def key(self) -> str:
        return f"{self.account}/{self.region}/{self.stack}"


def read_targets(source: Path, map_path: str, default_stack: str, home_account: str) -> list[MapTarget]:
    """The targets of the map at ``map_path`` in ``source``, in wave order (read as the functions read it)."""
    from release_pipeline import deployment_map  # the layer: on the path once the solution is installed

    def read_file(path: str) -> str | None:
        file = source / path
        return file.read_text(encoding="utf-8") if file.is_file() else None

    raw = (source / map_path).read_text(encoding="utf-8")
    parsed = deployment_map.parse(raw, read_file=read_file, default_stack_name=default_stack, home_account=home_account)
    return [
        MapTarget(wave.name, target.account or home_account, target.region, target.stack_name)
        for wave in parsed.waves
        for target in wave.targets
    ]


def account_credentials(solution: Solution, account: str) -> AccessKey:
    """Credentials in ``account`` that the emulator takes without checking (IAM checks must be off)."""
    sts = solution.emulator.client("sts", solution.primary_region, UNCHECKED)
    session = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/rehearsal-bootstrap", RoleSessionName="bootstrap")
    credentials = session["Credentials"]
    return AccessKey(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])


def bootstrap(solution: Solution, account: str, stack_names: list[str]) -> str:
    """Deploy bootstrap/target-account.yaml's roles in ``account`` as its stack would, for the solution's
    account and ``stack_names``; an administrator of that account for the rehearsal's reads."""
    emulator = solution.emulator
    enforced = emulator.iam_enforced
    emulator.enforce_iam(False)
    try:
        iam = emulator.client("iam", solution.primary_region, account_credentials(solution, account))
        solution.principals[f"admin-{account}"] = create_principal(iam, "rehearsal-admin", ADMIN_POLICY)
        parameters = {
            "SolutionAccountId": solution.account_id,
            "ApplicationStackNames": ",".join(stack_names),
            "CloudFormationExecutionPolicyArn": solution.template.parameters["CloudFormationExecutionPolicyArn"],
        }
        raw = load_template(BOOTSTRAP)
        probe = ResolvedTemplate(parameters, region=solution.primary_region, account=account, template=raw)
        roles = {
            logical_id: probe.resource(logical_id)["Properties"]
            for logical_id, spec in raw["Resources"].items()
            if spec.get("Type") == "AWS::IAM::Role"
        }
        physical = {
            logical_id: {"Ref": str(p["RoleName"]), "Arn": f"arn:aws:iam::{account}:role/{p['RoleName']}"}
            for logical_id, p in roles.items()
        }
        template = ResolvedTemplate(
            parameters, region=solution.primary_region, account=account, template=raw, physical=physical
        )
        for logical_id in roles:
            properties = template.resource(logical_id)["Properties"]
            iam.create_role(
                RoleName=properties["RoleName"],
                Path=properties.get("Path", "/"),
                AssumeRolePolicyDocument=json.dumps(properties["AssumeRolePolicyDocument"]),
            )
            policy = template.role_policy(logical_id)
            if policy["Statement"]:
                iam.put_role_policy(
                    RoleName=properties["RoleName"],
                    PolicyName="bootstrap",
                    PolicyDocument=json.dumps(policy_for_moto(policy)),
                )
    finally:
        emulator.enforce_iam(enforced)
    names = ", ".join(str(p["RoleName"]) for p in roles.values())
    return f"target account {account} bootstrapped (bootstrap/target-account.yaml): {names}"


def admin(solution: Solution, service: str, account: str, region: str) -> Any:
    """An administrator's client in ``account`` and ``region``."""
    if account == solution.account_id:
        return solution.admin(service, region)
    return solution.emulator.client(service, region, solution.principals[f"admin-{account}"])


def stack_state(solution: Solution, target: MapTarget) -> dict[str, Any] | None:
    """The target's stack as DescribeStacks reports it, with its template body; None when it does not exist."""
    cfn = admin(solution, "cloudformation", target.account, target.region)
    try:
        stack: dict[str, Any] = cfn.describe_stacks(StackName=target.stack)["Stacks"][0]
    except ClientError as error:
        if "does not exist" not in str(error):
            raise
        return None
    if stack["StackStatus"] in {"REVIEW_IN_PROGRESS", "DELETE_COMPLETE"}:
        stack["TemplateBody"] = None
        return stack
    body = cfn.get_template(StackName=target.stack)["TemplateBody"]
    stack["TemplateBody"] = body if isinstance(body, str) else json.dumps(body, sort_keys=True)
    return stack


def create_alarm(solution: Solution, target: MapTarget, name: str) -> None:
    """A CloudWatch alarm in the target's account and Region, in state OK."""
    watch = admin(solution, "cloudwatch", target.account, target.region)
    watch.put_metric_alarm(
        AlarmName=name,
        MetricName="Errors",
        Namespace="HelloApp",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    watch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="rehearsal: all is well")


def fire_alarm(solution: Solution, target: MapTarget, name: str, reason: str) -> None:
    watch = admin(solution, "cloudwatch", target.account, target.region)
    watch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=reason)
