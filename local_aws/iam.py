"""IAM as moto checks it: principals that hold exactly one policy, and the credentials to act as them.

moto enforces IAM at action level for most services and at resource level for S3 only
(``settings.INITIAL_NO_AUTH_ACTION_COUNT``); :func:`policy_for_moto` writes a policy in the form moto
can check. No state: users and keys live in moto's own IAM backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["AccessKey", "create_principal", "policy_for_moto"]


@dataclass(frozen=True)
class AccessKey:
    """An IAM user's access key, made by create_principal for a principal of the rehearsal."""

    access_key_id: str
    secret_access_key: str
    session_token: str = ""

    def as_environment(self) -> dict[str, str]:
        values = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            values["AWS_SESSION_TOKEN"] = self.session_token
        return values


def policy_for_moto(policy: Mapping[str, Any]) -> dict[str, Any]:
    """An IAM policy as moto can check it: S3 statements as written (moto checks S3 resources); every
    other statement with its resources widened to "*", because moto checks only the action there and
    compares the resource with "*"; lambda:InvokeFunction also as lambda:Invoke, moto's name for it."""
    statements = []
    for statement in policy.get("Statement", []):
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else list(actions)
        # moto names Lambda's Invoke API lambda:Invoke; IAM's action for it is lambda:InvokeFunction
        # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html)
        if any(action.lower() == "lambda:invokefunction" for action in actions):
            statement = {**statement, "Action": [*actions, "lambda:Invoke"]}
        if all(action.lower().startswith("s3:") for action in actions):
            statements.append(dict(statement))
        else:
            statements.append({**statement, "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": statements}


def create_principal(iam: Any, name: str, policy: Mapping[str, Any]) -> AccessKey:
    """An IAM user that holds ``policy`` only (as moto can check it), and its access key."""
    iam.create_user(UserName=name)
    if policy.get("Statement"):
        iam.put_user_policy(UserName=name, PolicyName="policy", PolicyDocument=json.dumps(policy_for_moto(policy)))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return AccessKey(key["AccessKeyId"], key["SecretAccessKey"])
