"""release_pipeline.deployment_map: the deployment map read from the application repository, every
problem named at once, entry by entry, and nothing accepted that CloudFormation, Step Functions or
CodePipeline would refuse later."""

from __future__ import annotations

import hashlib
import json
import operator
import re
import string
from typing import Any

import botocore.session
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from release_pipeline import deployment_map
from release_pipeline.deployment_map import (
    MAX_TARGETS,
    DeploymentMap,
    DeploymentMapError,
    MapChange,
    MovedTarget,
    ParametersChange,
    PlacedTarget,
    Target,
    Wave,
    aws_regions,
    canonical_json,
    compare,
    default_map,
    digest,
    key_name,
    parse,
    summary_by_wave,
)
from release_pipeline.errors import ConfigurationError
from tests.support.events import REPO_ROOT

HOME = "111122223333"
OTHER = "222233334444"
STACK = "app"
EU = "parameters/eu-west-1.json"
US = "parameters/us-east-1.json"
FILES = {
    EU: '{"EnvironmentName": "eu", "RetentionDays": "30"}',
    US: '{"EnvironmentName": "us", "RetentionDays": "7"}',
}
EXAMPLE = REPO_ROOT / "examples" / "hello-app"
# Deterministic and quick: the same examples on every run, no example database, no deadline.
PROPERTY_SETTINGS = settings(max_examples=40, derandomize=True, database=None, deadline=None)


def target(region: str = "eu-west-1", **keys: Any) -> dict[str, Any]:
    """A target entry as written in a map file (a key given as None is left out)."""
    entry: dict[str, Any] = {"Region": region, "ParameterFile": EU if region == "eu-west-1" else US, **keys}
    return {key: value for key, value in entry.items() if value is not None}


def wave(name: str = "canary", *targets: dict[str, Any], **keys: Any) -> dict[str, Any]:
    """A wave entry as written in a map file (a key given as None is left out)."""
    entry: dict[str, Any] = {"Name": name, "Targets": list(targets) or [target()], **keys}
    return {key: value for key, value in entry.items() if value is not None}


def document(*waves: dict[str, Any]) -> str:
    return json.dumps({"Waves": list(waves)})


def read(raw: str, files: dict[str, str] | None = None) -> DeploymentMap:
    contents = FILES if files is None else files
    return parse(raw, read_file=contents.get, default_stack_name=STACK, home_account=HOME)


def refused(raw: str, files: dict[str, str] | None = None) -> str:
    """The message of the ConfigurationError that parse raises for ``raw``."""
    with pytest.raises(ConfigurationError) as raised:
        read(raw, files)
    return str(raised.value)


def refused_once(raw: str, problem: str, files: dict[str, str] | None = None) -> None:
    """``raw`` is refused with exactly one problem: ``problem``."""
    assert refused(raw, files) == f"the deployment map has 1 problem: {problem}"


# ------------------------------------------------------------------------------------------ valid maps


def test_a_valid_map_parses_to_its_waves_targets_and_parameters() -> None:
    raw = json.dumps(
        {
            "Waves": [
                {
                    "Name": "canary",
                    "MaxConcurrency": 1,
                    "BakeTimeInMinutes": 30,
                    "DeployTimeoutInMinutes": 60,
                    "Alarms": ["app-5xx"],
                    "Targets": [{"Region": "eu-west-1", "Account": HOME, "StackName": "app-eu", "ParameterFile": EU}],
                },
                {
                    "Name": "rest",
                    "MaxConcurrency": 2,
                    "Targets": [
                        {"Region": "us-east-1", "ParameterFile": US},
                        {"Region": "us-east-1", "Account": OTHER, "ParameterFile": US},
                    ],
                },
            ]
        }
    )

    deployment_map = read(raw)

    us = {"EnvironmentName": "us", "RetentionDays": "7"}
    assert deployment_map == DeploymentMap(
        waves=(
            Wave(
                name="canary",
                targets=(Target("eu-west-1", HOME, "app-eu", EU, {"EnvironmentName": "eu", "RetentionDays": "30"}),),
                max_concurrency=1,
                bake_minutes=30,
                deploy_timeout_minutes=60,
                alarms=("app-5xx",),
            ),
            Wave(
                name="rest",
                targets=(Target("us-east-1", None, STACK, US, us), Target("us-east-1", OTHER, STACK, US, us)),
                max_concurrency=2,
                bake_minutes=0,
                deploy_timeout_minutes=60,
                alarms=(),
            ),
        ),
        home_account=HOME,
    )
    assert [t.region for t in deployment_map.targets()] == ["eu-west-1", "us-east-1", "us-east-1"]
    assert [deployment_map.key(t) for t in deployment_map.targets()] == [
        (HOME, "eu-west-1", "app-eu"),
        (HOME, "us-east-1", STACK),
        (OTHER, "us-east-1", STACK),
    ]


def test_optional_keys_take_their_defaults() -> None:
    deployment_map = read(document({"Name": "w", "Targets": [{"Region": "eu-west-1", "ParameterFile": EU}]}))

    (only,) = deployment_map.waves
    assert (only.max_concurrency, only.bake_minutes, only.deploy_timeout_minutes, only.alarms) == (1, 0, 60, ())
    assert only.targets[0].account is None
    assert only.targets[0].stack_name == STACK


def test_a_parameter_file_shared_by_targets_is_read_once() -> None:
    reads: list[str] = []

    def read_file(path: str) -> str | None:
        reads.append(path)
        return FILES.get(path)

    raw = document(wave("a", target(), target("us-east-1", ParameterFile=EU)), wave("b", target(Account=OTHER)))
    deployment_map = parse(raw, read_file=read_file, default_stack_name=STACK, home_account=HOME)

    assert reads == [EU]
    assert all(t.parameters == {"EnvironmentName": "eu", "RetentionDays": "30"} for t in deployment_map.targets())


