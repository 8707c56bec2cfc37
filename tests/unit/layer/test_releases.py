"""release_pipeline.releases: the release record in SSM, written whole and read back exactly."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

import boto3
import pytest

from release_pipeline.errors import ReleaseRecordError
from release_pipeline.releases import ReleaseRecord, read_record, release_key, write_record
from release_pipeline.values import S3Location

if TYPE_CHECKING:
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
MAP_FIELDS = ("deployment_map_digest", "targets")
DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
MAP_RECORD = dataclasses.replace(
    RECORD,
    deployment_map_digest=DIGEST,
    targets={
        "111122223333/us-west-2/app": RECORD.execution_id,
        "222233334444/us-east-2/app": "0a0b0c0d-0000-4000-8000-000000000001",
    },
)
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


def test_a_record_with_a_map_round_trips_and_names_the_map_and_each_target(ssm: SSMClient, key_arn: str) -> None:
    write_record(ssm, PARAMETER, MAP_RECORD, key_arn)

    assert read_record(ssm, PARAMETER) == MAP_RECORD
    stored = json.loads(ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"])
    assert stored == dataclasses.asdict(MAP_RECORD)
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
    ],
)
def test_malformed_record_is_a_release_record_error(ssm: SSMClient, raw: str) -> None:
    put_raw(ssm, raw)

    with pytest.raises(ReleaseRecordError) as error:
        read_record(ssm, PARAMETER)

    assert str(error.value).startswith(f"The release record {PARAMETER} is malformed")
