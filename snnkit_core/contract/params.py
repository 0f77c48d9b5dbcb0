"""Declared, documented component parameters: ``snnkit info NAME`` prints them, config files and ``--set
KIND.KEY=VALUE`` override them, and unknown keys fail with close matches."""

from __future__ import annotations

import math
from typing import Any

from attrs import frozen

from snnkit_core.contract.errors import ConfigError, did_you_mean


@frozen
class Param:
    """One declared parameter: its name, default (whose type values convert to), help, unit and choices."""

    name: str
    default: Any
    help: str
    unit: str = ""
    choices: tuple = ()


def resolve_params(owner: str, declared: tuple[Param, ...], given: dict[str, Any]) -> dict[str, Any]:
    """Merge ``given`` over the declared defaults, converting types and validating choices."""
    by_name = {p.name: p for p in declared}
    out = {p.name: p.default for p in declared}
    for key, value in given.items():
        if key not in by_name:
            raise ConfigError(f"{owner} has no parameter {key!r}.{did_you_mean(key, by_name)} Its parameters: "
                              f"{', '.join(sorted(by_name)) or '(none)'}.")
        out[key] = _convert(owner, by_name[key], value)
    return out


def _convert(owner: str, p: Param, value: Any) -> Any:
    default = p.default
    try:
        if isinstance(default, bool) and isinstance(value, str):
            if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(value)
            value = value.lower() in {"true", "1", "yes"}
        elif isinstance(default, (bool, int, float, str)):
            value = type(default)(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(value)  # NaN or inf: refused for every float parameter, naming it
    except (TypeError, ValueError):
        raise ConfigError(f"{owner}.{p.name} expects a {type(default).__name__} ({p.help})"
                          f"{' that is finite' * isinstance(default, float)}; got {value!r}.") from None
    if p.choices and value not in p.choices:
        raise ConfigError(f"{owner}.{p.name} must be one of {', '.join(map(str, p.choices))}; got {value!r}.")
    return value