def example_file(path: str) -> str | None:
    """A file of the example application, as the repository holds it."""
    file = EXAMPLE / path
    return file.read_text(encoding="utf-8") if file.is_file() else None


def example_map() -> DeploymentMap:
    raw = example_file("deployment-map.json")
    assert raw is not None
    return parse(raw, read_file=example_file, default_stack_name="hello-app", home_account=HOME)


def test_the_example_application_map_parses() -> None:
    deployment_map = example_map()

    assert [(w.name, [(t.region, t.account) for t in w.targets]) for w in deployment_map.waves] == [
        ("canary", [("us-west-2", None)]),
        ("early", [("eu-west-1", None), ("us-east-2", OTHER)]),
        ("rest", [("us-east-1", None)]),
    ]
    assert all(set(t.parameters) == {"EnvironmentName", "RetentionDays"} for t in deployment_map.targets())
    assert {t.stack_name for t in deployment_map.targets()} == {"hello-app"}
    assert summary_by_wave(deployment_map) == [
        "wave 1 canary: 1 target (us-west-2), concurrency 1, bake 30 min, no alarms",
        f"wave 2 early: 2 targets (eu-west-1, us-east-2 account {OTHER}), concurrency 2, bake 15 min, no alarms",
        "wave 3 rest: 1 target (us-east-1), concurrency 1, bake 0 min, no alarms",
    ]


# ------------------------------------------------------------------------------------- the whole file


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"Waves": [}', "the map: is not valid JSON: Expecting value at line 1 column 12"),
        ("", "the map: is not valid JSON: Expecting value at line 1 column 1"),
        ('{"Waves": NaN}', "the map: is not valid JSON: NaN is not a JSON number"),
        ('{"Waves": -Infinity}', "the map: is not valid JSON: -Infinity is not a JSON number"),
        ("[" * 100_000 + "]" * 100_000, "the map: is not valid JSON: it is nested too deeply"),
        ("[]", "the map: must be a JSON object, not a list"),
        ("null", "the map: must be a JSON object, not null"),
        ("{}", "the map: Waves is required"),
        ('{"Waves": {}}', "Waves: must be a list of waves, not an object"),
        ('{"Waves": []}', "Waves: must list at least one wave"),
    ],
)
def test_a_file_that_is_not_a_map_is_refused_by_name(raw: str, problem: str) -> None:
    refused_once(raw, problem)


def test_a_number_too_long_for_python_is_refused_as_json() -> None:
    message = refused('{"Waves": ' + "1" * 5000 + "}")

    assert message.startswith("the deployment map has 1 problem: the map: is not valid JSON: Exceeds the limit")


def test_unknown_keys_are_refused_at_every_level_by_name_and_place() -> None:
    raw = json.dumps(
        {
            "Waves": [{"Name": "canary", "Concurrency": 2, "Targets": [{**target(), "Stack": "x"}]}],
            "Version": "1",
        }
    )

    message = refused(raw)

    assert message.startswith("the deployment map has 3 problems: ")
    assert (
        "Waves[0] (canary): unknown key 'Concurrency' (the keys are Name, Targets, MaxConcurrency, "
        "BakeTimeInMinutes, DeployTimeoutInMinutes, Alarms)" in message
    )
    assert (
        "Waves[0].Targets[0] (eu-west-1): unknown key 'Stack' (the keys are Region, Account, StackName, "
        "ParameterFile)" in message
    )
    assert "the map: unknown key 'Version' (the keys are Waves)" in message


def test_a_key_written_twice_is_refused() -> None:
    """JSON parsers keep the last of two equal keys: a map that says two things is not guessed at."""
    entry = json.dumps(target())
    raw = '{"Waves": [{"Name": "a", "Name": "b", "Targets": [' + entry + "]}]}"

    refused_once(raw, "Waves[0] (b): Name is written more than once")


def test_every_problem_is_reported_at_once() -> None:
    raw = json.dumps(
        {
            "Waves": [
                {"Name": "canary", "MaxConcurrency": 0, "Targets": [target("eu-wset-1"), target(Account=111122223333)]},
                {"Name": "canary", "BakeTimeInMinutes": True, "Alarms": ["a", "a"], "Targets": []},
                {"Targets": [target("us-east-1", ParameterFile="../secrets.json"), "us-east-1"]},
            ]
        }
    )

    message = refused(raw)

    problems = [
        "Waves[0] (canary): MaxConcurrency must be from 1 to 40, not 0",
        "Waves[0].Targets[0] (eu-wset-1): Region 'eu-wset-1' is not an AWS Region",
        "Waves[0].Targets[1] (eu-west-1): Account must be a string of 12 digits, not a number",
        "Waves[1] (canary): Name 'canary' is already the name of Waves[0]",
        "Waves[1] (canary): BakeTimeInMinutes must be a whole number, not a boolean",
        "Waves[1] (canary): Alarms[1] 'a' is listed twice",
        "Waves[1] (canary): Targets must list at least one target",
        "Waves[2]: Name is required",
        "Waves[2].Targets[0] (us-east-1): ParameterFile '../secrets.json' must stay inside the repository",
        "Waves[2].Targets[1]: must be a JSON object, not a string",
    ]
    assert message.startswith(f"the deployment map has {len(problems)} problems: ")
    for problem in problems:
        assert problem in message
    # In the order of the file, entry by entry.
    positions = [message.index(problem) for problem in problems]
    assert positions == sorted(positions)


