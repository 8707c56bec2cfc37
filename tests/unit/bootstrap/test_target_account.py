"""bootstrap/target-account.yaml: the deploy role the release workflow assumes in a target account, and the
CloudFormation execution role that role may pass.

The template is deployed in moto, and what CloudFormation resolved (role names, trust policies, the inline policy
with one ARN per stack and per bucket) is read back and judged with moto's own IAM policy evaluator, given real
ARNs and request context. moto's IAM enforcement cannot do this for CloudFormation or IAM calls: it checks them
against the resource "*" only, so it could not tell one stack, or one role, from another. Nor does moto's STS
read a trust policy (AssumeRole succeeds for any role ARN, existing or not), so the trust is judged here too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from moto.iam.models import iam_backends
from moto.iam.policy_validation import IAMPolicyDocumentValidator

from audit import static
from local_aws.cloudformation import ResolvedTemplate, load_template
from tests.support.events import REPO_ROOT

TARGET = "123456789012"  # moto's account, standing for the target account
SOLUTION = "111122223333"
OTHER_ACCOUNT = "444455556666"
# A function's role as the solution template makes it: on the path /multi-region-release/, with a name SAM chose
FUNCTION_ROLE = f"arn:aws:iam::{SOLUTION}:role/multi-region-release/release-solution-DeployTargetRole-1A2B3C4D"
STACKS = ["orders", "payments"]
PARAMETERS = {
    "SolutionAccountId": SOLUTION,
    "ApplicationStackNames": ",".join(STACKS),
    "CloudFormationExecutionPolicyArn": f"arn:aws:iam::{TARGET}:policy/application-bound",
}
INLINE_POLICY = "deploy-application-stacks"


def role_arn(account: str, kind: str, solution_account: str) -> str:
    """The ARN the solution computes for a target account's role: ``kind`` is deploy or cfn-execution."""
    return f"arn:aws:iam::{account}:role/multi-region-{kind}-{solution_account}"


DEPLOY_ROLE = role_arn(TARGET, "deploy", SOLUTION)
EXECUTION_ROLE = role_arn(TARGET, "cfn-execution", SOLUTION)


@dataclass(frozen=True)
class Deployed:
    outputs: dict[str, str]
    deploy_trust: dict[str, Any]
    deploy_policy: dict[str, Any]
    execution_trust: dict[str, Any]


@pytest.fixture
def template() -> dict[str, Any]:
    return load_template(static.BOOTSTRAP)


@pytest.fixture
def deployed(aws: None) -> Deployed:
    """The bootstrap stack, created in moto with PARAMETERS, and the role documents CloudFormation resolved."""
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    cloudformation.create_stack(
        StackName="multi-region-deploy-target",
        TemplateBody=static.BOOTSTRAP.read_text(encoding="utf-8"),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in PARAMETERS.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = cloudformation.describe_stacks(StackName="multi-region-deploy-target")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    iam = boto3.client("iam", region_name="us-east-1")
    deploy_name, execution_name = DEPLOY_ROLE.rsplit("/", 1)[1], EXECUTION_ROLE.rsplit("/", 1)[1]
    # moto keeps the inline policy as CloudFormation resolved it (its GetRolePolicy answers with Python's repr)
    inline = iam_backends[TARGET]["aws"].get_role(deploy_name).policies[INLINE_POLICY]
    return Deployed(
        outputs={output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]},
        deploy_trust=document(iam.get_role(RoleName=deploy_name)["Role"]["AssumeRolePolicyDocument"]),
        deploy_policy=document(inline),
        execution_trust=document(iam.get_role(RoleName=execution_name)["Role"]["AssumeRolePolicyDocument"]),
    )


