"""One emulator for the whole-pipeline rehearsals; each scenario empties it before it starts."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from rehearsal.actions import replay_linter_builds
from rehearsal.emulator import Emulator
from rehearsal.report import Console
from rehearsal.scenarios import Options, Report, run


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    # The rehearsals lint the same few templates again and again: a linter build already run on the same
    # files is replayed with its output and exit status (see rehearsal.actions.LINTERS).
    replay_linter_builds()
    with Emulator() as running:
        yield running


class Rehearsal:
    """Plays a scenario and keeps its printed run, shown when a test fails."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.output = io.StringIO()

    def play(self, scenario: str, stage_mode: str, **options: Any) -> Report:
        self.output = io.StringIO()
        report = run(
            Options(scenario=scenario, stage_mode=stage_mode, ask=_no_prompt, **options),
            self.emulator,
            Console(self.output, verbose=True),
        )
        print(self.output.getvalue())  # shown by pytest only when the test fails
        return report


def _no_prompt(question: str) -> str:
    raise AssertionError(f"the rehearsal asked at the terminal: {question}")


@pytest.fixture
def rehearsal(emulator: Emulator) -> Iterator[Rehearsal]:
    yield Rehearsal(emulator)
    emulator.enforce_iam(False)


# The pipeline and the regional store stack are named from the solution stack id's UUID (a new one per
# install): the helpers below show it as <stack UUID>.
_STACK_UUID = re.compile(r"\b(pipeline|mrd-artifacts)-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\b")


def _named(text: str) -> str:
    return _STACK_UUID.sub(r"\1-<stack UUID>", text)


def stacks(report: Report) -> dict[str, dict[str, str]]:
    """Region -> stack name -> status, at the end of the run."""
    return {
        region: {_named(stack["name"]): stack["status"] for stack in listed}
        for region, listed in report.state["stacks"].items()
    }


def subjects(report: Report) -> list[str]:
    return [_named(message["subject"]) for message in report.state["messages"]]


def approval_messages(report: Report) -> list[dict[str, Any]]:
    return [
        json.loads(message["message"])
        for message in report.state["messages"]
        if message["subject"].startswith("APPROVAL NEEDED")
    ]
