"""What the rehearsal prints while it runs, and the summary at the end."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rehearsal.actions import Outcome
    from rehearsal.pipeline import Action

_MARK = {"Succeeded": "ok  ", "Failed": "FAIL", "Skipped": "SKIP"}


def one_line(text: str, limit: int = 500) -> str:
    """A message on one line (an AWS error can carry an XML body), cut at ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class Console:
    """Live progress: stage, action, status and duration, with the reports the functions produce."""

    def __init__(self, stream: TextIO | None = None, *, verbose: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.started = time.perf_counter()

    def _print(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def _clock(self) -> str:
        return f"[{time.perf_counter() - self.started:6.1f}s]"

    def heading(self, text: str) -> None:
        self._print()
        self._print(f"== {text}")

    def line(self, text: str) -> None:
        self._print(text)

    def detail(self, text: str) -> None:
        if self.verbose:
            for line in text.splitlines() or [""]:
                self._print(f"{'':18}| {line}")

    def execution_started(self, pipeline: str, execution_id: str, revision: str) -> None:
        self.heading(f"{pipeline}: execution {execution_id} ({revision})")

    def execution_finished(self, status: str, failure: str) -> None:
        suffix = f": {one_line(failure)}" if failure else ""
        self._print(f"{self._clock()} execution {status.upper()}{suffix}")

    def stage_started(self, stage: str) -> None:
        self._print(f"{self._clock()} stage {stage}")

    def stage_skipped(self, stage: str, reason: str) -> None:
        self._print(f"{self._clock()} stage {stage}: SKIPPED ({reason})")

    def stage_finished(self, stage: str, status: str, reason: str) -> None:
        if status == "Failed":
            self._print(f"{self._clock()} stage {stage}: FAILED ({one_line(reason)})")

    def action_started(self, action: Action) -> None:
        where = f" in {action.region}" if action.region else ""
        self._print(f"{self._clock()}   {action.name} [{action.provider}{where}, run order {action.run_order}] ...")

    def action_finished(self, action: Action, outcome: Outcome, seconds: float) -> None:
        self._print(f"{self._clock()}   {_MARK.get(outcome.status, outcome.status)} {action.name} ({seconds:.2f}s)")
        if outcome.summary:
            self.detail(outcome.summary)
        if outcome.variables and action.namespace and self.verbose:
            for name, value in outcome.variables.items():
                shown = value if len(value) <= 160 else value[:157] + "..."
                self.detail(f"#{{{action.namespace}.{name}}} = {shown}")

    def approval_requested(self, action: Action, custom_data: str, link: str) -> None:
        self._print(f"{self._clock()}   approval requested: {action.stage}.{action.name}")
        self.detail(textwrap.fill(custom_data, 100) if custom_data else "(no CustomData)")
        self.detail(f"review link: {link or '(none)'}")

    def notification(self, subject: str, message: str) -> None:
        """An SNS message as the subscriber reads it (an approval request is JSON: shown by its fields)."""
        self._print(f"{self._clock()}   SNS: {subject}")
        if not self.verbose or subject.startswith("APPROVAL NEEDED"):
            return
        lines = message.splitlines()
        for line in lines[:40]:
            self.detail(line)
        if len(lines) > 40:
            self.detail(f"... ({len(lines) - 40} more lines)")

    def event_delivered(self, rule: str, target: str, stage: str, state: str) -> None:
        self._print(f"{self._clock()}   EventBridge: {stage} {state} matches rule {rule}: invoking {target}")


def summary(console: Console, state: dict[str, Any]) -> None:
    """Print the final state: stacks per Region, release record, SNS messages, dead letters."""
    console.heading("Summary")
    for region, stacks in state["stacks"].items():
        console.line(f"Stacks in {region}:")
        for stack in stacks or [{"name": "(none)", "status": ""}]:
            console.line(f"  {stack['name']:<40} {stack['status']}")
    record = state["release"]
    console.line("Release record:")
    if record is None:
        console.line("  (none: nothing has been released)")
    else:
        console.line(f"  {json.dumps(record, sort_keys=True)}")
    console.line(f"SNS messages sent ({len(state['messages'])}):")
    for message in state["messages"]:
        console.line(f"  - {message['subject']}")
    console.line(f"Dead-lettered stage events: {state['dead_letters']}")
    for label, invocations, seconds in state.get("lambda_time", []):
        console.line(f"Lambda time, {label}: {seconds:.2f}s in {invocations} invocation(s), in-process")
    if state.get("not_run"):
        console.line("Checks NOT run locally (they run in AWS; not counted as passed):")
        for line in state["not_run"]:
            console.line(f"  - {one_line(line, 220)}")
    if state.get("not_emulated"):
        console.line("Not emulated (no local equivalent): " + ", ".join(state["not_emulated"]))
