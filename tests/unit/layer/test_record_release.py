"""release_pipeline.record_release: after both production deploys, the released source is copied under
releases/<execution>/source.zip and the release record is written; a source that cannot be released
writes neither. With a deployment map, the record names the map and the object beside the source that
holds the execution each target runs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from release_pipeline import deployment_map, releases
from release_pipeline.errors import ArtifactError, BadInputError, ReleaseRecordError
from release_pipeline.jobs import Job, JobResult
from release_pipeline.map_check import MapCheckConfig, check_map
from release_pipeline.record_release import RecordReleaseConfig, record_release
from tests.support.maps import MAP_PATH, example_map, example_repository, with_map
from tests.support.solution import source_zip
from tests.unit.layer.test_config import environ

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

BASE = RecordReleaseConfig.from_env(environ(RecordReleaseConfig))
TEMPLATE_PATH = BASE.template_path
EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"
COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b"
REVISION = "9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"
SOURCE_KEY = "release-pipeline/SourceOutp/k3Xw9Qa"
SOURCE = source_zip({TEMPLATE_PATH: "Resources: {Queue: {Type: AWS::SQS::Queue}}\n", "README.md": "v1\n"})
NOW = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
HOME = "123456789012"


def job(user_parameters: dict[str, Any] | None = None, revision: str | None = REVISION) -> Job:
    parameters = {"executionId": EXECUTION, "commitId": COMMIT} if user_parameters is None else user_parameters
    return Job(
        {
            "CodePipeline.job": {
                "id": "e5c9a3f1-0001-4000-8000-000000000001",
                "accountId": "123456789012",
                "data": {
                    "actionConfiguration": {"configuration": {"UserParameters": json.dumps(parameters)}},
                    "inputArtifacts": [
                        {
                            "name": "SourceOutput",
                            "revision": revision,
                            "location": {
                                "type": "S3",
                                "s3Location": {"bucketName": BASE.artifact_bucket, "objectKey": SOURCE_KEY},
                            },
                        }
                    ],
                    "outputArtifacts": [],
                    "artifactCredentials": {
                        "accessKeyId": "ASIAEXAMPLE",
                        "secretAccessKey": "example",
                        "sessionToken": "example",
                        "expirationTime": 1767225600000,
                    },
                },
            }
        }
    )


@pytest.fixture
def config(artifact_bucket: str, kms_key_arn: str) -> RecordReleaseConfig:
    assert artifact_bucket == BASE.artifact_bucket
    return dataclasses.replace(BASE, kms_key_arn=kms_key_arn, stage_parameters={"Env": "stage", "Size": "1"})


def run(s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig, the_job: Job | None = None) -> JobResult:
    return record_release(
        job=the_job or job(), job_s3=s3, release_s3=s3, ssm=ssm, config=config, home_account=HOME, now=NOW
    )


def put_source(s3: S3Client, body: bytes = SOURCE) -> None:
    s3.put_object(Bucket=BASE.artifact_bucket, Key=SOURCE_KEY, Body=body)


def released_keys(s3: S3Client) -> list[str]:
    listed = s3.list_object_versions(Bucket=BASE.artifact_bucket, Prefix=releases.RELEASES_PREFIX)
    return [v["Key"] for v in listed.get("Versions", [])]


def assert_no_record(ssm: SSMClient, config: RecordReleaseConfig) -> None:
    with pytest.raises(ClientError) as missing:
        ssm.get_parameter(Name=config.release_record_parameter)
    assert missing.value.response["Error"]["Code"] == "ParameterNotFound"


def test_the_source_is_kept_under_releases_and_the_record_points_at_that_copy(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    put_source(s3)

    result = run(s3, ssm, config)

    key = f"releases/{EXECUTION}/source.zip"
    copy = s3.get_object(Bucket=config.artifact_bucket, Key=key)
    assert copy["Body"].read() == SOURCE
    assert copy["ServerSideEncryption"] == "aws:kms"
    assert copy["SSEKMSKeyId"] == config.kms_key_arn
    record = releases.read_record(ssm, config.release_record_parameter)
    assert record == releases.ReleaseRecord(
        bucket=config.artifact_bucket,
        key=key,
        version_id=copy["VersionId"],
        commit_id=COMMIT,
        execution_id=EXECUTION,
        released_at="2026-03-01T09:30:15+00:00",
        template_path=TEMPLATE_PATH,
        stage_parameters={"Env": "stage", "Size": "1"},
    )
    assert result.output_variables == {"ReleaseKey": key, "CommitId": COMMIT}
    assert result.summary == f"Released {COMMIT[:12]} (execution {EXECUTION}); record version 1"


def test_a_source_without_the_template_writes_nothing(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    put_source(s3, source_zip({"other/template.yaml": "Resources: {}\n"}))

    with pytest.raises(ArtifactError, match=f"has no file '{TEMPLATE_PATH}'"):
        run(s3, ssm, config)

    assert released_keys(s3) == []
    assert_no_record(ssm, config)


def test_a_source_that_is_not_a_zip_writes_nothing(s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig) -> None:
    put_source(s3, b"not a zip")

    with pytest.raises(ArtifactError, match="not a valid zip archive"):
        run(s3, ssm, config)

    assert released_keys(s3) == []
    assert_no_record(ssm, config)


def test_a_missing_source_writes_nothing(s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        run(s3, ssm, config)

    assert released_keys(s3) == []
    assert_no_record(ssm, config)


@pytest.mark.parametrize(
    ("parameters", "revision", "commit"),
    [
        ({"executionId": EXECUTION}, REVISION, REVISION),  # no commitId: the artifact's revision
        ({"executionId": EXECUTION, "commitId": ""}, REVISION, REVISION),
        ({"executionId": EXECUTION, "commitId": COMMIT}, REVISION, COMMIT),  # the action's value wins
        ({"executionId": EXECUTION}, None, None),
    ],
    ids=["revision", "empty-commit-id", "commit-id", "neither"],
)
def test_the_commit_comes_from_user_parameters_else_the_artifact_revision(
    s3: S3Client,
    ssm: SSMClient,
    config: RecordReleaseConfig,
    parameters: dict[str, Any],
    revision: str | None,
    commit: str | None,
) -> None:
    put_source(s3)

    result = run(s3, ssm, config, job(parameters, revision))

    record = releases.read_record(ssm, config.release_record_parameter)
    assert record is not None
    assert record.commit_id == commit
    assert result.output_variables["CommitId"] == (commit or "unknown")
    assert result.summary.startswith(f"Released {(commit or 'unknown commit')[:12]} ")


@pytest.mark.parametrize("commit", [12345, ["a"], {"id": "a"}, 0, [], {}, False])
def test_a_commit_id_that_is_not_text_is_refused_before_anything_is_written(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig, commit: object
) -> None:
    put_source(s3)

    with pytest.raises(BadInputError, match=r"UserParameters\.commitId must be a string"):
        run(s3, ssm, config, job({"executionId": EXECUTION, "commitId": commit}))

    assert released_keys(s3) == []
    assert_no_record(ssm, config)


def test_an_execution_id_that_is_not_one_is_refused_before_anything_is_written(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    """An unresolved variable would otherwise name the copy releases/#{codepipeline...}/source.zip."""
    put_source(s3)

    with pytest.raises(BadInputError, match="executionId"):
        run(s3, ssm, config, job({"executionId": "#{codepipeline.PipelineExecutionId}", "commitId": COMMIT}))

    assert released_keys(s3) == []
    assert_no_record(ssm, config)


