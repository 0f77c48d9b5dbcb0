"""``snnkit import-nir FILE --out RUN_DIR``: a NIR graph of CubaLIF layers as a snnkit ``lif`` network in a run
directory (config.toml + checkpoint.pt), so ``snnkit eval``, ``--init-from`` and ``snnkit export`` work on it.

What is read (docs/export.md, 'Importing a NIR graph', has the derivation):

- a chain ``Input -> W -> CubaLIF -> W -> CubaLIF ... -> CubaLIF -> Output`` (W: ``Linear``, or ``Affine`` with a
  zero bias); the last CubaLIF is snnkit's spiking output layer, the others its hidden layers. An ``LI`` between
  the last CubaLIF and ``Output`` (the decoding node of snnkit's own export) is dropped;
- recurrent edges ``CubaLIF_l -> W -> CubaLIF_l`` on hidden layers: diagonal (``conn = self``) or dense
  (``conn = dense``); skip edges ``CubaLIF_l -> W -> CubaLIF_l+2`` with diagonal recurrences (``conn = srsc``);
  nested sub-graphs (snnTorch writes ``RSynaptic`` as one) are flattened first;
- per CubaLIF: one ``tau_syn`` for the whole graph (snnkit's ``lif`` has one PSC time constant: tau_s =
  τ_syn/dt > 1 step), ``v_reset = 0``; ``tau_mem``, ``r``, ``w_in``, ``v_threshold`` and ``v_leak`` per neuron.

With g_i = w_in·r·dt/τ_mem (the gain from snnkit's normalised PSC to NIR's membrane), neuron i is snnkit's with
leak λ_i = 1 - dt/τ_mem, incoming weights × g_i/θ_i, bias (dt/τ_mem)·v_leak/θ_i and threshold 1; when g/θ is one
number k for every neuron, the weights are kept, the threshold is 1/k and the bias (dt/τ_mem)·v_leak/(θ·k) instead.
Anything else is refused with the node named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnkit_core.contract.errors import ConfigError, IncompatibleError, MissingDependencyError


def _nir():
    try:
        import nir
    except ImportError:
        raise MissingDependencyError("import-nir needs the nir package; install it with `pip install 'snnkit[nir]'` "
                                     "(or `pip install nir`)") from None
    return nir


def flatten(nir, graph) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The graph's nodes and edges with every nested ``NIRGraph`` node replaced by its own nodes (``sub.name``)."""
    nodes, edges = dict(graph.nodes), list(graph.edges)
    while any(isinstance(n, nir.NIRGraph) for n in nodes.values()):
        key = next(k for k, n in nodes.items() if isinstance(n, nir.NIRGraph))
        sub = nodes.pop(key)
        inner, inner_edges = flatten(nir, sub)
        ins = [k for k, n in inner.items() if isinstance(n, nir.Input)]
        outs = [k for k, n in inner.items() if isinstance(n, nir.Output)]
        if len(ins) != 1 or len(outs) != 1:
            raise IncompatibleError(f"NIR sub-graph {key!r} has {len(ins)} inputs and {len(outs)} outputs; "
                                    "import-nir reads sub-graphs with one of each")
        firsts = [f"{key}.{d}" for s, d in inner_edges if s == ins[0]]
        lasts = [f"{key}.{s}" for s, d in inner_edges if d == outs[0]]
        nodes.update({f"{key}.{k}": n for k, n in inner.items() if k not in (ins[0], outs[0])})
        new = [(f"{key}.{s}", f"{key}.{d}") for s, d in inner_edges if s != ins[0] and d != outs[0]]
        for s, d in edges:
            if d == key:
                new += [(s, f) for f in firsts]
            elif s == key:
                new += [(last, d) for last in lasts]
            else:
                new.append((s, d))
        edges = new
    return nodes, edges


