"""notifications.publish_report: one email per report, whatever its size or subject."""

from __future__ import annotations

import boto3
import pytest

from release_pipeline import notifications
from tests.support.notifications import Inbox

REGION = "us-east-1"
INBOXES: dict[str, Inbox] = {}


@pytest.fixture
def topic(aws: None) -> str:
    arn: str = boto3.client("sns", region_name=REGION).create_topic(Name="reports")["TopicArn"]
    INBOXES[arn] = Inbox(arn)
    return arn


def sent(topic: str) -> list[tuple[str, str | None]]:
    """(message, subject) of each notification a subscriber of ``topic`` received."""
    return [(n.message, n.subject) for n in INBOXES[topic].messages()]


def test_a_report_is_sent_as_one_message_with_its_lines(topic: str) -> None:
    notifications.publish_report(boto3.client("sns", region_name=REGION), topic, "Drift", ["one", "two"])
    assert sent(topic) == [("one\ntwo", "Drift")]


def test_a_huge_report_is_cut_and_says_so(topic: str) -> None:
    lines = ["x" * 1000] * 400
    notifications.publish_report(boto3.client("sns", region_name=REGION), topic, "Big", lines)
    ((message, _),) = sent(topic)
    assert len(message) < 256 * 1024
    assert message.endswith("(report cut: see the pipeline console for the rest)")


def test_a_subject_is_made_one_short_ascii_line(topic: str) -> None:
    subject = "Changes to review: app\nwith a café " + "y" * 200
    notifications.publish_report(boto3.client("sns", region_name=REGION), topic, subject, ["body"])
    ((_, sent_subject),) = sent(topic)
    assert sent_subject is not None
    assert len(sent_subject) == notifications.SUBJECT_LIMIT
    assert sent_subject.isascii()
    assert "\n" not in sent_subject
    assert sent_subject.startswith("Changes to review: app?with a caf?")


def test_a_huge_report_in_non_ascii_text_stays_under_the_sns_byte_limit(topic: str) -> None:
    lines = ["é" * 1000] * 400  # 800,000 bytes of UTF-8
    notifications.publish_report(boto3.client("sns", region_name=REGION), topic, "Big", lines)
    ((message, _),) = sent(topic)
    assert len(message.encode()) < 256 * 1024
    assert message.startswith("é" * 100)
    assert message.endswith("(report cut: see the pipeline console for the rest)")
