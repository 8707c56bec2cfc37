"""The cold-start benchmark measures what sam build produced: functions found in the built template, and
the layer's bytecode checked as Lambda would use it."""

from __future__ import annotations

import compileall
import py_compile
from pathlib import Path

import pytest

from benchmarks.cold_start import functions, layer_bytecode

BUILT_TEMPLATE = """
Globals:
  Function:
    Handler: app.lambda_handler
    MemorySize: 256
    Layers:
      - Ref: CommonLayer
Resources:
  CommonLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: CommonLayer
  GateFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: GateFunction
  StoreFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: StoreFunction
      Handler: handler.main
      MemorySize: 512
      Layers: []
  Topic:
    Type: AWS::SNS::Topic
  Fn::ForEach::LogGroups:
    - Function
    - [Gate, Store]
    - ${Function}LogGroup:
        Type: AWS::Logs::LogGroup
"""


def test_every_function_of_the_built_template_is_measured_with_its_own_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "template.yaml").write_text(BUILT_TEMPLATE)
    monkeypatch.setattr("benchmarks.cold_start.source_folder", lambda logical_id: logical_id.lower())

    found = {f.logical_id: f for f in functions(tmp_path)}

    # the topic, the layer and the log groups' Fn::ForEach loop are not functions
    assert sorted(found) == ["GateFunction", "StoreFunction"]
    gate, store = found["GateFunction"], found["StoreFunction"]
    assert gate.code == tmp_path / "GateFunction"
    assert gate.layers == (tmp_path / "CommonLayer" / "python",)
    assert (gate.module, gate.memory_mb) == ("app", 256)
    assert store.layers == ()
    assert (store.module, store.memory_mb) == ("handler", 512)


def test_a_build_without_functions_is_refused(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text("Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n")

    with pytest.raises(SystemExit, match="make build"):
        functions(tmp_path)


def test_only_unchecked_hash_bytecode_counts_as_shipped(tmp_path: Path) -> None:
    for name in ("checked", "unchecked", "timestamped", "missing"):
        (tmp_path / f"{name}.py").write_text("VALUE = 1\n")
    unchecked = py_compile.PycInvalidationMode.UNCHECKED_HASH
    compileall.compile_file(tmp_path / "unchecked.py", quiet=1, invalidation_mode=unchecked)
    compileall.compile_file(
        tmp_path / "checked.py", quiet=1, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH
    )
    compileall.compile_file(
        tmp_path / "timestamped.py", quiet=1, invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP
    )

    # a timestamp .pyc goes stale when the zip changes the source's time; a checked one reads the source
    assert layer_bytecode(tmp_path) == (1, 4)