def _structure(nir, nodes, edges) -> tuple[list[str], dict[tuple[str, str], np.ndarray], str]:
    """The neuron nodes in layer order, each weight by (source, target) (source ``input`` for the first), and the
    key of the Input node."""
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise IncompatibleError(f"the NIR graph has {len(inputs)} Input nodes; import-nir reads graphs with one")
    weights: dict[tuple[str, str], np.ndarray] = {}
    neurons = []
    for key, node in nodes.items():
        if isinstance(node, (nir.Linear, nir.Affine)):
            src = [s for s, d in edges if d == key]
            dst = [d for s, d in edges if s == key]
            if len(src) != 1 or len(dst) != 1:
                raise IncompatibleError(f"NIR weight node {key!r} has {len(src)} sources and {len(dst)} targets; "
                                        "import-nir reads weights between one source and one neuron")
            if isinstance(node, nir.Affine) and node.bias is not None and np.any(np.asarray(node.bias) != 0):
                raise IncompatibleError(
                    f"NIR node {key!r} is an Affine with a bias: its constant input would pass through the next "
                    "CubaLIF's synaptic filter, which snnkit's lif (bias added to the membrane) cannot express; export "
                    "the network with bias-free linear layers (torch.nn.Linear(..., bias=False))")
            if (src[0], dst[0]) in weights:
                raise IncompatibleError(f"two NIR weight nodes connect {src[0]!r} to {dst[0]!r}; import-nir reads one")
            weights[(src[0], dst[0])] = np.asarray(node.weight, dtype=np.float64)
        elif isinstance(node, nir.CubaLIF):
            neurons.append(key)
        elif not isinstance(node, (nir.Input, nir.Output, nir.LI)):
            raise IncompatibleError(
                f"NIR node {key!r} is a {type(node).__name__}; import-nir reads Input, Output, Linear, Affine "
                "(zero bias) and CubaLIF nodes (and an LI decoding the output layer)")
    return _order(neurons, weights, inputs[0]), weights, inputs[0]


def _order(neurons: list[str], weights: dict, input_key: str) -> list[str]:
    """Neurons by their longest feed-forward distance from the input (recurrent self-edges left out)."""
    level: dict[str, int] = {input_key: 0}

    def depth(k: str, seen: frozenset) -> int:
        if k not in level:
            if k in seen:
                raise IncompatibleError(f"the NIR graph has a loop through {k!r} across layers; import-nir reads "
                                        "recurrent edges from a layer to itself only")
            srcs = [s for (s, d) in weights if d == k and s != k]
            if not srcs:
                raise IncompatibleError(f"NIR neuron {k!r} has no input from the graph's Input or another neuron")
            level[k] = 1 + max(depth(s, seen | {k}) for s in srcs)
        return level[k]

    order = sorted(neurons, key=lambda k: depth(k, frozenset()))
    if [level[k] for k in order] != list(range(1, len(order) + 1)):
        raise IncompatibleError(
            f"the NIR graph's neurons are not one chain of layers (depths {[level[k] for k in order]}); import-nir "
            "reads Input -> layer 1 -> layer 2 ... with recurrent and skip (l -> l+2) edges")
    return order


def _layer_params(nodes: dict, order: list[str], sizes: list[int], dt: float) -> dict[str, Any]:
    """snnkit's lif parameters of the chain: tau_s, the threshold, and per layer the leak, the factor on the
    incoming weights and the bias (see the module docstring)."""
    cuba = [nodes[k] for k in order]
    tau_syn = np.concatenate([_per_neuron(n, "tau_syn", size) for n, size in zip(cuba, sizes)])
    if not np.allclose(tau_syn, tau_syn[0], rtol=1e-6):
        raise IncompatibleError(f"the NIR graph's CubaLIF nodes have different tau_syn ({tau_syn.min():g} to "
                                f"{tau_syn.max():g} s); snnkit's lif has one PSC time constant for the network")
    tau_s = float(tau_syn[0]) / dt
    if not tau_s > 1:
        raise IncompatibleError(f"tau_syn = {tau_syn[0]:g} s is {tau_s:g} steps of dt = {dt:g} s; snnkit's lif needs "
                                "more than 1 step (give the graph's step with --dt)")
    layers, ratios = [], []
    for key, n, size in zip(order, cuba, sizes):
        arr = {name: _per_neuron(n, name, size) for name in ("tau_mem", "r", "w_in", "v_threshold", "v_leak")}
        if n.v_reset is not None and np.any(np.asarray(n.v_reset) != 0):
            raise IncompatibleError(f"NIR node {key!r} resets to v_reset != 0; snnkit's lif resets to 0")
        leak = 1 - dt / arr["tau_mem"]
        if np.any(leak <= 0) or np.any(leak >= 1) or np.any(arr["v_threshold"] <= 0):
            raise IncompatibleError(f"NIR node {key!r} needs tau_mem > dt = {dt:g} s and v_threshold > 0 for snnkit's "
                                    "lif (is --dt the graph's step?)")
        layers.append({"leak": leak, "gain": arr["w_in"] * arr["r"] * dt / arr["tau_mem"],
                       "drive": arr["v_leak"] * dt / arr["tau_mem"],
                       "theta": arr["v_threshold"]})
        ratios.append(layers[-1]["gain"] / layers[-1]["theta"])
    ratios = np.concatenate(ratios)
    uniform = bool(np.allclose(ratios, ratios[0], rtol=1e-6))
    for p in layers:  # uniform: weights as they are, threshold 1/k; else weights x g/θ, threshold 1
        p["scale"] = np.ones_like(p["gain"]) if uniform else p["gain"] / p["theta"]
        p["bias"] = p["drive"] / p["gain"] if uniform else p["drive"] / p["theta"]
    tau_m = float(np.mean(np.concatenate([1 / (1 - p["leak"]) for p in layers])))
    return {"tau_s": _float32(tau_s), "v_th": _float32(1 / ratios[0]) if uniform else 1.0,
            "tau_m": _float32(max(tau_m, 1.5)), "layers": layers}


