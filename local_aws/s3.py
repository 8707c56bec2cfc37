"""S3: bucket policies evaluated as AWS does for an SDK client, whose every request goes over TLS
(``aws:SecureTransport`` true). No state."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.s3.models import FakeBucket

__all__ = ["bucket_permission", "over_tls"]

# Every SDK call to AWS goes over TLS; only the hop to a local emulator is plain HTTP. moto evaluates a
# bucket policy without request context and treats a condition operator it does not know (Bool) as
# met, so a TLS-only bucket (Deny when aws:SecureTransport is "false") would refuse every request. The
# emulator evaluates bucket policies as AWS would for an SDK client, whose requests are all TLS: a
# statement conditioned on aws:SecureTransport applies only when it asks for "true".


def over_tls(statement: Mapping[str, Any]) -> dict[str, Any] | None:
    """The statement as it applies to a TLS request (None: it does not apply)."""
    condition = dict(statement.get("Condition", {}))
    boolean = dict(condition.get("Bool", {}))
    if "aws:SecureTransport" not in boolean:
        return dict(statement)
    wanted = boolean.pop("aws:SecureTransport")
    values = wanted if isinstance(wanted, list) else [wanted]
    if "true" not in [str(value).lower() for value in values]:
        return None
    if boolean:
        condition["Bool"] = boolean
    else:
        condition.pop("Bool")
    rest = {key: value for key, value in statement.items() if key != "Condition"}
    return {**rest, "Condition": condition} if condition else rest


def bucket_permission(self: FakeBucket, action: str, resource: str) -> Any:
    if self.policy is None:
        return PermissionResult.NEUTRAL
    document = json.loads(self.policy.decode())
    raw = document.get("Statement", [])
    statements = [kept for statement in (raw if isinstance(raw, list) else [raw]) if (kept := over_tls(statement))]
    if not statements:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps({**document, "Statement": statements})).is_action_permitted(action, resource)
