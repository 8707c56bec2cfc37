"""release_pipeline.map_check: the deployment map in the Source artifact is checked at Validate; a map
that can be used gives its numbers, digest and a line per wave, and one with an error fails, naming each
entry at fault, within CodePipeline's failure message limit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from release_pipeline import deployment_map
from release_pipeline.artifacts import build_zip
from release_pipeline.errors import ArtifactError, BadInputError
from release_pipeline.jobs import FAILURE_MESSAGE_LIMIT, SUMMARY_VARIABLE_LIMIT, Job, JobResult
from release_pipeline.map_check import MapCheckConfig, check_map
from tests.support.events import load_event
from tests.support.maps import MAP_PATH, example_map, example_repository, with_map
from tests.support.solution import ARTIFACT_BUCKET, source_zip

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

HOME = "123456789012"
PARTNER = "222233334444"
STACK = "hello-app"
SOURCE_KEY = "release-pipeline/SourceOutp/k3Xw9Qa"
CONFIG = MapCheckConfig(deployment_map_path=MAP_PATH, application_stack_name=STACK)


def job() -> Job:
    return Job(load_event("check-deployment-map", "job"))


def check(s3: S3Client, repository: dict[str, str] | None = None, config: MapCheckConfig = CONFIG) -> JobResult:
    """Put ``repository`` (the example application by default) as the job's Source artifact and check it."""
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=SOURCE_KEY, Body=source_zip(repository or example_repository()))
    return check_map(job=job(), s3=s3, config=config, home_account=HOME)


def refused(s3: S3Client, repository: dict[str, str]) -> str:
    """The message of the job failure for ``repository``."""
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=SOURCE_KEY, Body=source_zip(repository))
    with pytest.raises(BadInputError) as raised:
        check_map(job=job(), s3=s3, config=CONFIG, home_account=HOME)
    assert type(raised.value) is BadInputError  # a job failure (JobFailed), not the function's configuration
    return str(raised.value)


def parsed(repository: dict[str, str]) -> deployment_map.DeploymentMap:
    """The map as deployment_map reads it straight from the files, for comparison."""
    return deployment_map.parse(
        repository[MAP_PATH], read_file=repository.get, default_stack_name=STACK, home_account=HOME
    )


@pytest.fixture
def s3(s3: S3Client, artifact_bucket: str) -> S3Client:
    """S3 with the artifact bucket the sample job event names."""
    return s3


def test_the_example_map_passes_with_its_numbers_digest_and_waves(s3: S3Client) -> None:
    result = check(s3)

    expected = parsed(example_repository())
    assert result.output_variables == {
        "Waves": "3",
        "Targets": "4",
        "MapDigest": deployment_map.digest(expected),
        "Summary": (
            "wave 1 canary: 1 target (us-west-2), concurrency 1, bake 30 min, no alarms; "
            f"wave 2 early: 2 targets (eu-west-1, us-east-2 account {PARTNER}), concurrency 2, bake 15 min, no alarms; "
            "wave 3 rest: 1 target (us-east-1), concurrency 1, bake 0 min, no alarms"
        ),
    }
    assert len(result.output_variables["Summary"]) <= SUMMARY_VARIABLE_LIMIT
    assert result.summary == (
        f"Deployment map {MAP_PATH}: 3 waves, 4 targets in 4 Regions and 2 accounts; "
        f"digest {deployment_map.digest(expected)[:12]}"
    )
    assert result.continuation_token is None


def test_the_digest_names_the_parameters_read_not_only_the_map_file(s3: S3Client) -> None:
    """GIVEN the same map file with one parameter file changed WHEN checked THEN another digest."""
    before = check(s3).output_variables["MapDigest"]
    changed = with_map(
        example_map(), {"parameters/primary.json": '{"EnvironmentName": "primary", "RetentionDays": "1"}'}
    )

    after = check(s3, changed).output_variables["MapDigest"]

    assert after != before
    assert after == deployment_map.digest(parsed(changed))


