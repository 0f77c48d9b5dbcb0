"""Assembly, used by training and ``snnkit bench`` so both run the same network: check the rules fit the
components (:mod:`snnkit_core.contract.compat`) and the backend, build the network, let each rule ``setup`` it,
move it to the device and plan every layer's scan once (:mod:`snnkit_core.engine.paths`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from snnkit_core.contract.compat import check_compatible
from snnkit_core.engine.network import Network
from snnkit_core.engine.paths import check_backend


def assemble(neuron_cls, conn, rules: Sequence, *, input_size: int, num_classes: int, hidden: Sequence[int],
             neuron_params: dict | None = None, readout: str | None = None, backend: str = "auto",
             device: torch.device | str = "cpu", registry=None, bias: bool = False, init: str = "kaiming",
             weight_scale: float = 1.0, dropout: float = 0.0, seed: int | None = None) -> Network:
    """The planned network for ``neuron_cls``, connectivity instance ``conn`` and rule instances ``rules``.

    ``readout`` None takes the gradient rule's; ``seed`` (when given) seeds torch just before the weights are
    drawn. Raises :class:`~snnkit_core.contract.errors.IncompatibleError` / ``ConfigError`` before anything trains.
    """
    check_compatible(neuron_cls, type(conn), rules, registry=registry)
    check_backend(backend, rules)
    grad_rule = next(r for r in rules if r.role == "gradient")
    neuron_params = neuron_params or {}
    if seed is not None:
        torch.manual_seed(seed)
    network = Network(
        input_size=input_size, hidden=hidden, num_classes=num_classes,
        make_neuron=lambda n: neuron_cls(n, **neuron_params), connectivity=conn,
        readout=readout or grad_rule.readout, bias=bias, init=init, weight_scale=weight_scale, dropout=dropout,
    )
    for r in rules:
        r.setup(network)
    network.to(device)
    network.plan(backend=backend, rules=rules)
    return network
