"""Check the deployment map (Validate stage): a map with an error fails the pipeline before anything is
created, with a message that names each entry at fault.

The map and the parameter files it names are read from the Source artifact, the application repository
at the commit being released, exactly as the rollout will read them. A map that can be used gives the
numbers, the digest that the release record will name, and a line per wave for the approval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from release_pipeline import artifacts, deployment_map, rollout
from release_pipeline.config import FromEnv, text
from release_pipeline.deployment_map import DeploymentMap, DeploymentMapError
from release_pipeline.errors import ArtifactError, BadInputError
from release_pipeline.jobs import FAILURE_MESSAGE_LIMIT, SOURCE_ARTIFACT, SUMMARY_VARIABLE_LIMIT, Job, JobResult
from release_pipeline.values import join_within, shorten

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class MapCheckConfig(FromEnv):
    """check-deployment-map: where the map is in the repository, and the stack name of a target that
    names none."""

    FUNCTION = "check-deployment-map"

    deployment_map_path: str = text("DEPLOYMENT_MAP_PATH")
    application_stack_name: str = text("APPLICATION_STACK_NAME")


# The solution parameter that names the map's path, as the person who installed the solution knows it.
PATH_PARAMETER = "DeploymentMapPath"


def read_map(archive: artifacts.Archive, path: str, *, default_stack_name: str, home_account: str) -> DeploymentMap:
    """The deployment map at ``path`` in the source ``archive``, each target's parameters read from the
    file the map names in the same archive.

    A map file that is not in the archive is an :class:`ArtifactError`; a map with problems is a
    :class:`BadInputError` (a job failure) listing them (:func:`problems_message`).
    """
    try:
        found = rollout.read_map(archive, path, default_stack_name=default_stack_name, home_account=home_account)
    except DeploymentMapError as error:
        raise BadInputError(problems_message(path, error)) from None
    if found is None:
        raise ArtifactError(
            f"The {PATH_PARAMETER} parameter names {shorten(path, 200)!r}, a file that is not in the {archive.what}"
        )
    return found


def problems_message(path: str, error: DeploymentMapError) -> str:
    """The map's problems, one a line, within CodePipeline's failure message limit: as many whole problems
    as fit, then how many were left out."""
    head = f"The deployment map {shorten(path, 200)} has {_count(len(error.problems), 'problem')}:"

    def left_out(number: int) -> str:
        return f"… and {_count(number, 'more problem')} not shown"

    lines = [f"- {problem}" for problem in error.problems]
    return head + "\n" + join_within(lines, "\n", FAILURE_MESSAGE_LIMIT - len(head) - 1, left_out)


def wave_summary(checked: DeploymentMap) -> str:
    """A line per wave, joined, within the Summary variable's limit: whole waves, then how many more."""

    def left_out(number: int) -> str:
        return f"… and {_count(number, 'more wave')}"

    return join_within(deployment_map.summary_by_wave(checked), "; ", SUMMARY_VARIABLE_LIMIT, left_out)


def check_map(*, job: Job, s3: S3Client, config: MapCheckConfig, home_account: str) -> JobResult:
    """Read and check the map in the job's Source artifact (``s3`` holds the job's artifact credentials).

    Success gives the output variables ``Waves`` and ``Targets`` (counts), ``MapDigest`` (what the
    release record names) and ``Summary`` (a line per wave); a map with problems fails the job, naming
    each entry at fault.
    """
    what = "source artifact"
    archive = artifacts.Archive(artifacts.download(s3, job.input_artifact(SOURCE_ARTIFACT), what=what), what)
    path = config.deployment_map_path
    checked = read_map(archive, path, default_stack_name=config.application_stack_name, home_account=home_account)
    targets = checked.targets()
    accounts = {checked.key(target)[0] for target in targets}
    regions = {target.region for target in targets}
    digest = deployment_map.digest(checked)
    return JobResult(
        summary=(
            f"Deployment map {shorten(path, 200)}: {_count(len(checked.waves), 'wave')}, "
            f"{_count(len(targets), 'target')} in {_count(len(regions), 'Region')} and "
            f"{_count(len(accounts), 'account')}; digest {digest[:12]}"
        ),
        output_variables={
            "Waves": str(len(checked.waves)),
            "Targets": str(len(targets)),
            "MapDigest": digest,
            "Summary": wave_summary(checked),
        },
    )


def _count(number: int, noun: str) -> str:
    """``1 wave``, ``3 waves``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
