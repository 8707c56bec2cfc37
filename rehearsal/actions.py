"""Each action provider the pipeline uses, run locally the way CodePipeline runs it.

- Source (CodeStarSourceConnection): a folder zipped as the source artifact, with the source variables.
- CodeBuild: the project's buildspec build commands, run here with the project's variables. A command
  whose tool is not installed makes the action SKIPPED, with the reason, never Succeeded.
- CloudFormation: every action mode the template uses, against the emulator in the action's Region,
  as the pipeline's role.
- Lambda: the function's real handler, in this process, with a genuine job event and the environment
  template.yaml gives it; continuation tokens are followed and output variables collected.
- Manual approval: the notification CodePipeline sends, then a decision (flag or terminal prompt).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import shlex
import shutil
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from botocore.exceptions import ClientError

import local_aws
from local_aws import clock
from local_aws.awslambda import FakeLambdaContext, load_handler
from local_aws.cloudformation import NO_CHANGES_REASON
from rehearsal.pipeline import Action, Variables, WiringError

if TYPE_CHECKING:
    from rehearsal.solution import Function, Solution

SUCCEEDED, FAILED, SKIPPED = "Succeeded", "Failed", "Skipped"
# How many times CodePipeline would re-invoke a continuing action before the rehearsal calls it stuck
# (CodePipeline itself allows a continuing action up to 24 hours).
# CodePipeline ends a Lambda invoke action after 24 hours, however often it continues; a rollout followed
# every CONTINUATION_INTERVAL (on the emulator's clock) continues at most 24 h / 30 s = 2,880 times.
MAX_CONTINUATIONS = 3000
CONTINUATION_PAUSE_SECONDS = 0.05
# How far the emulator's clock moves between two invocations of a continuing action while a state machine
# waits for the clock (a rollout's checks and bake times): CodePipeline invokes the action again on its own
# schedule, which the rehearsal takes as half a minute.
CONTINUATION_INTERVAL = timedelta(seconds=30)
# How long, in real seconds, a continuing action waits for the state machines to come to wait for the clock.
SETTLE_SECONDS = 20.0
# One function runs at a time in this process: a sandbox replaces the process's environment and the
# layer's modules, and a state machine's task may be invoked (from moto's worker thread) while a
# pipeline action's function runs in the main thread.
_SANDBOX = threading.RLock()
STACK_WAIT_SECONDS = 120
# CodePipeline's defaults (https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html), measured
# on the emulator's clock: an approval without TimeoutInMinutes waits 7 days; a Lambda invoke action that
# keeps continuing is ended after 24 hours.
APPROVAL_TIMEOUT = timedelta(days=7)
LAMBDA_ACTION_LIMIT = timedelta(hours=24)
_EXCLUDED = {".git", "__pycache__", ".DS_Store", ".aws-sam"}


class Reporter(Protocol):
    def detail(self, text: str) -> None: ...


class Decider(Protocol):
    """The approver: (True, who) approves, (False, who) rejects, (None, why) leaves it open."""

    def __call__(self, action: Action, custom_data: str, link: str) -> tuple[bool | None, str]: ...


@dataclass(frozen=True)
class Artifact:
    name: str
    bucket: str
    key: str
    region: str
    revision: str | None = None


@dataclass
class Outcome:
    status: str
    summary: str
    variables: dict[str, str] = field(default_factory=dict)
    # How long the action took on the emulator's clock (a rollout's bake times, an approval left open).
    clock_seconds: float = 0.0


@dataclass
class Execution:
    """One pipeline execution in progress: its id, variables and artifacts."""

    solution: Solution
    execution_id: str
    variables: Variables
    reporter: Reporter
    decide: Decider
    source_dir: Path
    revision_label: str
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    invocations: list[tuple[str, float]] = field(default_factory=list)  # (function logical id, seconds)
    show_logs: bool = False
    last_logs: list[str] = field(default_factory=list)
    retry_mode: str | None = None  # how a failed stage is retried: "all" or "failed" actions
    # Each function's warm sandbox in this execution (its handler module and the layer's modules), reused
    # by its next invocation as Lambda reuses an execution environment; the first one is a cold start.
    warm: dict[str, tuple[ModuleType, dict[str, ModuleType]]] = field(default_factory=dict)

    def region(self, action: Action) -> str:
        """The Region the action runs in: its own, or the pipeline's."""
        return action.region or self.solution.primary_region

    def config(self, action: Action) -> dict[str, str]:
        """The action's configuration with every #{...} variable substituted."""
        return {
            key: self.variables.substitute(value, f"{action.where} configuration {key}")
            for key, value in action.configuration.items()
        }

    def client(self, service: str, region: str | None = None, principal: str = "pipeline") -> Any:
        solution = self.solution
        return solution.emulator.client(service, region or solution.primary_region, solution.credentials(principal))

    # ----------------------------------------------------------------- artifacts

    def new_artifact(self, name: str, region: str) -> Artifact:
        bucket, _ = self._store(region)
        alphabet = string.ascii_letters + string.digits
        key = f"{self.solution.pipeline_name[:20]}/{name[:10]}/{''.join(secrets.choice(alphabet) for _ in range(7))}"
        return Artifact(name=name, bucket=bucket, key=key, region=region)

    def _store(self, region: str) -> tuple[str, str]:
        try:
            return self.solution.artifact_stores[region]
        except KeyError:
            raise WiringError(f"the pipeline has no artifact store in {region}") from None

    def put_artifact(self, artifact: Artifact, body: bytes, revision: str | None = None) -> Artifact:
        _, key_arn = self._store(artifact.region)
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn} if key_arn else {}
        answer = self.client("s3", artifact.region).put_object(
            Bucket=artifact.bucket, Key=artifact.key, Body=body, **extra
        )
        revision = revision or answer.get("VersionId") or hashlib.sha256(body).hexdigest()
        stored = Artifact(artifact.name, artifact.bucket, artifact.key, artifact.region, revision)
        self.artifacts[artifact.name] = stored
        return stored

    def read_artifact(self, artifact: Artifact) -> bytes:
        body: bytes = (
            self.client("s3", artifact.region).get_object(Bucket=artifact.bucket, Key=artifact.key)["Body"].read()
        )
        return body

    def input_artifact(self, action: Action, name: str, region: str) -> Artifact:
        """The artifact as the action sees it: copied to the action's Region first, as CodePipeline does
        for a cross-Region action."""
        artifact = self.artifacts.get(name)
        if artifact is None:
            raise WiringError(f"{action.where}: input artifact '{name}' was not produced in this execution")
        if artifact.region == region:
            return artifact
        copy = self.new_artifact(name, region)
        _, key_arn = self._store(region)
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn} if key_arn else {}
        self.client("s3", region).put_object(
            Bucket=copy.bucket, Key=copy.key, Body=self.read_artifact(artifact), **extra
        )
        return Artifact(name, copy.bucket, copy.key, region, artifact.revision)

    def artifact_file(self, action: Action, reference: str, region: str) -> bytes:
        """``Artifact::path/in/zip`` read from one of the action's input artifacts."""
        name, _, path = reference.partition("::")
        if name not in action.inputs:
            raise WiringError(f"{action.where}: '{reference}' names '{name}', which is not an input of the action")
        archive = zipfile.ZipFile(io.BytesIO(self.read_artifact(self.input_artifact(action, name, region))))
        try:
            return archive.read(path)
        except KeyError:
            files = ", ".join(sorted(archive.namelist())[:20])
            raise ActionFailed(f"'{path}' is not in artifact {name} (it holds: {files})") from None


