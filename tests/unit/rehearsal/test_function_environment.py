"""The rehearsal refuses, at setup, a function whose environment Lambda would refuse (over 4 KB)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from local_aws.awslambda import ENVIRONMENT_MAX_BYTES
from rehearsal.emulator import Emulator
from rehearsal.solution import SetupError, install


def template(tmp_path: Path, value_bytes: int) -> Path:
    """A solution template with one function whose environment (Globals and its own) is ``value_bytes``
    of variable values, plus the JSON around them."""
    body = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Parameters": {"SecondaryRegion": {"Type": "String", "Default": "eu-west-1"}},
        "Globals": {"Function": {"Environment": {"Variables": {"SHARED": "s" * (value_bytes // 2)}}}},
        "Resources": {
            "BigFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "functions/big/",
                    "Handler": "app.lambda_handler",
                    "Environment": {"Variables": {"OWN": "o" * (value_bytes - value_bytes // 2)}},
                },
            }
        },
    }
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as running:
        yield running
        running.reset()


def test_a_function_whose_environment_exceeds_4_kb_is_refused_by_name(tmp_path: Path, emulator: Emulator) -> None:
    with pytest.raises(SetupError, match=r"^BigFunction: Lambda would refuse its environment variables: \d+ bytes"):
        install(emulator, {}, template_path=template(tmp_path, ENVIRONMENT_MAX_BYTES), enforce_iam=False)


def test_a_function_within_4_kb_is_set_up(tmp_path: Path, emulator: Emulator) -> None:
    solution = install(emulator, {}, template_path=template(tmp_path, 1000), enforce_iam=False)
    assert set(solution.functions) == {"BigFunction"}