def _float32(value: float) -> float:
    """``value`` to the 7 significant digits a float32 network holds (8.0, not 7.9999998 from a float32 export)."""
    return float(f"{value:.7g}")


def _per_neuron(node, name: str, size: int) -> np.ndarray:
    value = np.asarray(getattr(node, name), dtype=np.float64).reshape(-1)
    if value.size not in (1, size):
        raise IncompatibleError(f"a CubaLIF's {name} has {value.size} values for {size} neurons")
    return np.broadcast_to(value, (size,))


def _connectivity(order: list[str], weights: dict, input_key: str) -> tuple[str, dict, dict]:
    """The snnkit conn of the chain, and its recurrent and skip weights by layer index."""
    index = {k: i for i, k in enumerate(order)}
    hidden = len(order) - 1
    rec, skip = {}, {}
    for (s, d), w in weights.items():
        i, j = index.get(s, -1), index[d]
        if s == input_key and j == 0 or s in index and j == i + 1:
            continue
        if i == j and j < hidden:
            rec[j] = w
        elif i >= 0 and j == i + 2 and j < hidden:
            skip[j] = (i, w)
        else:
            raise IncompatibleError(
                f"NIR edge {s!r} -> {d!r} is neither feed-forward, a hidden layer's recurrence nor a skip from hidden "
                "layer l to l+2; import-nir reads those (the output layer has no recurrence or skip in snnkit)")
    diagonal = all(np.array_equal(w, np.diag(np.diag(w))) for w in rec.values())
    if skip:
        if not diagonal or hidden < 3:
            raise IncompatibleError("the NIR graph has skip edges (snnkit's srsc) with dense recurrences or fewer than "
                                    "3 hidden layers; srsc has diagonal recurrences and 3 or more hidden layers")
        return "srsc", rec, skip
    return ("dense" if not diagonal else "self") if rec else "ff", rec, skip


def read_graph(path: str | Path, dt: float | None = None) -> dict[str, Any]:
    """A NIR file as the pieces of a snnkit network: ``conn``, ``hidden``, ``input_size``, ``classes``, the lif
    parameters (``tau_s``, ``tau_m``, ``v_th``) and ``state`` (weights and leaks by snnkit's state-dict keys)."""
    nir = _nir()
    graph = nir.read(str(path))
    if dt is None:
        dt = float(graph.metadata.get("dt", 1e-4)) if getattr(graph, "metadata", None) else 1e-4
    nodes, edges = flatten(nir, graph)
    order, weights, input_key = _structure(nir, nodes, edges)
    if len(order) < 2:
        raise IncompatibleError(f"the NIR graph has {len(order)} CubaLIF layer(s); a snnkit network has at least one "
                                "hidden layer before its spiking output layer")
    _check_output(nir, nodes, edges, order[-1])
    feeds = [weights.get((input_key if i == 0 else order[i - 1], k)) for i, k in enumerate(order)]
    if any(w is None for w in feeds):
        raise IncompatibleError("a CubaLIF in the NIR graph has no weight node from the layer before it")
    params = _layer_params(nodes, order, [int(w.shape[0]) for w in feeds], dt)
    conn, rec, skip = _connectivity(order, weights, input_key)
    bias = any(np.any(p["bias"] != 0) for p in params["layers"])
    state = _state(params["layers"], feeds, rec, skip, conn, bias)
    return {"conn": conn, "hidden": [int(w.shape[0]) for w in feeds[:-1]], "input_size": int(feeds[0].shape[1]),
            "classes": int(feeds[-1].shape[0]), "dt": dt, "bias": bias, "state": state,
            **{k: params[k] for k in ("tau_s", "tau_m", "v_th")}}