class ActionFailed(Exception):
    """The action ends Failed with this message (as the console would show it)."""


# ------------------------------------------------------------------------------------------ Source


def zip_folder(folder: Path) -> bytes:
    """A CODE_ZIP source artifact: the folder's files at the archive root, in a stable order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and not any(part in _EXCLUDED for part in relative.parts):
                info = zipfile.ZipInfo(relative.as_posix(), date_time=(2026, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def commit_id(folder: Path) -> str:
    """A stand-in for the Git commit: the SHA-1 of the folder's content (same files, same id)."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part in _EXCLUDED for part in relative.parts):
            digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def run_source(execution: Execution, action: Action) -> Outcome:
    config = execution.config(action)
    if config.get("OutputArtifactFormat", "CODE_ZIP") != "CODE_ZIP":
        raise ActionFailed(f"OutputArtifactFormat {config['OutputArtifactFormat']} is not rehearsed (CODE_ZIP is)")
    body = zip_folder(execution.source_dir)
    commit = commit_id(execution.source_dir)
    for name in action.outputs:
        # A source action's revision is the commit, as for a CodeStarSourceConnection artifact.
        region = execution.region(action)
        execution.put_artifact(execution.new_artifact(name, region), body, revision=commit)
    files = len(zipfile.ZipFile(io.BytesIO(body)).namelist())
    variables = {
        "CommitId": commit,
        "BranchName": config.get("BranchName", ""),
        "FullRepositoryName": config.get("FullRepositoryId", ""),
        "ConnectionArn": config.get("ConnectionArn", ""),
        "CommitMessage": execution.revision_label,
        "AuthorDate": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return Outcome(SUCCEEDED, f"{execution.source_dir.name} ({files} files) as commit {commit[:12]}", variables)


# ---------------------------------------------------------------------------------------- CodeBuild


def run_codebuild(execution: Execution, action: Action) -> Outcome:
    config = execution.config(action)
    solution = execution.solution
    logical_id = solution.projects.get(config.get("ProjectName", ""))
    if logical_id is None:
        raise WiringError(
            f"{action.where}: ProjectName '{config.get('ProjectName')}' is not a CodeBuild project of the template"
        )
    project = solution.template.resource(logical_id)["Properties"]
    spec = yaml.safe_load(project["Source"].get("BuildSpec", "")) or {}
    phases = spec.get("phases", {})
    # CodeBuild's precedence: the project's variables win over the buildspec's env.variables.
    variables = {str(k): str(v) for k, v in spec.get("env", {}).get("variables", {}).items()}
    for variable in project["Environment"].get("EnvironmentVariables", []):
        if variable.get("Type", "PLAINTEXT") != "PLAINTEXT":
            raise ActionFailed(f"{logical_id}: variable {variable['Name']} of type {variable['Type']} is not rehearsed")
        variables[str(variable["Name"])] = str(variable["Value"])
    main = [str(c) for phase in ("pre_build", "build") for c in phases.get(phase, {}).get("commands", [])]
    post = [str(c) for c in phases.get("post_build", {}).get("commands", [])]
    if not main:
        raise ActionFailed(f"project {logical_id} has no build commands to run")
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
    missing = sorted({tool for c in main + post if (tool := _tool_of(c)) and shutil.which(tool, path=path) is None})
    if missing:
        installs = "; ".join(str(c) for c in phases.get("install", {}).get("commands", [])) or "its install phase"
        return Outcome(
            SKIPPED,
            f"NOT RUN: {', '.join(missing)} not installed here; in AWS the project installs it ({installs}). "
            "Not counted as passed.",
        )
    region = execution.region(action)
    with tempfile.TemporaryDirectory(prefix="codebuild-") as workdir:
        for name in action.inputs:
            artifact = execution.input_artifact(action, name, region)
            _safe_extract(zipfile.ZipFile(io.BytesIO(execution.read_artifact(artifact))), Path(workdir))
        # A clean environment, as in a build container: nothing of this machine's AWS settings (a command
        # such as `aws ...` reaches the emulator as the project's service role, never a real account).
        environment = {
            **{k: v for k, v in os.environ.items() if k in {"HOME", "LANG", "LC_ALL", "TMPDIR", "TERM"}},
            **solution.emulator.environment(),
            **solution.credentials(logical_id).as_environment(),
            **variables,
            "PATH": path,
            "CODEBUILD_SRC_DIR": workdir,
            "CODEBUILD_BUILD_ID": f"{config['ProjectName']}:{uuid.uuid4()}",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
        }
        timeout = int(project.get("TimeoutInMinutes", 60)) * 60
        failure = _run_shell(execution, main, workdir, environment, timeout)
        if post:  # CodeBuild runs post_build after a failed build too
            environment["CODEBUILD_BUILD_SUCCEEDING"] = "0" if failure else "1"
            post_failure = _run_shell(execution, post, workdir, environment, timeout)
            failure = failure or post_failure
    if failure:
        raise ActionFailed(failure)
    return Outcome(SUCCEEDED, f"{len(main) + len(post)} build command(s) passed")


# A build whose every command is one of these linters only reads its input: the same commands on the same
# files with the same settings give the same result. The tests' rehearsals lint the same few templates
# again and again, so they replay such builds (replay_linter_builds); `make demo` runs every build.
LINTERS = frozenset({"cfn-lint", "cfn_nag_scan"})
# Settings that differ between two runs of the same build without changing what a linter reads.
_RUN_SPECIFIC = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "CODEBUILD_BUILD_ID")
_linter_builds: dict[str, tuple[int, str, str]] | None = None


