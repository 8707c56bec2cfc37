"""A CloudFormation (or SAM) template resolved for a chosen set of parameters, for code that reads its
wiring: the rehearsal, which installs the solution from it, and the tests that check it.

Intrinsic functions are resolved the way CloudFormation would for the parts the tests read:
``Fn::ForEach`` loops (expanded first, as the AWS::LanguageExtensions transform does), parameters and
pseudo parameters, ``Fn::Sub``, ``Fn::If`` (with ``AWS::NoValue`` removed from lists),
``Fn::Join``, ``Fn::Equals``/``Not``/``And``/``Or``. A resource reference resolves to a readable
placeholder: ``Ref`` to the logical id, ``Fn::GetAtt`` to ``<LogicalId>.<Attribute>``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml
from samcli.lib.cfn_language_extensions.sam_integration import expand_language_extensions
from samtranslator.policy_template_processor.processor import PolicyTemplatesProcessor

_NO_VALUE = object()
# SAM's policy templates (a function's ``- CodePipelineLambdaExecutionPolicy: {}``), as the SAM transform
# expands them: https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/serverless-policy-templates.html
_POLICY_TEMPLATES = PolicyTemplatesProcessor(PolicyTemplatesProcessor.get_default_policy_templates_json())
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")
FOR_EACH = "Fn::ForEach::"


def load_template(path: Path) -> dict[str, Any]:
    """A template file as CloudFormation reads it (YAML with its short forms, or JSON)."""
    template: dict[str, Any] = cfn_yaml.load(str(path))
    return template


def expand_for_each(template: dict[str, Any], pseudo: Mapping[str, str]) -> dict[str, Any]:
    """``template`` with each ``Fn::ForEach::`` entry of its Resources replaced, in place, by the resources
    it makes, as CloudFormation's AWS::LanguageExtensions transform makes them before the SAM transform
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference-foreach.html).
    SAM CLI's own expander does the work; everything outside the loops is kept as written."""
    resources: dict[str, Any] = template.get("Resources", {})
    if not any(name.startswith(FOR_EACH) for name in resources):
        return template
    result = expand_language_extensions(copy.deepcopy(template), dict(pseudo), enabled=True)
    made: dict[str, Any] = result.expanded_template["Resources"]
    expanded: dict[str, Any] = {}
    for name, spec in resources.items():
        if name.startswith(FOR_EACH):
            expanded.update({key: value for key, value in made.items() if key not in resources})
        else:
            expanded[name] = spec
    return {**template, "Resources": expanded}


class ResolvedTemplate:
    def __init__(
        self,
        parameters: dict[str, str] | None = None,
        *,
        region: str = "us-east-1",
        account: str = "123456789012",
        stack_name: str = "release-solution",
        template: dict[str, Any],
        physical: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """``physical`` maps a logical id to what ``Ref`` ("Ref") and ``Fn::GetAtt`` (by attribute)
        give for it, for tests that need real names and ARNs (IAM policies checked by moto)."""
        self.physical = physical or {}
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::StackName": stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/0",
        }
        self.raw = expand_for_each(template, self.pseudo)
        self.parameters: dict[str, str] = {}
        for name, spec in self.raw.get("Parameters", {}).items():
            value = (parameters or {}).get(name, spec.get("Default"))
            if value is None:
                raise KeyError(f"parameter {name} has no default: pass a value")
            self.parameters[name] = str(value)
        self.conditions = {name: bool(self.resolve(expr)) for name, expr in self.raw.get("Conditions", {}).items()}

    def resource(self, logical_id: str) -> dict[str, Any]:
        value: dict[str, Any] = self.resolve(self.raw["Resources"][logical_id])
        return value

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            name: self.resource(name)
            for name, spec in self.raw["Resources"].items()
            if spec.get("Type") == resource_type
        }

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The environment the template gives a function: Globals merged with its own variables."""
        globals_env = self.raw.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        own = self.resource(logical_id)["Properties"].get("Environment", {}).get("Variables", {})
        return {name: str(value) for name, value in {**self.resolve(globals_env), **own}.items()}

    def function_policy(self, logical_id: str) -> dict[str, Any]:
        """The function's inline policy statements and SAM policy templates (SAM's Policies) as one IAM
        policy document."""
        return self._policy(logical_id, _sam_policy)

    def role_policy(self, logical_id: str) -> dict[str, Any]:
        """An AWS::IAM::Role's inline policies (Policies[].PolicyDocument) as one IAM policy document."""
        return self._policy(logical_id, lambda policy: policy.get("PolicyDocument", {}))

    def _policy(self, logical_id: str, document_of: Any) -> dict[str, Any]:
        statements: list[Any] = []
        for policy in self.resource(logical_id)["Properties"].get("Policies", []):
            document = document_of(policy) if isinstance(policy, dict) else None
            if isinstance(document, dict) and "Statement" in document:
                statements.extend(document["Statement"])
        return {"Version": "2012-10-17", "Statement": statements}

    def resolve(self, node: Any) -> Any:
        if isinstance(node, dict):
            if len(node) == 1:
                ((key, value),) = node.items()
                handler = _INTRINSICS.get(key)
                if handler is not None:
                    return handler(self, value)
            return {key: resolved for key, item in node.items() if (resolved := self.resolve(item)) is not _NO_VALUE}
        if isinstance(node, list):
            return [resolved for item in node if (resolved := self.resolve(item)) is not _NO_VALUE]
        return node

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical.get(name, {}).get("Ref", name)

    def _sub(self, value: Any) -> str:
        text, variables = (value, {}) if isinstance(value, str) else (value[0], self.resolve(value[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                return _get_att(self, name)
            return str(self._ref(name))

        return _SUB.sub(replace, text)

    def _if(self, value: list[Any]) -> Any:
        name, when_true, when_false = value
        return self.resolve(when_true if self.conditions[name] else when_false)


def _sam_policy(policy: dict[str, Any]) -> dict[str, Any]:
    """A SAM Policies entry as a policy document: an inline statement list as written, a policy template
    (``{"<TemplateName>": {<parameters>}}``) expanded by SAM's own processor."""
    if len(policy) == 1:
        ((name, parameters),) = policy.items()
        if _POLICY_TEMPLATES.has(name):
            document: dict[str, Any] = _POLICY_TEMPLATES.convert(name, parameters)
            return document
    return policy


def _get_att(resolver: ResolvedTemplate, value: Any) -> str:
    parts = value.split(".", 1) if isinstance(value, str) else value
    return resolver.physical.get(parts[0], {}).get(parts[1], f"{parts[0]}.{parts[1]}")


_INTRINSICS: dict[str, Any] = {
    "Ref": lambda r, v: r._ref(v),
    "Fn::Sub": lambda r, v: r._sub(v),
    "Fn::GetAtt": _get_att,
    "Fn::If": lambda r, v: r._if(v),
    "Fn::Join": lambda r, v: str(v[0]).join(str(item) for item in r.resolve(v[1])),
    "Fn::Equals": lambda r, v: str(r.resolve(v[0])) == str(r.resolve(v[1])),
    "Fn::Not": lambda r, v: not r.resolve(v[0]),
    "Fn::And": lambda r, v: all(r.resolve(item) for item in v),
    "Fn::Or": lambda r, v: any(r.resolve(item) for item in v),
    "Condition": lambda r, v: r.conditions[v],
    "Fn::Select": lambda r, v: r.resolve(v[1])[int(r.resolve(v[0]))],
    "Fn::Split": lambda r, v: str(r.resolve(v[1])).split(v[0]),
}
