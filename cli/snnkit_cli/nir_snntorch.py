"""Run a NIR graph in snnTorch through its public classes, and read a class out of it.

snnTorch's own ``import_from_nir`` cannot load recurrent graphs with nirtorch 2.x, and has no ``LI`` node (the
decoding node of snnkit's exports). This is the smallest route that can: each NIR node becomes a public snnTorch
neuron (``snn.Synaptic``, ``snn.Leaky``) or a ``torch.nn.Linear``, and nirtorch's public ``nir_to_torch`` wires
them, feeding every recurrent edge the previous step's output. The mapping is exact under NIR's forward-Euler
reading with the graph's own ``dt`` (its metadata; else ``dt`` given here), the current updated before the
membrane:

- ``CubaLIF`` -> ``snn.Synaptic(alpha = 1 - dt/τ_syn, beta = 1 - dt/τ_mem, threshold = v_threshold,
  reset_mechanism="zero", reset_delay=False)`` with its input scaled by ``w_in·dt/τ_syn·r·dt/τ_mem``;
- ``LIF`` -> ``snn.Leaky(beta = 1 - dt/τ, ...)`` with its input scaled by ``r·dt/τ``;
- ``LI`` -> ``snn.Leaky(beta = 1 - dt/τ, reset_mechanism="none")`` read as its membrane, input scaled by ``r·dt/τ``;
- ``Linear``/``Affine`` -> ``torch.nn.Linear``.

Refused, naming the node: ``v_leak != 0`` (snnTorch's neurons have no constant drive), ``v_reset != 0``, and any
other node type. Needs ``snntorch`` and ``nirtorch`` (``pip install snntorch nirtorch``).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from snnkit_core.contract.errors import IncompatibleError, MissingDependencyError


def _peers():
    try:
        import nir
        import nirtorch
        import snntorch
    except ImportError as exc:
        raise MissingDependencyError(f"running a NIR graph in snnTorch needs nir, snntorch and nirtorch ({exc}); "
                                     "install them with `pip install nir snntorch nirtorch`") from None
    return nir, nirtorch, snntorch


def _t(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32)


class _Scaled(torch.nn.Module):
    """A snnTorch neuron (``init_hidden=True``) fed ``scale·x``; ``membrane``: return its membrane, not spikes."""

    def __init__(self, neuron, scale, membrane: bool = False):
        super().__init__()
        self.neuron, self.membrane = neuron, membrane
        self.register_buffer("scale", _t(scale))

    def forward(self, x):
        out = self.neuron(x * self.scale)
        return out[1] if self.membrane else out


def _no_drive(key: str, node, v_reset: bool = True) -> None:
    if not np.allclose(node.v_leak, 0):
        raise IncompatibleError(f"NIR node {key!r} has v_leak != 0 (a constant drive, e.g. a layer bias), which "
                                "snnTorch's neurons do not have; export the network without a bias")
    if v_reset and node.v_reset is not None and not np.allclose(node.v_reset, 0):
        raise IncompatibleError(f"NIR node {key!r} resets to v_reset != 0; snnTorch's reset_mechanism='zero' "
                                "resets to 0")


def _modules(graph, dt: float) -> dict:
    """Each node of ``graph`` as a torch module (None for Input/Output), keyed by node name."""
    nir, _, snntorch = _peers()
    snn = snntorch
    out = {}
    for key, node in graph.nodes.items():
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        if isinstance(node, (nir.Linear, nir.Affine)):
            lin = torch.nn.Linear(node.weight.shape[1], node.weight.shape[0], bias=isinstance(node, nir.Affine))
            with torch.no_grad():
                lin.weight.copy_(_t(node.weight))
                if isinstance(node, nir.Affine):
                    lin.bias.copy_(_t(node.bias))
            out[key] = lin
        elif isinstance(node, nir.CubaLIF):
            _no_drive(key, node)
            scale = node.w_in * dt / node.tau_syn * node.r * dt / node.tau_mem
            out[key] = _Scaled(snn.Synaptic(alpha=_t(1 - dt / node.tau_syn), beta=_t(1 - dt / node.tau_mem),
                                            threshold=_t(node.v_threshold), reset_mechanism="zero",
                                            reset_delay=False, init_hidden=True), scale)
        elif isinstance(node, nir.LIF):
            _no_drive(key, node)
            out[key] = _Scaled(snn.Leaky(beta=_t(1 - dt / node.tau), threshold=_t(node.v_threshold),
                                         reset_mechanism="zero", reset_delay=False, init_hidden=True),
                               node.r * dt / node.tau)
        elif isinstance(node, nir.LI):
            _no_drive(key, node, v_reset=False)
            out[key] = _Scaled(snn.Leaky(beta=_t(1 - dt / node.tau), threshold=float("inf"), reset_mechanism="none",
                                         init_hidden=True, output=True), node.r * dt / node.tau, membrane=True)
        else:
            raise IncompatibleError(f"NIR node {key!r} is a {type(node).__name__}; this snnTorch route runs Input, "
                                    "Output, Linear, Affine, CubaLIF, LIF and LI nodes")
    return out


def snntorch_model(graph, dt: float | None = None) -> torch.nn.Module:
    """``graph`` (a ``nir.NIRGraph`` or a file name) as a nirtorch module of snnTorch neurons; call it once per
    time step: ``y, state = model(x_t)`` then ``model(x_t, state)``. Use :func:`run` for a whole input."""
    nir, nirtorch, _ = _peers()
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.read(graph)
    dt = float(dt) if dt is not None else float(graph.metadata.get("dt", 0))
    if not dt > 0:
        raise IncompatibleError("the NIR graph's metadata has no dt (seconds per step); pass dt=...")
    modules = _modules(graph, dt)
    by_node = {id(graph.nodes[k]): m for k, m in modules.items()}
    node_map = {type(graph.nodes[k]): (lambda node: by_node[id(node)]) for k in modules}
    with contextlib.redirect_stdout(io.StringIO()):  # nirtorch prints a note per node it maps
        return nirtorch.nir_to_torch(graph, node_map)


def run(graph, x: torch.Tensor, dt: float | None = None) -> torch.Tensor:
    """``x`` (T, B, C) through ``graph`` in snnTorch, from rest -> the output node's values (T, B, K)."""
    model = snntorch_model(graph, dt)
    ys, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            r = model(x[t].float()) if state is None else model(x[t].float(), state)
            if isinstance(r, tuple):
                r, state = r
            ys.append(r)
    return torch.stack(ys)


def decode(outputs: torch.Tensor) -> torch.Tensor:
    """The class of each example from a snnkit export's output (T, B, K): argmax over K of the sum over time."""
    return outputs.sum(0).argmax(-1)
