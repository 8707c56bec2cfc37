"""The inbox returns every message published to its topic, and only those, as often as it is read."""

from __future__ import annotations

import boto3
import pytest

from tests.support.notifications import Inbox, Notification

pytestmark = pytest.mark.usefixtures("aws")


def topic(name: str) -> str:
    return str(boto3.client("sns", region_name="eu-west-1").create_topic(Name=name)["TopicArn"])


def test_every_message_of_the_topic_in_order_with_its_subject() -> None:
    arn, other = topic("reports"), topic("other")
    inbox = Inbox(arn)
    sns = boto3.client("sns", region_name="eu-west-1")
    assert inbox.messages() == []

    for n in range(12):
        sns.publish(TopicArn=arn, Message=f"report {n}", Subject=f"Report {n}")
    sns.publish(TopicArn=arn, Message="no subject")
    sns.publish(TopicArn=other, Message="not for this inbox")

    expected = [Notification(f"report {n}", f"Report {n}") for n in range(12)] + [Notification("no subject", None)]
    assert inbox.messages() == expected
    assert inbox.messages() == expected
