"""The release record: what production runs, written only after both production deploys succeed.

One SSM SecureString parameter (``/<solution stack>/release/<stack UUID>/record``, encrypted with the
solution's KMS key) holds the record as JSON, so a record is written or replaced in one call: a reader
never sees half of one. The released source zip itself is copied under ``releases/`` in the artifact
bucket, where no lifecycle rule expires it. The stack id's UUID makes the record the installation's
own: ``sam delete`` leaves the record (no stack resource), and a reinstall under the same stack name,
with a new key and bucket, starts as a first release instead of reading it.

A release made with a deployment map also records the execution each target runs. Those versions grow
with the targets (about 20 KB for 100 targets with 128-character stack names, far over the 8 KB an
advanced parameter holds), so they are kept in an object beside the released source,
``releases/<execution>/targets.json``, and the record names it by key, S3 version id and SHA-256: the
record stays the same size whatever the number of targets, and a reader refuses any other object.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Self

from botocore.exceptions import ClientError

from release_pipeline import artifacts
from release_pipeline.errors import ArtifactError, ReleaseRecordError, error_code
from release_pipeline.values import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

RELEASES_PREFIX = "releases/"


def release_key(execution_id: str) -> str:
    """Where the source of the release made by pipeline execution ``execution_id`` is kept."""
    return f"{RELEASES_PREFIX}{execution_id}/source.zip"


def release_template_key(execution_id: str) -> str:
    """Where a released template too large to pass inline is kept for a revert (TemplateURL)."""
    return f"{RELEASES_PREFIX}{execution_id}/template"


def release_targets_key(execution_id: str) -> str:
    """Where the execution each target runs is kept for the release made by ``execution_id``."""
    return f"{RELEASES_PREFIX}{execution_id}/targets.json"


# A deployment map's digest and a targets object's: SHA-256 in hex.
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class TargetsObject:
    """The object in the record's bucket that holds the execution each target runs, as the record names
    it: its key, the S3 version written (``None`` in a bucket without versioning), the SHA-256 of its bytes
    and the number of targets it holds."""

    key: str
    version_id: str | None
    sha256: str
    count: int


@dataclass(frozen=True)
class ReleaseRecord:
    """The last release, as the release record parameter holds it.

    A release made with a deployment map also names the map (``deployment_map_digest``) and, for each
    target (``account/Region/stack``), the pipeline execution whose change it runs: in the object that
    ``targets_object`` names, or, in a record written before that object, inline in ``targets``
    (:func:`read_targets` reads either). All three are left out of the JSON when unset, so a release
    without a map writes the record it always wrote, and a record written before them reads as one
    without a map.
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
    targets_object: TargetsObject | None = None

    @property
    def source(self) -> S3Location:
        return S3Location(bucket=self.bucket, key=self.key)

    def to_json(self) -> str:
        value = asdict(self)
        if self.deployment_map_digest is None:
            del value["deployment_map_digest"]
        if not self.targets:
            del value["targets"]
        if self.targets_object is None:
            del value["targets_object"]
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
        _check_targets(targets, f"The release record {parameter} is malformed: its targets")
        named: Any = record.targets_object
        if named is None:
            return record
        if digest is None or targets:
            raise ReleaseRecordError(
                f"The release record {parameter} is malformed: a targets_object goes with a deployment_map_digest "
                "and no inline targets"
            )
        try:
            found = TargetsObject(**named)
        except TypeError as error:
            raise ReleaseRecordError(
                f"The release record {parameter} is malformed: its targets_object: {error}"
            ) from None
        count: Any = found.count
        if (
            not (isinstance(found.key, str) and found.key.startswith(RELEASES_PREFIX))
            or not (found.version_id is None or (isinstance(found.version_id, str) and found.version_id))
            or not (isinstance(found.sha256, str) and _DIGEST.fullmatch(found.sha256))
            or not (isinstance(count, int) and not isinstance(count, bool) and count > 0)
        ):
            raise ReleaseRecordError(
                f"The release record {parameter} is malformed: its targets_object needs a key under "
                f"{RELEASES_PREFIX}, a version id or null, a SHA-256 in hex and a count of targets"
            )
        return replace(record, targets_object=found)


