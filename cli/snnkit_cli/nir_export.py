"""Export a trained network as a NIR graph (Neuromorphic Intermediate Representation, the ``nir`` package).

What is exported, for ``lif`` networks (docs/export.md has the derivation):

snnkit's ``lif`` (docs/neurons/lif.md, 'Equations'), per step t, with the layer's PSC a and input current I:

    u[t] = λ·ũ[t-1] + I[t],   s[t] = H(u[t] - V_th),   ũ[t] = u[t]·(1 - s[t]),   a[t] = (1-1/τs)·a[t-1] + s[t]/τs
    I[t] = W·a_prev[t] + b + w_rec ⊙ a[t-1] (or W_rec·a[t-1]) + Σ W_skip·a_src[t]

The PSC filter is linear, so W·a_prev = filter(W·s_prev): the filter of every edge can move from the sending
layer's output to the receiving layer's input. The network input is filtered the same way (``filter_input``).
Each spiking layer therefore becomes one NIR ``CubaLIF`` (synaptic current = the PSC filter of its summed
spike input; membrane = the hard-reset LIF) fed by ``Affine``/``Linear`` nodes from spikes:

    input -> Linear(W_1) -> CubaLIF_1 -> Linear(W_2) -> CubaLIF_2 ... -> CubaLIF_out -> output (spikes)
             self-recurrence: CubaLIF_l -> Linear(diag(w_rec)) -> CubaLIF_l   (delay 1 step: the simulator's
             previous-step spikes); dense recurrence: Linear(W_rec); skip edges: CubaLIF_l -> Linear(W) -> CubaLIF_l+2

NIR is continuous time. With a time step ``dt`` (seconds; snnkit's step is unitless, the papers use 1 ms):

    CubaLIF: τ_syn·dI/dt = -I + w_in·x,  τ_mem·dv/dt = (v_leak - v) + r·I,  spike when v > v_threshold, v -> v_reset

and its forward-Euler step (I updated first, the membrane then uses the new I, as snnTorch's ``Synaptic`` does)

    I[t] = (1 - dt/τ_syn)·I[t-1] + (dt/τ_syn)·w_in·x[t],   v[t] = (1 - dt/τ_mem)·v[t-1] + (dt/τ_mem)·(v_leak + r·I[t])

equals snnkit's update exactly when τ_syn = τs·dt, w_in = 1, τ_mem = τm·dt with τm = 1/(1-λ) (per neuron, so a
leak trained by ``bip`` is kept), r = τm (= τ_mem/dt), v_leak = τm·b (the layer's bias; 0 without bias),
v_threshold = V_th, v_reset = 0. A ``linear`` readout (y = W_o·a + b_o) becomes LI(τ = τs·dt, r = 1, v_leak = 0)
-> Affine(W_o, b_o): the LI's Euler step is exactly the PSC filter, so the output node carries y[t].

What NIR cannot express gives :class:`~snnkit_core.contract.errors.IncompatibleError` naming the part: neurons other
than ``lif`` (``lif-soft``'s subtractive reset, for one: NIR's neurons reset to v_reset), recurrences with a
span above 1 step (``src``'s and ``asrc``'s delays), and ``lif`` with ``filter_input = false`` (its first
layer would then need an unfiltered feedforward input beside a filtered recurrent one).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnkit.run import open_network
from snnkit_core.contract.atomic import atomic_write
from snnkit_core.contract.errors import ConfigError, IncompatibleError, MissingDependencyError

#: how a class is read out of an exported graph (also in its metadata)
DECODE = "argmax over the output node's values summed over time steps"


def _nir():
    try:
        import nir
    except ImportError:
        raise MissingDependencyError(
            "NIR export needs the nir package; install it with `pip install 'snnkit[nir]'` (or `pip install nir`)"
        ) from None
    return nir


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def _check_layer(name: str, layer) -> None:
    n = layer.neuron
    if n.name != "lif" or not all(hasattr(n, a) for a in ("leak", "tau_s", "v_th")):
        extra = (
            ": its soft reset (U = H - V_th·S) has no NIR counterpart (NIR's LIF and CubaLIF reset to v_reset)"
            if n.name == "lif-soft" else ": only `lif` (hard reset to 0, first-order PSC) is mapped to NIR"
        )
        raise IncompatibleError(f"cannot export {name} to NIR: neuron {n.name!r}{extra}")
    if getattr(layer, "delay", 0):
        raise IncompatibleError(f"cannot export {name} to NIR: its feedforward input arrives {layer.delay} step(s) "
                                "late "
                                f"(Connectivity.input_delay), which NIR's Linear edge cannot express")
    rec = layer.recurrence
    if rec is not None:
        if rec.span != 1:
            raise IncompatibleError(
                f"cannot export {name} to NIR: its recurrence ({type(rec).__name__}, e.g. src/asrc) reads the output "
                f"from {rec.span} steps back; NIR peers run only the one-step delay of a recurrent edge, so these "
                f"delays are not exported"
            )
        w = getattr(rec, "weight", None)
        if not isinstance(w, torch.Tensor) or rec.structure not in ("diagonal", "dense"):
            raise IncompatibleError(
                f"cannot export {name} to NIR: recurrence {type(rec).__name__} ({rec.structure}) is not a plain "
                f"diagonal or dense weight"
            )


def _cuba_lif(nir, layer, dt: float):
    """One ``lif`` layer as a CubaLIF: τ_syn = τs·dt, τ_mem = τm·dt with τm = 1/(1-λ) per neuron, r = τm,
    v_leak = τm·bias, threshold V_th, reset 0."""
    n = layer.neuron
    lam = _np(n.leak.expand(layer.size))
    tau_m = 1.0 / (1.0 - lam)  # steps, per neuron
    size = layer.size
    bias = _np(layer.ff.bias) if layer.ff.bias is not None else np.zeros(size)
    return nir.CubaLIF(tau_syn=np.full(size, float(n.tau_s) * dt), tau_mem=tau_m * dt, r=tau_m, v_leak=tau_m * bias,
                       v_threshold=np.full(size, float(n.v_th)), v_reset=np.zeros(size), w_in=np.ones(size))


def network_to_nir(network, dt: float = 1e-3, metadata: dict[str, Any] | None = None, output: str = "psc"):
    """The :class:`~snnkit_core.engine.network.Network` as a ``nir.NIRGraph`` (the module docstring gives the mapping).

    ``dt`` is the length of one snnkit step in seconds; it only scales the time constants (τ = steps·dt).
    ``output`` (spiking readout): ``"psc"``, the output layer's PSC through an LI node ``psc_decode`` (the
    class is argmax of its sum over time, as the PSC-summing rules decide), or ``"spikes"`` (argmax of the
    spike count). A linear readout always ends in its per-step values y[t]. The graph's metadata says which
    (``output``, ``decode``).
    Node names: ``input``, ``ff{l}`` (into hidden layer l), ``lif{l}``, ``rec{l}``, ``skip{src}_{dst}``,
    ``ff_out``, ``lif_out`` and ``psc_decode`` (spiking readout) or ``psc_out`` and ``readout`` (linear readout),
    ``output``.
    """
    nir = _nir()
    if not dt > 0:
        raise ConfigError(f"dt must be a positive number of seconds per step; got {dt}")
    if output not in ("psc", "spikes"):
        raise ConfigError(f"output must be 'psc' or 'spikes'; got {output!r}")
    _check_network(network)
    layers = list(network.layers)
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([network.sizes[0]])})}
    edges: list[tuple[str, str]] = []

    prev = "input"
    for i, layer in enumerate(layers):
        nodes[f"ff{i}"] = nir.Linear(weight=_np(layer.ff.weight))
        nodes[f"lif{i}"] = _cuba_lif(nir, layer, dt)
        edges += [(prev, f"ff{i}"), (f"ff{i}", f"lif{i}")]
        for src, lin in layer.skip_in.items():
            key = f"skip{src}_{i}"
            nodes[key] = nir.Linear(weight=_np(lin.weight))
            edges += [(f"lif{src}", key), (key, f"lif{i}")]
        rec = layer.recurrence
        if rec is not None:
            w = _np(rec.weight if rec.mask is None else rec.weight * rec.mask)  # Recurrence.mask: absent edges
            nodes[f"rec{i}"] = nir.Linear(weight=np.diag(w) if rec.structure == "diagonal" else w)
            edges += [(f"lif{i}", f"rec{i}"), (f"rec{i}", f"lif{i}")]
        prev = f"lif{i}"
    k = network.output.out_features if network.readout == "linear" else network.output.size
    nodes.update(_readout_nodes(nir, network, prev, dt, output, edges))
    nodes["output"] = nir.Output(output_type={"output": np.array([k])})
    meta = {"dt": dt, "exporter": "snnkit", "output": "readout" if network.readout == "linear" else output,
            "decode": DECODE}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={**meta, **(metadata or {})})


def _check_network(network) -> None:
    """Refuse, naming the part, what NIR cannot express."""
    layers = list(network.layers)
    for i, layer in enumerate(layers):
        _check_layer(f"hidden layer {i}", layer)
    if network.readout == "spiking":
        _check_layer("the output layer", network.output)
        if network.output.recurrence is not None:
            raise IncompatibleError("cannot export the output layer to NIR: its recurrence (Connectivity."
                                    "make_output_recurrence) is not mapped; only hidden-layer recurrences are")
    if not layers[0].neuron.hparams.get("filter_input", True):
        raise IncompatibleError(
            "cannot export to NIR: lif with filter_input = false feeds the first layer an unfiltered input while "
            "its recurrent and later inputs are PSC-filtered; one CubaLIF cannot hold both (export runs trained "
            "with filter_input = true)"
        )


def _readout_nodes(nir, network, prev: str, dt: float, output: str, edges: list) -> dict[str, Any]:
    """The nodes after the last hidden layer ``prev``, appending their edges: the spiking output layer, then its
    PSC as an LI (``output = "psc"``) or its spikes; or the linear readout (its own PSC filter, then Affine)."""
    nodes: dict[str, Any] = {}
    if network.readout == "spiking":
        nodes["ff_out"] = nir.Linear(weight=_np(network.output.ff.weight))
        nodes["lif_out"] = _cuba_lif(nir, network.output, dt)
        edges += [(prev, "ff_out"), ("ff_out", "lif_out")]
        if output == "psc":  # the LI's Euler step is the output layer's PSC filter: output[t] = a_out[t]
            size = network.output.size
            nodes["psc_decode"] = nir.LI(tau=np.full(size, float(network.output.neuron.tau_s) * dt),
                                         r=np.ones(size), v_leak=np.zeros(size))
            edges += [("lif_out", "psc_decode"), ("psc_decode", "output")]
        else:
            edges.append(("lif_out", "output"))
        return nodes
    tau_s = float(network.layers[-1].neuron.tau_s)
    size = network.layers[-1].size
    nodes["psc_out"] = nir.LI(tau=np.full(size, tau_s * dt), r=np.ones(size), v_leak=np.zeros(size))
    nodes["readout"] = nir.Affine(weight=_np(network.output.weight), bias=_np(network.output.bias))
    edges += [(prev, "psc_out"), ("psc_out", "readout"), ("readout", "output")]
    return nodes


def export_run(run_dir: str | Path, out: str | Path, fmt: str = "nir", dt: float = 1e-3, weights: str = "best") -> dict:
    """Write a run's trained network to ``out``; returns a summary (path, nodes, edges, dt)."""
    if fmt != "nir":
        raise ConfigError(f"unknown export format {fmt!r}; snnkit exports 'nir'")
    nir = _nir()
    built, net, weights = open_network(run_dir, weights)
    cfg = built.config
    graph = network_to_nir(net, dt=dt, output=rule_output(built.gradient_rule, net), metadata={
        "neuron": cfg.neuron, "conn": cfg.conn, "rules": list(cfg.rules), "dataset": cfg.dataset,
        "run_dir": str(run_dir), "weights": weights,
    })
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name, e.g. {out / 'network.nir'}")
    with tempfile.TemporaryDirectory() as tmp:  # nir writes a file by name; the bytes then go in atomically
        nir.write(Path(tmp) / "graph.nir", graph)
        try:
            atomic_write(out, (Path(tmp) / "graph.nir").read_bytes())  # a complete graph, or the old file
        except OSError as exc:  # e.g. a read-only run folder (the default target): the run itself reads fine
            raise ConfigError(f"--out {out} cannot be written ({exc.strerror}); choose another --out FILE, e.g. "
                              f"--out {Path.home() / 'network.nir'}") from None
    return {"path": str(out), "nodes": len(graph.nodes), "edges": len(graph.edges), "dt": dt, "weights": weights}


