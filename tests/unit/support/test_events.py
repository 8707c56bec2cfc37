"""Sample events have AWS's shapes; the loaders work as tests need."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support import events
from tests.support.events import continuation_of, job_id_of, load_event, load_function

JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
INVOKE_EVENTS = [
    ("prepare-stage-artifact", "job"),
    ("prepare-stage-artifact", "missing-input-artifact"),
    ("prepare-stage-artifact", "malformed"),
    ("check-deployment-map", "job"),
    ("change-detection", "job"),
    ("change-detection", "continuation"),
    ("drift-detection", "job"),
    ("drift-detection", "continuation"),
    ("drift-detection", "deployment-map"),
    ("execution-gate", "job"),
    ("execution-gate", "continuation"),
    ("record-release", "job"),
    ("target-change-sets", "job"),
    ("target-change-sets", "continuation"),
    ("start-rollout", "job"),
    ("start-rollout", "continuation"),
]
STAGE_EVENTS = [
    "stage-failed",
    "stage-stopped",
    "stage-succeeded",
    "other-pipeline",
    "other-stage",
    "deploy-primary-failed",
]
CUSTOM_RESOURCE_EVENTS = ["create", "update", "update-same-region", "delete"]


def all_events() -> list[tuple[str, str]]:
    return (
        INVOKE_EVENTS
        + [("stage-revert", c) for c in STAGE_EVENTS]
        + [("regional-artifact-store", c) for c in CUSTOM_RESOURCE_EVENTS]
    )


def test_every_event_file_is_listed_here_and_in_the_readme() -> None:
    files = sorted((p.parent.name, p.stem) for p in events.EVENTS_DIR.glob("*/*.json"))
    readme = (events.EVENTS_DIR / "README.md").read_text(encoding="utf-8")

    assert files == sorted(all_events())
    for function, case in files:
        assert f"events/{function}/{case}.json" in readme


@pytest.mark.parametrize(("function", "case"), INVOKE_EVENTS)
def test_invoke_events_have_a_valid_job_id_and_no_real_credentials(function: str, case: str) -> None:
    event = load_event(function, case)

    job = event["CodePipeline.job"]
    assert JOB_ID.fullmatch(job["id"])
    assert job["accountId"] == "123456789012"
    credentials = job["data"].get("artifactCredentials", {})
    assert credentials.get("secretAccessKey") in (None, "example-secret")


def test_job_ids_are_unique() -> None:
    ids = [job_id_of(load_event(f, c)) for f, c in INVOKE_EVENTS]

    assert len(set(ids)) == len(ids)


def test_continuation_events_carry_a_placeholder_token() -> None:
    for function in ("change-detection", "drift-detection"):
        data = load_event(function, "continuation")["CodePipeline.job"]["data"]
        assert data["continuationToken"] == "{}"
        assert "continuationToken" not in load_event(function, "job")["CodePipeline.job"]["data"]


def test_prepare_stage_artifact_job_has_the_contract_artifacts() -> None:
    data = load_event("prepare-stage-artifact", "job")["CodePipeline.job"]["data"]

    assert [a["name"] for a in data["inputArtifacts"]] == ["SourceOutput"]
    assert [a["name"] for a in data["outputArtifacts"]] == ["StageSource", "StageConfig"]
    assert data["encryptionKey"] == {
        "id": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "type": "KMS",
    }
    assert (
        load_event("prepare-stage-artifact", "missing-input-artifact")["CodePipeline.job"]["data"]["inputArtifacts"]
        == []
    )
    assert "inputArtifacts" not in load_event("prepare-stage-artifact", "malformed")["CodePipeline.job"]["data"]


def test_check_deployment_map_job_reads_the_source_and_writes_no_artifact() -> None:
    data = load_event("check-deployment-map", "job")["CodePipeline.job"]["data"]

    assert [a["name"] for a in data["inputArtifacts"]] == ["SourceOutput"]
    assert data["outputArtifacts"] == []
    assert "UserParameters" not in data["actionConfiguration"]["configuration"]


def test_target_change_sets_events_read_the_source_and_the_continuation_carries_a_poll_count() -> None:
    first = load_event("target-change-sets", "job")["CodePipeline.job"]["data"]
    again = load_event("target-change-sets", "continuation")["CodePipeline.job"]["data"]

    for data in (first, again):
        assert [a["name"] for a in data["inputArtifacts"]] == ["SourceOutput"]
        assert json.loads(data["actionConfiguration"]["configuration"]["UserParameters"]) == {
            "executionId": "e1a2b3c4-0000-4000-8000-000000000001"
        }
    assert "continuationToken" not in first
    assert json.loads(again["continuationToken"]) == {"polls": 1}


def test_record_release_user_parameters_name_the_source_commit() -> None:
    data = load_event("record-release", "job")["CodePipeline.job"]["data"]

    parameters = json.loads(data["actionConfiguration"]["configuration"]["UserParameters"])
    [source] = data["inputArtifacts"]
    assert re.fullmatch(r"[0-9a-f]{40}", source["revision"])
    assert parameters == {"executionId": "e1a2b3c4-0000-4000-8000-000000000001", "commitId": source["revision"]}


@pytest.mark.parametrize("case", STAGE_EVENTS)
def test_stage_events_are_codepipeline_stage_state_changes(case: str) -> None:
    event = load_event("stage-revert", case)

    assert event["source"] == "aws.codepipeline"
    assert event["detail-type"] == "CodePipeline Stage Execution State Change"
    assert set(event["detail"]) >= {"pipeline", "execution-id", "stage", "state", "version"}


def test_regional_artifact_store_update_moves_region() -> None:
    update = load_event("regional-artifact-store", "update")
    same = load_event("regional-artifact-store", "update-same-region")

    assert (update["OldResourceProperties"]["Region"], update["ResourceProperties"]["Region"]) == (
        "eu-west-1",
        "eu-central-1",
    )
    assert same["OldResourceProperties"]["Region"] == same["ResourceProperties"]["Region"] == "eu-west-1"
    assert "PhysicalResourceId" not in load_event("regional-artifact-store", "create")
    assert load_event("regional-artifact-store", "delete")["PhysicalResourceId"] == update["PhysicalResourceId"]


def test_start_rollout_events_read_the_source_and_follow_one_execution() -> None:
    first = load_event("start-rollout", "job")["CodePipeline.job"]["data"]
    again = load_event("start-rollout", "continuation")["CodePipeline.job"]["data"]

    assert [a["name"] for a in first["inputArtifacts"]] == ["SourceOutput"]
    assert json.loads(first["actionConfiguration"]["configuration"]["UserParameters"]) == {
        "executionId": "e1a2b3c4-0000-4000-8000-000000000001"
    }
    assert "continuationToken" not in first
    token = json.loads(again["continuationToken"])
    assert set(token) == {"execution", "polls"}
    assert token["execution"].endswith(":execution:release-pipeline-rollout:e1a2b3c4-0000-4000-8000-000000000001")


def test_load_event_returns_a_fresh_copy() -> None:
    load_event("stage-revert", "stage-failed")["detail"]["state"] = "CHANGED"

    assert load_event("stage-revert", "stage-failed")["detail"]["state"] == "FAILED"


def test_load_event_names_a_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match=r"events/nope/job\.json"):
        load_event("nope", "job")


def test_continuation_of_makes_a_new_job() -> None:
    event = load_event("drift-detection", "job")

    again = continuation_of(event, "token")

    assert job_id_of(again) != job_id_of(event)
    assert JOB_ID.fullmatch(job_id_of(again))
    assert again["CodePipeline.job"]["data"]["continuationToken"] == "token"
    assert "continuationToken" not in event["CodePipeline.job"]["data"]


def test_load_function_gives_each_app_py_its_own_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for folder in ("first-fn", "second-fn"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "app.py").write_text(f"NAME = {folder!r}\n", encoding="utf-8")
    monkeypatch.setattr(events, "FUNCTIONS_DIR", tmp_path)

    first, second = load_function("first-fn"), load_function("second-fn")

    assert (first.NAME, second.NAME) == ("first-fn", "second-fn")
    assert first.__name__ != second.__name__
    assert load_function("first-fn") is not first
