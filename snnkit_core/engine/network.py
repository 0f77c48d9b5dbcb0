"""The network: input -> hidden layers (feedforward + recurrence + neuron) -> readout. Every spiking layer is a
:class:`Layer` with the same attributes, so rules need no special cases per model: ``ff``, ``skip_in`` (Linears
from earlier layers, keyed by source index), ``recurrence`` (or None; the output layer may have one too),
``delay``, ``neuron``, ``index`` and ``plan`` (its scan, :mod:`snnkit_core.engine.paths`). Feedforward and skip
currents of all T steps are one matrix product each; only the recurrence and the neuron run step by step."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from attrs import define, field
from torch import nn

from snnkit_core.contract.errors import IncompatibleError
from snnkit_core.contract.interfaces import Connectivity, LearningRule, Neuron, Recurrence
from snnkit_core.engine.paths import plan_network


class Layer(nn.Module):
    def __init__(self, in_size: int, neuron: Neuron, recurrence: Recurrence | None, bias: bool, dropout: float = 0.0,
                 delay: int = 0, ff: nn.Module | None = None):
        super().__init__()
        if delay < 0:
            raise IncompatibleError(f"a feedforward input delay must be >= 0 steps; got {delay}")
        self.delay = delay
        self.ff = ff if ff is not None else nn.Linear(in_size, neuron.size, bias=bias)  # Connectivity.make_feedforward
        self.dropout = dropout
        self.skip_in = nn.ModuleDict()
        self.recurrence, self.neuron, self.size = recurrence, neuron, neuron.size
        #: position among the network's spiking layers (hidden 0..L-1, then a spiking output layer); set by Network
        self.index = 0

    def drop(self, current: torch.Tensor) -> torch.Tensor:
        """Dropout with one mask per sample shared by all T steps (spikingjelly's layer.Dropout semantics)."""
        if not self.training or self.dropout <= 0:
            return current
        keep = 1 - self.dropout
        return current * (torch.bernoulli(current.new_full((1, *current.shape[1:]), keep)) / keep)

    def delayed(self, current: torch.Tensor) -> torch.Tensor:
        """``current`` (T, B, N) shifted ``delay`` steps later in time, zeros first: I[t] <- I[t - delay]."""
        d = min(self.delay, current.shape[0])
        return current if d == 0 else torch.cat([current.new_zeros(d, *current.shape[1:]), current[: len(current) - d]])


@define
class LayerTrace:
    y: torch.Tensor  # (T, B, N) output (PSC or spikes)
    s: torch.Tensor  # (T, B, N) spikes
    extra: dict = field(factory=dict)  # state a rule asked for (``record_state``), each (T, B, N)


@define
class NetworkOutput:
    logits: torch.Tensor  # (B, K)
    out: torch.Tensor  # (T, B, K): the output layer's per-step output (PSC/spikes, or linear readout)
    hidden: list[LayerTrace] = field(factory=list)
    out_spikes: torch.Tensor | None = None
    input: torch.Tensor | None = None  # (T, B, C): the encoded input the first layer's weights multiply
    output_trace: LayerTrace | None = None  # the spiking output layer's trace (None for a linear readout)

    @property
    def traces(self) -> list[LayerTrace]:
        """Every spiking layer's trace: hidden layers, then a spiking output layer."""
        return [*self.hidden, *([self.output_trace] if self.output_trace is not None else [])]


class Network(nn.Module):
    def __init__(self, input_size: int, hidden: Sequence[int], num_classes: int, make_neuron: Callable[[int], Neuron],
                 connectivity: Connectivity, readout: str = "spiking", bias: bool = False, init: str = "kaiming",
                 weight_scale: float = 1.0, dropout: float = 0.0):
        super().__init__()
        if not hidden:
            raise IncompatibleError("a network needs at least one hidden layer (--hidden 128)")
        self.sizes = [input_size, *hidden]
        self.input_neuron = make_neuron(input_size)  # only for encode_input (e.g. the PSC filter)
        self.layers = nn.ModuleList()
        for i, n in enumerate(hidden):
            ff = connectivity.make_feedforward(i, self.sizes[i], n, bias)
            self.layers.append(Layer(self.sizes[i], make_neuron(n), connectivity.make_recurrence(i, n), bias, dropout,
                                     connectivity.input_delay(i), ff))
        self.skip_edges = connectivity.skip_edges(len(hidden))
        if connectivity.has_skip and not self.skip_edges:
            raise IncompatibleError(f"connectivity {connectivity.name!r} adds skip edges from hidden layer l to l+2, "
                                    f"so it needs at least 3 hidden layers; got --hidden {','.join(map(str, hidden))}")
        for src, dst in self.skip_edges:
            if not (0 <= src < dst < len(hidden)) or dst - src < 2:
                raise IncompatibleError(f"connectivity {connectivity.name!r} asked for a skip edge {src}->{dst}, but "
                                        f"the network has {len(hidden)} hidden layers; skip edges need src < dst-1 "
                                        "(use at least 3 hidden layers)")
            self.layers[dst].skip_in[str(src)] = nn.Linear(hidden[src], hidden[dst], bias=False)
        self.readout = readout
        if readout == "spiking":
            self.output = Layer(hidden[-1], make_neuron(num_classes), connectivity.make_output_recurrence(num_classes),
                                bias, delay=connectivity.input_delay(len(hidden)))
        elif readout == "linear":
            if connectivity.make_output_recurrence(num_classes) is not None:
                raise IncompatibleError(f"connectivity {connectivity.name!r} gives the output layer a recurrence, "
                                        f"which needs a spiking readout, not 'linear'")
            self.output = nn.Linear(hidden[-1], num_classes, bias=True)
        else:
            raise IncompatibleError(f"readout must be 'spiking' or 'linear', not {readout!r}")
        for i, layer in enumerate(self.spiking_layers()):
            layer.index = i  # a layer's position among the spiking layers (the output layer last), for rules
        self._init_weights(init, weight_scale)
        self.rules: tuple[LearningRule, ...] = ()
        #: "auto" (the fastest that runs), "triton" (Triton kernels or an error), "torch", "reference" (the oracle)
        self._backend = "auto"
        self.plan_events: list[str] = []  #: an implementation that could not take a call (see engine.paths)
        self.plan()

    # ------------------------------------------------------------------------------------ scan plan

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self.plan(backend=value)

    def plan(self, backend: str | None = None, rules: Sequence[LearningRule] | None = None) -> list[str]:
        """Choose every spiking layer's scan once (:mod:`snnkit_core.engine.paths`) for ``backend`` and ``rules``;
        returns the paths. Called at assembly, and again when the backend is set or the device or dtype change."""
        backend = self._backend if backend is None else backend
        rules = self.rules if rules is None else tuple(rules)
        plans = plan_network(self, backend, rules)
        for layer, p in zip(self.spiking_layers(), plans):
            layer.plan = p
        self._backend, self.rules = backend, rules
        return self.paths()

    def paths(self) -> list[str]:
        """The planned scan path of each spiking layer (hidden layers, then a spiking output layer)."""
        return [layer.plan.path for layer in self.spiking_layers()]

    def layer_names(self) -> list[str]:
        """``layer0``, ``layer1``, ... for the hidden layers, then ``output`` for a spiking output layer."""
        return [f"layer{i}" for i in range(len(self.layers))] + (["output"] if self.readout == "spiking" else [])

    def plan_report(self) -> list[dict]:
        """Per spiking layer: its name, the implementation that runs, the path, and the faster ones skipped, why, and
        whether they cannot run in this process at all (``unavailable``, e.g. no C compiler)."""
        return [{"layer": name, "implementation": layer.plan.implementation, "path": layer.plan.path,
                 "skipped": [{"implementation": i, "reason": why, "unavailable": gone}
                             for i, why, gone in layer.plan.skipped]}
                for name, layer in zip(self.layer_names(), self.spiking_layers())]

    def _apply(self, fn, *args, **kwargs):
        res = super()._apply(fn, *args, **kwargs)
        if getattr(self, "_backend", None) is not None and hasattr(self, "output"):
            self.plan()  # a new device may allow (or rule out) kernels: choose again, once
        return res

    def after_step(self) -> None:
        """After each optimizer step: every attached rule's ``after_step``, then each neuron's ``clamp_``."""
        for r in self.rules:
            r.after_step(self)
        for layer in self.spiking_layers():
            layer.neuron.clamp_()

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

    def spiking_layers(self) -> list[Layer]:
        """Hidden layers, then the output layer when it is spiking."""
        return [*self.layers, self.output] if self.readout == "spiking" else list(self.layers)

    def _scan(self, layer: Layer, current: torch.Tensor) -> LayerTrace:
        res = layer.plan.scan(layer, current)
        return LayerTrace(res[0], res[1], res[2] if len(res) > 2 else {})

    def forward(self, x: torch.Tensor) -> NetworkOutput:
        """``x`` (T, B, C) -> :class:`NetworkOutput`."""
        h = x_enc = self.input_neuron.encode_input(x)
        ys: list[torch.Tensor] = []
        traces: list[LayerTrace] = []
        for layer in self.layers:
            # all T steps in one GEMM: (T*B, in) x (in, out)
            cur = layer.ff(h)
            for src, lin in layer.skip_in.items():  # summed inside the GEMM: no extra pass over (T, B, N)
                cur = torch.addmm(cur.flatten(0, -2), ys[int(src)].flatten(0, -2), lin.weight.t()).view_as(cur)
            cur = layer.delayed(layer.drop(cur))
            tr = self._scan(layer, cur)
            ys.append(tr.y)
            traces.append(tr)
            h = tr.y
        if self.readout == "spiking":
            tr = self._scan(self.output, self.output.delayed(self.output.ff(h)))
            return NetworkOutput(tr.y.sum(0), tr.y, traces, out_spikes=tr.s, input=x_enc, output_trace=tr)
        out = self.output(h)  # (T, B, K)
        return NetworkOutput(logits=out.sum(0), out=out, hidden=traces, input=x_enc)

    def on_epoch_end(self, epoch: int) -> None:
        for rec in [layer.recurrence for layer in self.layers if layer.recurrence is not None]:
            rec.on_epoch_end(epoch)

    def describe(self) -> dict:
        """``{"layerI": ...}``: what each hidden layer's recurrence and input map (``describe()``, if any) record."""
        return {f"layer{i}": d for i, layer in enumerate(self.layers) if (d := {
            **getattr(layer.recurrence, "describe", dict)(), **getattr(layer.ff, "describe", dict)()})}
