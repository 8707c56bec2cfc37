"""Hostile artifacts: archives and records built to break the functions that read a source archive.

Each one must end in exactly one job failure with a clear message, nothing written, and a peak of
memory (traced allocations during the invocation, plus the runtime's share measured at start) inside
the function's MemorySize.
"""

from __future__ import annotations

import copy
import importlib
import io
import json
import os
import stat
import time
import tracemalloc
import uuid
import zipfile
from collections.abc import Callable

import local_aws
from audit import sandbox
from audit.fuzz import PYTHON_ERROR
from audit.scenarios import SCENARIOS
from audit.table import Row
from local_aws import FakeLambdaContext
from release_pipeline import artifacts
from tests.integration import test_least_privilege as lp
from tests.support import solution

MIB = 1024 * 1024
TEMPLATE_PATH = "template.json"  # the path the scenarios' template wiring reads
# What the runtime holds besides the traced allocations: a fresh interpreter that has imported a handler
# peaks at about 53 MB (ru_maxrss); 100 MB is counted, for Lambda's runtime and for what tracemalloc does
# not see (memory allocated in C, by zlib for one).
RUNTIME_MB = 100


def _zip(entries: dict[str, bytes], *, stored: bool = False) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", compression=method, compresslevel=1) as archive:
        for name, body in entries.items():
            archive.writestr(zipfile.ZipInfo(name), body, compress_type=method)
    return buffer.getvalue()


def _symlink() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo(TEMPLATE_PATH)
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/proc/self/environ")
    return buffer.getvalue()


def _cases() -> dict[str, Callable[[], bytes]]:
    template = lp.APP_TEMPLATE.encode()
    return {
        "entry with ..": lambda: _zip({TEMPLATE_PATH: template, "../../outside": b"x"}),
        "absolute entry": lambda: _zip({TEMPLATE_PATH: template, "/etc/cron.d/job": b"x"}),
        "symbolic link": _symlink,
        "zip bomb (100 MiB template, ratio ~1000)": lambda: _zip({TEMPLATE_PATH: b" " * (100 * MIB)}),
        "expands over the cap (300 MiB in 3 entries)": lambda: _zip(
            {TEMPLATE_PATH: template, **{f"pad{i}": b"\0" * (100 * MIB) for i in range(3)}}
        ),
        "archive over the cap": lambda: _zip(
            {TEMPLATE_PATH: template, "pad": os.urandom(artifacts.MAX_ARCHIVE_BYTES)}, stored=True
        ),
        "entries over the cap": lambda: _zip({TEMPLATE_PATH: template, **{f"f{i}": b"" for i in range(10_001)}}),
        "template over CloudFormation's 1 MB": lambda: _zip({TEMPLATE_PATH: b"#" * (1024 * 1024 + 1)}),
        "not a zip": lambda: b"PK\x03\x04 not really a zip",
    }


def _bad_records() -> dict[str, object]:
    return {
        "release record stage parameters a list": ["Name=stage"],
        "release record stage parameters not strings": {"Name": 1},
    }


def hostile_artifacts() -> list[Row]:
    rows = []
    for function in ("prepare-stage-artifact", "record-release"):
        if function in sandbox.job_functions():
            rows.append(_run_function(function))
    return rows


def _run_function(function: str) -> Row:
    target = sandbox.job_functions()[function]
    # the caps read the function's memory as Lambda gives it
    os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(target.memory_mb)
    importlib.reload(artifacts)
    row = Row(f"hostile {function}", "hostile archives and records")
    peaks: list[float] = []
    cases: list[tuple[str, Callable[[lp.Accounts, str], None]]] = []
    if function == "prepare-stage-artifact":
        for name, parameters in _bad_records().items():
            cases.append((name, _put_record(parameters)))
    for name, build in _cases().items():
        cases.append((name, _put_source(name, build)))
    # A hostile input must change nothing (checked below), so one emulator serves every case.
    with sandbox.emulator():
        accounts = lp.Accounts()
        scenario = SCENARIOS[function](accounts)
        sandbox.set_environment(scenario.environment)
        context = FakeLambdaContext(target.folder, memory_limit_in_mb=target.memory_mb)
        for name, arrange in cases:
            started = time.perf_counter()
            event = copy.deepcopy(scenario.event)
            event["CodePipeline.job"]["id"] = str(uuid.uuid4())
            arrange(accounts, function)
            row.cases += 1
            with sandbox.recording() as log:
                tracemalloc.start()
                try:
                    target.handler(event, context)
                    raised: Exception | None = None
                except Exception as error:  # noqa: BLE001 (whatever escapes the handler is judged)
                    raised = error
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            peaks.append(peak / MIB)
            results = local_aws.job_results(event["CodePipeline.job"]["id"])
            if raised is not None:
                row.breach(f"{name}: {type(raised).__name__} escaped the handler")
            if len(results) != 1 or results[0].status != "Failed":
                row.breach(f"{name}: expected one failure, got {[r.status for r in results]}")
                continue
            message = (results[0].failure_details or {}).get("message", "")
            if PYTHON_ERROR.match(message) or not message:
                row.breach(f"{name}: unclear failure: {message[:160]}")
            if log.writes():
                row.breach(f"{name}: wrote {log.writes()} before failing")
            if peak / MIB + RUNTIME_MB > target.memory_mb:
                row.breach(
                    f"{name}: peak {peak / MIB:.0f} MiB traced + {RUNTIME_MB} MB runtime > {target.memory_mb} MB"
                )
            if os.environ.get("AUDIT_TIMES"):
                print(f"{function} {name}: {time.perf_counter() - started:.1f}s")
    row.figure = f"peak {max(peaks):.1f} MiB traced (+{RUNTIME_MB} MB runtime) of {target.memory_mb} MB"
    return row


_BUILT: dict[str, bytes] = {}


def _put_source(name: str, build: Callable[[], bytes]) -> Callable[[lp.Accounts, str], None]:
    def arrange(accounts: lp.Accounts, function: str) -> None:
        body = _BUILT.get(name) or _BUILT.setdefault(name, build())
        s3 = accounts.client("s3")
        record = solution.release_record(lp.SOLUTION)
        if function == "prepare-stage-artifact" and accounts.client("ssm").describe_parameters()["Parameters"]:
            # no release yet: the current source is what the stage is built from
            accounts.client("ssm").delete_parameter(Name=record)
        for key in _input_keys():
            s3.put_object(Bucket=lp.BUCKET, Key=key, Body=body)

    return arrange


def _put_record(parameters: object) -> Callable[[lp.Accounts, str], None]:
    def arrange(accounts: lp.Accounts, function: str) -> None:
        ssm = accounts.client("ssm")
        name = solution.release_record(lp.SOLUTION)
        record = json.loads(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
        record["stage_parameters"] = parameters
        ssm.put_parameter(Name=name, Value=json.dumps(record), Type="SecureString", KeyId=lp.KEY_ID, Overwrite=True)

    return arrange


def _input_keys() -> list[str]:
    from tests.support.events import load_event

    keys = []
    for function in ("prepare-stage-artifact", "record-release"):
        data = load_event(function, "job")["CodePipeline.job"]["data"]
        keys += [a["location"]["s3Location"]["objectKey"] for a in data["inputArtifacts"]]
    return keys