def replay_linter_builds() -> None:
    """From now on in this process, a linter build already run on the same input is replayed."""
    global _linter_builds
    if _linter_builds is None:
        _linter_builds = {}


def _linter_build_key(commands: list[str], workdir: str, environment: Mapping[str, str]) -> str | None:
    if _linter_builds is None or not all(_tool_of(command) in LINTERS for command in commands):
        return None
    digest = hashlib.sha256(json.dumps(commands).encode())
    for name, value in sorted(environment.items()):
        if name not in _RUN_SPECIFIC and not name.startswith("AWS_ENDPOINT_URL") and value != workdir:
            digest.update(f"{name}={value}\0".encode())
    for path in sorted(Path(workdir).rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(workdir)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _run_shell(
    execution: Execution, commands: list[str], workdir: str, environment: dict[str, str], timeout: int
) -> str | None:
    """The commands in one shell, as CodeBuild runs a phase: a `cd` or `export` carries over, every
    command's exit status is checked, and the first that fails stops the rest. Which command ran last
    is kept in a file, not parsed from the output. Returns the failure message, or None."""
    key = _linter_build_key(commands, workdir, environment)
    if key is not None and _linter_builds is not None and key in _linter_builds:
        returncode, stdout, reached = _linter_builds[key]
        return _build_result(execution, commands, returncode, stdout, reached)
    with tempfile.TemporaryDirectory(prefix="codebuild-shell-") as scratch:
        marker = Path(scratch) / "command"
        script = []
        for index, command in enumerate(commands):
            script += [
                f"printf '[Container] Running command %s\\n' {shlex.quote(command)}",
                f"printf %s {index} > {shlex.quote(str(marker))}",
                command,
                "__rc=$?; if [ $__rc -ne 0 ]; then exit $__rc; fi",
            ]
        script.append(f"printf %s done > {shlex.quote(str(marker))}")
        try:
            completed = subprocess.run(  # noqa: S603 (the project's own buildspec commands)
                ["/bin/bash", "-c", "\n".join(script)],
                cwd=workdir,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"build timed out after {timeout} s (the project's TimeoutInMinutes)"
        reached = marker.read_text(encoding="utf-8") if marker.exists() else ""
    if key is not None and _linter_builds is not None:
        _linter_builds[key] = (completed.returncode, completed.stdout, reached)
    return _build_result(execution, commands, completed.returncode, completed.stdout, reached)


def _build_result(execution: Execution, commands: list[str], returncode: int, stdout: str, reached: str) -> str | None:
    lines = stdout.splitlines()
    failing_output: list[str] = []
    for line in lines:
        execution.reporter.detail(line if line.startswith("[Container] ") else f"  {line}")
        failing_output = [] if line.startswith("[Container] Running command ") else [*failing_output, line]
    if returncode == 0 and reached == "done":
        return None
    failed = commands[int(reached)] if reached.isdigit() else "(before the first command)"
    if returncode == 0:
        return f"the build stopped without an error after: {failed} (later commands never ran)"
    findings = " / ".join(line.strip() for line in failing_output if line.strip())[:600]
    return f"build command failed with exit status {returncode}: {failed}" + (f" -> {findings}" if findings else "")


def _tool_of(command: str) -> str | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for word in words:
        if "=" in word.split("/")[0] and not word.startswith("-"):
            continue  # VAR=value prefix
        return None if word in {"cd", "echo", "export", "set", "test", "[", "true", "false"} else word
    return None


def _safe_extract(archive: zipfile.ZipFile, target: Path) -> None:
    root = target.resolve()
    for member in archive.infolist():
        destination = (root / member.filename).resolve()
        if not destination.is_relative_to(root):
            raise ActionFailed(f"artifact entry {member.filename!r} points outside the build directory")
    archive.extractall(root)


# ----------------------------------------------------------------------------------- CloudFormation

_IN_PROGRESS = "_IN_PROGRESS"
_STACK_OK = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})