def test_the_error_keeps_each_problem_for_a_reader_that_lists_them() -> None:
    raw = document(wave("a", target("eu-wset-1"), target(Unknown=1)))

    with pytest.raises(DeploymentMapError) as raised:
        read(raw)

    assert isinstance(raised.value, ConfigurationError)
    assert raised.value.problems == (
        "Waves[0].Targets[0] (eu-wset-1): Region 'eu-wset-1' is not an AWS Region",
        "Waves[0].Targets[1] (eu-west-1): unknown key 'Unknown' (the keys are Region, Account, StackName, "
        "ParameterFile)",
    )
    assert str(raised.value) == "the deployment map has 2 problems: " + "; ".join(raised.value.problems)


# ---------------------------------------------------------------------------------------------- waves


@pytest.mark.parametrize("name", ["a", "A-1", "0", "x" * 64, "canary-eu-2"])
def test_wave_names_of_letters_digits_and_hyphens_are_accepted(name: str) -> None:
    assert read(document(wave(name))).waves[0].name == name


@pytest.mark.parametrize("name", ["", "can ary", "x" * 65, "wave_1", "naïve", "canary\n", "a.b"])
def test_other_wave_names_are_refused(name: str) -> None:
    message = refused(document(wave(name)))

    assert f"Name {name!r} must be 1 to 64 letters, digits or hyphens" in message


def test_a_wave_name_that_is_not_a_string_is_refused() -> None:
    refused_once(document(wave(7)), "Waves[0]: Name must be a string, not a number (7)")  # type: ignore[arg-type]


def test_wave_names_are_unique() -> None:
    raw = document(wave("a"), wave("b", target("us-east-1")), wave("a", target(Account=OTHER)))

    refused_once(raw, "Waves[2] (a): Name 'a' is already the name of Waves[0]")


@pytest.mark.parametrize(
    ("targets", "problem"),
    [
        (None, "Targets is required"),
        ({}, "Targets must be a list of targets, not an object"),
        ([], "Targets must list at least one target"),
    ],
)
def test_a_wave_lists_its_targets(targets: Any, problem: str) -> None:
    entry = {"Name": "canary"} if targets is None else {"Name": "canary", "Targets": targets}

    refused_once(document(entry), f"Waves[0] (canary): {problem}")


def test_a_wave_that_is_not_an_object_is_refused() -> None:
    refused_once(json.dumps({"Waves": [wave(), "rest"]}), "Waves[1]: must be a JSON object, not a string")


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("MaxConcurrency", 0, "MaxConcurrency must be from 1 to 40, not 0 (a Step Functions inline Map runs"),
        ("MaxConcurrency", 41, "MaxConcurrency must be from 1 to 40, not 41"),
        ("MaxConcurrency", True, "MaxConcurrency must be a whole number, not a boolean"),
        ("MaxConcurrency", 2.0, "MaxConcurrency must be a whole number, not a number (2.0)"),
        ("MaxConcurrency", "2", "MaxConcurrency must be a whole number, not a string"),
        ("MaxConcurrency", None, "MaxConcurrency must be a whole number, not null"),
        ("BakeTimeInMinutes", -1, "BakeTimeInMinutes must be from 0 to 180, not -1 (CloudFormation monitors"),
        ("BakeTimeInMinutes", 181, "BakeTimeInMinutes must be from 0 to 180, not 181"),
        ("BakeTimeInMinutes", False, "BakeTimeInMinutes must be a whole number, not a boolean"),
        ("DeployTimeoutInMinutes", 0, "DeployTimeoutInMinutes must be from 1 to 1440, not 0"),
        ("DeployTimeoutInMinutes", 1441, "DeployTimeoutInMinutes must be from 1 to 1440, not 1441 (CodePipeline"),
        ("DeployTimeoutInMinutes", 1.5, "DeployTimeoutInMinutes must be a whole number, not a number (1.5)"),
    ],
)
def test_wave_numbers_out_of_range_or_of_another_type_are_refused(key: str, value: Any, problem: str) -> None:
    raw = json.dumps({"Waves": [{"Name": "canary", "Targets": [target()], key: value}]})

    assert refused(raw).startswith(f"the deployment map has 1 problem: Waves[0] (canary): {problem}")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MaxConcurrency", 1),
        ("MaxConcurrency", 40),
        ("BakeTimeInMinutes", 0),
        ("BakeTimeInMinutes", 180),
        ("DeployTimeoutInMinutes", 1),
        ("DeployTimeoutInMinutes", 1440),
    ],
)
def test_wave_numbers_at_their_limits_are_accepted(key: str, value: int) -> None:
    deployment_map = read(document(wave("canary", **{key: value})))

    fields = {"MaxConcurrency": "max_concurrency", "BakeTimeInMinutes": "bake_minutes"}
    assert getattr(deployment_map.waves[0], fields.get(key, "deploy_timeout_minutes")) == value


def test_up_to_five_alarm_names_of_up_to_255_characters_are_accepted() -> None:
    alarms = ["app-5xx", "a" * 255, "latency p99 > 2s", "Ünïcode", "x"]

    assert read(document(wave(Alarms=alarms))).waves[0].alarms == tuple(alarms)


@pytest.mark.parametrize(
    ("alarms", "problem"),
    [
        ("app-5xx", "Alarms must be a list of alarm names, not a string"),
        (["a", "b", "c", "d", "e", "f"], "Alarms lists 6 alarms; CloudFormation takes at most 5"),
        ([""], "Alarms[0] must be 1 to 255 characters, not 0"),
        (["a" * 256], "Alarms[0] must be 1 to 255 characters, not 256"),
        (["ok", 5], "Alarms[1] must be an alarm name, not a number (5)"),
        (["app\n5xx"], "Alarms[0] 'app\\n5xx' must be UTF-8 text with no control character"),
        (["\ud800"], "Alarms[0] '\\ud800' must be UTF-8 text with no control character"),
        (["app-5xx", "app-5xx"], "Alarms[1] 'app-5xx' is listed twice"),
    ],
)
def test_alarms_that_cloudformation_would_refuse_are_refused(alarms: Any, problem: str) -> None:
    refused_once(document(wave(Alarms=alarms)), f"Waves[0] (canary): {problem}")


