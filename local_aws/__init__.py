"""Local AWS: moto 5.2.5, extended with what this product needs and moto lacks, laid out as moto lays
out a service (one module per service, state on moto's per-account, per-Region backends).

moto looks a response method up by name on every request, so a method :func:`install` sets on
``CodePipelineResponse``, ``CloudFormationResponse``, ``EventsHandler`` or ``LambdaResponse`` is served
in-process under ``mock_aws`` and by a ``moto.server.ThreadedMotoServer`` started in the same process
(a ``moto_server`` started as a separate process knows nothing of it: use ``rehearsal.emulator.Emulator``
or ``make emulator``). Everything is answered in AWS's documented shapes (botocore's service model is
the reference):

- :mod:`local_aws.codepipeline`: job results (``PutJobSuccessResult``, ``PutJobFailureResult``),
  ``GetPipelineState``, execution status and start time.
- :mod:`local_aws.cloudformation`: change sets as AWS makes them, drift detection, templates resolved
  for their parameters; the stack and change set statuses moto never holds (it finishes every operation
  at once), set with ``set_stack_status`` and ``set_change_set_status``.
- :mod:`local_aws.cloudformation.rollback_triggers`: rollback configuration (CloudWatch alarms and a
  monitoring time) validated, kept and monitored on :mod:`local_aws.clock`; an alarm set to ALARM with
  CloudWatch's ``SetAlarmState`` rolls the operation back (:mod:`local_aws.cloudwatch`).
- :mod:`local_aws.events`: ``TestEventPattern``.
- :mod:`local_aws.s3`: bucket policies evaluated over TLS.
- :mod:`local_aws.awslambda`: the 4 KB limit on environment variables, a Lambda context, handler loading,
  functions whose Invoke runs a handler in this process (``run_in_process``; moto runs code only in Docker).
- :mod:`local_aws.iam`: principals that hold one policy, as moto checks it.
- :mod:`local_aws.stepfunctions`: state machines run (moto's interpreter, turned on by :func:`install`),
  as AWS documents them: a path that names one node gives it, aws-sdk results are JSON and their errors
  ``CloudFormation.<Error>Exception``, a task acts as its role in that role's account, Wait states and
  Retry intervals on the emulator's clock.
- :mod:`local_aws.clock`: the time CodePipeline's timeouts and Step Functions' waits are measured on,
  which a scenario advances.

Test state lives on moto's backends (see :mod:`local_aws.core`): moto's reset (``mock_aws`` start and
stop, ``POST /moto-api/reset`` on a server) forgets it with everything else.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import moto
from moto.awslambda.responses import LambdaResponse
from moto.cloudformation.responses import CloudFormationResponse
from moto.cloudwatch.responses import CloudWatchResponse
from moto.codepipeline.responses import CodePipelineResponse
from moto.events.responses import EventsHandler
from moto.s3.models import FakeBucket
from moto.stepfunctions.responses import StepFunctionResponse

from local_aws import awslambda, clock, cloudformation, codepipeline, events, s3, stepfunctions
from local_aws import cloudwatch as cloudwatch_alarms
from local_aws.awslambda import EnvironmentTooLarge, FakeLambdaContext, check_environment_size, run_in_process
from local_aws.cloudformation import (
    CHANGE_SETS_PER_STACK,
    DRIFT_CHECKABLE_STATUSES,
    NO_CHANGES_REASON,
    fail_change_set,
    fail_detection,
    fail_resource,
    inject_drift,
    set_change_set_limit,
    set_change_set_page_size,
    set_change_set_status,
    set_detection_progress,
    set_stack_status,
)
from local_aws.codepipeline import (
    OUTPUT_VARIABLES_MAX_BYTES,
    ReportedJobResult,
    job_results,
    record_action_execution,
    set_execution_status,
    set_stage_execution,
)
from local_aws.core import MOTO_VERSION

__all__ = [
    "CHANGE_SETS_PER_STACK",
    "DRIFT_CHECKABLE_STATUSES",
    "MOTO_VERSION",
    "NO_CHANGES_REASON",
    "OUTPUT_VARIABLES_MAX_BYTES",
    "EnvironmentTooLarge",
    "FakeLambdaContext",
    "ReportedJobResult",
    "check_environment_size",
    "clock",
    "fail_change_set",
    "fail_detection",
    "fail_resource",
    "inject_drift",
    "install",
    "job_results",
    "record_action_execution",
    "run_in_process",
    "set_change_set_limit",
    "set_change_set_page_size",
    "set_change_set_status",
    "set_detection_progress",
    "set_execution_status",
    "set_stack_status",
    "set_stage_execution",
    "stepfunctions",
]

_PATCHES: tuple[tuple[object, Mapping[str, object]], ...] = (
    (CodePipelineResponse, codepipeline.RESPONSES),
    (CloudFormationResponse, cloudformation.RESPONSES),
    (CloudWatchResponse, cloudwatch_alarms.RESPONSES),
    (EventsHandler, events.RESPONSES),
    (LambdaResponse, awslambda.RESPONSES),
    (StepFunctionResponse, stepfunctions.RESPONSES),
    (FakeBucket, {"get_permission": s3.bucket_permission}),
    *stepfunctions.PATCHES,
)
_INSTALL_LOCK = threading.Lock()


def install() -> None:
    """Add the operations to moto's classes and have moto run state machines (idempotent: setting the same
    methods again changes nothing)."""
    with _INSTALL_LOCK:
        if moto.__version__ != MOTO_VERSION:
            raise RuntimeError(
                f"local_aws was verified against moto {MOTO_VERSION}, found "
                f"{moto.__version__}: re-check each patched operation before changing the pin"
            )
        for owner, methods in _PATCHES:
            for name, method in methods.items():
                setattr(owner, name, method)
        stepfunctions.run_state_machines()