def test_a_map_in_a_folder_of_the_repository_is_read_with_paths_from_the_root(s3: S3Client) -> None:
    repository = example_repository()
    repository["deploy/map.json"] = repository.pop(MAP_PATH)

    result = check(s3, repository, MapCheckConfig(deployment_map_path="deploy/map.json", application_stack_name=STACK))

    assert result.output_variables["Targets"] == "4"


def a_map(change: str) -> dict[str, Any]:
    """The example map with one error of the kind named."""
    document = example_map()
    canary, _, rest = document["Waves"]
    if change == "unknown-key":
        canary["Targets"][0]["Regions"] = ["us-west-2"]
    elif change == "not-a-region":
        canary["Targets"][0]["Region"] = "us-west-9"
    elif change == "duplicate-target":
        rest["Targets"].append({"Region": "us-west-2", "ParameterFile": "parameters/us-west-2.json"})
    elif change == "missing-parameter-file":
        rest["Targets"][0]["ParameterFile"] = "parameters/us-east-1.json"
    elif change == "bake-over-cloudformation-s-limit":
        canary["BakeTimeInMinutes"] = 181
    elif change == "rollout-over-24-hours":
        canary["DeployTimeoutInMinutes"] = 1300
    return document


ERRORS = {
    "unknown-key": "Waves[0].Targets[0] (us-west-2): unknown key 'Regions' (the keys are Region, Account, StackName, "
    "ParameterFile)",
    "not-a-region": "Waves[0].Targets[0] (us-west-9): Region 'us-west-9' is not an AWS Region",
    "duplicate-target": "Waves[2].Targets[1] (us-west-2): the same target as Waves[0].Targets[0] (us-west-2) "
    f"(account {HOME}, Region us-west-2, stack {STACK}); a stack is deployed once per rollout",
    "missing-parameter-file": "Waves[2].Targets[0] (us-east-1): ParameterFile 'parameters/us-east-1.json' is not in "
    "the repository",
    "bake-over-cloudformation-s-limit": "Waves[0] (canary): BakeTimeInMinutes must be from 0 to 180, not 181 "
    "(CloudFormation monitors rollback alarms for at most 180 minutes)",
    "rollout-over-24-hours": "Waves: the waves need 1 x (1300 + 30) + 1 x (60 + 15) + 1 x (60 + 0) = 1465 minutes "
    "(canary 1330, early 75, rest 60); a rollout must fit in 1440 (CodePipeline ends a Lambda action after 24 "
    "hours): lower DeployTimeoutInMinutes or BakeTimeInMinutes, or raise MaxConcurrency",
}


@pytest.mark.parametrize("change", sorted(ERRORS))
def test_each_kind_of_error_fails_naming_the_entry(s3: S3Client, change: str) -> None:
    message = refused(s3, with_map(a_map(change)))

    assert message == f"The deployment map {MAP_PATH} has 1 problem:\n- {ERRORS[change]}"


def test_every_problem_is_listed_one_a_line_in_the_order_of_the_file(s3: S3Client) -> None:
    document = a_map("not-a-region")
    document["Waves"][0]["BakeTimeInMinutes"] = 181
    document["Waves"][2]["Targets"][0]["ParameterFile"] = "parameters/us-east-1.json"

    message = refused(s3, with_map(document))

    assert message.splitlines() == [
        f"The deployment map {MAP_PATH} has 3 problems:",
        "- Waves[0] (canary): BakeTimeInMinutes must be from 0 to 180, not 181 (CloudFormation monitors rollback "
        "alarms for at most 180 minutes)",
        f"- {ERRORS['not-a-region']}",
        f"- {ERRORS['missing-parameter-file']}",
    ]


def test_a_file_that_is_not_json_fails_naming_the_map(s3: S3Client) -> None:
    message = refused(s3, with_map('{"Waves": [}'))

    assert message == (
        f"The deployment map {MAP_PATH} has 1 problem:\n"
        "- the map: is not valid JSON: Expecting value at line 1 column 12"
    )