# -------------------------------------------------------------------------------------------- targets


def test_the_regions_are_botocore_s_cloudformation_regions_in_every_partition() -> None:
    session = botocore.session.get_session()
    expected = {
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("cloudformation", partition_name=partition)
    }

    assert aws_regions() == expected
    assert {"us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"} <= aws_regions()
    assert aws_regions() is aws_regions()  # read once


@pytest.mark.parametrize("region", ["cn-north-1", "us-gov-west-1", "ap-southeast-2"])
def test_a_region_of_any_partition_is_accepted(region: str) -> None:
    assert read(document(wave("w", target(region, ParameterFile=US)))).waves[0].targets[0].region == region


@pytest.mark.parametrize("region", ["eu-wset-1", "EU-WEST-1", "eu-west-1 ", "aws-global", "local"])
def test_a_region_aws_does_not_have_is_refused(region: str) -> None:
    refused_once(
        document(wave("w", target(region, ParameterFile=US))),
        f"Waves[0].Targets[0] ({region}): Region {region!r} is not an AWS Region",
    )


def test_a_region_that_is_not_a_string_is_refused_and_the_entry_named_by_its_place() -> None:
    refused_once(document(wave("w", target(1))), "Waves[0].Targets[0]: Region must be a string, not a number (1)")  # type: ignore[arg-type]


@pytest.mark.parametrize("account", ["012345678901", HOME])
def test_a_twelve_digit_account_is_accepted(account: str) -> None:
    assert read(document(wave("w", target(Account=account)))).waves[0].targets[0].account == account


@pytest.mark.parametrize("account", ["12345", "1111222233334", "11112222333a", "", "\uff11" * 12, "111122223333\n"])
def test_an_account_that_is_not_twelve_digits_is_refused(account: str) -> None:
    refused_once(
        document(wave("w", target(Account=account))),
        f"Waves[0].Targets[0] (eu-west-1): Account {account!r} must be an AWS account ID: 12 digits",
    )


def test_an_account_written_as_a_number_is_refused_with_the_reason() -> None:
    refused_once(
        document(wave("w", target(Account=12345678901))),
        "Waves[0].Targets[0] (eu-west-1): Account must be a string of 12 digits, not a number "
        "(a number loses leading zeros)",
    )


@pytest.mark.parametrize("stack_name", ["a", "A-b-1", "a" * 128, "app-eu-west-1"])
def test_cloudformation_stack_names_are_accepted_in_another_account(stack_name: str) -> None:
    # there the bootstrap template's ApplicationStackNames bound what may be changed
    entry = target(StackName=stack_name, Account=OTHER)
    assert read(document(wave("w", entry))).waves[0].targets[0].stack_name == stack_name


@pytest.mark.parametrize("stack_name", [STACK, f"{STACK}-eu-west-1", f"{STACK}-2"])
def test_the_solutions_account_takes_the_application_stack_and_its_suffixed_names(stack_name: str) -> None:
    for account in (None, HOME):
        entry = target(StackName=stack_name, Account=account)
        assert read(document(wave("w", entry))).waves[0].targets[0].stack_name == stack_name


@pytest.mark.parametrize("stack_name", ["other", f"{STACK}x", f"x-{STACK}"])
def test_the_solutions_account_refuses_a_stack_its_roles_may_not_change(stack_name: str) -> None:
    refused_once(
        document(wave("w", target(StackName=stack_name))),
        f"Waves[0].Targets[0] (eu-west-1): StackName {stack_name!r}: in the solution's account a target's stack is "
        f"{STACK!r} or begins with {STACK + '-'!r} (what the solution's roles may change)",
    )


def test_the_stage_stack_is_never_a_target() -> None:
    refused_once(
        document(wave("w", target(StackName=f"{STACK}-stage", Account=HOME))),
        f"Waves[0].Targets[0] (eu-west-1): StackName '{STACK}-stage' is the stage stack, which the pipeline "
        "manages itself",
    )


@pytest.mark.parametrize("stack_name", ["1app", "my_app", "-app", "app.eu", "", "app\n"])
def test_stack_names_cloudformation_refuses_are_refused(stack_name: str) -> None:
    refused_once(
        document(wave("w", target(StackName=stack_name))),
        f"Waves[0].Targets[0] (eu-west-1): StackName {stack_name!r} must start with a letter and hold only "
        "letters, digits and hyphens",
    )


def test_a_stack_name_over_128_characters_is_refused() -> None:
    message = refused(document(wave("w", target(StackName="a" * 129))))

    assert "StackName 'aaaa" in message
    assert "is 129 characters; CloudFormation allows at most 128" in message


def test_a_default_stack_name_cloudformation_refuses_is_refused_too() -> None:
    with pytest.raises(ConfigurationError, match="StackName 'my_app' must start with a letter"):
        parse(document(wave()), read_file=FILES.get, default_stack_name="my_app", home_account=HOME)


