"""`make emulator`: a seeded emulator for `sam local invoke`, with events/env.json and events/local/.

The seed is what the sample events need to do real work:

- the solution installed as template.yaml defines it (IAM not enforced: `sam local invoke` passes the
  container your shell's credentials, which the emulator cannot know);
- a first release of the example, rehearsed through the whole pipeline;
- a second change waiting in review: a pipeline execution in progress, with its change sets on both
  production stacks and its source in the artifact bucket, and its Stage stage marked Failed (what a
  rejection leaves), so each function has something to act on.

events/local/<function>/<case>.json are the sample events with the seeded names (bucket, key,
pipeline, execution, functions); events/env.json gives every function the environment template.yaml
gives it, plus LOCAL_ENDPOINT_URL, the emulator's address as a container reaches it.
"""

from __future__ import annotations

import copy
import io
import json
import threading
from pathlib import Path
from typing import Any

import local_aws
from rehearsal.actions import zip_folder
from rehearsal.emulator import Emulator
from rehearsal.paths import ROOT
from rehearsal.pipeline import change_set_name
from rehearsal.report import Console
from rehearsal.scenarios import Options, materialize, run, solution_parameters
from rehearsal.solution import Solution

EVENTS = ROOT / "events"
SAMPLE_EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"


def seed(emulator: Emulator, options: Options | None = None) -> tuple[Solution, str]:
    """Install the solution, release the example once and leave a second change in review; returns the
    solution and the execution id of the change in review."""
    options = options or Options(scenario="first-release", decision="approve", enforce_iam=False, verbose=False)
    report = run(options, emulator, Console(io.StringIO(), verbose=False))
    if not report.ok or report.solution is None:
        raise RuntimeError("the first release of the example did not end as expected: " + "; ".join(report.problems))
    solution = report.solution
    admin = solution.admin("codepipeline")
    pipeline = solution.pipeline_name
    execution_id = str(admin.start_pipeline_execution(name=pipeline)["pipelineExecutionId"])
    region, account = solution.primary_region, solution.account_id
    local_aws.set_execution_status(pipeline, execution_id, "InProgress", region=region, account_id=account)
    local_aws.set_stage_execution(pipeline, "Stage", execution_id, "Failed", region=region, account_id=account)
    app = solution.template.parameters["ApplicationStackName"]
    with materialize(options.source, options.change) as tree:
        body = (tree / options.template_path).read_text(encoding="utf-8")
        source = zip_folder(tree)
    parameters = solution_parameters(options, report.scenario)
    for stack_region, key in ((region, "PrimaryParameters"), (solution.secondary_region, "SecondaryParameters")):
        values = json.loads(parameters.get(key, "{}"))
        solution.admin("cloudformation", stack_region).create_change_set(
            StackName=app,
            ChangeSetName=change_set_name(execution_id),
            ChangeSetType="UPDATE",
            TemplateBody=body,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    _write_local_events(solution, execution_id, source)
    return solution, execution_id


def _write_local_events(solution: Solution, execution_id: str, source: bytes) -> None:
    bucket, key_arn = solution.artifact_stores[solution.primary_region]
    s3 = solution.admin("s3")
    for path in sorted(EVENTS.glob("*/*.json")):
        event = json.loads(path.read_text(encoding="utf-8"))
        local = _rewrite(solution, event, execution_id, bucket, key_arn)
        job = local.get("CodePipeline.job", {}).get("data", {})
        for artifact in job.get("inputArtifacts", []):
            location = artifact["location"]["s3Location"]
            s3.put_object(
                Bucket=location["bucketName"],
                Key=location["objectKey"],
                Body=source,
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=key_arn,
            )
        target = EVENTS / "local" / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(local, indent=2) + "\n", encoding="utf-8")


def _rewrite(solution: Solution, event: dict[str, Any], execution_id: str, bucket: str, key_arn: str) -> dict[str, Any]:
    """The sample event with the seeded names."""
    local = copy.deepcopy(event)
    job = local.get("CodePipeline.job")
    if job is not None:
        data = job.setdefault("data", {})
        for artifact in (*data.get("inputArtifacts", []), *data.get("outputArtifacts", [])):
            artifact["location"]["s3Location"]["bucketName"] = bucket
        if "encryptionKey" in data:
            data["encryptionKey"]["id"] = key_arn
        if "artifactCredentials" in data:
            data["artifactCredentials"].update({"accessKeyId": "testing", "secretAccessKey": "testing"})
        configuration = data.get("actionConfiguration", {}).get("configuration", {})
        name = str(configuration.get("FunctionName", ""))
        for function in solution.functions.values():
            if name.startswith("release-pipeline-") and f"-{function.logical_id}-" in name:
                configuration["FunctionName"] = function.name
        if "UserParameters" in configuration:
            parameters = json.loads(configuration["UserParameters"])
            if "executionId" in parameters:
                parameters["executionId"] = execution_id
            configuration["UserParameters"] = json.dumps(parameters)
    detail = local.get("detail")
    if local.get("source") == "aws.codepipeline" and isinstance(detail, dict):
        if detail.get("pipeline") == "release-pipeline":
            detail["pipeline"] = solution.pipeline_name
            local["resources"] = [
                f"arn:aws:codepipeline:{solution.primary_region}:{solution.account_id}:{solution.pipeline_name}"
            ]
        detail["execution-id"] = execution_id
    return local


def environment_file(solution: Solution, endpoint: str) -> dict[str, dict[str, str]]:
    """events/env.json: each function's environment as template.yaml gives it, with the emulator's address."""
    variables: dict[str, dict[str, str]] = {"Parameters": {"LOCAL_ENDPOINT_URL": endpoint}}
    for logical_id in sorted(solution.functions):
        variables[logical_id] = {
            **solution.template.function_environment(logical_id),
            "LOCAL_ENDPOINT_URL": endpoint,
        }
    return variables


def serve(*, port: int, env_file: Path, host_alias: str) -> int:
    emulator = Emulator(port=port).start()
    try:
        solution, execution_id = seed(emulator)
        endpoint = f"http://{host_alias}:{emulator.port}"
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text(json.dumps(environment_file(solution, endpoint), indent=2) + "\n", encoding="utf-8")
        print(f"emulator: {emulator.endpoint} (moto {local_aws.MOTO_VERSION} with local_aws), IAM not enforced")
        print(f"seeded: solution {solution.stack_name}, pipeline {solution.pipeline_name}, a first release of the")
        print(f"  example, and a second change in review as execution {execution_id}")
        print(f"wrote {env_file} (LOCAL_ENDPOINT_URL={endpoint}) and events/local/<function>/<case>.json")
        print("try:  sam build && sam local invoke ChangeDetectionFunction \\")
        print(f"        -e events/local/change-detection/job.json --env-vars {env_file} --docker-network host")
        print("Ctrl-C stops the emulator (everything in it is lost).")
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0
