"""Run a job function as a CodePipeline Lambda invoke action runs it, and read the result it reported.

A job function answers CodePipeline only through PutJobSuccessResult or PutJobFailureResult, which the
emulator records (:func:`local_aws.job_results`): the result is the outcome a test asserts on (status,
``execution_details["summary"]``, ``failure_details["message"]``, ``output_variables``,
``continuation_token``).
"""

from __future__ import annotations

from typing import Any

import local_aws
from local_aws import FakeLambdaContext, ReportedJobResult
from tests.support.events import continuation_of, job_id_of, load_function

__all__ = ["run_job", "run_until_final"]


def run_job(function: str, event: dict[str, Any], context: FakeLambdaContext) -> ReportedJobResult:
    """Run functions/<function>/app.py's real handler on a job event and return the job's result,
    asserting that the call reported exactly one result, for this job and no other, that CodePipeline
    accepted it, and that the job had no result before."""
    job_id = job_id_of(event)
    earlier = len(local_aws.job_results())
    load_function(function).lambda_handler(event, context)
    reported = local_aws.job_results()[earlier:]
    assert [r.job_id for r in reported] == [job_id], reported
    (result,) = reported
    assert result.accepted, result
    assert local_aws.job_results(job_id) == [result], local_aws.job_results(job_id)
    return result


def run_until_final(
    function: str, event: dict[str, Any], context: FakeLambdaContext, *, limit: int = 10
) -> list[ReportedJobResult]:
    """Run the job, then re-run it with each continuation token as CodePipeline would (a new job each
    time), until a final result; returns every result, the final one last."""
    results = [run_job(function, event, context)]
    while not results[-1].final:
        assert len(results) < limit, f"no final result after {limit} invocations"
        token = results[-1].continuation_token
        assert token is not None
        event = continuation_of(event, token)
        results.append(run_job(function, event, context))
    return results
