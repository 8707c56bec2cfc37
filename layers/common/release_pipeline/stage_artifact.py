"""Prepare the stage artifact (delete mode): the artifact the temporary stage stack is created from.

The stage stack is created from the last *released* source with the released stage parameters, so the
new template is then proven as an update of what production runs. Before the first release, the
current source and the current stage parameters are used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from release_pipeline import artifacts, releases
from release_pipeline.config import Releases
from release_pipeline.jobs import SOURCE_ARTIFACT, Job, JobResult

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient


@dataclass(frozen=True)
class PrepareStageArtifactConfig(Releases):
    """prepare-stage-artifact: the release record, stage parameters and template path."""

    FUNCTION = "prepare-stage-artifact"


STAGE_SOURCE_ARTIFACT = "StageSource"
STAGE_CONFIG_ARTIFACT = "StageConfig"
CONFIGURATION_FILE = "template-configuration.json"


def template_configuration(parameters: dict[str, str]) -> bytes:
    """A CodePipeline template-configuration file."""
    return json.dumps({"Parameters": parameters}, indent=2, sort_keys=True).encode()


def prepare_stage_artifact(
    *, job: Job, job_s3: S3Client, release_s3: S3Client, ssm: SSMClient, config: PrepareStageArtifactConfig
) -> JobResult:
    # Resolve every location first: a malformed job fails before anything is read or written.
    source_location = job.input_artifact(SOURCE_ARTIFACT)
    stage_source = job.output_artifact(STAGE_SOURCE_ARTIFACT)
    stage_config = job.output_artifact(STAGE_CONFIG_ARTIFACT)
    record = releases.read_record(ssm, config.release_record_parameter)
    if record is None:
        what = "source artifact"
        data = artifacts.download(job_s3, source_location, what=what)
        parameters = config.stage_parameters
        origin = "current source (nothing released yet)"
    else:
        what = f"released source of execution {record.execution_id}"
        data = artifacts.download(release_s3, record.source, record.version_id, what=what)
        parameters = record.stage_parameters
        origin = f"release {record.execution_id} (commit {(record.commit_id or 'unknown')[:12]})"
    # The stage deploy reads the template at the pipeline's TemplatePath: prove it is there.
    artifacts.Archive(data, what).read(config.template_path)
    key_id = job.encryption_key_id
    artifacts.upload(job_s3, stage_source, data, key_id)
    configuration = artifacts.build_zip({CONFIGURATION_FILE: template_configuration(parameters)})
    artifacts.upload(job_s3, stage_config, configuration, key_id)
    return JobResult(
        summary=f"Stage stack will be created from the {origin}",
        output_variables={"StageOrigin": "release" if record else "source"},
    )
