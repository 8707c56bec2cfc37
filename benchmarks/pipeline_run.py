"""Lambda time per pipeline run: every invoke function of one release, timed in-process against moto.

Two releases go through the functions in pipeline order (gate, change detection, stage artifact,
drift detection, record release): a first release onto empty production, then a change on top of it.
Each function's warm handler time is the median of several runs. moto answers far faster than AWS,
so read the figures as the functions' own cost and as shares of the run, not as AWS latency.

    make benchmark
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from typing import Any

import boto3
from moto import mock_aws
from moto.codepipeline.models import codepipeline_backends

import local_aws
from local_aws.awslambda import FakeLambdaContext
from tests.support.events import load_event, load_function
from tests.support.solution import ARTIFACT_BUCKET, create_pipeline, resolved, source_zip

RUNS = 5
PRIMARY, SECONDARY, ACCOUNT = "us-east-1", "eu-west-1", "123456789012"
APP = "demo-app"
TEMPLATE_PATH = "app/template.yaml"
FUNCTIONS = {
    "execution-gate": "ExecutionGateFunction",
    "change-detection": "ChangeDetectionFunction",
    "prepare-stage-artifact": "PrepareStageArtifactFunction",
    "drift-detection": "DriftDetectionFunction",
    "record-release": "RecordReleaseFunction",
}


def app_template(queues: int) -> str:
    resources: dict[str, Any] = {"Topic": {"Type": "AWS::SNS::Topic"}}
    resources |= {f"Queue{i}": {"Type": "AWS::SQS::Queue"} for i in range(queues)}
    return json.dumps({"Resources": resources})


class Rehearsal:
    def __init__(self) -> None:
        self.template = resolved(stack_name="release-solution")
        self.context = FakeLambdaContext("benchmark")
        self.handlers = {name: load_function(name).lambda_handler for name in FUNCTIONS}
        s3 = boto3.client("s3", region_name=PRIMARY)
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
        s3.put_bucket_versioning(Bucket=ARTIFACT_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        self.key = boto3.client("kms", region_name=PRIMARY).create_key()["KeyMetadata"]["Arn"]
        boto3.client("sns", region_name=PRIMARY).create_topic(Name="release-notifications")
        self.pipeline = self.template.function_environment("ExecutionGateFunction")["PIPELINE_NAME"]
        create_pipeline(
            boto3.client("iam"),
            boto3.client("codepipeline", region_name=PRIMARY),
            self.pipeline,
            template=self.template,  # the gate reads the parameter sets from the pipeline's actions
        )

    def environment(self, function: str) -> None:
        for name, value in self.template.function_environment(FUNCTIONS[function]).items():
            os.environ[name] = value
        os.environ["TOPIC_ARN"] = f"arn:aws:sns:{PRIMARY}:{ACCOUNT}:release-notifications"
        os.environ["ARTIFACT_BUCKET"] = ARTIFACT_BUCKET
        os.environ["KMS_KEY_ARN"] = self.key

    def release(self, queues: int, timings: dict[str, list[float]]) -> None:
        client = boto3.client("codepipeline", region_name=PRIMARY)
        execution = client.start_pipeline_execution(name=self.pipeline)["pipelineExecutionId"]
        codepipeline_backends[ACCOUNT][PRIMARY].pipelines[self.pipeline].executions[execution].status = "InProgress"
        body = app_template(queues)
        for region in (PRIMARY, SECONDARY):
            cfn = boto3.client("cloudformation", region_name=region)
            exists = any(s["StackName"] == APP for s in cfn.describe_stacks()["Stacks"])
            cfn.create_change_set(
                StackName=APP,
                ChangeSetName=f"pipeline-{execution}",
                ChangeSetType="UPDATE" if exists else "CREATE",
                TemplateBody=body,
            )
        source_key = f"{self.pipeline}/SourceOutp/{uuid.uuid4().hex[:7]}"
        boto3.client("s3", region_name=PRIMARY).put_object(
            Bucket=ARTIFACT_BUCKET, Key=source_key, Body=source_zip({TEMPLATE_PATH: body})
        )
        for function in FUNCTIONS:
            event = self.event(function, execution, source_key)
            self.environment(function)
            timings[function].append(self.invoke(function, event))
        for region in (PRIMARY, SECONDARY):
            boto3.client("cloudformation", region_name=region).execute_change_set(
                StackName=APP, ChangeSetName=f"pipeline-{execution}"
            )
        codepipeline_backends[ACCOUNT][PRIMARY].pipelines[self.pipeline].executions[execution].status = "Succeeded"

    def event(self, function: str, execution: str, source_key: str) -> dict[str, Any]:
        event = load_event(function, "job")
        event["CodePipeline.job"]["id"] = str(uuid.uuid4())
        data = event["CodePipeline.job"]["data"]
        data["actionConfiguration"]["configuration"]["UserParameters"] = json.dumps(
            {"executionId": execution, "commitId": "0" * 40}
        )
        for artifact in data.get("inputArtifacts", []):
            artifact["location"]["s3Location"] = {"bucketName": ARTIFACT_BUCKET, "objectKey": source_key}
        for artifact in data.get("outputArtifacts", []):
            artifact["location"]["s3Location"] = {
                "bucketName": ARTIFACT_BUCKET,
                "objectKey": f"{self.pipeline}/{artifact['name'][:10]}/{uuid.uuid4().hex[:7]}",
            }
        return event

    def invoke(self, function: str, event: dict[str, Any]) -> float:
        """Milliseconds until the job's final result, following continuation tokens."""
        elapsed = 0.0
        while True:
            job_id = event["CodePipeline.job"]["id"]
            start = time.perf_counter()
            self.handlers[function](event, self.context)
            elapsed += time.perf_counter() - start
            (result,) = local_aws.job_results(job_id)
            if result.status != "Succeeded":
                raise RuntimeError(f"{function} failed: {result.failure_details}")
            if result.continuation_token is None:
                return elapsed * 1000
            event = json.loads(json.dumps(event))
            event["CodePipeline.job"]["id"] = str(uuid.uuid4())
            event["CodePipeline.job"]["data"]["continuationToken"] = result.continuation_token


def measure(change: bool) -> dict[str, float]:
    """Median milliseconds per function over RUNS fresh emulators: a first release, or a change on top of one."""
    samples: dict[str, list[float]] = {name: [] for name in FUNCTIONS}
    for _ in range(RUNS):
        with mock_aws():
            rehearsal = Rehearsal()
            if change:
                rehearsal.release(5, {name: [] for name in FUNCTIONS})
            rehearsal.release(25 if change else 5, samples)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    os.environ.update({"AWS_DEFAULT_REGION": PRIMARY, "AWS_REGION": PRIMARY, "POWERTOOLS_LOG_LEVEL": "WARNING"})
    local_aws.install()
    first, second = measure(change=False), measure(change=True)
    total_first, total_second = sum(first.values()), sum(second.values())
    print(f"{'function':<20}{'first ms':>10}{'share':>8}{'change ms':>11}{'share':>8}")
    for name in FUNCTIONS:
        print(
            f"{name:<20}{first[name]:>10.1f}{first[name] / total_first:>8.0%}"
            f"{second[name]:>11.1f}{second[name] / total_second:>8.0%}"
        )
    print(f"{'per pipeline run':<20}{total_first:>10.1f}{1:>8.0%}{total_second:>11.1f}{1:>8.0%}")
    print(f"a change on top of a release costs {total_second / total_first:.2f}x a first release")


if __name__ == "__main__":
    main()
