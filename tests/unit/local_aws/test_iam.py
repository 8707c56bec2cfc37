"""local_aws.iam: a policy in the form moto checks, without granting more actions than IAM would."""

from __future__ import annotations

from local_aws.iam import policy_for_moto


def test_s3_statements_keep_their_resources_and_others_are_widened_for_motos_action_check() -> None:
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/releases/*"},
            {"Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": "arn:aws:ssm:us-east-1:1:parameter/x"},
        ]
    }

    statements = policy_for_moto(policy)["Statement"]

    assert statements[0] == policy["Statement"][0]
    assert statements[1] == {"Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": "*"}


def test_invoke_function_is_also_granted_under_motos_name_for_it_and_nothing_else_is_added() -> None:
    """IAM's action for Lambda's Invoke API is lambda:InvokeFunction; moto checks lambda:Invoke."""
    granted = {
        "Effect": "Allow",
        "Action": "lambda:InvokeFunction",
        "Resource": "arn:aws:lambda:us-east-1:1:function:f",
    }
    other = {"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*"}

    invoke, get = policy_for_moto({"Statement": [granted, other]})["Statement"]

    assert invoke["Action"] == ["lambda:InvokeFunction", "lambda:Invoke"]
    assert get["Action"] == "lambda:GetFunction"
