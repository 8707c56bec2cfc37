"""The pipeline as template.yaml defines it, resolved for the chosen parameters, and its variables.

Nothing here knows the product's stages by name: stages, actions, run orders, artifacts, namespaces
and conditions all come from the resolved ``AWS::CodePipeline::Pipeline`` resource. ``check`` finds
the wiring mistakes CodePipeline would refuse or trip over (an input artifact nobody produces, a
variable from a namespace nobody declares) before anything runs, and names the action at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from local_aws.cloudformation import ResolvedTemplate

VARIABLE = re.compile(r"#\{([A-Za-z0-9@_-]+)\.([A-Za-z0-9@_.-]+)\}")
# Namespaces CodePipeline provides itself.
BUILT_IN_NAMESPACES = frozenset({"codepipeline"})
CODEPIPELINE_VARIABLES = frozenset({"PipelineExecutionId"})
# template.yaml names each execution's reviewed change sets pipeline-#{codepipeline.PipelineExecutionId}.
CHANGE_SET_PREFIX = "pipeline-"


def change_set_name(execution_id: str) -> str:
    """The change set CheckChanges makes on each production stack for ``execution_id``."""
    return CHANGE_SET_PREFIX + execution_id


class WiringError(Exception):
    """The pipeline, as template.yaml defines it, cannot run: the message names the stage and action."""


@dataclass(frozen=True)
class Rule:
    name: str
    provider: str
    configuration: Mapping[str, str]


@dataclass(frozen=True)
class Condition:
    result: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Action:
    stage: str
    name: str
    category: str
    owner: str
    provider: str
    run_order: int
    configuration: Mapping[str, str]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    namespace: str | None
    region: str | None
    timeout_minutes: int | None = None  # TimeoutInMinutes (manual approval only)

    @property
    def where(self) -> str:
        return f"{self.stage}.{self.name}"


@dataclass(frozen=True)
class Stage:
    name: str
    actions: tuple[Action, ...]
    before_entry: tuple[Condition, ...]

    def run_orders(self) -> list[list[Action]]:
        """Actions grouped by run order. CodePipeline runs a group in parallel; the rehearsal runs it one
        action at a time with approvals last, so whatever a sibling does is done before the approval
        is asked (and counts as done without approval)."""
        orders = sorted({action.run_order for action in self.actions})
        return [
            sorted((a for a in self.actions if a.run_order == order), key=lambda a: a.category == "Approval")
            for order in orders
        ]


@dataclass(frozen=True)
class Pipeline:
    name: str
    logical_id: str
    stages: tuple[Stage, ...]
    execution_mode: str
    pipeline_type: str

    def action(self, where: str) -> Action:
        for stage in self.stages:
            for action in stage.actions:
                if action.where == where:
                    return action
        raise KeyError(where)


def load(template: ResolvedTemplate) -> Pipeline:
    """The one pipeline resource of ``template``, resolved."""
    found = [
        name for name, spec in template.raw["Resources"].items() if spec.get("Type") == "AWS::CodePipeline::Pipeline"
    ]
    if len(found) != 1:
        raise WiringError(f"template.yaml must define exactly one AWS::CodePipeline::Pipeline, found {len(found)}")
    logical_id = found[0]
    properties = template.resource(logical_id)["Properties"]
    name = str(template.physical.get(logical_id, {}).get("Ref", properties.get("Name", logical_id)))
    stages = []
    for stage in properties["Stages"]:
        actions = tuple(_action(stage["Name"], spec) for spec in stage["Actions"])
        conditions = tuple(
            Condition(
                result=str(condition.get("Result", "FAIL")),
                rules=tuple(
                    Rule(
                        name=str(rule["Name"]),
                        provider=str(rule["RuleTypeId"]["Provider"]),
                        configuration={k: str(v) for k, v in rule.get("Configuration", {}).items()},
                    )
                    for rule in condition.get("Rules", [])
                ),
            )
            for condition in stage.get("BeforeEntry", {}).get("Conditions", [])
        )
        stages.append(Stage(name=str(stage["Name"]), actions=actions, before_entry=conditions))
    return Pipeline(
        name=name,
        logical_id=logical_id,
        stages=tuple(stages),
        execution_mode=str(properties.get("ExecutionMode", "SUPERSEDED")),
        pipeline_type=str(properties.get("PipelineType", "V1")),
    )


def _action(stage: str, spec: Mapping[str, Any]) -> Action:
    type_id = spec["ActionTypeId"]
    return Action(
        stage=stage,
        name=str(spec["Name"]),
        category=str(type_id["Category"]),
        owner=str(type_id["Owner"]),
        provider=str(type_id["Provider"]),
        run_order=int(spec.get("RunOrder", 1)),
        configuration={key: str(value) for key, value in spec.get("Configuration", {}).items()},
        inputs=tuple(str(a["Name"]) for a in spec.get("InputArtifacts", [])),
        outputs=tuple(str(a["Name"]) for a in spec.get("OutputArtifacts", [])),
        namespace=str(spec["Namespace"]) if spec.get("Namespace") else None,
        region=str(spec["Region"]) if spec.get("Region") else None,
        timeout_minutes=int(spec["TimeoutInMinutes"]) if spec.get("TimeoutInMinutes") else None,
    )


def check(pipeline: Pipeline, artifact_store_regions: set[str], primary_region: str) -> None:
    """Raise WiringError for what CodePipeline would reject or what could never resolve: an input
    artifact no earlier action outputs, an artifact output twice, a variable from an undeclared or
    later namespace, an action in a Region without an artifact store."""
    produced: dict[str, str] = {}
    namespaces: dict[str, str] = {}
    problems: list[str] = []
    for stage in pipeline.stages:
        for condition in stage.before_entry:
            for rule in condition.rules:
                for text in rule.configuration.values():
                    problems.extend(_unknown_variables(text, namespaces, f"stage {stage.name} condition {rule.name}"))
        for group in stage.run_orders():
            for action in group:
                for artifact in action.inputs:
                    if artifact not in produced:
                        known = ", ".join(sorted(produced)) or "none"
                        problems.append(
                            f"{action.where}: input artifact '{artifact}' is not an output of any earlier action "
                            f"(artifacts produced before it: {known})"
                        )
                for key, text in action.configuration.items():
                    problems.extend(_unknown_variables(text, namespaces, f"{action.where} configuration {key}"))
                    problems.extend(_artifact_paths(text, produced, action, key))
                region = action.region or primary_region
                if region not in artifact_store_regions:
                    problems.append(f"{action.where}: runs in {region}, where the pipeline has no artifact store")
            for action in group:
                for artifact in action.outputs:
                    if artifact in produced:
                        problems.append(
                            f"{action.where}: output artifact '{artifact}' is already produced by {produced[artifact]}"
                        )
                    produced[artifact] = action.where
                if action.namespace:
                    if action.namespace in namespaces:
                        problems.append(f"{action.where}: namespace '{action.namespace}' is already used")
                    namespaces[action.namespace] = action.where
    if problems:
        raise WiringError("the pipeline in template.yaml cannot run:\n  - " + "\n  - ".join(problems))


def _unknown_variables(text: str, namespaces: Mapping[str, str], where: str) -> list[str]:
    problems = []
    for namespace, name in VARIABLE.findall(text):
        if namespace in BUILT_IN_NAMESPACES:
            if name not in CODEPIPELINE_VARIABLES:
                problems.append(f"{where}: #{{{namespace}.{name}}} is not a variable CodePipeline provides")
        elif namespace not in namespaces:
            known = ", ".join(sorted(namespaces)) or "none"
            problems.append(
                f"{where}: #{{{namespace}.{name}}} names namespace '{namespace}', which no earlier action "
                f"declares (namespaces declared before it: {known})"
            )
    return problems


def _artifact_paths(text: str, produced: Mapping[str, str], action: Action, key: str) -> list[str]:
    """TemplatePath-style values (Artifact::path) must name one of the action's input artifacts."""
    if key not in {"TemplatePath", "TemplateConfiguration", "OutputFileName"} or "::" not in text:
        return []
    artifact = text.split("::", 1)[0]
    if artifact not in action.inputs:
        return [f"{action.where} configuration {key}: '{artifact}' is not an input artifact of the action"]
    return []


@dataclass
class Variables:
    """Resolved variables of one execution: ``namespace -> name -> value``."""

    values: dict[str, dict[str, str]] = field(default_factory=dict)

    def set(self, namespace: str, outputs: Mapping[str, str]) -> None:
        self.values.setdefault(namespace, {}).update(outputs)

    def substitute(self, text: str, where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            namespace, name = match.group(1), match.group(2)
            if name not in self.values.get(namespace, {}):
                available = ", ".join(sorted(self.values.get(namespace, {}))) or "none"
                raise WiringError(
                    f"{where}: #{{{namespace}.{name}}} has no value in this execution "
                    f"(namespace {namespace} has: {available})"
                )
            return self.values[namespace][name]

        return VARIABLE.sub(replace, text)
