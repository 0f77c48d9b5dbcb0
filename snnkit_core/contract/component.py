"""The base every registered component shares: its name, description and parameters."""

from __future__ import annotations

from typing import Any, ClassVar

from snnkit_core.contract.params import Param, resolve_params


class Component:
    """Shared class attributes for anything that can be registered."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line; `snnkit info` prints the class docstring too
    params: ClassVar[tuple[Param, ...]] = ()
    #: what this component needs to learn when the user names nothing else, e.g. ``{"neuron": "lif-rsbp",
    #: "hidden": (400, 400), "neuron.v_th": 5.0, "dataset.steps": 150, "rule.st-rsbp.lr": 5e-3}``: config keys and
    #: ``SECTION.KEY`` parameters. ``snnkit train`` fills in only those the user did not choose (docs/plugins.md)
    recipe: ClassVar[dict[str, Any]] = {}

    @classmethod
    def resolve(cls, given: dict[str, Any] | None) -> dict[str, Any]:
        """``given`` merged over the ``params`` defaults, converted and checked (unknown keys: close matches)."""
        return resolve_params(cls.name, cls.params, given or {})