def _check_output(nir, nodes, edges, last: str) -> None:
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    srcs = [s for s, d in edges if outputs and d == outputs[0]]
    if len(outputs) != 1 or len(srcs) != 1:
        raise IncompatibleError("the NIR graph needs one Output node fed by one node")
    src = srcs[0]
    if isinstance(nodes[src], nir.LI):  # a decoding node after the output layer (snnkit's own export)
        src = next((s for s, d in edges if d == srcs[0]), None)
    if src != last:
        raise IncompatibleError(f"the NIR graph's Output reads {srcs[0]!r}, not the last CubaLIF {last!r}; import-nir "
                                "reads networks whose output is a spiking layer")


def _state(layers: list[dict], feeds: list, rec: dict, skip: dict, conn: str, bias: bool) -> dict[str, torch.Tensor]:
    """snnkit's state-dict entries: weights × each target neuron's factor, biases, leaks."""
    def t(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)

    state = {}
    hidden = len(layers) - 1
    for j, p in enumerate(layers):
        name = f"layers.{j}" if j < hidden else "output"
        scale = p["scale"][:, None]
        state[f"{name}.ff.weight"] = t(feeds[j] * scale)
        if bias:
            state[f"{name}.ff.bias"] = t(p["bias"])
        state[f"{name}.neuron.leak"] = t(p["leak"])
        if j in rec:
            w = rec[j] * scale
            state[f"{name}.recurrence.weight"] = t(np.diag(w) if conn in ("self", "srsc") else w)
        if j in skip:
            src, w = skip[j]
            state[f"{name}.skip_in.{src}.weight"] = t(w * scale)
    return state


def import_run(path: str | Path, out: str | Path, options: dict[str, Any], rules: tuple[str, ...] = (), sets=(),
               dt: float | None = None) -> dict[str, Any]:
    """Write ``out`` as a run directory holding the NIR file's network (manifest.json with a run id, config.toml,
    checkpoint.pt of epoch 0).
    ``options``: TrainConfig keys (dataset, data_dir, ...) over the defaults; returns a summary."""
    from snnkit_core.engine.rundir import RunDir
    from snnkit_core.engine.training import build

    from .options import new_config

    net = read_graph(path, dt)
    given = {**options, "neuron": "lif", "conn": net["conn"], "hidden": ",".join(map(str, net["hidden"])),
             "readout": "spiking", "bias": net["bias"]}
    sets = (*sets, f"neuron.tau_s={net['tau_s']!r}", f"neuron.tau_m={net['tau_m']!r}", f"neuron.v_th={net['v_th']!r}")
    cfg = new_config(None, given, tuple(rules) or ("bptt",), sets)
    built = build(cfg)
    network = built.network
    if network.sizes[0] != net["input_size"] or network.output.size != net["classes"]:
        raise ConfigError(
            f"the NIR network takes {net['input_size']} input channels and has {net['classes']} outputs; dataset "
            f"{cfg.dataset!r} gives {network.sizes[0]} channels and {network.output.size} classes. Choose a dataset "
            "that fits with --dataset (and its parameters with --set dataset.KEY=VALUE)")
    state = network.state_dict()
    for key in state:  # connections the graph does not have are absent: zero
        if ".recurrence." in key or ".skip_in." in key or key.endswith(".ff.bias"):
            state[key] = torch.zeros_like(state[key])
    unknown = sorted(set(net["state"]) - set(state))
    if unknown:
        raise IncompatibleError(f"the NIR network has parts that snnkit's {cfg.conn} network lacks: {unknown}")
    state.update(net["state"])
    network.load_state_dict(state)
    run = RunDir(out)
    run.check_new()
    import uuid

    import snnkit_core

    run.write_json(RunDir.MANIFEST, {"run_id": uuid.uuid4().hex, "snnkit": snnkit_core.__version__,  # first: a run
                                     "torch": torch.__version__, "imported_from": str(Path(path).absolute())})
    run.write_config(cfg)
    run.save_checkpoint({"epoch": 0, "model": network.state_dict(), "optimizer": {}, "rng": {}})
    return {"path": str(out), "conn": cfg.conn, "hidden": net["hidden"], "dt": net["dt"], "tau_s": net["tau_s"],
            "v_th": net["v_th"], "dataset": cfg.dataset}
