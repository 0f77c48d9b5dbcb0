"""Network assembly: input -> hidden layers (feedforward + recurrence + neuron) -> readout.

Every hidden layer is a :class:`Layer` with the same attributes, so rules need no special cases per model:
``ff`` (Linear), ``skip_in`` (Linears from earlier layers, keyed by source index), ``recurrence`` (or None),
``neuron``. Feedforward and skip currents of all T steps are one matrix product each; only the recurrence
and the neuron run step by step inside the scan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from attrs import define, field
from torch import nn

from .errors import IncompatibleError
from .interfaces import Connectivity, LearningRule, Neuron, Recurrence


class Layer(nn.Module):
    def __init__(self, in_size: int, neuron: Neuron, recurrence: Recurrence | None, bias: bool, dropout: float = 0.0):
        super().__init__()
        self.ff = nn.Linear(in_size, neuron.size, bias=bias)
        self.dropout = dropout
        self.skip_in = nn.ModuleDict()
        self.recurrence = recurrence
        self.neuron = neuron
        self.size = neuron.size

    def drop(self, current: torch.Tensor) -> torch.Tensor:
        """Dropout with one mask per sample shared by all T steps (spikingjelly's layer.Dropout semantics)."""
        if not self.training or self.dropout <= 0:
            return current
        keep = 1 - self.dropout
        mask = torch.bernoulli(current.new_full((1, *current.shape[1:]), keep)) / keep
        return current * mask

    def scan(self, current: torch.Tensor):
        if self.recurrence is None:
            from .scan import reference_scan

            return reference_scan(self.neuron, current)
        return self.recurrence.scan(self.neuron, current)


@define
class LayerTrace:
    y: torch.Tensor  # (T, B, N) output (PSC or spikes)
    s: torch.Tensor  # (T, B, N) spikes


@define
class NetworkOutput:
    logits: torch.Tensor  # (B, K)
    out: torch.Tensor  # (T, B, K): the output layer's per-step output (PSC/spikes, or linear readout)
    hidden: list[LayerTrace] = field(factory=list)
    out_spikes: torch.Tensor | None = None


class Network(nn.Module):
    def __init__(
        self,
        input_size: int,
        hidden: Sequence[int],
        num_classes: int,
        make_neuron: Callable[[int], Neuron],
        connectivity: Connectivity,
        readout: str = "spiking",
        bias: bool = False,
        init: str = "kaiming",
        weight_scale: float = 1.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not hidden:
            raise IncompatibleError("a network needs at least one hidden layer (--hidden 128)")
        self.sizes = [input_size, *hidden]
        self.input_neuron = make_neuron(input_size)  # only for encode_input (e.g. the PSC filter)
        self.layers = nn.ModuleList()
        for i, n in enumerate(hidden):
            self.layers.append(Layer(self.sizes[i], make_neuron(n), connectivity.make_recurrence(i, n), bias, dropout))
        self.skip_edges = connectivity.skip_edges(len(hidden))
        if connectivity.has_skip and not self.skip_edges:
            raise IncompatibleError(
                f"connectivity {connectivity.name!r} adds skip edges from hidden layer l to l+2, so it needs at least "
                f"3 hidden layers; got --hidden {','.join(map(str, hidden))}"
            )
        for src, dst in self.skip_edges:
            if not (0 <= src < dst < len(hidden)) or dst - src < 2:
                raise IncompatibleError(
                    f"connectivity {connectivity.name!r} asked for a skip edge {src}->{dst}, but the network has "
                    f"{len(hidden)} hidden layers; skip edges need src < dst-1 (use at least 3 hidden layers)"
                )
            self.layers[dst].skip_in[str(src)] = nn.Linear(hidden[src], hidden[dst], bias=False)
        self.readout = readout
        if readout == "spiking":
            self.output = Layer(hidden[-1], make_neuron(num_classes), None, bias)
        elif readout == "linear":
            self.output = nn.Linear(hidden[-1], num_classes, bias=True)
        else:
            raise IncompatibleError(f"readout must be 'spiking' or 'linear', not {readout!r}")
        self.scan_override: Callable | None = None  # set by a rule that chooses the layer backward
        #: "auto": a fused kernel where the neuron has one for this device, else "torch";
        #: "triton": the fused kernel, or an error saying why it cannot run;
        #: "torch": torch only, with a recurrence's faster exact scan (e.g. chunked SRC) where it has one;
        #: "reference": always the plain step-by-step scan (the oracle; `snnkit bench` compares them)
        self.backend = "auto"
        self._init_weights(init, weight_scale)

    def _init_weights(self, init: str, scale: float) -> None:
        """``kaiming``: kaiming_normal x scale on every spiking layer's weights (TSSL-BP); ``default``: PyTorch's."""
        if init not in ("kaiming", "default"):
            raise IncompatibleError(f"init must be 'kaiming' or 'default', not {init!r}")
        linears = [m for layer in self.spiking_layers() for m in layer.modules() if isinstance(m, nn.Linear)]
        for lin in linears:
            if init == "kaiming":
                nn.init.kaiming_normal_(lin.weight)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
            lin.weight.data.mul_(scale)

    @property
    def hidden_layers(self) -> list[Layer]:
        return list(self.layers)

    def spiking_layers(self) -> list[Layer]:
        """Hidden layers, then the output layer when it is spiking."""
        return [*self.layers, self.output] if self.readout == "spiking" else list(self.layers)

    def _scan(self, layer: Layer, current: torch.Tensor):
        if self.scan_override is not None:
            res = self.scan_override(layer, current)
            if res is not None:
                return res
        if self.backend == "reference":
            from .scan import reference_scan

            return reference_scan(layer.neuron, current, layer.recurrence)
        from .scan import kernel_calls

        layer.neuron.use_kernels = self.backend in ("auto", "triton")
        if layer.neuron.use_kernels:
            res = layer.neuron.fused_scan(current, layer.recurrence)
            if res is not None:
                return res
        if self.backend in ("auto", "torch"):  # e.g. the CPU scans of lif / lif-soft
            res = layer.neuron.fast_scan(current, layer.recurrence)
            if res is not None:
                return res
        before = kernel_calls()
        res = layer.scan(current)  # a recurrence's scan may still run the neuron's kernels (e.g. per chunk)
        if self.backend == "triton" and kernel_calls() == before:
            raise IncompatibleError(
                f"--backend triton: neuron {layer.neuron.name!r} has no fused kernel for this layer "
                f"(recurrence {getattr(layer.recurrence, 'structure', 'none')}, device {current.device.type}, "
                f"dtype {current.dtype}); Triton runs on CUDA (or on CPU under its interpreter: TRITON_INTERPRET=1 and "
                f"SNNKIT_TRITON_ON_CPU=1). Use --backend torch."
            )
        return res

    def forward(self, x: torch.Tensor) -> NetworkOutput:
        """``x`` (T, B, C) -> :class:`NetworkOutput`."""
        h = self.input_neuron.encode_input(x)
        T, B = h.shape[:2]
        ys: list[torch.Tensor] = []
        traces: list[LayerTrace] = []
        for i, layer in enumerate(self.layers):
            # all T steps in one GEMM: (T*B, in) x (in, out)
            cur = layer.ff(h)
            for src, lin in layer.skip_in.items():
                cur = cur + lin(ys[int(src)])
            cur = layer.drop(cur)
            y, s = self._scan(layer, cur)
            ys.append(y)
            traces.append(LayerTrace(y, s))
            h = y
        if self.readout == "spiking":
            y, s = self._scan(self.output, self.output.ff(h))
            return NetworkOutput(logits=y.sum(0), out=y, hidden=traces, out_spikes=s)
        out = self.output(h)  # (T, B, K)
        return NetworkOutput(logits=out.sum(0), out=out, hidden=traces)

    def on_epoch_end(self, epoch: int) -> None:
        for layer in self.layers:
            if layer.recurrence is not None:
                layer.recurrence.on_epoch_end(epoch)

    def describe(self) -> dict:
        info = {}
        for i, layer in enumerate(self.layers):
            if layer.recurrence is not None:
                d = layer.recurrence.describe()
                if d:
                    info[f"layer{i}"] = d
        return info


def check_compatible(neuron_cls, conn_cls, rules: Sequence[LearningRule], registry=None) -> None:
    """Fail before training, listing what would work instead."""
    gradient = [r for r in rules if r.role == "gradient"]
    if len(gradient) != 1:
        names = [r.name for r in gradient]
        hint = ""
        if registry is not None:
            hint = " Gradient rules: " + ", ".join(
                n for n in registry.names("rule") if registry.get("rule", n).role == "gradient"
            ) + "."
        raise IncompatibleError(
            f"exactly one gradient rule is needed; got {names or 'none'} "
            f"(add-on rules such as bip compose with one, e.g. --rule tssl-bp --rule bip).{hint}"
        )
    problems = [p for r in rules for p in r.check(neuron_cls, conn_cls)]
    if not problems:
        return
    msg = "incompatible combination: " + "; ".join(problems) + "."
    if registry is not None:
        alternatives = []
        for r in rules:
            if not r.check(neuron_cls, conn_cls):
                continue
            neurons = [n for n in registry.names("neuron") if not r.check(registry.get("neuron", n), conn_cls)]
            conns = [c for c in registry.names("connectivity") if not r.check(neuron_cls, registry.get("connectivity", c))]
            alternatives.append(
                f"rule {r.name!r} works with "
                + (f"neurons {neurons}" if neurons else "none of the installed neurons") + f" (with --conn {conn_cls.name}) and "
                + (f"connectivity {conns}" if conns else "none of the installed connectivity") + f" (with --neuron {neuron_cls.name})"
            )
        rules_ok = [
            n for n in registry.names("rule")
            if registry.get("rule", n).role == "gradient"
            and not registry.get("rule", n)().check(neuron_cls, conn_cls)
        ]
        if alternatives:
            msg += " " + "; ".join(alternatives) + "."
        msg += f" Gradient rules that accept --neuron {neuron_cls.name} --conn {conn_cls.name}: {rules_ok or 'none'}."
    raise IncompatibleError(msg)