def rule_output(rule, network) -> str:
    """Which output of a spiking readout the run's rule sums to decide the class: ``"psc"`` (the output layer's
    PSC, e.g. tssl-bp, bptt) or ``"spikes"`` (spike counts, e.g. st-rsbp), found by asking the rule's
    ``logits`` about an output whose PSC and spikes differ. A linear readout: ``"psc"`` (the graph ends in y[t])."""
    from snnkit_core.engine.network import NetworkOutput

    if network.readout != "spiking":
        return "psc"
    g = torch.Generator().manual_seed(0)
    psc, spikes = torch.rand(5, 2, 3, generator=g), (torch.rand(5, 2, 3, generator=g) < 0.5).float()
    scores = rule.logits(NetworkOutput(logits=psc.sum(0), out=psc, out_spikes=spikes))
    for name, values in (("psc", psc), ("spikes", spikes)):
        if torch.allclose(scores, values.sum(0)):
            return name
    raise IncompatibleError(f"cannot say in a NIR graph how rule {rule.name!r} decides the class: its logits are "
                            "neither the output PSC nor the spike counts summed over time; export from Python with "
                            "snnkit_cli.nir_export.network_to_nir(network, output='psc' or 'spikes')")


def simulate_nir(graph, x: np.ndarray, dt: float) -> np.ndarray:
    """An independent float64 numpy run of a NIR graph made of Input, Linear, Affine, CubaLIF, LI, Output nodes,
    under the forward-Euler reading in the module docstring; recurrent edges see the previous step's output.

    ``x`` (T, B, C) -> the output node's values (T, B, K). Used by the tests as an oracle that does not share
    code with snnkit's scan.
    """
    nir = _nir()
    nodes, edges = graph.nodes, graph.edges
    order, delayed = _topo_order(nodes, edges)
    T, B = x.shape[:2]
    state: dict[str, dict[str, np.ndarray]] = {}
    last: dict[str, np.ndarray] = {}  # each node's output at the previous step
    outs = []
    for t in range(T):
        now: dict[str, np.ndarray] = {}
        for key in order:
            node = nodes[key]
            ins = [last.get(s) if (s, d) in delayed else now[s] for s, d in edges if d == key]
            ins = [v for v in ins if v is not None]  # a delayed edge reads nothing before the first step
            inp = sum(ins) if ins else None
            if isinstance(node, nir.Input):
                now[key] = x[t]
            elif isinstance(node, (nir.Linear, nir.Affine)):
                y = np.zeros((B, node.weight.shape[0])) if inp is None else inp @ node.weight.T
                now[key] = y + node.bias if isinstance(node, nir.Affine) else y
            elif isinstance(node, nir.CubaLIF):
                st = state.setdefault(
                    key, {"i": np.zeros((B, node.tau_mem.size)), "v": np.zeros((B, node.tau_mem.size))}
                )
                if inp is None:
                    inp = 0.0
                st["i"] = (1 - dt / node.tau_syn) * st["i"] + (dt / node.tau_syn) * node.w_in * inp
                v = (1 - dt / node.tau_mem) * st["v"] + (dt / node.tau_mem) * (node.v_leak + node.r * st["i"])
                s = (v > node.v_threshold).astype(np.float64)
                reset = node.v_reset if node.v_reset is not None else 0.0
                st["v"] = np.where(s > 0, reset, v)
                now[key] = s
            elif isinstance(node, nir.LI):
                st = state.setdefault(key, {"v": np.zeros((B, node.tau.size))})
                st["v"] = (1 - dt / node.tau) * st["v"] + (dt / node.tau) * (node.v_leak + node.r * inp)
                now[key] = st["v"]
            elif isinstance(node, nir.Output):
                now[key] = inp
            else:
                raise IncompatibleError(f"simulate_nir does not run NIR node {key!r} of type {type(node).__name__}")
        last = now
        outs.append(now["output"])
    return np.stack(outs)


def _topo_order(nodes, edges) -> tuple[list[str], set[tuple[str, str]]]:
    """An order where every input comes first, and the set of delayed edges: an edge out of a neuron node whose
    target leads back to that neuron closes a recurrent loop, so it carries the neuron's previous-step output."""
    nir = _nir()
    neuron_types = (nir.CubaLIF, nir.LIF, nir.LI)

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            k = todo.pop()
            if k == b:
                return True
            if k not in seen:
                seen.add(k)
                todo += [d for s, d in edges if s == k]
        return False

    delayed = {(s, d) for s, d in edges if isinstance(nodes[s], neuron_types) and reaches(d, s)}
    order: list[str] = []
    placed: set[str] = set()

    def visit(k: str, path: frozenset) -> None:
        if k in placed:
            return
        if k in path:
            raise IncompatibleError(f"the NIR graph has a loop through {k!r} that no neuron delays")
        for s, d in edges:
            if d == k and (s, d) not in delayed:
                visit(s, path | {k})
        placed.add(k)
        order.append(k)

    for k in nodes:
        visit(k, frozenset())
    return order, delayed