def test_a_later_release_replaces_the_record_and_keeps_the_earlier_copy(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    put_source(s3)
    run(s3, ssm, config)
    later = "e1a2b3c4-0000-4000-8000-000000000002"
    newer = source_zip({TEMPLATE_PATH: "Resources: {Topic: {Type: AWS::SNS::Topic}}\n"})
    put_source(s3, newer)

    result = run(s3, ssm, config, job({"executionId": later, "commitId": "b" * 40}))

    assert result.summary.endswith("record version 2")
    record = releases.read_record(ssm, config.release_record_parameter)
    assert record is not None
    assert (record.execution_id, record.key) == (later, f"releases/{later}/source.zip")
    assert sorted(released_keys(s3)) == [f"releases/{EXECUTION}/source.zip", f"releases/{later}/source.zip"]
    assert s3.get_object(Bucket=config.artifact_bucket, Key=f"releases/{EXECUTION}/source.zip")["Body"].read() == SOURCE


# ------------------------------------------------------------------------------------ deployment map

# The record the release above wrote before releases could name a map, byte for byte (its version id
# aside, which S3 gives): a release without a map writes exactly this.
RECORD_WITHOUT_MAP = (
    '{"bucket":"release-pipeline-artifacts","commit_id":"3f786850e387550fdab836ed7e6dc881de23001b",'
    '"execution_id":"e1a2b3c4-0000-4000-8000-000000000001",'
    '"key":"releases/e1a2b3c4-0000-4000-8000-000000000001/source.zip","released_at":"2026-03-01T09:30:15+00:00",'
    '"stage_parameters":{"Env":"stage","Size":"1"},"template_path":"infra/app.yaml","version_id":"VERSION"}'
)
PREVIOUS = "e1a2b3c4-0000-4000-8000-00000000000a"
# The example map's targets by name (the solution's account is HOME).
CANARY = f"{HOME}/us-west-2/hello-app"
EARLY_EU = f"{HOME}/eu-west-1/hello-app"
EARLY_PARTNER = "222233334444/us-east-2/hello-app"
REST = f"{HOME}/us-east-1/hello-app"
REMOVED = f"{HOME}/ap-south-1/hello-app"  # a target an earlier map had and this one does not


def map_source(repository: dict[str, str] | None = None) -> bytes:
    """The example application (with its deployment map) and the template at the pipeline's path."""
    files = dict(example_repository() if repository is None else repository)
    files[TEMPLATE_PATH] = files.pop("template.yaml", "Resources: {}\n")
    return source_zip(files)


def example_digest() -> str:
    repository = example_repository()
    return deployment_map.digest(
        deployment_map.parse(
            repository[MAP_PATH], read_file=repository.get, default_stack_name="hello-app", home_account=HOME
        )
    )


def mapped(config: RecordReleaseConfig) -> RecordReleaseConfig:
    return dataclasses.replace(config, deployment_map_path=MAP_PATH, application_stack_name="hello-app")


def stored(ssm: SSMClient, config: RecordReleaseConfig) -> str:
    return ssm.get_parameter(Name=config.release_record_parameter, WithDecryption=True)["Parameter"]["Value"]


def put_previous(ssm: SSMClient, config: RecordReleaseConfig, targets: dict[str, str]) -> None:
    previous = releases.ReleaseRecord(
        bucket=config.artifact_bucket,
        key=releases.release_key(PREVIOUS),
        version_id="v1",
        commit_id="a" * 40,
        execution_id=PREVIOUS,
        released_at="2026-02-01T00:00:00+00:00",
        template_path=TEMPLATE_PATH,
        stage_parameters={},
        deployment_map_digest="0" * 64 if targets else None,
        targets=targets,
    )
    releases.write_record(ssm, config.release_record_parameter, previous, config.kms_key_arn)


def recorded_targets(s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig) -> dict[str, str]:
    """The execution each target runs, as the release record names it."""
    record = releases.read_record(ssm, config.release_record_parameter)
    assert record is not None
    return releases.read_targets(s3, record, config.release_record_parameter)


def with_unchanged(names: object) -> Job:
    return job({"executionId": EXECUTION, "commitId": COMMIT, "unchangedTargets": names})


def test_without_a_map_the_record_is_byte_for_byte_the_one_written_before(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN no DEPLOYMENT_MAP_PATH WHEN released THEN the record is the JSON the function always wrote, and
    no previous record is read (nothing new is asked of its permissions)."""
    assert config.deployment_map_path == ""
    put_source(s3, map_source())  # a map in the repository changes nothing while the solution names none
    read: list[str] = []
    monkeypatch.setattr(releases, "read_record", lambda _ssm, name: read.append(name))

    run(s3, ssm, config)

    copy = s3.head_object(Bucket=config.artifact_bucket, Key=f"releases/{EXECUTION}/source.zip")
    assert stored(ssm, config) == RECORD_WITHOUT_MAP.replace("VERSION", copy["VersionId"])
    assert read == []


def test_with_a_map_the_record_names_the_map_and_this_execution_for_every_target(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    put_source(s3, map_source())

    result = run(s3, ssm, mapped(config))

    record = releases.read_record(ssm, config.release_record_parameter)
    assert record is not None
    assert record.deployment_map_digest == example_digest()
    targets = {CANARY: EXECUTION, EARLY_EU: EXECUTION, EARLY_PARTNER: EXECUTION, REST: EXECUTION}
    assert releases.read_targets(s3, record, config.release_record_parameter) == targets
    assert (record.execution_id, record.commit_id, record.stage_parameters) == (
        EXECUTION,
        COMMIT,
        config.stage_parameters,
    )
    key = f"releases/{EXECUTION}/targets.json"
    kept = s3.get_object(Bucket=config.artifact_bucket, Key=key)
    assert (kept["ServerSideEncryption"], kept["SSEKMSKeyId"]) == ("aws:kms", config.kms_key_arn)
    raw = json.loads(stored(ssm, config))
    assert raw["deployment_map_digest"] == example_digest()
    assert "targets" not in raw
    assert raw["targets_object"] == {
        "count": 4,
        "key": key,
        "sha256": hashlib.sha256(kept["Body"].read()).hexdigest(),
        "version_id": kept["VersionId"],
    }
    assert result.summary.endswith(f"; deployment map {example_digest()[:12]}, 4 targets recorded")
    assert result.output_variables == {"ReleaseKey": f"releases/{EXECUTION}/source.zip", "CommitId": COMMIT}


def test_the_record_names_the_map_by_the_digest_the_validate_stage_published(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    put_source(s3, map_source())
    check_config = MapCheckConfig(deployment_map_path=MAP_PATH, application_stack_name="hello-app")
    checked = check_map(job=job(), s3=s3, config=check_config, home_account=HOME)

    run(s3, ssm, mapped(config))

    record = releases.read_record(ssm, config.release_record_parameter)
    assert record is not None
    assert record.deployment_map_digest == checked.output_variables["MapDigest"]


def test_a_target_whose_change_set_was_empty_keeps_the_execution_the_previous_record_names(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    """GIVEN a previous record naming three targets of the map and one no longer in it WHEN released with
    the canary and the partner target unchanged THEN the canary keeps its execution; the partner target,
    which the previous record did not name, and every changed target get this one; the removed target's
    stack still runs its change, so it stays."""
    config = mapped(config)
    put_source(s3, map_source())
    put_previous(ssm, config, {CANARY: PREVIOUS, EARLY_EU: PREVIOUS, REST: PREVIOUS, REMOVED: PREVIOUS})

    run(s3, ssm, config, with_unchanged(f"{CANARY}, {EARLY_PARTNER}"))

    record = releases.read_record(ssm, config.release_record_parameter)
    assert record is not None
    assert recorded_targets(s3, ssm, config) == {
        CANARY: PREVIOUS,
        EARLY_EU: EXECUTION,
        EARLY_PARTNER: EXECUTION,
        REST: EXECUTION,
        REMOVED: PREVIOUS,
    }
    assert record.execution_id == EXECUTION


def test_after_a_record_written_before_maps_every_target_is_this_execution(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    """GIVEN the previous record names no targets (written without a map) WHEN a target is unchanged THEN it
    still runs this execution's source, the one the release records."""
    config = mapped(config)
    put_source(s3, map_source())
    put_previous(ssm, config, {})

    run(s3, ssm, config, with_unchanged(CANARY))

    targets = recorded_targets(s3, ssm, config)
    assert set(targets.values()) == {EXECUTION}
    assert len(targets) == 4


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (f"{CANARY},{HOME}/us-west-2/other-app", f"not in the deployment map: {HOME}/us-west-2/other-app"),
        ([CANARY], "UserParameters.unchangedTargets must be a string of target names separated by commas"),
        (7, "UserParameters.unchangedTargets must be a string"),
    ],
    ids=["unknown-target", "a-list", "a-number"],
)
def test_unchanged_targets_that_are_not_the_map_s_are_refused_before_anything_is_written(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig, names: object, problem: str
) -> None:
    put_source(s3, map_source())

    with pytest.raises(BadInputError, match=re.escape(problem)):
        run(s3, ssm, mapped(config), with_unchanged(names))

    assert released_keys(s3) == []
    assert_no_record(ssm, config)


