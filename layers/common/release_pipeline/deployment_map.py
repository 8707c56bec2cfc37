"""The deployment map: ordered waves of deployment targets, read from the application repository.

An application may carry a JSON file listing where its template goes, wave by wave. Its keys are
PascalCase like CloudFormation's own template configuration files::

    {"Waves": [{"Name": "canary", "MaxConcurrency": 1, "BakeTimeInMinutes": 30,
                "DeployTimeoutInMinutes": 60, "Alarms": ["app-5xx"],
                "Targets": [{"Region": "eu-west-1", "Account": "111122223333", "StackName": "app",
                             "ParameterFile": "parameters/eu-west-1.json"}]}]}

:func:`parse` checks everything CloudFormation, Step Functions or CodePipeline would refuse later, and
names every problem at once, entry by entry, so one commit can fix them all. Without a map the rollout is
the solution's own (:func:`default_map`): the secondary Region, then the primary Region.

This module is pure: it reads files through the function it is given and calls no AWS API.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

import botocore.session

from release_pipeline.errors import ConfigurationError
from release_pipeline.parameter_sets import parse_parameters
from release_pipeline.values import shorten

# A target's identity: (account, Region, stack name). Two entries with the same key deploy one stack.
type TargetKey = tuple[str, str, str]


def key_name(key: TargetKey) -> str:
    """A target's key as reports and the release record write it: ``account/Region/stack``."""
    return "/".join(key)


# The names a wave may take: they become part of change set and Step Functions execution names, so they
# keep to characters both accept, with room for a prefix. CreateChangeSet's ChangeSetName is
# [a-zA-Z][-a-zA-Z0-9]*, at most 128 characters:
# https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateChangeSet.html
# StartExecution's name is at most 80 characters:
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
WAVE_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")

# An AWS account ID is 12 digits (leading zeros included, so it is written as a string):
# https://docs.aws.amazon.com/accounts/latest/reference/manage-acct-identifiers.html
ACCOUNT_ID = re.compile(r"[0-9]{12}")

# A stack name starts with a letter, holds letters, digits and hyphens, and is at most 128 characters:
# https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStack.html
STACK_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9]*")
STAGE_SUFFIX: Final = "-stage"  # template.yaml's stage stack: <ApplicationStackName>-stage
STACK_NAME_MAX = 128

# A template's parameters: at most 200, each named by an alphanumeric logical name of at most 255
# characters, each value at most 4,096 bytes. A name that is not alphanumeric can be in no template.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html
PARAMETER_NAME = re.compile(r"[A-Za-z0-9]{1,255}")
MAX_PARAMETERS = 200
PARAMETER_VALUE_MAX_BYTES = 4096

# Step Functions runs at most 40 iterations of an inline Map state at once:
# https://docs.aws.amazon.com/step-functions/latest/dg/state-map-inline.html
MAX_CONCURRENCY = 40

# The bake is CloudFormation's rollback monitoring: MonitoringTimeInMinutes is 0-180 and RollbackTriggers
# holds at most 5 alarms:
# https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_RollbackConfiguration.html
MAX_BAKE_MINUTES = 180
MAX_ALARMS = 5

# A CloudWatch alarm name is 1-255 UTF-8 characters with no ASCII control character:
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
ALARM_NAME_MAX = 255

# The rollout runs inside one Lambda invoke action, which CodePipeline fails after 24 hours:
# https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html
# A single target's deploy cannot be given longer, and every wave together must fit in it.
MAX_DEPLOY_TIMEOUT_MINUTES = 24 * 60
ROLLOUT_BUDGET_MINUTES = 24 * 60

# The rollout runs in one Step Functions execution, whose history holds at most 25,000 events: past that
# the execution fails ("Maximum execution history size 25,000 events",
# https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html). A map must fit below it with
# a margin for what the count leaves out (a Lambda retry adds 3 events, a failure a few more).
HISTORY_LIMIT_EVENTS = 25_000
HISTORY_BUDGET_EVENTS = 20_000
# The events statemachines/rollout.asl.json records, as measured with the emulator's Step Functions: a
# check of a busy stack is a Wait, a Task and a Choice (2 + 5 + 2); a target's deploy, without its checks,
# is a Map iteration, the Execute task, a Choice and its end (2 + 5 + 2 + 2), its return the same; the
# execution itself, its Maps and the states after the returns, with 6 more for each wave.
EVENTS_PER_CHECK = 9
EVENTS_PER_DEPLOY = 11
EVENTS_PER_RETURN = 11
EVENTS_PER_EXECUTION = 16
EVENTS_PER_WAVE = 6
# How long the rollout waits before it checks a busy stack again: a third of the time the step has taken
# so far, at least the poll interval, at most 10 minutes. Short while CloudFormation works, longer as a bake
# goes on; a target that finishes is seen within a third of its time, and its number of checks grows with
# the logarithm of its time rather than with its time.
CHECK_BACKOFF_DIVISOR = 3
MAX_CHECK_WAIT_SECONDS = 600
# The poll interval the map check counts with: start-rollout's POLL_SECONDS as the README documents it (the
# rollout's input is checked again with the configured interval, rollout.workflow_input).
DEFAULT_POLL_SECONDS = 30

