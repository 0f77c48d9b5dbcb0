"""The base every registered component shares: its name, description and parameters."""

from __future__ import annotations

from typing import Any, ClassVar

from snnkit_core.contract.params import Param, resolve_params


class Component:
    """Shared class attributes for anything that can be registered."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line; `snnkit info` prints the class docstring too
    params: ClassVar[tuple[Param, ...]] = ()
    recipe: ClassVar[dict[str, Any]] = {}  # what it needs to learn where the user chose nothing (plugins.md#recipes)

    @classmethod
    def resolve(cls, given: dict[str, Any] | None) -> dict[str, Any]:
        """``given`` merged over the ``params`` defaults, converted and checked (unknown keys: close matches)."""
        return resolve_params(cls.name, cls.params, given or {})
