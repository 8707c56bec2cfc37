"""What a subscriber of an SNS topic receives: a queue subscribed to the topic, read back through SQS."""

from __future__ import annotations

import json
from typing import NamedTuple

import boto3

__all__ = ["Inbox", "Notification"]


class Notification(NamedTuple):
    """One message published to the topic."""

    message: str
    subject: str | None


class Inbox:
    """An SQS queue subscribed to ``topic_arn`` (made in the topic's Region): every message published
    to the topic from now on, as a subscriber gets it (SNS's JSON envelope)."""

    def __init__(self, topic_arn: str, queue_name: str = "inbox") -> None:
        region = topic_arn.split(":")[3]
        self.topic_arn = topic_arn
        self._sqs = boto3.client("sqs", region_name=region)
        self._url = self._sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        boto3.client("sns", region_name=region).subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        self._received: list[Notification] = []

    def messages(self) -> list[Notification]:
        """Every message delivered so far, oldest first (reading takes them off the queue and keeps
        them here, so reading again returns them again, with any that arrived since)."""
        while batch := self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                envelope = json.loads(message["Body"])
                assert envelope["Type"] == "Notification", envelope
                assert envelope["TopicArn"] == self.topic_arn, envelope
                self._received.append(Notification(envelope["Message"], envelope.get("Subject")))
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])
        return list(self._received)
