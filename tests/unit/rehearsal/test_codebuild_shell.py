"""Buildspec commands run as CodeBuild runs a phase: one shell, every exit status checked."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rehearsal import actions
from rehearsal.actions import _run_shell


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def detail(self, text: str) -> None:
        self.lines.append(text)


def run(tmp_path: Path, *commands: str) -> tuple[str | None, list[str]]:
    reporter = Lines()
    execution: Any = SimpleNamespace(reporter=reporter)
    failure = _run_shell(execution, list(commands), str(tmp_path), {"PATH": "/usr/bin:/bin"}, timeout=30)
    return failure, reporter.lines


def test_cd_and_export_carry_over_to_later_commands(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    failure, lines = run(tmp_path, "cd sub", "export GREETING=hi", 'echo "$GREETING from $(basename "$PWD")"')

    assert failure is None
    assert "  hi from sub" in lines
    assert "[Container] Running command export GREETING=hi" in lines


def test_the_failing_command_is_named_and_later_ones_never_run(tmp_path: Path) -> None:
    failure, _ = run(tmp_path, "echo one", "echo 'problem found' && false", "touch later")

    assert failure is not None
    assert failure.startswith("build command failed with exit status 1: echo 'problem found' && false")
    assert failure.endswith("-> problem found")
    assert not (tmp_path / "later").exists()
    assert "one" not in failure  # findings come from the failing command's output only


def test_a_condition_that_fails_fails_the_build_as_in_codebuild(tmp_path: Path) -> None:
    failure, _ = run(tmp_path, "[ -f missing ] && echo yes", "touch later")

    assert failure is not None
    assert "[ -f missing ] && echo yes" in failure
    assert not (tmp_path / "later").exists()


def test_an_exit_0_that_skips_the_rest_is_not_a_pass(tmp_path: Path) -> None:
    failure, _ = run(tmp_path, "exit 0", "touch later")

    assert failure == "the build stopped without an error after: exit 0 (later commands never ran)"


def test_output_that_looks_like_a_command_header_does_not_move_the_blame(tmp_path: Path) -> None:
    failure, _ = run(tmp_path, "printf '[Container] Running command decoy\\n7\\n'", "printf no-newline", "false")

    assert failure is not None
    assert failure.startswith("build command failed with exit status 1: false")


def test_a_build_past_its_timeout_fails_the_action(tmp_path: Path) -> None:
    reporter = Lines()
    execution: Any = SimpleNamespace(reporter=reporter)
    failure = _run_shell(execution, ["sleep 5"], str(tmp_path), {"PATH": "/usr/bin:/bin"}, timeout=1)

    assert failure == "build timed out after 1 s (the project's TimeoutInMinutes)"


# ------------------------------------------------------------------------- replayed linter builds


def linter_build(tmp_path: Path, template: str) -> tuple[str | None, list[str], int]:
    """A build whose only command is `cfn-lint` (a stand-in that counts its runs) on ``template``."""
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    linter = tools / "cfn-lint"
    linter.write_text(
        '#!/bin/sh\necho run >> "$RUNS"\nif grep -q Broken template.yaml; then echo "E3001 broken"; exit 2; fi\n'
    )
    linter.chmod(0o755)
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "template.yaml").write_text(template)
    runs = tmp_path / "runs"
    reporter = Lines()
    execution: Any = SimpleNamespace(reporter=reporter)
    environment = {"PATH": f"{tools}:/usr/bin:/bin", "RUNS": str(runs), "CODEBUILD_SRC_DIR": str(source)}
    failure = _run_shell(execution, ["cfn-lint -- template.yaml"], str(source), environment, timeout=30)
    return failure, reporter.lines, len(runs.read_text().splitlines()) if runs.exists() else 0


def test_a_linter_build_on_the_same_template_is_replayed_with_the_same_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "_linter_builds", {})
    first = linter_build(tmp_path, "Resources: {Broken: {}}\n")
    again = linter_build(tmp_path, "Resources: {Broken: {}}\n")

    assert first[0] is not None
    assert "E3001 broken" in first[0]
    assert again[:2] == first[:2]  # the same failure and the same printed lines
    assert again[2] == 1  # the linter ran once


def test_a_changed_template_is_linted_again_never_replayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actions, "_linter_builds", {})
    assert linter_build(tmp_path, "Resources: {Fine: {}}\n")[0] is None
    failure, _, runs = linter_build(tmp_path, "Resources: {Broken: {}}\n")

    assert failure is not None
    assert "E3001 broken" in failure
    assert runs == 2


def test_builds_are_not_replayed_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actions, "_linter_builds", None)
    linter_build(tmp_path, "Resources: {Fine: {}}\n")

    assert linter_build(tmp_path, "Resources: {Fine: {}}\n")[2] == 2


def test_a_build_that_runs_anything_but_a_linter_is_never_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "_linter_builds", {})
    counter = tmp_path / "count"
    for _ in range(2):
        run(tmp_path, f"echo x >> {counter}")

    assert counter.read_text().splitlines() == ["x", "x"]
