"""release_pipeline.releases: the release record in SSM, written whole and read back exactly; with a
deployment map, each target's execution in an object beside the released source that the record names."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING

import boto3
import pytest

from release_pipeline.deployment_map import STACK_NAME_MAX, aws_regions
from release_pipeline.errors import ReleaseRecordError
from release_pipeline.releases import (
    ReleaseRecord,
    TargetsObject,
    read_record,
    read_targets,
    release_key,
    release_targets_key,
    write_record,
    write_targets,
)
from release_pipeline.values import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

pytestmark = pytest.mark.usefixtures("aws")

REGION = "us-east-1"
PARAMETER = "/release-pipeline/release/5b7e9a10-3c2d-4f10-9a4e-0a1b2c3d4e5f/record"

RECORD = ReleaseRecord(
    bucket="release-pipeline-artifacts",
    key="releases/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9/source.zip",
    version_id="3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY",
    commit_id="3f786850e387550fdab836ed7e6dc881de23001b",
    execution_id="0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
    released_at="2026-01-01T12:00:00+00:00",
    template_path="infra/app.yaml",
    stage_parameters={"Env": "stage", "InstanceType": "t4g.micro"},
)


# The fields a release with a deployment map adds; written only when set.
MAP_FIELDS = ("deployment_map_digest", "targets", "targets_object")
DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
# A record with a map as written before each target's execution moved to an object in S3: inline targets.
MAP_RECORD = dataclasses.replace(
    RECORD,
    deployment_map_digest=DIGEST,
    targets={
        "111122223333/us-west-2/app": RECORD.execution_id,
        "222233334444/us-east-2/app": "0a0b0c0d-0000-4000-8000-000000000001",
    },
)
# A record with a map as written now: each target's execution is in an object beside the source.
TARGETS_OBJECT = TargetsObject(
    key=release_targets_key(RECORD.execution_id),
    version_id="kLz8pQ2wVbXn0c4aEr7tYu1iOp3sDf5g",
    sha256="2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
    count=2,
)
OBJECT_RECORD = dataclasses.replace(RECORD, deployment_map_digest=DIGEST, targets_object=TARGETS_OBJECT)


def object_record_with(**changes: object) -> dict[str, object]:
    """OBJECT_RECORD as JSON with fields of its targets object changed."""
    value = dataclasses.asdict(OBJECT_RECORD)
    return {**value, "targets_object": {**value["targets_object"], **changes}}


# A record as the release record parameter held it before releases named their map (field for field).
RECORD_WITHOUT_MAP = (
    '{"bucket":"release-pipeline-artifacts","commit_id":"3f786850e387550fdab836ed7e6dc881de23001b",'
    '"execution_id":"0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",'
    '"key":"releases/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9/source.zip","released_at":"2026-01-01T12:00:00+00:00",'
    '"stage_parameters":{"Env":"stage","InstanceType":"t4g.micro"},"template_path":"infra/app.yaml",'
    '"version_id":"3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"}'
)


@pytest.fixture
def ssm() -> SSMClient:
    client: SSMClient = boto3.client("ssm", region_name=REGION)
    return client


@pytest.fixture
def key_arn() -> str:
    arn: str = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    return arn


def put_raw(ssm: SSMClient, value: str) -> None:
    ssm.put_parameter(Name=PARAMETER, Value=value, Type="SecureString", Overwrite=True)


def test_write_then_read_round_trips(ssm: SSMClient, key_arn: str) -> None:
    version = write_record(ssm, PARAMETER, RECORD, key_arn)

    assert version == 1
    assert read_record(ssm, PARAMETER) == RECORD


def test_record_is_a_secure_string_under_the_solution_key_in_intelligent_tiering(ssm: SSMClient, key_arn: str) -> None:
    write_record(ssm, PARAMETER, RECORD, key_arn)

    [described] = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [PARAMETER]}])["Parameters"]
    assert described["Type"] == "SecureString"
    assert described["KeyId"] == key_arn
    assert described["Tier"] == "Intelligent-Tiering"
    stored = ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]
    assert json.loads(stored["Value"])["execution_id"] == RECORD.execution_id


def test_record_without_version_or_commit_round_trips(ssm: SSMClient, key_arn: str) -> None:
    record = dataclasses.replace(RECORD, version_id=None, commit_id=None, stage_parameters={})

    write_record(ssm, PARAMETER, record, key_arn)

    assert read_record(ssm, PARAMETER) == record


def test_a_record_written_before_releases_named_their_map_still_reads(ssm: SSMClient) -> None:
    put_raw(ssm, RECORD_WITHOUT_MAP)

    record = read_record(ssm, PARAMETER)

    assert record == RECORD
    assert record is not None
    assert (record.deployment_map_digest, record.targets) == (None, {})


def test_a_record_without_a_map_is_written_as_it_always_was() -> None:
    """The new fields are left out when unset: byte for byte the JSON written before they existed."""
    assert RECORD.to_json() == RECORD_WITHOUT_MAP


def test_a_record_with_inline_targets_round_trips_and_names_the_map_and_each_target(
    ssm: SSMClient, key_arn: str
) -> None:
    write_record(ssm, PARAMETER, MAP_RECORD, key_arn)

    assert read_record(ssm, PARAMETER) == MAP_RECORD
    stored = json.loads(ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"])
    assert stored == {name: value for name, value in dataclasses.asdict(MAP_RECORD).items() if name != "targets_object"}
    assert stored["deployment_map_digest"] == DIGEST
    assert stored["targets"] == MAP_RECORD.targets


def test_explicit_nulls_and_empty_targets_read_as_no_map(ssm: SSMClient) -> None:
    put_raw(ssm, json.dumps({**json.loads(RECORD_WITHOUT_MAP), "deployment_map_digest": None, "targets": {}}))

    assert read_record(ssm, PARAMETER) == RECORD


def test_read_when_nothing_was_released_is_none(ssm: SSMClient) -> None:
    assert read_record(ssm, PARAMETER) is None


def test_overwrite_replaces_the_record_whole(ssm: SSMClient, key_arn: str) -> None:
    """GIVEN a release WHEN the next one is recorded THEN the record is the new one only (no stage
    parameter or version id of the old one survives) under a new parameter version."""
    write_record(ssm, PARAMETER, RECORD, key_arn)
    newer = dataclasses.replace(
        RECORD,
        key="releases/aaaabbbb-0000-4000-8000-000000000002/source.zip",
        version_id=None,
        execution_id="aaaabbbb-0000-4000-8000-000000000002",
        stage_parameters={"Env": "stage2"},
    )

    version = write_record(ssm, PARAMETER, newer, key_arn)

    assert version == 2
    assert read_record(ssm, PARAMETER) == newer
    assert json.loads(ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"]) == {
        name: value for name, value in dataclasses.asdict(newer).items() if name not in MAP_FIELDS
    }


def test_source_location_and_release_key() -> None:
    assert RECORD.source == S3Location(RECORD.bucket, RECORD.key)
    assert release_key(RECORD.execution_id) == f"releases/{RECORD.execution_id}/source.zip"


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[]",
        "null",
        '"record"',
        json.dumps({**dataclasses.asdict(RECORD), "unexpected": 1}),
        json.dumps({k: v for k, v in dataclasses.asdict(RECORD).items() if k != "execution_id"}),
        json.dumps({**dataclasses.asdict(RECORD), "stage_parameters": ["Env", "stage"]}),
        json.dumps({**dataclasses.asdict(RECORD), "stage_parameters": {"Port": 8080}}),
        json.dumps({**dataclasses.asdict(RECORD), "bucket": ""}),
        json.dumps({**dataclasses.asdict(RECORD), "bucket": 42}),
        json.dumps({**dataclasses.asdict(RECORD), "key": None}),
        json.dumps({**dataclasses.asdict(MAP_RECORD), "deployment_map_digest": "abc123"}),
        json.dumps({**dataclasses.asdict(MAP_RECORD), "deployment_map_digest": 42}),
        json.dumps({**dataclasses.asdict(MAP_RECORD), "targets": ["111122223333/us-west-2/app"]}),
        json.dumps({**dataclasses.asdict(MAP_RECORD), "targets": {"111122223333/us-west-2/app": 7}}),
        json.dumps({**dataclasses.asdict(MAP_RECORD), "targets": {"111122223333/us-west-2/app": ""}}),
        json.dumps({**dataclasses.asdict(MAP_RECORD), "targets": None}),
        json.dumps({**dataclasses.asdict(OBJECT_RECORD), "targets": MAP_RECORD.targets}),
        json.dumps({**dataclasses.asdict(OBJECT_RECORD), "deployment_map_digest": None}),
        json.dumps({**dataclasses.asdict(OBJECT_RECORD), "targets_object": ["releases/x/targets.json"]}),
        json.dumps({**dataclasses.asdict(OBJECT_RECORD), "targets_object": {"key": "releases/x/targets.json"}}),
        json.dumps(object_record_with(key="elsewhere/targets.json")),
        json.dumps(object_record_with(version_id="")),
        json.dumps(object_record_with(sha256="abc123")),
        json.dumps(object_record_with(count=0)),
        json.dumps(object_record_with(count=True)),
        json.dumps(object_record_with(count="2")),
    ],
    ids=[
        "invalid-json",
        "list",
        "null",
        "string",
        "unknown-field",
        "missing-field",
        "parameters-not-object",
        "parameter-not-a-string",
        "empty-bucket",
        "bucket-not-a-string",
        "no-key",
        "digest-not-sha256",
        "digest-not-a-string",
        "targets-not-object",
        "target-execution-not-a-string",
        "target-execution-empty",
        "targets-null",
        "targets-object-and-inline-targets",
        "targets-object-without-digest",
        "targets-object-not-object",
        "targets-object-missing-fields",
        "targets-object-outside-releases",
        "targets-object-empty-version",
        "targets-object-sha256-not-hex",
        "targets-object-no-targets",
        "targets-object-count-bool",
        "targets-object-count-text",
    ],
)
def test_malformed_record_is_a_release_record_error(ssm: SSMClient, raw: str) -> None:
    put_raw(ssm, raw)

    with pytest.raises(ReleaseRecordError) as error:
        read_record(ssm, PARAMETER)

    assert str(error.value).startswith(f"The release record {PARAMETER} is malformed")


# ------------------------------------------------------------------------------- the targets object


def test_a_record_naming_a_targets_object_round_trips_without_inline_targets(ssm: SSMClient, key_arn: str) -> None:
    write_record(ssm, PARAMETER, OBJECT_RECORD, key_arn)

    assert read_record(ssm, PARAMETER) == OBJECT_RECORD
    stored = json.loads(ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"])
    assert "targets" not in stored
    assert stored["deployment_map_digest"] == DIGEST
    assert stored["targets_object"] == {
        "count": 2,
        "key": f"releases/{RECORD.execution_id}/targets.json",
        "sha256": TARGETS_OBJECT.sha256,
        "version_id": TARGETS_OBJECT.version_id,
    }


def written(s3: S3Client, key_arn: str, targets: dict[str, str], record: ReleaseRecord = RECORD) -> ReleaseRecord:
    """``record`` with a map, its targets written beside its source as record-release writes them."""
    named = write_targets(
        s3,
        record.bucket,
        execution_id=record.execution_id,
        deployment_map_digest=DIGEST,
        targets=targets,
        kms_key_id=key_arn,
    )
    return dataclasses.replace(record, deployment_map_digest=DIGEST, targets_object=named)


def versions(s3: S3Client, key: str) -> list[str]:
    listed = s3.list_object_versions(Bucket=RECORD.bucket, Prefix=key)
    return [version["VersionId"] for version in listed.get("Versions", [])]


def test_targets_are_kept_encrypted_beside_the_source_and_read_back_through_the_record(
    s3: S3Client, artifact_bucket: str, key_arn: str
) -> None:
    record = written(s3, key_arn, MAP_RECORD.targets)

    key = f"releases/{RECORD.execution_id}/targets.json"
    kept = s3.get_object(Bucket=artifact_bucket, Key=key)
    body = kept["Body"].read()
    assert (kept["ServerSideEncryption"], kept["SSEKMSKeyId"]) == ("aws:kms", key_arn)
    assert record.targets_object == TargetsObject(
        key=key, version_id=kept["VersionId"], sha256=hashlib.sha256(body).hexdigest(), count=2
    )
    assert json.loads(body) == {
        "deployment_map_digest": DIGEST,
        "execution_id": RECORD.execution_id,
        "targets": MAP_RECORD.targets,
    }
    assert read_targets(s3, record, PARAMETER) == MAP_RECORD.targets


def test_writing_the_same_targets_again_writes_nothing_and_names_the_same_object(
    s3: S3Client, artifact_bucket: str, key_arn: str
) -> None:
    """GIVEN record-release retried after it kept the targets WHEN it keeps them again THEN no second version
    is written and the record names the first."""
    first = written(s3, key_arn, MAP_RECORD.targets)

    again = written(s3, key_arn, dict(reversed(MAP_RECORD.targets.items())))

    assert again == first
    assert versions(s3, release_targets_key(RECORD.execution_id)) == [first.targets_object.version_id]  # type: ignore[union-attr]


def test_other_targets_for_the_same_execution_are_a_new_version_and_each_record_reads_its_own(
    s3: S3Client, artifact_bucket: str, key_arn: str
) -> None:
    first = written(s3, key_arn, MAP_RECORD.targets)
    other = {"111122223333/us-west-2/app": RECORD.execution_id}

    second = written(s3, key_arn, other)

    assert len(versions(s3, release_targets_key(RECORD.execution_id))) == 2
    assert read_targets(s3, first, PARAMETER) == MAP_RECORD.targets
    assert read_targets(s3, second, PARAMETER) == other


def test_a_record_without_a_targets_object_reads_its_inline_targets_or_none(s3: S3Client) -> None:
    """Records written before the targets object: inline targets, or none without a map. Nothing is read
    from S3 (no bucket exists here)."""
    assert read_targets(s3, MAP_RECORD, PARAMETER) == MAP_RECORD.targets
    assert read_targets(s3, RECORD, PARAMETER) == {}


def test_a_missing_targets_object_is_an_error_never_no_targets(
    s3: S3Client, artifact_bucket: str, key_arn: str
) -> None:
    record = written(s3, key_arn, MAP_RECORD.targets)
    s3.delete_object(Bucket=artifact_bucket, Key=release_targets_key(RECORD.execution_id))

    with pytest.raises(ReleaseRecordError) as error:
        read_targets(
            s3,
            dataclasses.replace(record, targets_object=dataclasses.replace(TARGETS_OBJECT, version_id=None)),
            PARAMETER,
        )

    assert str(error.value).startswith(
        f"The release record {PARAMETER} names the target versions "
        f"s3://{artifact_bucket}/releases/{RECORD.execution_id}/targets.json, which cannot be read: "
    )
    assert "does not exist" in str(error.value)


def test_a_targets_object_version_that_is_gone_is_an_error(s3: S3Client, artifact_bucket: str, key_arn: str) -> None:
    record = written(s3, key_arn, MAP_RECORD.targets)
    assert record.targets_object is not None
    version = record.targets_object.version_id
    s3.delete_object(Bucket=artifact_bucket, Key=record.targets_object.key, VersionId=str(version))

    with pytest.raises(ReleaseRecordError, match=rf"\(version {version}\), which cannot be read: .*does not exist"):
        read_targets(s3, record, PARAMETER)


def test_a_targets_object_whose_bytes_are_not_the_ones_recorded_is_an_error(
    s3: S3Client, artifact_bucket: str, key_arn: str
) -> None:
    """GIVEN a record naming its object by key only (a bucket without versioning) WHEN the object is
    replaced with other targets THEN the digest refuses it."""
    record = written(s3, key_arn, MAP_RECORD.targets)
    assert record.targets_object is not None
    by_key = dataclasses.replace(record, targets_object=dataclasses.replace(record.targets_object, version_id=None))
    written(s3, key_arn, {"111122223333/us-west-2/app": RECORD.execution_id})

    with pytest.raises(ReleaseRecordError, match="it is not the object the release wrote"):
        read_targets(s3, by_key, PARAMETER)


def test_a_targets_object_of_another_release_is_an_error(s3: S3Client, artifact_bucket: str, key_arn: str) -> None:
    other = dataclasses.replace(RECORD, execution_id="aaaabbbb-0000-4000-8000-000000000002")
    theirs = written(s3, key_arn, MAP_RECORD.targets, other)

    with pytest.raises(ReleaseRecordError, match="belongs to another release or map"):
        read_targets(s3, dataclasses.replace(OBJECT_RECORD, targets_object=theirs.targets_object), PARAMETER)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"targets": {}}', b'{"deployment_map_digest": "x", "execution_id": "y", "targets": [1]}'],
    ids=["invalid-json", "list", "no-release", "targets-not-object"],
)
def test_a_malformed_targets_object_is_an_error(s3: S3Client, artifact_bucket: str, body: bytes) -> None:
    key = release_targets_key(RECORD.execution_id)
    version = s3.put_object(Bucket=artifact_bucket, Key=key, Body=body)["VersionId"]
    named = TargetsObject(key=key, version_id=version, sha256=hashlib.sha256(body).hexdigest(), count=2)

    with pytest.raises(ReleaseRecordError, match="which is malformed"):
        read_targets(s3, dataclasses.replace(OBJECT_RECORD, targets_object=named), PARAMETER)


def test_a_release_to_100_targets_with_the_longest_names_keeps_the_record_small(
    s3: S3Client, ssm: SSMClient, artifact_bucket: str, key_arn: str
) -> None:
    """GIVEN 100 targets (the most a map holds), each with a 12-digit account, the longest Region and a
    128-character stack name WHEN recorded THEN the record is the size it is for two targets, well inside
    the 4 KB of a standard parameter, and the targets read back whole. Inline, they would not fit the 8 KB
    of an advanced parameter."""
    region = max(sorted(aws_regions()), key=len)
    targets = {
        f"{index:012d}/{region}/{'s' * STACK_NAME_MAX}": f"{index:08d}-0000-4000-8000-000000000000"
        for index in range(100)
    }
    inline = dataclasses.replace(MAP_RECORD, targets=targets).to_json()
    assert len(inline.encode()) > 8 * 1024
    record = written(s3, key_arn, targets)

    write_record(ssm, PARAMETER, record, key_arn)

    stored = ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"]
    two = written(s3, key_arn, MAP_RECORD.targets, dataclasses.replace(RECORD, execution_id="f" * 36))
    assert len(stored) == len(two.to_json()) + 2  # "count":100 rather than 2
    assert len(stored.encode()) < 4 * 1024
    found = read_record(ssm, PARAMETER)
    assert found == record
    assert read_targets(s3, found, PARAMETER) == targets


def test_the_first_write_of_the_targets_reads_nothing(s3: S3Client, artifact_bucket: str, key_arn: str) -> None:
    """A role with s3:PutObject but no s3:ListBucket gets 403 for a missing key: the first write must not
    look for an earlier object by reading it."""
    read: list[str] = []
    s3.meta.events.register("before-call.s3.GetObject", lambda **_: read.append("GetObject"))
    s3.meta.events.register("before-call.s3.HeadObject", lambda **_: read.append("HeadObject"))

    record = written(s3, key_arn, MAP_RECORD.targets)

    assert read == []
    assert record.targets_object is not None
    assert versions(s3, record.targets_object.key) == [record.targets_object.version_id]
