"""``snnkit eval RUN --neurobench``: NeuroBench's static and workload metrics of a run, computed by the
neurobench package itself (``pip install snnkit[neurobench]``).

NeuroBench measures a model through torch hooks: a forward-pre hook on every ``nn.Linear``/``nn.Conv*`` (its
inputs give the synaptic operations) and a forward hook on every activation module (its outputs give the
activation sparsity). A snnkit network computes all T feedforward products in one matrix product and runs its
recurrence inside a scan, so those hooks would not see what an event-driven implementation does. The
:class:`NeuroBenchView` is the small adapter: it runs the snnkit network unchanged (its predictions are snnkit's
own) and then hands NeuroBench, per spiking layer, copies of its connection modules called on the presynaptic
**spike trains**, as a time-stepped SNN (snnTorch's, on NeuroBench's leaderboards) would call them:

* the feedforward map (the layer's own module: ``nn.Linear``, or the connectivity's convolution) on the layer's
  input: the data for the first layer, the previous layer's spikes for the others; skip edges likewise;
* the recurrence as a module of its own: a dense or masked recurrence as an ``nn.Linear`` holding its effective
  weight (masked entries are zeros), a diagonal (self) recurrence as a depthwise ``nn.Conv1d`` (one weight per
  neuron), both on the layer's spikes delayed by the recurrence's span (the hard span of ``asrc`` in eval mode);
* the layer's spikes through an identity module registered as NeuroBench's activation.

When the view is exact (``exact`` in the record says it per layer): where a layer's output ``y`` is its spikes,
the view calls the modules on exactly what the network multiplies. Where ``y`` is the normalised PSC of the spikes
(``lif``), the network multiplies the PSC; the PSC is one linear filter shared by all of a layer's neurons, so
``W PSC(s) = PSC(W s)``: the event-driven network that sends spikes and filters the summed current is the same
network, and its synaptic operations are the ones counted. The same holds for the data through the first layer's
input filter. A recurrence is checked on random inputs against the view's module; a layer whose ``y`` is neither
(or whose recurrence does not match) is counted on its spikes anyway and marked ``"approximate"``.

Metrics (NeuroBench's definitions): ``footprint`` (bytes of all parameters and buffers of the snnkit network),
``connection_sparsity`` (zero weights / all weights of the connection modules above; neuron parameters are not
connections), ``activation_sparsity`` (zero entries / all entries of every spiking layer's spike trains, all steps
and samples), ``synaptic_operations`` per sample summed over all steps: ``Dense`` (every weight times every input
entry), ``Effective_MACs`` (non-zero weight x non-zero input, for a module whose input is not 0/1: the first layer
on real-valued data) and ``Effective_ACs`` (the same for 0/1 inputs: spikes), biases excluded; and
``classification_accuracy``. A recurrence is counted at every step, t = 0 included (where its input is zero),
as a step-by-step network computes it; neuron updates (leak, threshold, PSC filter) are not synaptic operations.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from snnkit_core.contract.errors import MissingDependencyError, SnnkitError

INSTALL = "pip install snnkit[neurobench]"


def import_neurobench():
    """``(Benchmark, TorchModel, metrics)`` of the neurobench package, or :class:`MissingDependencyError`."""
    try:
        from neurobench.benchmarks import Benchmark
        from neurobench.metrics import static, workload
        from neurobench.models import TorchModel
    except ImportError as exc:
        raise MissingDependencyError(f"--neurobench needs the neurobench package ({exc}); install it with "
                                     f"`{INSTALL}`") from None
    return Benchmark, TorchModel, static, workload


class Spikes(nn.Module):
    """Identity on a spiking layer's spikes: the activation module NeuroBench's hooks record."""

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return s


def delayed(s: torch.Tensor, d: int) -> torch.Tensor:
    """``s`` (T, B, N) ``d`` steps later, zeros first."""
    d = min(d, s.shape[0])
    return torch.cat([s.new_zeros(d, *s.shape[1:]), s[: len(s) - d]]) if d else s


class SelfWeights(nn.Module):
    """A diagonal recurrence ``w * s`` as a depthwise ``Conv1d`` (N weights, not N x N), so NeuroBench counts one
    operation per neuron and step, and its zeros only."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        n = weight.numel()
        self.conv = nn.Conv1d(n, n, kernel_size=1, groups=n, bias=False)
        self.conv.weight.data = weight.detach().clone().reshape(n, 1, 1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:  # (T, B, N)
        t, b, n = s.shape
        return self.conv(s.reshape(t * b, n, 1)).reshape(t, b, n)


def recurrence_module(rec) -> tuple[nn.Module, int, bool]:
    """``(module, delay, exact)`` for a recurrence in eval mode (module docstring)."""
    w = rec.effective_weight().detach()
    delay = int(rec.describe().get("span", rec.span)) if rec.describe() else int(rec.span)
    if w.dim() == 1:
        module: nn.Module = SelfWeights(w)
    else:
        module = nn.Linear(w.shape[1], w.shape[0], bias=False)
        module.weight.data = w.clone()
    g = torch.Generator().manual_seed(0)
    past = [torch.rand(3, w.shape[0], generator=g, dtype=w.dtype).to(w.device) for _ in range(rec.span)]
    with torch.no_grad():
        want = rec.recurrent_input(past)
        got = module(past[delay - 1][None])[0] if 1 <= delay <= rec.span else None
    exact = got is not None and torch.allclose(want, got, rtol=1e-5, atol=1e-6)
    return module, delay, exact


def _spike_equivalent(y: torch.Tensor, s: torch.Tensor, neuron) -> bool:
    """Whether multiplying ``s`` counts what multiplying ``y`` computes: ``y`` is ``s``, or its PSC."""
    return torch.equal(y, s) or bool(getattr(neuron, "has_psc", False))


class NeuroBenchView(nn.Module):
    """A snnkit network as NeuroBench's hooks expect it (module docstring). ``forward(x)``: x (B, T, C) batch first,
    as NeuroBench's data loader gives it -> the predicted classes (B,)."""

    def __init__(self, network, rule):
        super().__init__()
        self._held = (network, rule)  # not a child: its own modules must not be hooked (they would count twice)
        layers = network.spiking_layers()
        self.ff = nn.ModuleList(copy.deepcopy(layer.ff) for layer in layers)
        if network.readout != "spiking":
            self.ff.append(copy.deepcopy(network.output))
        self.skip = nn.ModuleDict({f"{src}_{i}": copy.deepcopy(lin) for i, layer in enumerate(network.layers)
                                   for src, lin in layer.skip_in.items()})
        self.rec = nn.ModuleDict()
        self.delay: dict[str, int] = {}
        self.exact: dict[str, str] = {}
        for i, layer in enumerate(layers):
            if layer.recurrence is not None:
                self.rec[str(i)], self.delay[str(i)], ok = recurrence_module(layer.recurrence)
                if not ok:
                    self.exact[f"{network.layer_names()[i]} recurrence"] = "approximate"
        self.spikes = nn.ModuleList(Spikes() for _ in layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        network, rule = self._held
        xt = x.transpose(0, 1)  # (T, B, C)
        out = network(xt)
        self.replay(network, xt, out)
        return rule.logits(out).argmax(1)

    def replay(self, network, xt: torch.Tensor, out) -> None:
        """Call the connection and activation modules on the spike trains of one forward pass ``out``."""
        names = network.layer_names()
        traces = out.traces
        if not (torch.equal(out.input, xt) or getattr(network.input_neuron, "has_psc", False)):
            self.exact.setdefault("input", "approximate")
        h, spikes = xt, []
        for i, (layer, tr) in enumerate(zip(network.spiking_layers(), traces)):
            self.ff[i](h)
            for src in layer.skip_in:
                self.skip[f"{src}_{i}"](spikes[int(src)])
            if str(i) in self.rec:
                self.rec[str(i)](delayed(tr.s, self.delay[str(i)]))
            self.spikes[i](tr.s)
            if not _spike_equivalent(tr.y, tr.s, layer.neuron):
                self.exact.setdefault(names[i], "approximate")
            spikes.append(tr.s)
            h = tr.s
        if network.readout != "spiking":
            self.ff[-1](h)


class _Batches:
    """The split in NeuroBench's data-loader shape: ``(x (B, T, C), y)`` batches encoded as ``snnkit eval``
    encodes them (same order, same seeded encoding), read lazily; ``len`` and ``.dataset`` as a DataLoader's."""

    def __init__(self, built, data, batch_size: int):
        self.built, self.data, self.batch_size = built, data, batch_size
        self.dataset = data

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def __iter__(self):
        from snnkit_core.engine.data import indexed_batches

        g = torch.Generator().manual_seed(0)
        for x, y, _ in indexed_batches(self.data, self.batch_size, False, g, self.built.device):
            yield x.to(self.built.device), y.to(self.built.device)


def measure(built, data, batch_size: int) -> dict[str, Any]:
    """NeuroBench's metrics of ``built``'s network on ``data`` (an ArrayData split), computed by neurobench."""
    Benchmark, TorchModel, static, workload = import_neurobench()
    network = built.network
    network.eval()
    view = NeuroBenchView(network, built.gradient_rule)
    model = TorchModel(view)
    model.add_activation_module(Spikes)
    metrics = [[static.ConnectionSparsity], [workload.ClassificationAccuracy, workload.ActivationSparsity,
                                              workload.SynapticOperations]]
    printed = io.StringIO()
    try:
        with torch.no_grad(), contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
            bench = Benchmark(model, _Batches(built, data, batch_size), [], [], metrics)
            results = bench.run(quiet=False)
            footprint = static.Footprint()(TorchModel(network))
    finally:
        network.train()
    failed = [line for line in printed.getvalue().splitlines() if line.startswith("Error")]
    if failed:  # NeuroBench reports a failing metric as 0.0 and prints why; that is not a result
        raise SnnkitError(f"neurobench could not compute a metric: {failed[0]}")
    synops = results["SynapticOperations"]
    return {
        "footprint_bytes": int(footprint),
        "connection_sparsity": float(results["ConnectionSparsity"]),
        "activation_sparsity": float(results["ActivationSparsity"]),
        "synaptic_operations": {k: float(v) for k, v in synops.items()},
        "classification_accuracy": float(results["ClassificationAccuracy"]),
        "n": len(data),
        "exact": {name: "approximate" for name in view.exact} or "all layers",
    }


def neurobench_eval(run_dir: str, split: str = "test", checkpoint: str = "best", data_dir: str | None = None,
                    batch_size: int | None = None, device: str | None = None, write: bool = True) -> dict[str, Any]:
    """The record of ``snnkit eval RUN --neurobench``: :func:`measure` on ``split``, written to
    ``RUN_DIR/eval/neurobench.json`` (``write``)."""
    import neurobench

    from snnkit.run import open_for_eval
    from snnkit_core.engine.rundir import RunDir

    import_neurobench()
    run = RunDir(run_dir)
    cfg = run.config()
    changes: dict[str, Any] = {"device": device or cfg.device}
    if data_dir:
        changes["data_dir"] = str(Path(data_dir).expanduser().absolute())
    built, used, ck, have = open_for_eval(run.path, cfg.evolve(**changes), checkpoint)
    if split not in have:
        raise SnnkitError(f"run {run_dir} has splits {sorted(have)}, not {split!r}")
    rec = {"run": str(run_dir), "split": split, "checkpoint": used, "epoch": int(ck.get("epoch", -1)) + 1,
           "neurobench": getattr(neurobench, "__version__", "unknown"),
           **measure(built, have[split], batch_size or cfg.batch_size)}
    if write:
        run.write_json("eval/neurobench.json", rec)
    return rec


def render(rec: dict[str, Any]) -> None:
    from rich.table import Table

    from .render import console

    ops = rec["synaptic_operations"]
    table = Table(title=f"NeuroBench metrics: {rec['run']} ({rec['split']}, {rec['n']} examples, {rec['checkpoint']} "
                        f"weights; neurobench {rec['neurobench']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [("footprint (bytes)", f"{rec['footprint_bytes']:,}"),
            ("connection sparsity", f"{rec['connection_sparsity']:.4f}"),
            ("activation sparsity", f"{rec['activation_sparsity']:.4f}"),
            ("synaptic ops per sample: dense", f"{ops['Dense']:,.0f}"),
            ("synaptic ops per sample: effective MACs", f"{ops['Effective_MACs']:,.0f}"),
            ("synaptic ops per sample: effective ACs", f"{ops['Effective_ACs']:,.0f}"),
            ("classification accuracy", f"{rec['classification_accuracy']:.4f}")]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    exact = rec["exact"]
    console.print("view: exact for all layers" if exact == "all layers" else
                  f"view: approximate for {', '.join(exact)} (counted on their spikes)")