def test_a_map_missing_from_the_source_writes_nothing(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    repository = example_repository()
    del repository[MAP_PATH]
    put_source(s3, map_source(repository))

    with pytest.raises(ArtifactError, match=f"DeploymentMapPath parameter names {MAP_PATH!r}"):
        run(s3, ssm, mapped(config))

    assert released_keys(s3) == []
    assert_no_record(ssm, config)


def test_a_map_with_an_error_writes_nothing_and_leaves_the_previous_record(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    config = mapped(config)
    document = example_map()
    document["Waves"][0]["Targets"][0]["Region"] = "us-west-9"
    put_source(s3, map_source(with_map(document)))
    put_previous(ssm, config, {CANARY: PREVIOUS})

    with pytest.raises(BadInputError, match=r"Waves\[0\]\.Targets\[0\] \(us-west-9\): Region 'us-west-9'"):
        run(s3, ssm, config)

    assert released_keys(s3) == []
    record = releases.read_record(ssm, config.release_record_parameter)
    assert record is not None
    assert record.execution_id == PREVIOUS


LATER = "e1a2b3c4-0000-4000-8000-000000000002"


def later(names: str = "") -> Job:
    return job({"executionId": LATER, "commitId": "b" * 40, "unchangedTargets": names})


def test_a_target_unchanged_since_a_release_whose_targets_are_in_s3_keeps_that_release_s_execution(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    config = mapped(config)
    put_source(s3, map_source())
    run(s3, ssm, config)

    run(s3, ssm, config, later(CANARY))

    assert recorded_targets(s3, ssm, config) == {CANARY: EXECUTION, EARLY_EU: LATER, EARLY_PARTNER: LATER, REST: LATER}
    assert sorted(released_keys(s3)) == sorted(
        f"releases/{execution}/{name}" for execution in (EXECUTION, LATER) for name in ("source.zip", "targets.json")
    )


def test_a_retried_release_writes_its_targets_once_and_records_the_same_object(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    """GIVEN record-release recorded a release and CodePipeline runs the job again WHEN it records again
    THEN the targets object is not written twice and the record names the same object and targets."""
    config = mapped(config)
    put_source(s3, map_source())
    put_previous(ssm, config, {CANARY: PREVIOUS})
    run(s3, ssm, config, with_unchanged(CANARY))
    first = releases.read_record(ssm, config.release_record_parameter)

    run(s3, ssm, config, with_unchanged(CANARY))

    again = releases.read_record(ssm, config.release_record_parameter)
    assert again is not None
    assert first is not None
    assert again.targets_object == first.targets_object
    assert released_keys(s3).count(f"releases/{EXECUTION}/targets.json") == 1
    assert recorded_targets(s3, ssm, config) == {
        CANARY: PREVIOUS,
        EARLY_EU: EXECUTION,
        EARLY_PARTNER: EXECUTION,
        REST: EXECUTION,
    }


def test_a_previous_record_whose_targets_object_is_missing_fails_and_writes_nothing(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    """GIVEN the previous release's targets object is gone WHEN the next release is recorded THEN it fails
    naming the object, rather than reading the previous release as one without targets, and writes nothing."""
    config = mapped(config)
    put_source(s3, map_source())
    run(s3, ssm, config)
    before = stored(ssm, config)
    gone = f"releases/{EXECUTION}/targets.json"
    for version in s3.list_object_versions(Bucket=config.artifact_bucket, Prefix=gone)["Versions"]:
        s3.delete_object(Bucket=config.artifact_bucket, Key=gone, VersionId=version["VersionId"])

    with pytest.raises(ReleaseRecordError, match=rf"names the target versions s3://{config.artifact_bucket}/{gone}"):
        run(s3, ssm, config, later(CANARY))

    assert stored(ssm, config) == before
    assert [key for key in released_keys(s3) if LATER in key] == []


def test_a_release_to_100_targets_with_the_longest_names_is_recorded_in_a_small_record(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    """GIVEN a map of 100 targets (the most allowed), each in its own account, in the longest Region name
    and with a 128-character stack name WHEN released THEN the record stays within a standard parameter's
    4 KB and names every target through the object beside the source."""
    config = mapped(config)
    region = max(sorted(deployment_map.aws_regions()), key=len)
    stack = "s" * deployment_map.STACK_NAME_MAX
    document = {
        "Waves": [
            {
                "Name": "all",
                "MaxConcurrency": deployment_map.MAX_CONCURRENCY,
                "DeployTimeoutInMinutes": 5,  # within the rollout's history budget
                "Targets": [
                    {
                        "Region": region,
                        "Account": f"{n:012d}",
                        "StackName": stack,
                        "ParameterFile": "parameters/primary.json",
                    }
                    for n in range(deployment_map.MAX_TARGETS)
                ],
            }
        ]
    }
    put_source(s3, map_source(with_map(document)))

    result = run(s3, ssm, config)

    assert result.summary.endswith(f"{deployment_map.MAX_TARGETS} targets recorded")
    assert len(stored(ssm, config).encode()) < 4 * 1024
    targets = recorded_targets(s3, ssm, config)
    assert targets == {f"{n:012d}/{region}/{stack}": EXECUTION for n in range(deployment_map.MAX_TARGETS)}
