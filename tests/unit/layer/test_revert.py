"""revert: the parts of stage-revert that moto cannot show (paging of ListChangeSets)."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from release_pipeline import revert


def test_a_placeholder_is_kept_when_another_change_set_waits_on_a_later_page() -> None:
    """GIVEN a placeholder whose change sets span two pages, the other execution's on the second
    THEN it is kept: only this execution's change set is deleted."""
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    stubber = Stubber(cfn)
    stubber.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": "app", "StackStatus": "REVIEW_IN_PROGRESS", "CreationTime": "2026-01-01T00:00:00Z"}]},
    )
    stubber.add_response("list_change_sets", {"Summaries": [{"ChangeSetName": "pipeline-mine"}], "NextToken": "page-2"})
    stubber.add_response(
        "list_change_sets",
        {"Summaries": [{"ChangeSetName": "pipeline-other"}]},
        {"StackName": "app", "NextToken": "page-2"},
    )
    stubber.add_response("delete_change_set", {}, {"StackName": "app", "ChangeSetName": "pipeline-mine"})
    with stubber:
        action = revert.clean_production(cfn, "primary", "us-east-1", "app", "pipeline-mine")
    stubber.assert_no_pending_responses()
    assert "kept" in action
    assert "pipeline-other" in action