@pytest.mark.parametrize("entry", [{"ParameterFile": EU}, {"Region": "eu-west-1"}])
def test_region_and_parameter_file_are_required(entry: dict[str, str]) -> None:
    missing = "Region" if "Region" not in entry else "ParameterFile"
    where = "Waves[0].Targets[0] (eu-west-1)" if "Region" in entry else "Waves[0].Targets[0]"

    refused_once(document(wave("w", entry)), f"{where}: {missing} is required")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "must name a file"),
        ("/etc/passwd", "must be a path relative to the repository's root, not an absolute path"),
        ("../secrets.json", "must stay inside the repository (no '..')"),
        ("parameters/../../x.json", "must stay inside the repository (no '..')"),
        ("parameters\\eu.json", "must separate folders with '/', not '\\'"),
        ("C:\\parameters\\eu.json", "must separate folders with '/', not '\\'"),
        ("./parameters/eu.json", "must have no empty or '.' part"),
        ("parameters//eu.json", "must have no empty or '.' part"),
        ("parameters/", "must have no empty or '.' part"),
        ("parameters/eu\n.json", "must be printable text"),
    ],
)
def test_a_parameter_file_outside_the_repository_or_oddly_written_is_refused(path: str, reason: str) -> None:
    asked: list[str] = []

    def read_file(name: str) -> str | None:
        asked.append(name)
        return FILES.get(name)

    with pytest.raises(ConfigurationError) as raised:
        parse(
            document(wave("w", target(ParameterFile=path))),
            read_file=read_file,
            default_stack_name=STACK,
            home_account=HOME,
        )

    assert (
        str(raised.value)
        == f"the deployment map has 1 problem: Waves[0].Targets[0] (eu-west-1): ParameterFile {path!r} {reason}"
    )
    assert asked == []  # never read


def test_a_missing_parameter_file_names_the_entry_and_the_path() -> None:
    refused_once(
        document(wave("w", target(ParameterFile="parameters/eu-west-2.json"))),
        "Waves[0].Targets[0] (eu-west-1): ParameterFile 'parameters/eu-west-2.json' is not in the repository",
    )


@pytest.mark.parametrize(
    ("contents", "problem"),
    [
        (
            '{"Env": "prod",}',
            "is not valid JSON: Illegal trailing comma before end of object at line 1 column 15",
        ),
        ('{"Env": 3}', "must be a JSON object whose values are all strings"),
        ('["Env", "prod"]', "must be a JSON object whose values are all strings"),
        ('{"Env": NaN}', "is not valid JSON: NaN is not a JSON number"),
        ('{"Env": "a", "Env": "b"}', ": parameter 'Env' is written more than once"),
        ('{"Env-Name": "prod"}', ": parameter 'Env-Name' cannot be in a template (a parameter's name is 1 to 255"),
        ('{"": "prod"}', ": parameter '' cannot be in a template"),
        ('{"Env": "\\ud800"}', ": the value of Env is not valid UTF-8 text"),
        (json.dumps({"Env": "é" * 2049}), ": the value of Env is 4098 bytes; CloudFormation takes at most 4096"),
        (json.dumps({f"P{i}": "x" for i in range(201)}), " has 201 parameters; a template declares at most 200"),
    ],
)
def test_a_parameter_file_cloudformation_would_refuse_is_refused_by_its_path(contents: str, problem: str) -> None:
    path = "parameters/bad.json"

    message = refused(document(wave("w", target(ParameterFile=path))), {path: contents})

    assert message.startswith(
        f"the deployment map has 1 problem: Waves[0].Targets[0] (eu-west-1): ParameterFile {path!r}"
    )
    assert problem in message


def test_parameter_files_at_cloudformation_s_limits_are_accepted() -> None:
    files = {"p.json": json.dumps({**{f"P{i}": "x" for i in range(199)}, "N" * 255: "é" * 2048})}

    (only,) = read(document(wave("w", target(ParameterFile="p.json"))), files).targets()

    assert len(only.parameters) == 200


def test_a_bad_parameter_file_shared_by_targets_is_reported_once() -> None:
    raw = document(wave("a", target(), target("us-east-1", ParameterFile=EU)))

    refused_once(
        raw,
        f"Waves[0].Targets[0] (eu-west-1): ParameterFile {EU!r} must be a JSON object whose values are all strings",
        {EU: "[]"},
    )


def test_a_target_that_is_not_an_object_is_refused() -> None:
    refused_once(document(wave("w", target(), ["eu-west-1"])), "Waves[0].Targets[1]: must be a JSON object, not a list")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("first", "second", "account"),
    [
        (target(), target(), HOME),
        (target(), target(Account=HOME), HOME),  # the home account named or not is one target
        (target(StackName=STACK), target(), HOME),  # the default stack name written or not
        (target(Account=OTHER), target(Account=OTHER), OTHER),
    ],
)
def test_two_entries_for_one_stack_anywhere_in_the_map_are_refused_naming_both(
    first: dict[str, Any], second: dict[str, Any], account: str
) -> None:
    raw = document(wave("a", first), wave("b", target("us-east-1")), wave("c", second))

    refused_once(
        raw,
        f"Waves[2].Targets[0] (eu-west-1): the same target as Waves[0].Targets[0] (eu-west-1) (account {account}, "
        f"Region eu-west-1, stack {STACK}); a stack is deployed once per rollout",
    )


def test_a_target_s_name_is_account_region_and_stack() -> None:
    deployment_map = read(document(wave("a", target(), target("us-east-1", Account=OTHER, StackName="other"))))

    names = [key_name(deployment_map.key(t)) for t in deployment_map.targets()]

    assert names == [f"{HOME}/eu-west-1/{STACK}", f"{OTHER}/us-east-1/other"]


def test_targets_that_differ_in_account_region_or_stack_are_distinct() -> None:
    raw = document(
        wave("a", target(), target(Account=OTHER), target(StackName="app-two"), target("us-east-1")),
    )

    assert len(read(raw).targets()) == 4


# -------------------------------------------------------------------------------------------- the map