def document(value: object) -> dict[str, Any]:
    """A policy document as boto3 or moto give it: already parsed, or JSON text."""
    parsed = json.loads(value) if isinstance(value, str) else value
    assert isinstance(parsed, dict)
    return parsed


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allows(
    policy: dict[str, Any],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
    principal: str | None = None,
) -> bool:
    """Whether ``policy`` (Allow statements only) allows the request. moto's IAM evaluator (the one behind its IAM
    enforcement) judges actions and resources with their wildcards; the principal and the conditions are judged
    here, as IAM does: moto compares a principal with each ARN as text (an account principal would trust no
    role), evaluates only StringEquals and counts a key missing from the request as a match, where IAM refuses.
    With ``principal``, the request carries its ``aws:PrincipalArn``."""
    request = {**({"aws:PrincipalArn": principal} if principal else {}), **(context or {})}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        judged = {key: value for key, value in statement.items() if key not in ("Condition", "Principal")}
        if IAMPolicyStatement(judged).is_action_permitted(action, resource) != PermissionResult.PERMITTED:
            continue
        if "Principal" in statement and not (principal and trusts(statement["Principal"], principal)):
            continue
        if all(
            met(operator, key, expected, request)
            for operator, keys in statement.get("Condition", {}).items()
            for key, expected in keys.items()
        ):
            return True
    return False


def trusts(element: dict[str, Any], principal: str) -> bool:
    """Whether a Principal element names ``principal``: by its ARN, or by its account (``:root``), which leaves
    the decision to that account's own policies."""
    partition, account = principal.split(":")[1], principal.split(":")[4]
    named = as_list(element.get("AWS", []))
    return principal in named or f"arn:{partition}:iam::{account}:root" in named


def _like(pattern: str, value: str) -> bool:
    """IAM's wildcards: ``*`` any run of characters, ``?`` any one; case-sensitive."""
    expression = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(expression, value) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ArnLike: each of the six colon-separated parts matched on its own."""
    patterns, values = pattern.split(":", 5), value.split(":", 5)
    return len(patterns) == len(values) == 6 and all(map(_like, patterns, values))


_OPERATORS = {
    "StringEquals": str.__eq__,
    "StringLike": _like,
    "ArnEquals": str.__eq__,
    "ArnLike": _arn_like,
}


def met(operator: str, key: str, expected: Any, request: Mapping[str, str]) -> bool:
    """One condition key, as IAM evaluates it: any of the expected values; a key the request lacks fails."""
    if key not in request:
        return False
    compare = _OPERATORS[operator]  # an operator not modelled here fails the test rather than pass it
    return any(compare(value, request[key]) for value in as_list(expected))


def stack_arn(name: str, region: str = "eu-west-1") -> str:
    return f"arn:aws:cloudformation:{region}:{TARGET}:stack/{name}/0a1b2c3d-0000-4000-8000-000000000001"


def test_cfn_lint_finds_nothing() -> None:
    row = static.cfn_lint([static.BOOTSTRAP])

    assert row.cases == 1
    assert row.breaches == []
    assert row.failures == 0


def test_the_template_is_plain_cloudformation_that_stacksets_can_deploy(template: dict[str, Any]) -> None:
    """StackSets' default execution role cannot process transforms or macros."""
    assert "Transform" not in template
    assert not [name for name in template["Resources"] if name.startswith("Fn::ForEach")]
    assert {spec["Type"] for spec in template["Resources"].values()} == {"AWS::IAM::Role"}


def test_the_outputs_are_the_role_arns_the_solution_computes(deployed: Deployed) -> None:
    assert deployed.outputs == {"DeployRoleArn": DEPLOY_ROLE, "CloudFormationExecutionRoleArn": EXECUTION_ROLE}