def run_cloudformation(execution: Execution, action: Action) -> Outcome:
    config = execution.config(action)
    region = execution.region(action)
    cfn = execution.client("cloudformation", region)
    mode = config.get("ActionMode", "")
    stack_name = config["StackName"]
    handlers: dict[str, Callable[[Execution, Action, dict[str, str], Any, str], Outcome]] = {
        "CREATE_UPDATE": _create_update,
        "CHANGE_SET_REPLACE": _change_set_replace,
        "CHANGE_SET_EXECUTE": _change_set_execute,
        "DELETE_ONLY": _delete_only,
    }
    handler = handlers.get(mode)
    if handler is None:
        raise ActionFailed(f"ActionMode {mode!r} is not rehearsed (rehearsed: {', '.join(sorted(handlers))})")
    try:
        return handler(execution, action, config, cfn, stack_name)
    except ClientError as error:
        raise ActionFailed(f"{error.response['Error']['Code']}: {error.response['Error']['Message']}") from error


def missing_stack(error: ClientError) -> bool:
    """CloudFormation's answer for a stack that does not exist (a ValidationError, not a NotFound)."""
    return "does not exist" in error.response["Error"]["Message"]


def _stack(cfn: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if missing_stack(error):
            return None
        raise
    return stacks[0] if stacks else None


def _wait(cfn: Any, name: str) -> dict[str, Any] | None:
    deadline = time.monotonic() + STACK_WAIT_SECONDS
    while True:
        stack = _stack(cfn, name)
        if (
            stack is None
            or not stack["StackStatus"].endswith(_IN_PROGRESS)
            or stack["StackStatus"] == ("REVIEW_IN_PROGRESS")
        ):
            return stack
        if time.monotonic() > deadline:
            raise ActionFailed(f"stack {name} still {stack['StackStatus']} after {STACK_WAIT_SECONDS} s")
        time.sleep(0.1)


def _settled(cfn: Any, name: str, after: str) -> tuple[dict[str, Any] | None, str]:
    """The stack once it has settled, and its status; an action fails unless it is complete."""
    final = _wait(cfn, name)
    status = final["StackStatus"] if final else "DELETED"
    if status not in _STACK_OK:
        raise ActionFailed(f"stack {name} ended {status} after {after}: {(final or {}).get('StackStatusReason', '')}")
    return final, status


def _template_and_parameters(
    execution: Execution, action: Action, config: Mapping[str, str], region: str
) -> tuple[str, list[dict[str, str]], list[str]]:
    body = execution.artifact_file(action, config["TemplatePath"], region).decode("utf-8")
    parameters: dict[str, str] = {}
    if config.get("TemplateConfiguration"):
        document = json.loads(execution.artifact_file(action, config["TemplateConfiguration"], region))
        parameters.update({str(k): str(v) for k, v in document.get("Parameters", {}).items()})
    if config.get("ParameterOverrides"):
        try:
            overrides = json.loads(config["ParameterOverrides"])
        except json.JSONDecodeError as error:
            raise ActionFailed(f"ParameterOverrides is not JSON: {error}") from error
        if not isinstance(overrides, dict):
            raise ActionFailed("ParameterOverrides must be a JSON object")
        parameters.update({str(k): str(v) for k, v in overrides.items()})
    capabilities = [c.strip() for c in config.get("Capabilities", "").split(",") if c.strip()]
    return body, [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()], capabilities


def _outputs(stack: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in (stack or {}).get("Outputs", [])}


def _role(config: Mapping[str, str]) -> dict[str, str]:
    return {"RoleARN": config["RoleArn"]} if config.get("RoleArn") else {}


def _create_update(execution: Execution, action: Action, config: dict[str, str], cfn: Any, name: str) -> Outcome:
    region = execution.region(action)
    body, parameters, capabilities = _template_and_parameters(execution, action, config, region)
    stack = _wait(cfn, name)
    if stack is not None and stack["StackStatus"] in {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"}:
        # Unlike REPLACE_ON_FAILURE, CREATE_UPDATE never deletes a failed stack: the action fails.
        raise ActionFailed(f"stack {name} is {stack['StackStatus']} and cannot be updated; delete it first")
    common = {"StackName": name, "TemplateBody": body, "Parameters": parameters, "Capabilities": capabilities}
    if stack is None:
        cfn.create_stack(**common, **_role(config))
        verb = "created"
    else:
        try:
            cfn.update_stack(**common, **_role(config))
            verb = "updated"
        except ClientError as error:
            if "No updates are to be performed" not in error.response["Error"]["Message"]:
                raise
            return Outcome(SUCCEEDED, f"{name}: no updates to perform", _outputs(stack))
    final, status = _settled(cfn, name, f"being {verb}")
    return Outcome(SUCCEEDED, f"{name} {verb} in {region} ({status})", _outputs(final))


def _change_set_replace(execution: Execution, action: Action, config: dict[str, str], cfn: Any, name: str) -> Outcome:
    region = execution.region(action)
    change_set = config["ChangeSetName"]
    body, parameters, capabilities = _template_and_parameters(execution, action, config, region)
    stack = _wait(cfn, name)
    kind = "UPDATE" if stack is not None and stack["StackStatus"] != "REVIEW_IN_PROGRESS" else "CREATE"
    if stack is not None:
        try:
            cfn.delete_change_set(StackName=name, ChangeSetName=change_set)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ChangeSetNotFound":
                raise
    cfn.create_change_set(
        StackName=name,
        ChangeSetName=change_set,
        ChangeSetType=kind,
        TemplateBody=body,
        Parameters=parameters,
        Capabilities=capabilities,
        **_role(config),
    )
    deadline = time.monotonic() + STACK_WAIT_SECONDS
    while True:
        described = cfn.describe_change_set(StackName=name, ChangeSetName=change_set)
        if described["Status"] in {"CREATE_COMPLETE", "FAILED"}:
            break
        if time.monotonic() > deadline:
            raise ActionFailed(f"change set {change_set} still {described['Status']}")
        time.sleep(0.1)
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        if reason == NO_CHANGES_REASON:
            return Outcome(SUCCEEDED, f"{change_set} on {name} in {region}: no changes")
        raise ActionFailed(f"change set {change_set} on {name} FAILED: {reason}")
    changes = len(described.get("Changes", []))
    return Outcome(SUCCEEDED, f"{change_set} ({kind}) on {name} in {region}: {changes} change(s)")


def _change_set_execute(execution: Execution, action: Action, config: dict[str, str], cfn: Any, name: str) -> Outcome:
    region = execution.region(action)
    change_set = config["ChangeSetName"]
    cfn.execute_change_set(StackName=name, ChangeSetName=change_set)
    final, status = _settled(cfn, name, f"executing {change_set}")
    return Outcome(SUCCEEDED, f"executed {change_set}: {name} in {region} is {status}", _outputs(final))


def _delete_only(execution: Execution, action: Action, config: dict[str, str], cfn: Any, name: str) -> Outcome:
    region = execution.region(action)
    stack = _wait(cfn, name)
    if stack is None:
        return Outcome(SUCCEEDED, f"{name} does not exist in {region}: nothing to delete")
    cfn.delete_stack(StackName=name, **_role(config))
    final = _wait(cfn, name)
    if final is not None and final["StackStatus"] != "DELETE_COMPLETE":
        raise ActionFailed(f"stack {name} ended {final['StackStatus']}")
    return Outcome(SUCCEEDED, f"{name} deleted in {region}")


# ------------------------------------------------------------------------------------------- Lambda


@contextmanager
def function_environment(
    execution: Execution, function: Function, layer: dict[str, ModuleType] | None = None
) -> Iterator[None]:
    """The process as a Lambda sandbox of ``function``: its template environment, its Region, its role's
    credentials, and the layer's modules: ``layer`` (a warm sandbox's, updated in place with what this
    invocation imports), or a fresh import. The modules this process had imported before are put back
    afterwards, so nothing of the sandbox leaks out (or in)."""
    solution = execution.solution
    saved = {name: module for name, module in sys.modules.items() if _is_layer_module(name)}
    for name in saved:
        del sys.modules[name]
    sys.modules.update(layer or {})
    environment = {
        **solution.template.function_environment(function.logical_id),
        "AWS_REGION": solution.primary_region,
        "AWS_DEFAULT_REGION": solution.primary_region,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        **solution.credentials(function.logical_id).as_environment(),
    }
    try:
        with solution.emulator.process_environment(environment):
            yield
    finally:
        for name in [name for name in sys.modules if _is_layer_module(name)]:
            module = sys.modules.pop(name)
            if layer is not None:
                layer[name] = module
        sys.modules.update(saved)


def _is_layer_module(name: str) -> bool:
    return name == "release_pipeline" or name.startswith("release_pipeline.")


@contextmanager
def captured_logs(service: str) -> Iterator[io.StringIO]:
    """Everything the function prints or logs, including through a Powertools logger that an earlier
    invocation of the same service configured (its handler keeps the stream it was made with)."""
    buffer = io.StringIO()
    handlers = [h for h in logging.getLogger(service).handlers if isinstance(h, logging.StreamHandler)]
    previous = [h.setStream(buffer) for h in handlers]
    try:
        with redirect_stdout(buffer), redirect_stderr(buffer):
            yield buffer
    finally:
        for handler in logging.getLogger(service).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is buffer:
                handler.setStream(sys.stdout)
        for handler, stream in zip(handlers, previous, strict=True):
            if stream is not None and stream is not buffer:
                handler.setStream(stream)


def invoke(execution: Execution, function: Function, event: dict[str, Any]) -> Any:
    """Call the function's handler once with ``event`` in its own sandbox; returns what it returns."""
    with _SANDBOX:  # measured from when the function has the process (a task may wait for it)
        return _invoke(execution, function, event)


def _invoke(execution: Execution, function: Function, event: dict[str, Any]) -> Any:
    module_file, _, handler_name = function.handler.rpartition(".")
    started = time.perf_counter()
    service = execution.solution.template.function_environment(function.logical_id).get(
        "POWERTOOLS_SERVICE_NAME", "service_undefined"
    )
    output = io.StringIO()
    # Powertools' Logger(log_uncaught_exceptions=True) replaces sys.excepthook: keep this process's own.
    excepthook = sys.excepthook
    module_name: str | None = None
    warm = execution.warm.get(function.logical_id)
    layer: dict[str, ModuleType] = warm[1] if warm else {}
    try:
        with function_environment(execution, function, layer), captured_logs(service) as output:
            if warm:
                module = warm[0]
                sys.modules[module.__name__] = module
            else:
                module = load_handler(function.code_dir, module_file)
                execution.warm[function.logical_id] = (module, layer)
            module_name = module.__name__
            handler = getattr(module, handler_name)
            context = FakeLambdaContext(
                function.name,
                memory_limit_in_mb=function.memory_mb,
                timeout_ms=function.timeout_seconds * 1000,
                region=execution.solution.primary_region,
                account_id=execution.solution.account_id,
            )
            return handler(event, context)
    finally:
        sys.excepthook = excepthook
        if module_name:
            sys.modules.pop(module_name, None)
        execution.invocations.append((function.logical_id, time.perf_counter() - started))
        execution.last_logs = [_log_line(line) for line in output.getvalue().splitlines() if line.strip()]
        if execution.show_logs:
            for line in execution.last_logs:
                execution.reporter.detail(f"log: {line}")


_STANDARD_LOG_KEYS = frozenset(
    {"level", "location", "message", "timestamp", "service", "cold_start", "xray_trace_id", "sampling_rate"}
)


def _log_line(line: str) -> str:
    """A Powertools JSON log line as "LEVEL message (key=value...)"; other lines as they are."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return line[:300]
    if not isinstance(record, dict) or "message" not in record:
        return line[:300]
    if isinstance(record["message"], dict):  # a logged event: its type and detail, compactly
        event = record["message"]
        summary = f"event {event.get('detail-type', '')} {json.dumps(event.get('detail', event), sort_keys=True)}"
        return f"{record.get('level', '')} {summary[:300]}"
    shown = {k: v for k, v in record.items() if k not in _STANDARD_LOG_KEYS and not k.startswith("function_")}
    extra = (" (" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")")[:400] if shown else ""
    return f"{record.get('level', '')} {str(record['message'])[:300]}{extra}"


def serve_tasks(execution: Execution) -> None:
    """From now on, each function a state machine's tasks invoke runs in this process, in its sandbox,
    for ``execution`` (a synchronous Invoke from a task: local_aws.run_in_process)."""
    solution = execution.solution
    for logical_id in solution.task_functions:
        function = solution.functions[logical_id]

        def handler(event: Any, _context: Any, function: Function = function) -> Any:
            return invoke(execution, function, event)

        local_aws.run_in_process(function.name, solution.primary_region, handler, account_id=solution.account_id)


def let_state_machines_run(execution: Execution) -> None:
    """Between two invocations of a continuing action: once every state machine's work has come to wait
    for the clock (Wait states, Retry intervals), move the clock to the end of the first wait (at least
    CONTINUATION_INTERVAL on), after whatever the scenario does meanwhile (an alarm that fires during a
    bake)."""
    solution = execution.solution
    for hook in solution.while_waiting:
        note = hook(solution)
        if note:
            execution.reporter.detail(note)
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_SECONDS:
        if clock.ACTIVITY.waiting_for_clock():
            # to the end of the first wait (a check's interval, a bake), at least CONTINUATION_INTERVAL on
            end = clock.ACTIVITY.next_end()
            until_end = (end - clock.now()) if end is not None else CONTINUATION_INTERVAL
            clock.advance(max(CONTINUATION_INTERVAL, until_end))
            return
        if clock.ACTIVITY.still():  # no state machine runs: nothing to wait for
            return
        time.sleep(CONTINUATION_PAUSE_SECONDS)


def run_lambda(execution: Execution, action: Action) -> Outcome:
    config = execution.config(action)
    solution = execution.solution
    serve_tasks(execution)
    function = solution.function_by_name(config.get("FunctionName", ""))
    if function is None:
        raise WiringError(
            f"{action.where}: FunctionName '{config.get('FunctionName')}' is not a function of the template"
        )
    region = execution.region(action)
    inputs = [execution.input_artifact(action, name, region) for name in action.inputs]
    outputs = [execution.new_artifact(name, region) for name in action.outputs]
    pipeline_user = solution.credentials("pipeline")
    _, key_arn = execution._store(region)
    data: dict[str, Any] = {
        "actionConfiguration": {
            "configuration": {key: value for key, value in config.items() if key in {"FunctionName", "UserParameters"}}
        },
        "inputArtifacts": [_artifact_entry(a) for a in inputs],
        "outputArtifacts": [_artifact_entry(a, with_revision=False) for a in outputs],
        "artifactCredentials": {
            "accessKeyId": pipeline_user.access_key_id,
            "secretAccessKey": pipeline_user.secret_access_key,
            "sessionToken": pipeline_user.session_token,
            "expirationTime": int((time.time() + 3600) * 1000),
        },
    }
    if key_arn:
        data["encryptionKey"] = {"id": key_arn, "type": "KMS"}
    token: str | None = None
    previous = ""
    started = clock.now()
    for attempt in range(1, MAX_CONTINUATIONS + 1):
        if clock.now() - started >= LAMBDA_ACTION_LIMIT:
            raise ActionFailed(
                f"{function.logical_id} was still continuing after {LAMBDA_ACTION_LIMIT}: CodePipeline ends a "
                "Lambda invoke action after 24 hours"
            )
        job_id = str(uuid.uuid4())
        job_data = dict(data, continuationToken=token) if token else data
        event = {"CodePipeline.job": {"id": job_id, "accountId": solution.account_id, "data": job_data}}
        try:
            invoke(execution, function, event)
        except Exception as error:
            raise ActionFailed(f"{function.logical_id} raised {type(error).__name__}: {error}") from error
        results = local_aws.job_results(job_id)
        accepted = [r for r in results if r.accepted]
        if (not accepted or accepted[0].status == "Failed") and not execution.show_logs:
            for line in execution.last_logs[-15:]:
                execution.reporter.detail(f"log: {line}")
        if not accepted:
            raise ActionFailed(
                f"{function.logical_id} returned without a job result for job {job_id}: in AWS the action "
                "would hang until CodePipeline times it out"
            )
        result = accepted[0]
        if result.status == "Failed":
            raise ActionFailed(
                str(result.failure_details.get("message", "failed") if result.failure_details else "failed")
            )
        summary = str((result.execution_details or {}).get("summary", ""))
        if not result.continuation_token:
            for artifact in outputs:
                _require_written(execution, action, artifact)
            return Outcome(SUCCEEDED, summary, dict(result.output_variables or {}))
        token = result.continuation_token
        if attempt <= 3 or attempt % 10 == 0 or summary != previous:
            execution.reporter.detail(f"continuation {attempt}: {summary}")
        previous = summary
        if solution.task_functions:
            let_state_machines_run(execution)
        else:
            time.sleep(CONTINUATION_PAUSE_SECONDS)
    raise ActionFailed(f"{function.logical_id} was still continuing after {MAX_CONTINUATIONS} invocations")


def _artifact_entry(artifact: Artifact, *, with_revision: bool = True) -> dict[str, Any]:
    return {
        "name": artifact.name,
        "revision": artifact.revision if with_revision else None,
        "location": {"type": "S3", "s3Location": {"bucketName": artifact.bucket, "objectKey": artifact.key}},
    }


def _require_written(execution: Execution, action: Action, artifact: Artifact) -> None:
    try:
        head = execution.client("s3", artifact.region).head_object(Bucket=artifact.bucket, Key=artifact.key)
    except ClientError:
        raise ActionFailed(f"{action.where} succeeded without writing its output artifact '{artifact.name}'") from None
    execution.artifacts[artifact.name] = Artifact(
        artifact.name, artifact.bucket, artifact.key, artifact.region, head.get("VersionId") or head.get("ETag")
    )


# ------------------------------------------------------------------------------------------ Approval


def run_manual_approval(execution: Execution, action: Action) -> Outcome:
    config = execution.config(action)
    solution = execution.solution
    custom_data = config.get("CustomData", "")
    link = config.get("ExternalEntityLink", "")
    region = solution.primary_region
    console = (
        f"https://console.aws.amazon.com/codesuite/codepipeline/pipelines/{solution.pipeline_name}/view?region={region}"
    )
    timeout = timedelta(minutes=action.timeout_minutes) if action.timeout_minutes else APPROVAL_TIMEOUT
    if config.get("NotificationArn"):
        token = str(uuid.uuid4())
        message = {
            "region": region,
            "consoleLink": console,
            "approval": {
                "pipelineName": solution.pipeline_name,
                "stageName": action.stage,
                "actionName": action.name,
                "token": token,
                "expires": (clock.now() + timeout).strftime("%Y-%m-%dT%H:%MZ"),
                "externalEntityLink": link,
                "approvalReviewLink": f"{console}#/{action.stage}/{action.name}/approve/{token}",
                "customData": custom_data,
            },
        }
        execution.client("sns", region).publish(  # as the pipeline's role, as CodePipeline does
            TopicArn=config["NotificationArn"],
            Subject=f"APPROVAL NEEDED: AWS CodePipeline {solution.pipeline_name} for action {action.name}"[:100],
            Message=json.dumps(message),
        )
    approved, who = execution.decide(action, custom_data, link)
    if approved is None:
        # Nobody decides: the approval expires after its timeout, and the action fails like a rejection.
        clock.advance(timeout)
        minutes = int(timeout.total_seconds() // 60)
        raise ActionFailed(f"timed out: no decision within {minutes} minutes (TimeoutInMinutes), {who}")
    if approved:
        return Outcome(SUCCEEDED, f"approved by {who}")
    raise ActionFailed(f"rejected by {who}")


PROVIDERS: dict[tuple[str, str, str], Callable[[Execution, Action], Outcome]] = {
    ("Source", "AWS", "CodeStarSourceConnection"): run_source,
    ("Test", "AWS", "CodeBuild"): run_codebuild,
    ("Build", "AWS", "CodeBuild"): run_codebuild,
    ("Deploy", "AWS", "CloudFormation"): run_cloudformation,
    ("Invoke", "AWS", "Lambda"): run_lambda,
    ("Approval", "AWS", "Manual"): run_manual_approval,
}


def provider_of(action: Action) -> Callable[[Execution, Action], Outcome]:
    runner = PROVIDERS.get((action.category, action.owner, action.provider))
    if runner is None:
        raise WiringError(
            f"{action.where}: provider {action.category}/{action.owner}/{action.provider} is not rehearsed"
        )
    return runner