def test_a_map_of_100_targets_is_accepted_and_of_101_refused() -> None:
    def targets(count: int) -> list[dict[str, Any]]:
        return [target(StackName=f"app-{index}") for index in range(count)]

    # 5-minute deploys: 100 targets' history fits in one execution's (see the history test below)
    quick = {"MaxConcurrency": 40, "DeployTimeoutInMinutes": 5}
    assert len(read(document(wave("a", *targets(MAX_TARGETS), **quick))).targets()) == MAX_TARGETS

    refused_once(
        document(wave("a", *targets(MAX_TARGETS), **quick), wave("b", target("us-east-1"), DeployTimeoutInMinutes=5)),
        f"Waves: the map lists {MAX_TARGETS + 1} targets; at most {MAX_TARGETS} are allowed, so that the change "
        "report and the approval stay readable (deploy a larger fleet with StackSets)",
    )


def test_a_rollout_whose_history_may_pass_25000_events_is_refused_showing_the_arithmetic() -> None:
    """GIVEN 60 targets given 60 minutes and a 30-minute bake each THEN the checks of their deploys and
    returns may record more events than one execution holds: the map is refused, with the arithmetic."""
    targets = [target(StackName=f"app-{index}") for index in range(60)]

    refused_once(
        document(wave("canary", target("us-west-2"), BakeTimeInMinutes=30), wave("rest", *targets, MaxConcurrency=20)),
        "Waves: the rollout's Step Functions history needs up to 1 x 382 + 60 x 328 + 28 = 20,090 events "
        "(targets x events per target, wave by wave, checked every 30 s at first); it must stay under 20,000 "
        "(Step Functions fails an execution at 25,000): lower DeployTimeoutInMinutes or BakeTimeInMinutes, or "
        "deploy fewer targets in one rollout",
    )
    assert len(read(document(wave("rest", *targets[:59], MaxConcurrency=20))).targets()) == 59


def test_the_checks_of_a_busy_stack_back_off_from_the_poll_interval_to_10_minutes() -> None:
    waits = [deployment_map.check_wait_seconds(elapsed, 30) for elapsed in (0, 60, 90, 300, 1800, 7200)]

    assert waits == [30, 30, 30, 100, 600, 600]
    assert deployment_map.checks_within(90, 30) == 20  # where 30-second checks made 181


def test_waves_that_cannot_finish_in_24_hours_are_refused_showing_the_arithmetic() -> None:
    raw = document(
        wave(
            "a",
            target(),
            target(Account=OTHER),
            target("us-east-1"),
            target("us-west-2", ParameterFile=US),
            BakeTimeInMinutes=180,
        ),
        wave(
            "b",
            target(StackName=f"{STACK}-b1"),
            target(StackName=f"{STACK}-b2"),
            target(StackName=f"{STACK}-b3"),
            MaxConcurrency=2,
            BakeTimeInMinutes=180,
        ),
        wave("c", target(StackName=f"{STACK}-c1")),
    )

    refused_once(
        raw,
        "Waves: the waves need 4 x (60 + 180) + 2 x (60 + 180) + 1 x (60 + 0) = 1500 minutes (a 960, b 480, c 60); "
        "a rollout must fit in 1440 (CodePipeline ends a Lambda action after 24 hours): lower DeployTimeoutInMinutes "
        "or BakeTimeInMinutes, or raise MaxConcurrency",
    )


def test_waves_that_take_exactly_24_hours_are_accepted() -> None:
    raw = document(
        wave("a", target(), target(Account=OTHER), MaxConcurrency=1, DeployTimeoutInMinutes=500, BakeTimeInMinutes=100),
        wave("b", target("us-east-1"), DeployTimeoutInMinutes=60, BakeTimeInMinutes=180),
    )

    deployment_map = read(raw)

    assert [w.minutes for w in deployment_map.waves] == [1200, 240]
    assert sum(w.minutes for w in deployment_map.waves) == 1440


def test_the_time_budget_is_checked_even_when_a_target_has_another_problem() -> None:
    raw = document(wave("a", target("eu-wset-1"), DeployTimeoutInMinutes=1440), wave("b", target("us-east-1")))

    message = refused(raw)

    assert "Region 'eu-wset-1' is not an AWS Region" in message
    assert "the waves need 1 x (1440 + 0) + 1 x (60 + 0) = 1500 minutes (a 1440, b 60)" in message


def test_the_time_budget_is_not_guessed_when_a_wave_s_numbers_cannot_be_read() -> None:
    raw = document(wave("a", DeployTimeoutInMinutes=1440), wave("b", target("us-east-1"), MaxConcurrency="2"))

    refused_once(raw, "Waves[1] (b): MaxConcurrency must be a whole number, not a string")


# ------------------------------------------------------------------------------------- the default map


def test_the_default_map_is_the_secondary_region_then_the_primary_region() -> None:
    deployment_map = default_map(
        primary_region="us-east-1",
        secondary_region="eu-west-1",
        stack_name=STACK,
        primary_parameters={"Env": "primary"},
        secondary_parameters={"Env": "secondary"},
        home_account=HOME,
    )

    assert deployment_map == DeploymentMap(
        waves=(
            Wave(name="secondary", targets=(Target("eu-west-1", None, STACK, "", {"Env": "secondary"}),)),
            Wave(name="primary", targets=(Target("us-east-1", None, STACK, "", {"Env": "primary"}),)),
        ),
        home_account=HOME,
    )
    assert all(
        (w.max_concurrency, w.bake_minutes, w.deploy_timeout_minutes, w.alarms) == (1, 0, 60, ())
        for w in deployment_map.waves
    )
    assert summary_by_wave(deployment_map) == [
        "wave 1 secondary: 1 target (eu-west-1), concurrency 1, bake 0 min, no alarms",
        "wave 2 primary: 1 target (us-east-1), concurrency 1, bake 0 min, no alarms",
    ]