def test_the_deploy_role_trusts_the_solution_accounts_roles_on_the_release_path(deployed: Deployed) -> None:
    trust = deployed.deploy_trust

    assert trust["Statement"] == [
        {
            "Sid": "SolutionFunctions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{SOLUTION}:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{SOLUTION}:role/multi-region-release/*"}},
        }
    ]
    for role in (
        FUNCTION_ROLE,
        f"arn:aws:iam::{SOLUTION}:role/multi-region-release/release-solution-StageRevertRole-9Z8Y7X",
        f"arn:aws:iam::{SOLUTION}:role/multi-region-release/a-role-made-after-this-stack",
    ):
        assert allows(trust, "sts:AssumeRole", DEPLOY_ROLE, principal=role), role
    for other in (
        f"arn:aws:iam::{SOLUTION}:role/release-solution-WorkflowRole-1A2B3C4D",  # a role of the account, off the path
        f"arn:aws:iam::{SOLUTION}:role/other-path/multi-region-release/x",  # the path's name deeper in another path
        f"arn:aws:iam::{SOLUTION}:role/multi-region-release-x/y",  # a path that only starts the same
        f"arn:aws:iam::{SOLUTION}:user/multi-region-release/someone",  # a user on the path
        f"arn:aws:iam::{SOLUTION}:root",  # the solution account as a whole
        f"arn:aws:iam::{OTHER_ACCOUNT}:role/multi-region-release/release-solution-DeployTargetRole-1A2B3C4D",
        f"arn:aws:iam::{TARGET}:role/multi-region-release/release-solution-DeployTargetRole-1A2B3C4D",
        f"arn:aws-cn:iam::{SOLUTION}:role/multi-region-release/x",  # another partition
    ):
        assert not allows(trust, "sts:AssumeRole", DEPLOY_ROLE, principal=other), other
    # a request whose principal ARN is not known is refused, not let through
    assert not allows(trust, "sts:AssumeRole", DEPLOY_ROLE, principal=None)
    for action in ("sts:TagSession", "sts:SetSourceIdentity", "sts:AssumeRoleWithWebIdentity"):
        assert not allows(trust, action, DEPLOY_ROLE, principal=FUNCTION_ROLE), action


def test_no_parameter_moves_or_widens_the_trust(template: dict[str, Any]) -> None:
    """The path is fixed, as the role names are (release_pipeline.rollout.bootstrap_role_names): the trust names
    only the partition and the solution account."""
    (statement,) = template["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    names = set(re.findall(r"\$\{([^}]+)\}", json.dumps(statement)))

    assert names == {"AWS::Partition", "SolutionAccountId"}
    assert statement["Condition"]["ArnLike"]["aws:PrincipalArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${SolutionAccountId}:role/multi-region-release/*"
    }


def test_no_statement_grants_a_wildcard_or_negated_action(deployed: Deployed) -> None:
    documents = {
        "deploy role policy": deployed.deploy_policy,
        "deploy role trust": deployed.deploy_trust,
        "execution role trust": deployed.execution_trust,
    }
    for name, document in documents.items():
        for statement in document["Statement"]:
            assert "NotAction" not in statement, name
            assert "NotResource" not in statement, name
            assert statement["Effect"] == "Allow", name
            for action in as_list(statement["Action"]):
                assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", action), f"{name}: {action}"


def test_every_resource_star_has_its_reason(deployed: Deployed) -> None:
    """The audit's check, on the bootstrap template; it must have found every "*" the deployed policy holds."""
    row = static.wildcard_resources([static.BOOTSTRAP])
    stars = [s for s in deployed.deploy_policy["Statement"] if "*" in as_list(s["Resource"])]

    assert row.breaches == []
    assert row.cases == len(stars) > 0
    # the actions on "*" read status only
    assert {a for s in stars for a in as_list(s["Action"])} == {
        "cloudformation:BatchDescribeTypeConfigurations",
        "cloudformation:DescribeStackDriftDetectionStatus",
    }


def test_the_deployed_policy_is_a_valid_iam_policy_document(deployed: Deployed) -> None:
    IAMPolicyDocumentValidator(json.dumps(deployed.deploy_policy)).validate()


def test_the_execution_role_is_passable_only_to_cloudformation(deployed: Deployed) -> None:
    policy = deployed.deploy_policy
    passing = [s for s in policy["Statement"] if "iam:PassRole" in as_list(s["Action"])]
    to_cloudformation = {"iam:PassedToService": "cloudformation.amazonaws.com"}

    assert len(passing) == 1
    assert passing[0]["Resource"] == EXECUTION_ROLE
    assert passing[0]["Condition"] == {"StringEquals": to_cloudformation}
    assert allows(policy, "iam:PassRole", EXECUTION_ROLE, to_cloudformation)
    assert not allows(policy, "iam:PassRole", EXECUTION_ROLE, {"iam:PassedToService": "lambda.amazonaws.com"})
    for other in (DEPLOY_ROLE, f"arn:aws:iam::{TARGET}:role/OrganizationAccountAccessRole"):
        assert not allows(policy, "iam:PassRole", other, to_cloudformation), other


