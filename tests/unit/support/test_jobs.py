"""The job runner fails a test whenever a job function does not report exactly one accepted result for
its own job, and follows continuation tokens as CodePipeline does."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from local_aws import FakeLambdaContext
from tests.support import events
from tests.support.events import load_event
from tests.support.jobs import run_job, run_until_final

pytestmark = pytest.mark.usefixtures("aws")

HANDLER = """
import json
import boto3

def lambda_handler(event, context):
    job = event["CodePipeline.job"]
    client = boto3.client("codepipeline", region_name="us-east-1")
{body}
"""
BEHAVIOURS = {
    "succeeds": '    client.put_job_success_result(jobId=job["id"], outputVariables={"Answer": "42"})',
    "fails": (
        '    client.put_job_failure_result(jobId=job["id"], failureDetails={"type": "JobFailed", "message": "broken"})'
    ),
    "reports-nothing": "    return None",
    "reports-twice": (
        '    client.put_job_success_result(jobId=job["id"])\n'
        "    try:\n"
        '        client.put_job_success_result(jobId=job["id"])\n'
        "    except client.exceptions.InvalidJobStateException:\n"
        "        pass"
    ),
    "succeeds-ignoring-a-refusal": (
        "    try:\n"
        '        client.put_job_success_result(jobId=job["id"])\n'
        "    except client.exceptions.InvalidJobStateException:\n"
        "        pass"
    ),
    "reports-another-job": (
        f'    client.put_job_success_result(jobId="{uuid.uuid4()}")\n    client.put_job_success_result(jobId=job["id"])'
    ),
    "continues-twice": (
        '    polls = int(job["data"].get("continuationToken") or 0)\n'
        "    if polls < 2:\n"
        '        client.put_job_success_result(jobId=job["id"], continuationToken=str(polls + 1))\n'
        "    else:\n"
        '        client.put_job_success_result(jobId=job["id"], outputVariables={"Polls": str(polls)})'
    ),
    "continues-forever": '    client.put_job_success_result(jobId=job["id"], continuationToken="again")',
}


@pytest.fixture(autouse=True)
def functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A functions/ folder holding one job function per behaviour."""
    for name, body in BEHAVIOURS.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(HANDLER.format(body=body), encoding="utf-8")
    monkeypatch.setattr(events, "FUNCTIONS_DIR", tmp_path)


def job() -> dict[str, Any]:
    return load_event("drift-detection", "job")


def test_a_success_is_returned_with_its_output_variables(lambda_context: FakeLambdaContext) -> None:
    result = run_job("succeeds", job(), lambda_context)

    assert result.status == "Succeeded"
    assert result.output_variables == {"Answer": "42"}
    assert result.final


def test_a_failure_is_returned_with_its_message(lambda_context: FakeLambdaContext) -> None:
    result = run_job("fails", job(), lambda_context)

    assert result.status == "Failed"
    assert result.failure_details == {"type": "JobFailed", "message": "broken"}


@pytest.mark.parametrize("behaviour", ["reports-nothing", "reports-twice", "reports-another-job"])
def test_anything_but_one_accepted_result_for_the_job_fails_the_test(
    lambda_context: FakeLambdaContext, behaviour: str
) -> None:
    with pytest.raises(AssertionError):
        run_job(behaviour, job(), lambda_context)


def test_a_job_that_already_had_its_result_fails_the_test(lambda_context: FakeLambdaContext) -> None:
    event = job()
    run_job("succeeds", event, lambda_context)

    with pytest.raises(AssertionError):
        run_job("succeeds-ignoring-a-refusal", event, lambda_context)


def test_continuations_are_followed_as_new_jobs_until_the_final_result(lambda_context: FakeLambdaContext) -> None:
    results = run_until_final("continues-twice", job(), lambda_context)

    assert [r.continuation_token for r in results] == ["1", "2", None]
    assert results[-1].output_variables == {"Polls": "2"}
    assert len({r.job_id for r in results}) == 3


def test_a_job_that_never_finishes_fails_the_test(lambda_context: FakeLambdaContext) -> None:
    with pytest.raises(AssertionError, match="no final result after 3 invocations"):
        run_until_final("continues-forever", job(), lambda_context, limit=3)
