"""The installed components, by kind: what ``snnkit list-plugins`` shows, for Python."""

from __future__ import annotations

from snnkit_core.contract.errors import ConfigError
from snnkit_core.contract.plugins import get_registry

KINDS = ("neuron", "connectivity", "rule", "dataset")


def components(kind: str) -> list[str]:
    """The names of the installed components of ``kind`` (neuron, connectivity, rule or dataset), sorted."""
    return get_registry().names(_kind(kind))


def component(kind: str, name: str) -> type:
    """The class registered as ``kind`` ``name`` (an unknown name raises with close matches), e.g.
    ``component("neuron", "lif")(128)`` is a layer of 128 LIF neurons for your own ``nn.Module``."""
    return get_registry().get(_kind(kind), name)


def _kind(kind: str) -> str:
    kind = {"conn": "connectivity"}.get(kind, kind)
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    return kind