def _check_targets(targets: object, what: str) -> None:
    """Refuse ``targets`` unless it maps each target's name to an execution id."""
    if not isinstance(targets, dict) or not all(
        isinstance(name, str) and name and isinstance(execution, str) and execution
        for name, execution in targets.items()
    ):
        raise ReleaseRecordError(f"{what} must map each target's name to an execution id")


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
        # A record with large stage parameters can pass the standard tier's 4 KB; Intelligent-Tiering then
        # makes it an advanced parameter, which holds at most 8 KB (the per-target versions of a release
        # with a map are kept in S3, so they never count against it):
        # https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html
        # https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-default-tier.html
        Tier="Intelligent-Tiering",
    )
    return response["Version"]


def _targets_body(execution_id: str, deployment_map_digest: str, targets: dict[str, str]) -> bytes:
    """The targets object's bytes: the release and map it belongs to, then each target's execution (sorted,
    compact: the same targets always give the same bytes, so a retry finds its own object)."""
    value = {"deployment_map_digest": deployment_map_digest, "execution_id": execution_id, "targets": targets}
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def write_targets(
    s3: S3Client,
    bucket: str,
    *,
    execution_id: str,
    deployment_map_digest: str,
    targets: dict[str, str],
    kms_key_id: str,
) -> TargetsObject:
    """Keep each target's execution beside the release's source, encrypted with ``kms_key_id``, and name
    the object for the record. Written before the record, so a record never names an object that is not
    there; a retry that finds the same bytes already there writes nothing and names the version it found."""
    if not targets:
        raise ValueError("a release with a deployment map records at least one target")
    body = _targets_body(execution_id, deployment_map_digest, targets)
    location = S3Location(bucket, release_targets_key(execution_id))
    return TargetsObject(
        key=location.key,
        version_id=_write_once(s3, location, body, kms_key_id),
        sha256=hashlib.sha256(body).hexdigest(),
        count=len(targets),
    )


def _write_once(s3: S3Client, location: S3Location, body: bytes, kms_key_id: str) -> str | None:
    """Write ``body`` unless the key already holds it; the version id that holds it. A conditional write
    (If-None-Match, which needs only s3:PutObject) finds an earlier try's object without reading a missing
    key, which answers 403, not 404, to a role without s3:ListBucket:
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html"""
    try:
        return artifacts.upload(s3, location, body, kms_key_id, content_type="application/json", only_new=True)
    except ClientError as error:
        if error_code(error) not in {"PreconditionFailed", "412"}:
            raise
    kept = s3.get_object(Bucket=location.bucket, Key=location.key)
    if kept["Body"].read(len(body) + 1) == body:
        return kept.get("VersionId")
    # Other targets for the same execution (not a retry of this one): a new version, which the record names.
    return artifacts.upload(s3, location, body, kms_key_id, content_type="application/json")


def read_targets(s3: S3Client, record: ReleaseRecord, parameter: str) -> dict[str, str]:
    """The execution each target of ``record`` runs, by target name: from the object the record names, or
    inline in a record written before that object (none in a record without a map). An object that is
    missing, or whose bytes, release or map are not the ones the record names, is a
    :class:`ReleaseRecordError`: never read as a release without targets."""
    named = record.targets_object
    if named is None:
        return dict(record.targets)
    shown = f"s3://{record.bucket}/{named.key}" + (f" (version {named.version_id})" if named.version_id else "")
    problem = f"The release record {parameter} names the target versions {shown}"
    try:
        body = artifacts.download(
            s3, S3Location(record.bucket, named.key), named.version_id, what="target versions of the release"
        )
    except ArtifactError as error:
        raise ReleaseRecordError(f"{problem}, which cannot be read: {error}") from None
    sha256 = hashlib.sha256(body).hexdigest()
    if sha256 != named.sha256:
        raise ReleaseRecordError(
            f"{problem}, whose SHA-256 is {sha256[:12]}, not the {named.sha256[:12]} the record names: "
            "it is not the object the release wrote"
        )
    try:
        value: Any = json.loads(body)
        targets: Any = value["targets"]
        belongs = (value["execution_id"], value["deployment_map_digest"])
    except (ValueError, TypeError, KeyError) as error:
        raise ReleaseRecordError(f"{problem}, which is malformed: {error}") from None
    _check_targets(targets, f"{problem}, which is malformed: its targets")
    if belongs != (record.execution_id, record.deployment_map_digest) or len(targets) != named.count:
        raise ReleaseRecordError(
            f"{problem}, which belongs to another release or map or holds {len(targets)} targets, not {named.count}"
        )
    return dict(targets)