# The product's own limit, not AWS's. Every target gets a change set at CheckChanges, a section in the
# change report and a place in the approval's summary; past about a hundred, the person approving no
# longer reads what they approve, and a fleet that large is better served by StackSets. 100 targets also
# keeps CheckChanges' change sets well inside CloudFormation's API rates.
MAX_TARGETS = 100

_MAP_KEYS = ("Waves",)
_WAVE_KEYS = ("Name", "Targets", "MaxConcurrency", "BakeTimeInMinutes", "DeployTimeoutInMinutes", "Alarms")
_TARGET_KEYS = ("Region", "Account", "StackName", "ParameterFile")
_LABEL_MAX = 40


@functools.cache
def aws_regions() -> frozenset[str]:
    """Every Region where botocore knows a CloudFormation endpoint, in every partition (read once: it
    loads botocore's endpoint data). A Region newer than the botocore release is not in it."""
    session = botocore.session.get_session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("cloudformation", partition_name=partition)
    )


@dataclass(frozen=True)
class Target:
    """One stack to deploy: where it is, and the parameters it gets.

    ``account`` is ``None`` for the solution's own account. ``parameter_file`` is the file's path in the
    repository, or ``""`` when the parameters came from the solution's own parameter sets.
    """

    region: str
    account: str | None
    stack_name: str
    parameter_file: str
    parameters: dict[str, str] = field(hash=False)

    def describe(self) -> str:
        """The target as a report names it: ``stack app in us-east-2, account 222233334444``."""
        account = f", account {self.account}" if self.account else ""
        return f"stack {self.stack_name} in {self.region}{account}"


@dataclass(frozen=True)
class Wave:
    """Targets deployed together: at most ``max_concurrency`` at once, each given
    ``deploy_timeout_minutes`` to deploy, then watched for ``bake_minutes`` on ``alarms``."""

    name: str
    targets: tuple[Target, ...]
    max_concurrency: int = 1
    bake_minutes: int = 0
    deploy_timeout_minutes: int = 60
    alarms: tuple[str, ...] = ()

    @property
    def batches(self) -> int:
        """How many rounds of deploys the wave takes at its concurrency."""
        return math.ceil(len(self.targets) / self.max_concurrency)

    @property
    def count(self) -> int:
        """How many targets the wave deploys."""
        return len(self.targets)

    @property
    def minutes(self) -> int:
        """The longest the wave may take: each round's deploy timeout plus its bake."""
        return self.batches * (self.deploy_timeout_minutes + self.bake_minutes)


@dataclass(frozen=True)
class DeploymentMap:
    """The waves of a rollout, in order, and the solution's account (the account of a target that names
    none)."""

    waves: tuple[Wave, ...]
    home_account: str

    def targets(self) -> tuple[Target, ...]:
        """Every target, wave by wave, in the order the map lists them."""
        return tuple(target for wave in self.waves for target in wave.targets)

    def key(self, target: Target) -> TargetKey:
        """The target's identity: (account, Region, stack name), its account the solution's if unnamed."""
        return (target.account or self.home_account, target.region, target.stack_name)

    def placed(self) -> dict[TargetKey, tuple[Wave, Target]]:
        """Each target by its key, with its wave."""
        return {self.key(target): (wave, target) for wave in self.waves for target in wave.targets}