def test_a_huge_list_of_problems_is_cut_between_problems_saying_how_many_were_left_out(s3: S3Client) -> None:
    """GIVEN 100 targets, each with two problems WHEN checked THEN as many whole problems as fit in
    CodePipeline's 5,000 characters, then the number left out."""
    targets = [{"Region": f"nowhere-{n}", "ParameterFile": f"parameters/missing-{n}.json"} for n in range(100)]
    repository = with_map(
        {"Waves": [{"Name": "all", "MaxConcurrency": 40, "DeployTimeoutInMinutes": 5, "Targets": targets}]}
    )
    with pytest.raises(deployment_map.DeploymentMapError) as error:
        parsed(repository)
    problems = error.value.problems
    assert len(problems) == 200

    message = refused(s3, repository)

    assert len(message) <= FAILURE_MESSAGE_LIMIT
    head, *shown, note = message.split("\n")
    assert head == f"The deployment map {MAP_PATH} has 200 problems:"
    assert shown == [f"- {problem}" for problem in problems[: len(shown)]]
    assert 0 < len(shown) < 200
    assert note == f"… and {200 - len(shown)} more problems not shown"
    # Cut as late as it could be: the next problem would not have fit.
    assert len(message) + len(f"\n- {problems[len(shown)]}") > FAILURE_MESSAGE_LIMIT


def test_a_list_of_problems_that_just_fits_is_shown_whole(s3: S3Client) -> None:
    targets = [{"Region": f"nowhere-{n}", "ParameterFile": "parameters/us-west-2.json"} for n in range(20)]

    message = refused(s3, with_map({"Waves": [{"Name": "all", "MaxConcurrency": 20, "Targets": targets}]}))

    assert "not shown" not in message
    assert len(message.splitlines()) == 21


def test_a_summary_of_many_waves_keeps_whole_waves_and_says_how_many_more(s3: S3Client) -> None:
    waves = [
        {"Name": f"wave-{n}", "Targets": [{"Region": region, "ParameterFile": "parameters/primary.json"}]}
        for n, region in enumerate(["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2"])
    ]
    repository = with_map({"Waves": waves})

    summary = check(s3, repository).output_variables["Summary"]

    lines = deployment_map.summary_by_wave(parsed(repository))
    *kept, note = summary.split("; ")
    assert len(summary) <= SUMMARY_VARIABLE_LIMIT
    assert kept == lines[: len(kept)]
    assert note == f"… and {len(lines) - len(kept)} more waves"


def test_a_map_file_not_in_the_source_fails_naming_the_path_and_the_parameter(s3: S3Client) -> None:
    config = MapCheckConfig(deployment_map_path="deploy/waves.json", application_stack_name=STACK)

    with pytest.raises(ArtifactError) as raised:
        check(s3, example_repository(), config)

    assert str(raised.value) == (
        "The DeploymentMapPath parameter names 'deploy/waves.json', a file that is not in the source artifact"
    )


def test_a_map_that_is_not_utf8_fails_naming_the_file(s3: S3Client) -> None:
    files = {path: text.encode() for path, text in example_repository().items()}
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=SOURCE_KEY, Body=build_zip({**files, MAP_PATH: b"\xff{}"}))

    with pytest.raises(ArtifactError, match=f"^The file '{MAP_PATH}' in the source artifact is not UTF-8 text"):
        check_map(job=job(), s3=s3, config=CONFIG, home_account=HOME)


def test_a_source_that_is_not_a_zip_fails(s3: S3Client) -> None:
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=SOURCE_KEY, Body=b"not a zip")

    with pytest.raises(ArtifactError, match="source artifact is not a valid zip archive"):
        check_map(job=job(), s3=s3, config=CONFIG, home_account=HOME)


def test_a_missing_source_fails_naming_it(s3: S3Client) -> None:
    with pytest.raises(ArtifactError, match=f"s3://{ARTIFACT_BUCKET}/{SOURCE_KEY} does not exist"):
        check_map(job=job(), s3=s3, config=CONFIG, home_account=HOME)