def test_the_execution_role_is_cloudformations(deployed: Deployed, template: dict[str, Any]) -> None:
    assert deployed.execution_trust["Statement"] == [
        {
            "Sid": "CloudFormation",
            "Effect": "Allow",
            "Principal": {"Service": "cloudformation.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEqualsIfExists": {"aws:SourceAccount": TARGET}},
        }
    ]
    assert "Policies" not in template["Resources"]["CloudFormationExecutionRole"]["Properties"]
    assert "Default" not in template["Parameters"]["CloudFormationExecutionPolicyArn"]


@pytest.mark.parametrize(
    ("given", "attached"),
    [
        # the form for StackSets: one name for every account, each account's own policy
        ("application-bound", f"arn:aws:iam::{TARGET}:policy/application-bound"),
        (f"arn:aws:iam::{TARGET}:policy/application-bound", f"arn:aws:iam::{TARGET}:policy/application-bound"),
        ("arn:aws:iam::aws:policy/PowerUserAccess", "arn:aws:iam::aws:policy/PowerUserAccess"),
    ],
)
def test_each_role_holds_only_the_managed_policy_it_is_given(
    template: dict[str, Any], given: str, attached: str
) -> None:
    """Read from the template as CloudFormation resolves it: moto does not attach a template's managed policies."""

    def managed(parameters: dict[str, str], role: str) -> list[str]:
        resolved = ResolvedTemplate(parameters, account=TARGET, template=template)
        policies: list[str] = resolved.resource(role)["Properties"].get("ManagedPolicyArns", [])
        return policies

    execution = managed({**PARAMETERS, "CloudFormationExecutionPolicyArn": given}, "CloudFormationExecutionRole")
    assert execution == [attached]
    assert managed(PARAMETERS, "DeployRole") == []  # no read policy unless one is given
    assert managed({**PARAMETERS, "DriftDetectionReadPolicyArn": given}, "DeployRole") == [attached]


def test_changes_only_the_named_stacks_and_only_as_the_execution_role(deployed: Deployed) -> None:
    policy = deployed.deploy_policy
    as_execution_role = {"cloudformation:RoleArn": EXECUTION_ROLE}

    for name in STACKS:
        for region in ("us-east-1", "eu-west-1"):
            assert allows(policy, "cloudformation:CreateChangeSet", stack_arn(name, region), as_execution_role)
        for action in ("ExecuteChangeSet", "DescribeChangeSet", "DescribeStacks", "DetectStackDrift"):
            assert allows(policy, f"cloudformation:{action}", stack_arn(name)), action
    for other in ("inventory", "orders-stage", "orders2", "multi-region-deploy-target"):
        assert not allows(policy, "cloudformation:CreateChangeSet", stack_arn(other), as_execution_role), other
        assert not allows(policy, "cloudformation:ExecuteChangeSet", stack_arn(other)), other
        assert not allows(policy, "cloudformation:DescribeStacks", stack_arn(other)), other
    # a change set on a named stack, but run with another role's permissions
    for role in (DEPLOY_ROLE, f"arn:aws:iam::{TARGET}:role/admin"):
        as_other_role = {"cloudformation:RoleArn": role}
        assert not allows(policy, "cloudformation:CreateChangeSet", stack_arn("orders"), as_other_role), role
    # a return to the release updates a named stack, as the execution role only
    assert allows(policy, "cloudformation:UpdateStack", stack_arn("orders"), as_execution_role)
    assert not allows(policy, "cloudformation:UpdateStack", stack_arn("inventory"), as_execution_role)
    for role in (DEPLOY_ROLE, f"arn:aws:iam::{TARGET}:role/admin"):
        assert not allows(policy, "cloudformation:UpdateStack", stack_arn("orders"), {"cloudformation:RoleArn": role})
    # a placeholder is deleted as the execution role only, and only a named stack
    assert allows(policy, "cloudformation:DeleteStack", stack_arn("orders"), as_execution_role)
    assert not allows(policy, "cloudformation:DeleteStack", stack_arn("inventory"), as_execution_role)
    for role in (DEPLOY_ROLE, f"arn:aws:iam::{TARGET}:role/admin"):
        assert not allows(policy, "cloudformation:DeleteStack", stack_arn("orders"), {"cloudformation:RoleArn": role})
    # every change names the execution role: without RoleARN, none is allowed
    for action in ("CreateChangeSet", "DeleteStack", "UpdateStack"):
        assert not allows(policy, f"cloudformation:{action}", stack_arn("orders")), action
    # never otherwise around change sets
    for action in (
        "CreateStack",
        "SetStackPolicy",
        "UpdateTerminationProtection",
        "ContinueUpdateRollback",
        "RollbackStack",
        "CancelUpdateStack",
        "GetTemplate",
        "UpdateStackSet",
    ):
        assert not allows(policy, f"cloudformation:{action}", stack_arn("orders"), as_execution_role), action
    # an application template's AWS-owned transform
    transform = "arn:aws:cloudformation:eu-west-1:aws:transform/Serverless-2016-10-31"
    assert allows(policy, "cloudformation:CreateChangeSet", transform)


