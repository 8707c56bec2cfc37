"""The release record: what production runs, written only after both production deploys succeed.

One SSM SecureString parameter (``/<solution stack>/release/<stack UUID>/record``, encrypted with the
solution's KMS key) holds the record as JSON, so a record is written or replaced in one call: a reader
never sees half of one. The released source zip itself is copied under ``releases/`` in the artifact
bucket, where no lifecycle rule expires it. The stack id's UUID makes the record the installation's
own: ``sam delete`` leaves the record (no stack resource), and a reinstall under the same stack name,
with a new key and bucket, starts as a first release instead of reading it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Self

from botocore.exceptions import ClientError

from release_pipeline.errors import ReleaseRecordError, error_code
from release_pipeline.values import S3Location

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

RELEASES_PREFIX = "releases/"


def release_key(execution_id: str) -> str:
    """Where the source of the release made by pipeline execution ``execution_id`` is kept."""
    return f"{RELEASES_PREFIX}{execution_id}/source.zip"


def release_template_key(execution_id: str) -> str:
    """Where a released template too large to pass inline is kept for a revert (TemplateURL)."""
    return f"{RELEASES_PREFIX}{execution_id}/template"


# A deployment map's digest: SHA-256 in hex (deployment_map.digest).
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ReleaseRecord:
    """The last release, as the release record parameter holds it.

    A release made with a deployment map also names the map (``deployment_map_digest``) and, for each
    target (``account/Region/stack``), the pipeline execution whose change it runs (``targets``). Both
    are left out of the JSON when unset, so a release without a map writes the record it always wrote,
    and a record written before them reads as one without a map.
    """

    bucket: str
    key: str
    version_id: str | None
    commit_id: str | None
    execution_id: str
    released_at: str
    template_path: str
    stage_parameters: dict[str, str]
    deployment_map_digest: str | None = None
    targets: dict[str, str] = field(default_factory=dict)

    @property
    def source(self) -> S3Location:
        return S3Location(bucket=self.bucket, key=self.key)

    def to_json(self) -> str:
        value = asdict(self)
        if self.deployment_map_digest is None:
            del value["deployment_map_digest"]
        if not self.targets:
            del value["targets"]
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str, parameter: str) -> Self:
        try:
            value: Any = json.loads(raw)
            record = cls(**value)
        except (json.JSONDecodeError, TypeError) as error:
            raise ReleaseRecordError(f"The release record {parameter} is malformed: {error}") from None
        parameters: Any = record.stage_parameters
        if (
            not isinstance(parameters, dict)
            or not all(isinstance(value, str) for value in parameters.values())
            or not all(isinstance(text, str) and text for text in (record.bucket, record.key))
        ):
            raise ReleaseRecordError(
                f"The release record {parameter} is malformed: it needs a source bucket and key "
                "and stage parameters that are an object of strings"
            )
        digest: Any = record.deployment_map_digest
        targets: Any = record.targets
        if digest is not None and not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):
            raise ReleaseRecordError(
                f"The release record {parameter} is malformed: its deployment_map_digest is not a SHA-256 in hex"
            )
        if not isinstance(targets, dict) or not all(
            isinstance(name, str) and name and isinstance(execution, str) and execution
            for name, execution in targets.items()
        ):
            raise ReleaseRecordError(
                f"The release record {parameter} is malformed: its targets must map each target's name to an "
                "execution id"
            )
        return record


def read_record(ssm: SSMClient, parameter: str) -> ReleaseRecord | None:
    """The current release record, or ``None`` when nothing has been released yet."""
    try:
        response = ssm.get_parameter(Name=parameter, WithDecryption=True)
    except ClientError as error:
        if error_code(error) == "ParameterNotFound":
            return None
        raise
    return ReleaseRecord.from_json(response["Parameter"]["Value"], parameter)


def write_record(ssm: SSMClient, parameter: str, record: ReleaseRecord, kms_key_id: str) -> int:
    """Replace the release record; returns the parameter's new version."""
    response = ssm.put_parameter(
        Name=parameter,
        Description="Last release of the multi-Region pipeline (source location and stage parameters)",
        Value=record.to_json(),
        Type="SecureString",
        KeyId=kms_key_id,
        Overwrite=True,
        # A record with large stage parameters can pass the standard tier's 4 KB.
        Tier="Intelligent-Tiering",
    )
    return response["Version"]