def test_the_default_map_keeps_its_own_copy_of_the_parameters() -> None:
    primary = {"Env": "primary"}
    deployment_map = default_map(
        primary_region="us-east-1",
        secondary_region="eu-west-1",
        stack_name=STACK,
        primary_parameters=primary,
        secondary_parameters={},
        home_account=HOME,
    )
    primary["Env"] = "changed"

    assert deployment_map.waves[1].targets[0].parameters == {"Env": "primary"}


# ------------------------------------------------------------------------------- canonical JSON, digest


def test_the_canonical_json_is_stable_and_holds_the_parameters_read() -> None:
    shuffled = json.dumps({"Waves": [{"Targets": [{"ParameterFile": EU, "Region": "eu-west-1"}], "Name": "w"}]})
    ordered = json.dumps({"Waves": [{"Name": "w", "Targets": [{"Region": "eu-west-1", "ParameterFile": EU}]}]})

    text = canonical_json(read(shuffled))

    assert text == canonical_json(read(ordered))
    assert text == (
        '{"Waves":[{"Alarms":[],"BakeTimeInMinutes":0,"DeployTimeoutInMinutes":60,"MaxConcurrency":1,"Name":"w",'
        '"Targets":[{"ParameterFile":"parameters/eu-west-1.json","Parameters":{"EnvironmentName":"eu",'
        '"RetentionDays":"30"},"Region":"eu-west-1","StackName":"app"}]}]}'
    )
    assert digest(read(shuffled)) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest(read(shuffled)))


def test_the_digest_changes_with_a_parameter_value_or_the_order_of_the_waves() -> None:
    raw = document(wave("a"), wave("b", target("us-east-1")))
    base = digest(read(raw))

    changed = digest(read(raw, {**FILES, EU: '{"EnvironmentName": "eu", "RetentionDays": "31"}'}))
    reordered = digest(read(document(wave("b", target("us-east-1")), wave("a"))))

    assert len({base, changed, reordered}) == 3


# --------------------------------------------------------------------------------------------- compare


def map_of(*waves: dict[str, Any], files: dict[str, str] | None = None) -> DeploymentMap:
    return read(document(*waves), files)


def test_with_no_previous_map_every_target_is_added() -> None:
    current = map_of(wave("a"), wave("b", target("us-east-1")))

    change = compare(None, current)

    assert change == MapChange(
        added=(PlacedTarget(current.waves[0].targets[0], "a"), PlacedTarget(current.waves[1].targets[0], "b"))
    )
    assert change.lines() == [
        "stack app in eu-west-1: added, in wave a",
        "stack app in us-east-1: added, in wave b",
    ]


def test_the_same_map_is_no_change() -> None:
    change = compare(map_of(wave("a")), map_of(wave("a")))

    assert not change
    assert change.lines() == []


def test_a_removed_target_is_reported_and_its_stack_kept() -> None:
    previous = map_of(wave("a", target(), target(Account=OTHER)))

    change = compare(previous, map_of(wave("a")))

    assert change == MapChange(removed=(PlacedTarget(previous.waves[0].targets[1], "a"),))
    assert change.lines() == [
        f"stack app in eu-west-1, account {OTHER}: removed from the map; its stack is not deleted (it was in wave a)"
    ]


def test_a_target_in_another_wave_is_moved_not_removed_and_added() -> None:
    current = map_of(wave("a"), wave("b", target("us-east-1")))

    change = compare(map_of(wave("a", target(), target("us-east-1"))), current)

    assert change == MapChange(moved=(MovedTarget(current.waves[1].targets[0], from_wave="a", to_wave="b"),))
    assert change.lines() == ["stack app in us-east-1: moved from wave a to wave b"]


def test_changed_parameters_are_named_without_their_values() -> None:
    previous = map_of(wave("a"), files={EU: '{"EnvironmentName": "eu", "RetentionDays": "30", "Old": "x"}'})
    current = map_of(wave("a"), files={EU: '{"EnvironmentName": "eu", "RetentionDays": "31", "New": "s3cr3t"}'})

    change = compare(previous, current)

    assert change == MapChange(
        parameters_changed=(ParametersChange(current.waves[0].targets[0], "a", ("New", "Old", "RetentionDays")),)
    )
    assert change.lines() == ["stack app in eu-west-1 (wave a): parameters changed: New, Old, RetentionDays"]
    assert "s3cr3t" not in " ".join(change.lines())


def test_a_target_named_in_the_home_account_is_the_one_that_names_no_account() -> None:
    assert not compare(map_of(wave("a")), map_of(wave("a", target(Account=HOME))))


def test_the_default_map_against_the_example_map() -> None:
    """GIVEN the pipeline ran without a map WHEN the example map is added THEN the report says what moves."""

    def parameters(name: str) -> dict[str, str]:
        raw = example_file(f"parameters/{name}.json")
        assert raw is not None
        return dict(json.loads(raw))

    previous = default_map(
        primary_region="us-east-1",
        secondary_region="eu-west-1",
        stack_name="hello-app",
        primary_parameters=parameters("primary"),
        secondary_parameters=parameters("secondary"),
        home_account=HOME,
    )

    assert compare(previous, example_map()).lines() == [
        "stack hello-app in us-west-2: added, in wave canary",
        f"stack hello-app in us-east-2, account {OTHER}: added, in wave early",
        "stack hello-app in eu-west-1: moved from wave secondary to wave early",
        "stack hello-app in us-east-1: moved from wave primary to wave rest",
    ]


# --------------------------------------------------------------------------------------------- summary


