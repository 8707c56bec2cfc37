"""Typed configuration from the environment: one frozen dataclass per function.

``from_env`` fails loudly with :class:`ConfigurationError`, naming every missing or malformed
variable. There are no silent defaults: a function whose template wiring is wrong says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

from release_pipeline.errors import ConfigurationError
from release_pipeline.parameter_sets import parse_parameters

# Lambda sets AWS_REGION to the Region the function runs in; every function runs in the primary Region.
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
HOME_REGION = "AWS_REGION"


def home_region(environ: Mapping[str, str] | None = None) -> str:
    """The Region the function runs in: the solution's primary Region."""
    region = (os.environ if environ is None else environ).get(HOME_REGION, "").strip()
    if not region:
        raise ConfigurationError(f"{HOME_REGION} is not set")
    return region


class _Env:
    """Reads variables from a mapping and collects every problem before raising."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._problems: list[str] = []

    def text(self, name: str) -> str:
        value = self._environ.get(name, "").strip()
        if not value:
            self._problems.append(f"{name} is not set")
        return value

    def optional_text(self, name: str, required_with: str | None) -> str:
        """A variable that may be unset or empty (read as ``""``), unless ``required_with`` is set."""
        value = self._environ.get(name, "").strip()
        if not value and required_with is not None and self._environ.get(required_with, "").strip():
            self._problems.append(f"{name} is not set (it is required when {required_with} is set)")
        return value

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name)
        if value and value not in allowed:
            self._problems.append(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        return value

    def whole(self, name: str, low: int, high: int) -> int:
        """A whole number from ``low`` to ``high`` (0 when it is not one, the problem told)."""
        value = self.text(name)
        if not value:
            return 0
        # Digits only (no sign, no other script's digits), and few enough that int() reads them at once.
        number = int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else None
        if number is None or not low <= number <= high:
            self._problems.append(f"{name} must be a whole number from {low} to {high}, not {value[:40]!r}")
            return 0
        return number

    def names(self, name: str) -> tuple[str, ...]:
        """A comma-separated list of names."""
        return tuple(item.strip() for item in self.text(name).split(",") if item.strip())

    def pairs(self, name: str, allowed: tuple[str, ...]) -> dict[str, str]:
        """An ordered, comma-separated list of ``key=value`` pairs whose values are in ``allowed``."""
        result: dict[str, str] = {}
        for item in self.names(name):
            key, _, value = (part.strip() for part in item.partition("="))
            if not key or value not in allowed:
                self._problems.append(f"{name} entry {item!r} must be NAME=one of {', '.join(allowed)}")
            else:
                result[key] = value
        return result

    def parameters(self, name: str, label: str | None = None) -> dict[str, str]:
        raw = self.text(name)
        if not raw:
            return {}
        try:
            return parse_parameters(raw, label or name)
        except ConfigurationError as error:
            self._problems.append(str(error))
            return {}

    def check(self, function: str) -> None:
        if self._problems:
            raise ConfigurationError(f"{function} configuration: " + "; ".join(self._problems))


class FromEnv:
    """``from_env`` for a configuration dataclass whose fields each name their variable (:func:`text`,
    :func:`choice` and the others below): read every variable, then fail once, naming them all."""

    FUNCTION: ClassVar[str]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = _Env(os.environ if environ is None else environ)
        values = {item.name: item.metadata[_READ](env) for item in fields(cls)}  # type: ignore[arg-type]
        env.check(cls.FUNCTION)
        return cls(**values)


_READ = "read"


def _variable(read: Callable[[_Env], object]) -> Any:
    return field(metadata={_READ: read})


def text(name: str) -> Any:
    """A variable that must be set."""
    return _variable(lambda env: env.text(name))


def optional_text(name: str, *, required_with: str | None = None) -> Any:
    """A variable that may be unset or empty, read as ``""``: the value saying "none" (for example, no
    deployment map). With ``required_with``, it must be set whenever that variable is."""
    return _variable(lambda env: env.optional_text(name, required_with))


def flag(name: str, allowed: tuple[str, str], true: str) -> Any:
    """A variable that is one of ``allowed``, read as a bool: whether it is ``true``."""
    return _variable(lambda env: env.choice(name, allowed) == true)


def whole(name: str, low: int, high: int) -> Any:
    """A whole number from ``low`` to ``high``, such as a number of seconds."""
    return _variable(lambda env: env.whole(name, low, high))


def names(name: str) -> Any:
    """A comma-separated list of names."""
    return _variable(lambda env: env.names(name))


def pairs(name: str, allowed: tuple[str, ...]) -> Any:
    """An ordered, comma-separated list of ``key=value`` pairs whose values are in ``allowed``."""
    return _variable(lambda env: env.pairs(name, allowed))


def parameters(name: str) -> Any:
    """A parameter set: a JSON object of strings."""
    return _variable(lambda env: env.parameters(name))


@dataclass(frozen=True)
class Regions:
    """The primary (home) Region and the secondary Region."""

    primary: str
    secondary: str


@dataclass(frozen=True)
class ProductionStacks:
    """The production stack name in each Region."""

    regions: Regions
    primary_stack: str
    secondary_stack: str

    @classmethod
    def read(cls, env: _Env) -> ProductionStacks:
        return cls(
            regions=Regions(primary=env.text(HOME_REGION), secondary=env.text("SECONDARY_REGION")),
            primary_stack=env.text("PRIMARY_STACK_NAME"),
            secondary_stack=env.text("SECONDARY_STACK_NAME"),
        )

    def targets(self) -> tuple[tuple[str, str, str], ...]:
        """(role, Region, stack name) for the primary then the secondary stack."""
        return (
            ("primary", self.regions.primary, self.primary_stack),
            ("secondary", self.regions.secondary, self.secondary_stack),
        )


def production_stacks() -> Any:
    """The production stacks: the home Region, SECONDARY_REGION and both stack names."""
    return _variable(ProductionStacks.read)


@dataclass(frozen=True)
class Releases(FromEnv):
    """What the functions that read or write a release share: its record, its stage parameters and
    where its template is in the source."""

    release_record_parameter: str = text("RELEASE_RECORD_PARAMETER")
    stage_parameters: dict[str, str] = parameters("STAGE_PARAMETERS")
    template_path: str = text("TEMPLATE_PATH")
