"""Reports to the solution's SNS topic (email): one subject line, a body cut to SNS's size limit."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

# SNS takes 256 KB (bytes, UTF-8); leave room for the envelope.
MESSAGE_LIMIT = 200_000
SUBJECT_LIMIT = 100
CUT_NOTE = "\n… (report cut: see the pipeline console for the rest)"


def publish_report(sns: SNSClient, topic_arn: str, subject: str, lines: list[str]) -> str:
    """Publish ``lines`` as one message; returns the message id."""
    text = "\n".join(lines)
    encoded = text.encode()
    if len(encoded) > MESSAGE_LIMIT:
        # Cut on bytes (SNS counts bytes), never inside a multi-byte character.
        text = encoded[:MESSAGE_LIMIT].decode(errors="ignore") + CUT_NOTE
    # A subject must be one line of printable ASCII, at most 100 characters.
    clean = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)[:SUBJECT_LIMIT]
    return sns.publish(TopicArn=topic_arn, Subject=clean, Message=text)["MessageId"]
