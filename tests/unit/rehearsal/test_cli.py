"""The command line refuses what cannot run before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from rehearsal.cli import main
from rehearsal.scenarios import SCENARIOS, stack_name_of


def test_list_names_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(SCENARIOS)


def test_a_source_without_the_template_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--source", str(tmp_path), "--approve"]) == 2
    assert f"{tmp_path} has no template.yaml (choose it with --template-path)" in capsys.readouterr().err


def test_a_missing_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--change", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("folder", "name"),
    [("hello-app", "hello-app"), ("my_app.v2", "my-app-v2"), ("2024-app", "app-2024-app"), ("___", "app")],
)
def test_stack_names_from_folder_names_are_valid(folder: str, name: str) -> None:
    assert stack_name_of(Path(folder)) == name