def test_the_summary_has_one_line_per_wave() -> None:
    raw = document(
        wave("canary", target(), BakeTimeInMinutes=30, Alarms=["app-5xx"]),
        wave("rest", target("us-east-1"), target("us-east-1", Account=OTHER), MaxConcurrency=2, Alarms=["a", "b"]),
    )

    assert summary_by_wave(read(raw)) == [
        "wave 1 canary: 1 target (eu-west-1), concurrency 1, bake 30 min, alarms app-5xx",
        f"wave 2 rest: 2 targets (us-east-1, us-east-1 account {OTHER}), concurrency 2, bake 0 min, alarms a, b",
    ]


def test_the_summary_names_stacks_when_the_map_has_more_than_one() -> None:
    raw = document(wave("a", target(), target(StackName="app-two")))

    assert summary_by_wave(read(raw)) == [
        "wave 1 a: 2 targets (eu-west-1 stack app, eu-west-1 stack app-two), concurrency 1, bake 0 min, no alarms"
    ]


# -------------------------------------------------------------------------------------------- properties

REGIONS = sorted(aws_regions())
LETTERS, DIGITS = string.ascii_letters, string.digits
WAVE_CHARACTERS = LETTERS + DIGITS + "-"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


WAVE_NAMES = st.lists(st.text(WAVE_CHARACTERS, min_size=1, max_size=12), min_size=1, max_size=3, unique=True)
TARGET_KEYS = st.tuples(
    st.none() | st.sampled_from([HOME, OTHER, "000000000001"]),
    st.sampled_from(REGIONS),
    st.builds(operator.add, st.sampled_from(LETTERS), st.text(WAVE_CHARACTERS, max_size=15)),
)
PARAMETERS = st.dictionaries(st.text(LETTERS + DIGITS, min_size=1, max_size=12), st.text(max_size=30), max_size=4)
ALARMS = st.lists(
    st.text(
        st.characters(min_codepoint=32, exclude_characters="\x7f", exclude_categories=["Cs"]), min_size=1, max_size=20
    ),
    max_size=5,
    unique=True,
)
# Within the time budget: at most 3 waves of at most 4 targets, each at most 60 + 60 minutes.
WAVE_NUMBERS = st.tuples(st.integers(1, 40), st.integers(0, 60), st.integers(1, 60))


@st.composite
def deployment_maps(draw: st.DrawFn) -> DeploymentMap:
    """Valid maps: unique wave names and targets, within every limit and the time budget."""
    names = draw(WAVE_NAMES)
    keys = draw(
        st.lists(
            TARGET_KEYS,
            min_size=len(names),
            max_size=4 * len(names),
            unique_by=lambda key: (key[0] or HOME, key[1], key[2]),
        )
    )
    waves = []
    for index, name in enumerate(names):
        # in the solution's account, a stack the solution's roles may change: <STACK>-<suffix>
        targets = tuple(
            Target(
                region,
                account,
                f"{STACK}-{stack}" if account in (None, HOME) else stack,
                f"parameters/t{index}-{position}.json",
                draw(PARAMETERS),
            )
            for position, (account, region, stack) in enumerate(keys[index :: len(names)])
        )
        concurrency, bake, timeout = draw(WAVE_NUMBERS)
        waves.append(Wave(name, targets, concurrency, bake, timeout, tuple(draw(ALARMS))))
    return DeploymentMap(waves=tuple(waves), home_account=HOME)


def map_file(deployment_map: DeploymentMap) -> tuple[str, dict[str, str]]:
    """The map file and parameter files that canonical_json describes."""
    document: Any = json.loads(canonical_json(deployment_map))
    files: dict[str, str] = {}
    for entry in (target for wave in document["Waves"] for target in wave["Targets"]):
        files[entry["ParameterFile"]] = json.dumps(entry.pop("Parameters"))
    return json.dumps(document), files


@PROPERTY_SETTINGS
@given(deployment_maps())
def test_a_map_read_back_from_its_canonical_json_is_the_same_map(deployment_map: DeploymentMap) -> None:
    raw, files = map_file(deployment_map)

    # every target's StackName is written out; the default only bounds the solution account's names
    again = parse(raw, read_file=files.get, default_stack_name=STACK, home_account=HOME)

    assert again == deployment_map
    assert digest(again) == digest(deployment_map)


def assert_map_or_configuration_error(raw: str, files: dict[str, str]) -> None:
    """Parsing ``raw`` gives a map or raises ConfigurationError (any other exception fails the test)."""
    message = "the deployment map has "
    try:
        parse(raw, read_file=files.get, default_stack_name=STACK, home_account=HOME)
    except ConfigurationError as error:
        message = str(error)
    assert message.startswith("the deployment map has ")


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(
    st.one_of(st.text(max_size=60), json_values.map(json.dumps)),
    st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=3),
)
def test_arbitrary_text_is_a_map_or_a_configuration_error(raw: str, files: dict[str, str]) -> None:
    assert_map_or_configuration_error(raw, files)


@PROPERTY_SETTINGS
@given(deployment_maps(), st.data())
def test_a_valid_map_with_any_value_replaced_is_a_map_or_a_configuration_error(
    deployment_map: DeploymentMap, data: st.DataObject
) -> None:
    raw, files = map_file(deployment_map)
    document: Any = json.loads(raw)
    wave_entry = data.draw(st.sampled_from(document["Waves"]))
    entry = data.draw(st.sampled_from([document, wave_entry, *wave_entry["Targets"]]))
    key = data.draw(st.sampled_from([*entry, "Extra"]))
    entry[key] = data.draw(json_values)
    if data.draw(st.booleans()):
        files[data.draw(st.sampled_from(sorted(files)))] = data.draw(json_values.map(json.dumps))

    assert_map_or_configuration_error(json.dumps(document), files)