def check_wait_seconds(elapsed_seconds: float, poll_seconds: int) -> int:
    """Seconds to wait before the next check of a step that has taken ``elapsed_seconds`` so far."""
    ceiling = max(poll_seconds, MAX_CHECK_WAIT_SECONDS)
    return int(min(max(poll_seconds, elapsed_seconds // CHECK_BACKOFF_DIVISOR), ceiling))


def checks_within(minutes: int, poll_seconds: int) -> int:
    """The most checks a step makes when it is given ``minutes``: every check the schedule of
    :func:`check_wait_seconds` makes until one comes after the time is up (that one answers FAILED)."""
    elapsed, checks = 0, 0
    while elapsed <= minutes * 60:
        elapsed += check_wait_seconds(elapsed, poll_seconds)
        checks += 1
    return checks


def target_history_events(wave: Wave | _Timing, poll_seconds: int) -> int:
    """The most history events one target of ``wave`` adds: its deploy and its return, each checked until
    the target's time (its deploy timeout plus its bake) is up."""
    checks = checks_within(wave.deploy_timeout_minutes + wave.bake_minutes, poll_seconds)
    return EVENTS_PER_DEPLOY + EVENTS_PER_RETURN + 2 * checks * EVENTS_PER_CHECK


def history_problem(waves: Sequence[Wave | _Timing], poll_seconds: int) -> str | None:
    """Why the rollout of ``waves`` may not fit in one execution's history, showing the arithmetic; ``None``
    when it fits."""
    per_target = [(wave, target_history_events(wave, poll_seconds)) for wave in waves]
    overhead = EVENTS_PER_EXECUTION + EVENTS_PER_WAVE * len(waves)
    needed = sum(wave.count * events for wave, events in per_target) + overhead
    if needed <= HISTORY_BUDGET_EVENTS:
        return None
    terms = " + ".join(f"{wave.count} x {events}" for wave, events in per_target)
    return (
        f"the rollout's Step Functions history needs up to {terms} + {overhead} = {needed:,} events "
        f"(targets x events per target, wave by wave, checked every {poll_seconds} s at first); it must stay "
        f"under {HISTORY_BUDGET_EVENTS:,} (Step Functions fails an execution at {HISTORY_LIMIT_EVENTS:,}): "
        "lower DeployTimeoutInMinutes or BakeTimeInMinutes, or deploy fewer targets in one rollout"
    )


# ----------------------------------------------------------------------------------------------- parse


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys written in it more than once (``json`` keeps the last)."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    result = _Object(pairs)
    keys = [key for key, _ in pairs]
    result.duplicates = tuple(dict.fromkeys(key for index, key in enumerate(keys) if key in keys[:index]))
    return result


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _load(raw: str) -> tuple[Any, str | None]:
    """The JSON value in ``raw`` and ``None``, or ``None`` and why it cannot be read."""
    try:
        return json.loads(raw, object_pairs_hook=_object, parse_constant=_refuse_constant), None
    except json.JSONDecodeError as error:
        return None, f"is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
    except ValueError as error:  # a number of more than 4,300 digits, NaN or Infinity
        return None, f"is not valid JSON: {error}"
    except RecursionError:
        return None, "is not valid JSON: it is nested too deeply"


def _kind(value: object) -> str:
    """What a JSON value is, for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({shorten(repr(value), 20)})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _is_text(value: str) -> bool:
    """Whether ``value`` can be sent to AWS: UTF-8 with no lone surrogate."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _label(where: str, name: object) -> str:
    """``where`` followed by the entry's name when it is short printable text, as a reader finds it."""
    if isinstance(name, str) and name and name.isprintable():
        return f"{where} ({shorten(name, _LABEL_MAX)})"
    return where


class _Reader:
    """Reads a deployment map, collecting every problem, entry by entry."""

    def __init__(self, read_file: Callable[[str], str | None], default_stack_name: str, home_account: str) -> None:
        self._read_file = read_file
        self._default_stack_name = default_stack_name
        self._home_account = home_account
        self.problems: list[str] = []
        # The first entry of each wave name and target key, to name it when another entry repeats it.
        self._wave_names: dict[str, str] = {}
        self._keys: dict[TargetKey, str] = {}
        # Each wave's timing for the rollout's time budget, None when its numbers cannot be read.
        self._timings: list[_Timing | None] = []
        # Each parameter file is read and checked once; its problems are told at its first entry.
        self._files: dict[str, dict[str, str] | None] = {}

    def problem(self, where: str, text: str) -> None:
        self.problems.append(f"{where}: {text}")

    def entry(self, value: object, where: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> _Object | None:
        """``value`` as a JSON object with no unknown or repeated key, or ``None`` if it is not one."""
        if not isinstance(value, _Object):
            self.problem(where, f"must be a JSON object, not {_kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.problem(where, f"unknown key {shorten(key, _LABEL_MAX)!r} (the keys are {', '.join(allowed)})")
        for key in value.duplicates:
            if key in allowed:
                self.problem(where, f"{key} is written more than once")
        for key in required:
            if key not in value:
                self.problem(where, f"{key} is required")
        return value

    def text(self, entry: _Object, key: str, where: str) -> str | None:
        """The string under ``key``, ``None`` when it is absent or not a string (the latter told)."""
        if key not in entry:
            return None
        value = entry[key]
        if not isinstance(value, str):
            self.problem(where, f"{key} must be a string, not {_kind(value)}")
            return None
        return value

    def whole(self, entry: _Object, key: str, where: str, default: int, low: int, high: int, why: str) -> int | None:
        """The whole number under ``key`` (``default`` when absent) from ``low`` to ``high``."""
        if key not in entry:
            return default
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(where, f"{key} must be a whole number, not {_kind(value)}")
            return None
        if not low <= value <= high:
            shown = shorten(str(value), 20)
            self.problem(where, f"{key} must be from {low} to {high}, not {shown} ({why})")
            return None
        return value

    # ------------------------------------------------------------------------------------------- map

    def read(self, raw: str) -> DeploymentMap | None:
        value, unreadable = _load(raw)
        if unreadable:
            self.problem("the map", unreadable)
            return None
        top = self.entry(value, "the map", _MAP_KEYS, _MAP_KEYS)
        if top is None or "Waves" not in top:
            return None
        items = top["Waves"]
        if not isinstance(items, list):
            self.problem("Waves", f"must be a list of waves, not {_kind(items)}")
            return None
        if not items:
            self.problem("Waves", "must list at least one wave")
            return None
        waves = [self.wave(item, index) for index, item in enumerate(items)]
        self.check_size(items)
        self.check_budget()
        if self.problems:
            return None
        return DeploymentMap(waves=tuple(wave for wave in waves if wave is not None), home_account=self._home_account)

    def check_unique(self, entry: _Object, where: str) -> None:
        """Two entries for one stack (same account, Region and stack name) anywhere in the map. Read from
        the entry as written (when its Region, Account and StackName are strings), so an entry with another
        problem is checked too."""
        region, account = entry.get("Region"), entry.get("Account", self._home_account)
        stack = entry.get("StackName", self._default_stack_name)
        if not (isinstance(region, str) and isinstance(account, str) and isinstance(stack, str)):
            return
        key = (account, region, stack)
        if key in self._keys:
            self.problem(
                where,
                f"the same target as {self._keys[key]} (account {shorten(account, 20)}, Region {shorten(region, 40)}, "
                f"stack {shorten(stack, 130)}); a stack is deployed once per rollout",
            )
        else:
            self._keys[key] = where

    def check_size(self, items: list[Any]) -> None:
        total = sum(len(targets) for targets in _target_lists(items))
        if total > MAX_TARGETS:
            self.problem(
                "Waves",
                f"the map lists {total} targets; at most {MAX_TARGETS} are allowed, so that the change report "
                "and the approval stay readable (deploy a larger fleet with StackSets)",
            )

    def check_budget(self) -> None:
        """The time every wave may take, and the history events its rollout may record, when each wave's
        numbers could be read (a wave whose targets have problems still counts: its number of entries is
        known)."""
        if not self._timings or any(timing is None for timing in self._timings):
            return
        timings = [timing for timing in self._timings if timing is not None]
        history = history_problem(timings, DEFAULT_POLL_SECONDS)
        if history is not None:
            self.problem("Waves", history)
        needed = sum(timing.minutes for timing in timings)
        if needed <= ROLLOUT_BUDGET_MINUTES:
            return
        terms = " + ".join(f"{t.batches} x ({t.deploy_minutes} + {t.bake_minutes})" for t in timings)
        by_wave = ", ".join(f"{t.name} {t.minutes}" for t in timings)
        self.problem(
            "Waves",
            f"the waves need {terms} = {needed} minutes ({by_wave}); a rollout must fit in "
            f"{ROLLOUT_BUDGET_MINUTES} (CodePipeline ends a Lambda action after 24 hours): lower "
            "DeployTimeoutInMinutes or BakeTimeInMinutes, or raise MaxConcurrency",
        )

    # ------------------------------------------------------------------------------------------ wave

    def wave(self, item: object, index: int) -> Wave | None:
        raw_name = item.get("Name") if isinstance(item, _Object) else None
        where = _label(f"Waves[{index}]", raw_name)
        entry = self.entry(item, where, _WAVE_KEYS, ("Name", "Targets"))
        if entry is None:
            self._timings.append(None)
            return None
        before = len(self.problems)
        name = self.text(entry, "Name", where)
        if name is not None and not WAVE_NAME.fullmatch(name):
            self.problem(where, f"Name {shorten(name, 80)!r} must be 1 to 64 letters, digits or hyphens")
        elif name is not None and name in self._wave_names:
            self.problem(where, f"Name {name!r} is already the name of {self._wave_names[name]}")
        elif name is not None:
            self._wave_names[name] = f"Waves[{index}]"
        concurrency = self.whole(
            entry, "MaxConcurrency", where, 1, 1, MAX_CONCURRENCY, "a Step Functions inline Map runs at most 40 at once"
        )
        bake = self.whole(
            entry,
            "BakeTimeInMinutes",
            where,
            0,
            0,
            MAX_BAKE_MINUTES,
            "CloudFormation monitors rollback alarms for at most 180 minutes",
        )
        timeout = self.whole(
            entry,
            "DeployTimeoutInMinutes",
            where,
            60,
            1,
            MAX_DEPLOY_TIMEOUT_MINUTES,
            "CodePipeline ends a Lambda action after 24 hours",
        )
        alarms = self.alarms(entry, where)
        if concurrency is None or bake is None or timeout is None:
            self._timings.append(None)
        else:
            written = entry.get("Targets")
            count = len(written) if isinstance(written, list) else 0
            label = shorten(name, _LABEL_MAX) if name is not None else f"Waves[{index}]"
            self._timings.append(_Timing(label, math.ceil(count / concurrency), timeout, bake, count))
        targets = self.targets(entry, index)
        if len(self.problems) > before or name is None or targets is None:
            return None
        if concurrency is None or bake is None or timeout is None or alarms is None:
            return None  # each told above
        return Wave(
            name=name,
            targets=targets,
            max_concurrency=concurrency,
            bake_minutes=bake,
            deploy_timeout_minutes=timeout,
            alarms=alarms,
        )

    def alarms(self, entry: _Object, where: str) -> tuple[str, ...] | None:
        if "Alarms" not in entry:
            return ()
        items = entry["Alarms"]
        if not isinstance(items, list):
            self.problem(where, f"Alarms must be a list of alarm names, not {_kind(items)}")
            return None
        before = len(self.problems)
        if len(items) > MAX_ALARMS:
            self.problem(where, f"Alarms lists {len(items)} alarms; CloudFormation takes at most {MAX_ALARMS}")
        seen: set[str] = set()
        for index, name in enumerate(items):
            problem = _alarm_problem(name, seen)
            if problem:
                self.problem(where, f"Alarms[{index}] {problem}")
            if isinstance(name, str):
                seen.add(name)
        return tuple(items) if len(self.problems) == before else None

    def targets(self, entry: _Object, wave_index: int) -> tuple[Target, ...] | None:
        if "Targets" not in entry:
            return None
        items = entry["Targets"]
        where = _label(f"Waves[{wave_index}]", entry.get("Name"))
        if not isinstance(items, list):
            self.problem(where, f"Targets must be a list of targets, not {_kind(items)}")
            return None
        if not items:
            self.problem(where, "Targets must list at least one target")
            return None
        targets = [self.target(item, f"Waves[{wave_index}].Targets[{index}]") for index, item in enumerate(items)]
        if any(target is None for target in targets):
            return None
        return tuple(target for target in targets if target is not None)

    # ---------------------------------------------------------------------------------------- target

    def target(self, item: object, position: str) -> Target | None:
        where = _label(position, item.get("Region") if isinstance(item, _Object) else None)
        entry = self.entry(item, where, _TARGET_KEYS, ("Region", "ParameterFile"))
        if entry is None:
            return None
        before = len(self.problems)
        self.check_unique(entry, where)
        region = self.text(entry, "Region", where)
        if region is not None and region not in aws_regions():
            self.problem(where, f"Region {shorten(region, 80)!r} is not an AWS Region")
        written_account = entry.get("Account")
        if isinstance(written_account, int) and not isinstance(written_account, bool):
            self.problem(where, "Account must be a string of 12 digits, not a number (a number loses leading zeros)")
            account = None
        else:
            account = self.text(entry, "Account", where)
        if account is not None and not ACCOUNT_ID.fullmatch(account):
            self.problem(where, f"Account {shorten(account, 80)!r} must be an AWS account ID: 12 digits")
        stack_name = self.text(entry, "StackName", where)
        valid = self.check_stack_name(stack_name if stack_name is not None else self._default_stack_name, where)
        if valid and stack_name is not None and account in (None, self._home_account):
            self.check_home_stack_name(stack_name, where)
        path = self.text(entry, "ParameterFile", where)
        parameters = self.parameter_file(path, where) if path is not None else None
        if len(self.problems) > before or region is None or path is None or parameters is None:
            return None
        return Target(
            region=region,
            account=account,
            stack_name=stack_name if stack_name is not None else self._default_stack_name,
            parameter_file=path,
            parameters=parameters,
        )

    def check_stack_name(self, name: str, where: str) -> bool:
        """Whether ``name`` is a CloudFormation stack name; the problem is told when it is not."""
        shown = shorten(name, 80)
        if len(name) > STACK_NAME_MAX:
            self.problem(
                where, f"StackName {shown!r} is {len(name)} characters; CloudFormation allows at most {STACK_NAME_MAX}"
            )
            return False
        if not STACK_NAME.fullmatch(name):
            self.problem(
                where, f"StackName {shown!r} must start with a letter and hold only letters, digits and hyphens"
            )
            return False
        return True

    def check_home_stack_name(self, name: str, where: str) -> None:
        """In the solution's own account the functions may change only the stacks ``<default>`` and
        ``<default>-<suffix>`` (template.yaml's IAM policies), never the stage stack ``<default>-stage``;
        another account's bootstrap names its stacks itself."""
        default = self._default_stack_name
        if name == f"{default}{STAGE_SUFFIX}":
            self.problem(
                where, f"StackName {shorten(name, 80)!r} is the stage stack, which the pipeline manages itself"
            )
        elif name != default and not name.startswith(f"{default}-"):
            self.problem(
                where,
                f"StackName {shorten(name, 80)!r}: in the solution's account a target's stack is {default!r} or "
                f"begins with {default + '-'!r} (what the solution's roles may change)",
            )

    def parameter_file(self, path: str, where: str) -> dict[str, str] | None:
        """The parameters in the file at ``path``, its problems told at the first entry naming it."""
        shown = shorten(path, 120)
        if (reason := _unsafe_path(path)) is not None:
            self.problem(where, f"ParameterFile {shown!r} {reason}")
            return None
        if path in self._files:
            return self._files[path]
        before = len(self.problems)
        raw = self._read_file(path)
        parameters: dict[str, str] | None = None
        if raw is None:
            self.problem(where, f"ParameterFile {shown!r} is not in the repository")
        else:
            parameters = self.parameters(raw, f"ParameterFile {shown!r}", where)
        self._files[path] = parameters if len(self.problems) == before else None
        return self._files[path]

    def parameters(self, raw: str, what: str, where: str) -> dict[str, str] | None:
        written, unreadable = _load(raw)
        if unreadable:
            self.problem(where, f"{what} {unreadable}")
            return None
        for name in written.duplicates if isinstance(written, _Object) else ():
            self.problem(where, f"{what}: parameter {shorten(name, 80)!r} is written more than once")
        try:
            parameters = parse_parameters(raw, what)
        except ConfigurationError as error:
            self.problem(where, str(error))
            return None
        if len(parameters) > MAX_PARAMETERS:
            self.problem(
                where, f"{what} has {len(parameters)} parameters; a template declares at most {MAX_PARAMETERS}"
            )
        for name, value in parameters.items():
            if not PARAMETER_NAME.fullmatch(name):
                self.problem(
                    where,
                    f"{what}: parameter {shorten(name, 80)!r} cannot be in a template "
                    "(a parameter's name is 1 to 255 letters and digits)",
                )
            elif not _is_text(value):
                self.problem(where, f"{what}: the value of {name} is not valid UTF-8 text")
            elif len(value.encode("utf-8")) > PARAMETER_VALUE_MAX_BYTES:
                self.problem(
                    where,
                    f"{what}: the value of {name} is {len(value.encode('utf-8'))} bytes; "
                    f"CloudFormation takes at most {PARAMETER_VALUE_MAX_BYTES}",
                )
        return parameters


@dataclass(frozen=True)
class _Timing:
    """The longest a wave may take: ``batches`` rounds, each its deploy timeout then its bake; ``count``
    targets."""

    name: str
    batches: int
    deploy_minutes: int
    bake_minutes: int
    count: int

    @property
    def deploy_timeout_minutes(self) -> int:
        return self.deploy_minutes

    @property
    def minutes(self) -> int:
        return self.batches * (self.deploy_minutes + self.bake_minutes)


def _target_lists(items: list[Any]) -> list[list[Any]]:
    """The written Targets list of each wave that has one (an empty list for one that has none)."""
    return [
        item["Targets"] if isinstance(item, _Object) and isinstance(item.get("Targets"), list) else [] for item in items
    ]


def _alarm_problem(name: object, seen: set[str]) -> str | None:
    """What is wrong with an alarm name, or ``None``."""
    if not isinstance(name, str):
        return f"must be an alarm name, not {_kind(name)}"
    if not 1 <= len(name) <= ALARM_NAME_MAX:
        return f"must be 1 to {ALARM_NAME_MAX} characters, not {len(name)}"
    if not _is_text(name) or any(ord(character) < 32 or ord(character) == 127 for character in name):
        return f"{shorten(name, 80)!r} must be UTF-8 text with no control character"
    if name in seen:
        return f"{shorten(name, 80)!r} is listed twice"
    return None


def _unsafe_path(path: str) -> str | None:
    """Why ``path`` is not a relative path inside the repository, or ``None`` when it is one."""
    if not path:
        return "must name a file"
    if not _is_text(path) or any(not character.isprintable() for character in path):
        return "must be printable text"
    if "\\" in path:
        return "must separate folders with '/', not '\\'"
    if path.startswith("/"):
        return "must be a path relative to the repository's root, not an absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "must stay inside the repository (no '..')"
    if any(part in ("", ".") for part in parts):
        return "must have no empty or '.' part"
    return None


class DeploymentMapError(ConfigurationError):
    """A map that cannot be used: every problem, each naming its entry (``problems``), and all of them
    in one message."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        super().__init__(f"the deployment map has {count} problem{'s' if count != 1 else ''}: " + "; ".join(problems))


def parse(
    raw: str, *, read_file: Callable[[str], str | None], default_stack_name: str, home_account: str
) -> DeploymentMap:
    """The deployment map in ``raw``, each target's parameters read with ``read_file`` (a path in the
    repository -> its text, or ``None`` when there is no such file).

    A target without StackName gets ``default_stack_name``; one without Account is in ``home_account``.
    Raises :class:`DeploymentMapError` (a :class:`ConfigurationError`) naming every problem, entry by entry.
    """
    reader = _Reader(read_file, default_stack_name, home_account)
    result = reader.read(raw)
    if result is None:
        raise DeploymentMapError(reader.problems)
    return result


# ------------------------------------------------------------------------------------- default map


def default_map(
    *,
    primary_region: str,
    secondary_region: str,
    stack_name: str,
    primary_parameters: dict[str, str],
    secondary_parameters: dict[str, str],
    home_account: str,
) -> DeploymentMap:
    """The rollout without a map, as the pipeline has always run it: wave ``secondary`` (the secondary
    Region), then wave ``primary`` (the primary Region), one stack each in the solution's account, with
    the solution's parameter sets (``parameter_file`` ``""``), no bake and no alarms."""

    def wave(name: str, region: str, parameters: dict[str, str]) -> Wave:
        target = Target(
            region=region, account=None, stack_name=stack_name, parameter_file="", parameters=dict(parameters)
        )
        return Wave(name=name, targets=(target,))

    return DeploymentMap(
        waves=(
            wave("secondary", secondary_region, secondary_parameters),
            wave("primary", primary_region, primary_parameters),
        ),
        home_account=home_account,
    )


# ------------------------------------------------------------------------------------------- digest


def canonical_json(deployment_map: DeploymentMap) -> str:
    """The map as one stable JSON text (sorted keys, no spaces), with each target's parameters under
    ``Parameters``: without them, it is a map file that :func:`parse` reads back to the same map."""

    def target(item: Target) -> dict[str, Any]:
        value: dict[str, Any] = {
            "Region": item.region,
            "StackName": item.stack_name,
            "ParameterFile": item.parameter_file,
            "Parameters": item.parameters,
        }
        if item.account is not None:
            value["Account"] = item.account
        return value

    document = {
        "Waves": [
            {
                "Name": wave.name,
                "MaxConcurrency": wave.max_concurrency,
                "BakeTimeInMinutes": wave.bake_minutes,
                "DeployTimeoutInMinutes": wave.deploy_timeout_minutes,
                "Alarms": list(wave.alarms),
                "Targets": [target(item) for item in wave.targets],
            }
            for wave in deployment_map.waves
        ]
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def digest(deployment_map: DeploymentMap) -> str:
    """The SHA-256 (hex) of :func:`canonical_json`: names the map a release went out with."""
    return hashlib.sha256(canonical_json(deployment_map).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------ compare


@dataclass(frozen=True)
class PlacedTarget:
    """A target and the name of the wave it is in."""

    target: Target
    wave: str


@dataclass(frozen=True)
class MovedTarget:
    """A target now in another wave than in the previous map."""

    target: Target
    from_wave: str
    to_wave: str


@dataclass(frozen=True)
class ParametersChange:
    """A target whose parameters differ from the previous map's: the names added, removed or changed.
    Only names are kept: a value may be secret, and the change set shows what CloudFormation will do."""

    target: Target
    wave: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class MapChange:
    """How the current map differs from the one the previous release went out with."""

    added: tuple[PlacedTarget, ...] = ()
    removed: tuple[PlacedTarget, ...] = ()
    moved: tuple[MovedTarget, ...] = ()
    parameters_changed: tuple[ParametersChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.moved or self.parameters_changed)

    def lines(self) -> list[str]:
        """One line per change, for the change report: additions, removals, moves, then parameters."""
        return [
            *(f"{item.target.describe()}: added, in wave {item.wave}" for item in self.added),
            *(
                f"{item.target.describe()}: removed from the map; its stack is not deleted (it was in wave {item.wave})"
                for item in self.removed
            ),
            *(
                f"{item.target.describe()}: moved from wave {item.from_wave} to wave {item.to_wave}"
                for item in self.moved
            ),
            *(
                f"{item.target.describe()} (wave {item.wave}): parameters changed: {', '.join(item.names)}"
                for item in self.parameters_changed
            ),
        ]


def compare(previous: DeploymentMap | None, current: DeploymentMap) -> MapChange:
    """What changed from ``previous`` (``None`` when no map is known: every target is new) to
    ``current``. Targets are matched by key, so a target that names the solution's account matches one
    that names none."""
    before = previous.placed() if previous is not None else {}
    after = current.placed()
    added: list[PlacedTarget] = []
    moved: list[MovedTarget] = []
    changed: list[ParametersChange] = []
    for key, (wave, target) in after.items():
        if key not in before:
            added.append(PlacedTarget(target=target, wave=wave.name))
            continue
        old_wave, old_target = before[key]
        if old_wave.name != wave.name:
            moved.append(MovedTarget(target=target, from_wave=old_wave.name, to_wave=wave.name))
        old, new = old_target.parameters, target.parameters
        names = sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))
        if names:
            changed.append(ParametersChange(target=target, wave=wave.name, names=tuple(names)))
    removed = [
        PlacedTarget(target=target, wave=wave.name) for key, (wave, target) in before.items() if key not in after
    ]
    return MapChange(added=tuple(added), removed=tuple(removed), moved=tuple(moved), parameters_changed=tuple(changed))


# ------------------------------------------------------------------------------------------ summary


def summary_by_wave(deployment_map: DeploymentMap) -> list[str]:
    """One line per wave for the approval, e.g.
    ``wave 1 canary: 1 target (eu-west-1), concurrency 1, bake 30 min, alarms app-5xx``.

    A target outside the solution's account shows its account; stack names show when the map uses more
    than one."""
    stack_names = {target.stack_name for target in deployment_map.targets()}

    def place(target: Target) -> str:
        text = target.region
        if target.account and target.account != deployment_map.home_account:
            text += f" account {target.account}"
        if len(stack_names) > 1:
            text += f" stack {target.stack_name}"
        return text

    lines = []
    for number, wave in enumerate(deployment_map.waves, start=1):
        count = len(wave.targets)
        targets = f"{count} target{'s' if count != 1 else ''} ({', '.join(place(t) for t in wave.targets)})"
        alarms = f"alarms {', '.join(wave.alarms)}" if wave.alarms else "no alarms"
        lines.append(
            f"wave {number} {wave.name}: {targets}, concurrency {wave.max_concurrency}, "
            f"bake {wave.bake_minutes} min, {alarms}"
        )
    return lines