# What each function that acts in a target account asks of CloudFormation there, as the deploy role: the
# request's action, what it is authorized on, and its request context. (PassRole is CloudFormation's own check
# of the caller when a request names RoleARN.)
STACK, ROLE, ANY = "stack", "execution role", "*"
AS_EXECUTION_ROLE = {"cloudformation:RoleArn": EXECUTION_ROLE}
PASSED = {"iam:PassedToService": "cloudformation.amazonaws.com"}
Call = tuple[str, str, dict[str, str]]
CALLS: dict[str, list[Call]] = {
    # release_pipeline.rollout: the execute, status and return steps
    "deploy-target": [
        ("cloudformation:DescribeChangeSet", STACK, {}),
        ("cloudformation:ExecuteChangeSet", STACK, {}),
        ("cloudformation:DescribeStacks", STACK, {}),
        ("cloudformation:DescribeStackEvents", STACK, {}),
        ("cloudformation:UpdateStack", STACK, AS_EXECUTION_ROLE),
        ("iam:PassRole", ROLE, PASSED),
    ],
    # release_pipeline.target_changes: create_change_set, then inspect_change_set (changes.py)
    "target-change-sets": [
        ("cloudformation:DescribeStacks", STACK, {}),
        ("cloudformation:CreateChangeSet", STACK, AS_EXECUTION_ROLE),
        ("iam:PassRole", ROLE, PASSED),
        ("cloudformation:DescribeChangeSet", STACK, {}),
    ],
    # release_pipeline.drift: start_detections, follow_detections
    "drift-detection": [
        ("cloudformation:DescribeStacks", STACK, {}),
        ("cloudformation:DetectStackDrift", STACK, {}),
        ("cloudformation:DetectStackResourceDrift", STACK, {}),  # DetectStackDrift's own, per resource
        ("cloudformation:DescribeStackDriftDetectionStatus", ANY, {}),
        ("cloudformation:DescribeStackResourceDrifts", STACK, {}),
    ],
    # release_pipeline.review.remove_review
    "stage-revert": [
        ("cloudformation:DescribeStacks", STACK, {}),
        ("cloudformation:DescribeChangeSet", STACK, {}),
        ("cloudformation:ListChangeSets", STACK, {}),
        ("cloudformation:DeleteChangeSet", STACK, {}),
        ("cloudformation:DeleteStack", STACK, AS_EXECUTION_ROLE),
        ("iam:PassRole", ROLE, PASSED),
    ],
    # release_pipeline.gate.wait_for_turn with a map: describe, latest_request_token, remove_earlier_change_sets
    "execution-gate": [
        ("cloudformation:DescribeStacks", STACK, {}),
        ("cloudformation:DescribeStackEvents", STACK, {}),
        ("cloudformation:ListChangeSets", STACK, {}),
        ("cloudformation:DeleteChangeSet", STACK, {}),
    ],
}
# Granted for what CloudFormation does on a caller's behalf, beyond the calls above: drift detection of registry
# types, the rollback triggers' alarms, an application template's AWS-owned transforms. No artifact is read:
# every template goes inline (TemplateBody).
ON_BEHALF = {"cloudformation:BatchDescribeTypeConfigurations", "cloudwatch:DescribeAlarms"}


def _resource(kind: str, stack: str) -> str:
    return {STACK: stack_arn(stack), ROLE: EXECUTION_ROLE, ANY: "*"}[kind]


@pytest.mark.parametrize("function", sorted(CALLS))
def test_each_function_may_make_its_calls_on_the_named_stacks_and_no_other(deployed: Deployed, function: str) -> None:
    policy = deployed.deploy_policy

    for action, kind, context in CALLS[function]:
        for stack in STACKS:
            assert allows(policy, action, _resource(kind, stack), context), (action, stack)
        if kind == STACK:
            for other in ("inventory", "orders-stage", "multi-region-deploy-target"):
                assert not allows(policy, action, stack_arn(other), context), (action, other)


def test_the_policy_grants_the_functions_calls_and_nothing_more(deployed: Deployed) -> None:
    granted = {a for s in deployed.deploy_policy["Statement"] for a in as_list(s["Action"])}
    called = {action for calls in CALLS.values() for action, _, _ in calls}

    assert granted == called | ON_BEHALF


# The modules whose CloudFormation clients may be a deploy role's (clients.cloudformation_for_targets), and the
# shared helpers they call.
TARGET_MODULES = ("rollout", "target_changes", "drift", "review", "gate", "stacks", "changes")


def test_every_cloudformation_call_in_the_modules_that_reach_targets_is_granted(deployed: Deployed) -> None:
    """A call added to one of these modules fails here until the bootstrap allows it (and CALLS names it)."""

    def read(module: str) -> str:
        return (REPO_ROOT / "layers" / "common" / "release_pipeline" / f"{module}.py").read_text(encoding="utf-8")

    operations = set()
    for module in TARGET_MODULES:
        source = read(module)
        for paginated, called in re.findall(r"\bcfn\.(?:get_paginator\(\"(\w+)\"\)|(\w+)\()", source):
            if called != "get_paginator":
                operations.add(paginated or called)
    actions = {"cloudformation:" + "".join(word.title() for word in name.split("_")) for name in operations}
    called = {action for calls in CALLS.values() for action, _, _ in calls}

    assert "cloudformation:DeleteStack" in actions  # the scan finds what it looks for
    # no template by URL: the deploy role reads no artifact
    assert not [m for m in TARGET_MODULES if re.search(r"TemplateURL=|\"TemplateURL\":", read(m))]
    assert actions <= called
    for action in actions:
        assert allows(deployed.deploy_policy, action, stack_arn("orders"), AS_EXECUTION_ROLE), action


@pytest.mark.parametrize(
    ("parameter", "accepted", "refused"),
    [
        ("SolutionAccountId", ["111122223333"], ["*", "11112222333", "1111-2222-3333"]),
        ("ApplicationStackNames", STACKS, ["*", "orders*", "orders/*", "or?ers", "1orders", ""]),
    ],
)
def test_a_parameter_cannot_widen_a_resource(
    template: dict[str, Any], parameter: str, accepted: list[str], refused: list[str]
) -> None:
    """Each value lands in an ARN or a trust principal, so a wildcard is refused (on a CommaDelimitedList,
    CloudFormation checks AllowedPattern against each item)."""
    pattern = template["Parameters"][parameter]["AllowedPattern"]

    for value in accepted:
        assert re.fullmatch(pattern, value), value
    for value in refused:
        assert not re.fullmatch(pattern, value), value
