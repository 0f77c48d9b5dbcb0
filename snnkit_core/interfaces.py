"""The four component interfaces: Neuron, Connectivity, LearningRule, Dataset.

Conventions (everywhere in snnkit):

* tensors are time-major: ``(T, B, N)``; one step is ``dt`` (1 ms in the papers);
* a neuron's *output* ``y`` is what the next layer's weights multiply: the normalised PSC ``a`` for ``lif``,
  the spikes ``s`` for neurons without a synaptic trace;
* recurrent connections act on the same output ``y`` of the layer's own past steps.

Capabilities are class attributes, so assembly can check a combination before anything is built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from attrs import evolve, field, frozen
from attrs.validators import is_callable, optional
from torch import nn

from .params import Param, resolve_params


class _Component:
    """Shared class attributes for anything that can be registered."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line; `snnkit info` prints the class docstring too
    params: ClassVar[tuple[Param, ...]] = ()

    @classmethod
    def resolve(cls, given: dict[str, Any] | None) -> dict[str, Any]:
        return resolve_params(cls.name, cls.params, given or {})


# --------------------------------------------------------------------------------------------- neuron


class Neuron(_Component, nn.Module, ABC):
    """Per-layer dynamics of ``size`` neurons.

    ``step`` is a pure function of the input current and the explicit state (a NamedTuple); the module only
    holds parameters. The reference scan in :mod:`snnkit_core.scan` loops ``step`` over time and is the oracle
    for every fused or custom scan.
    """

    #: output ``y`` is a synaptic trace (PSC) rather than the raw spikes (TSSL-BP needs this)
    has_psc: ClassVar[bool] = False
    #: ``step`` is differentiable through a surrogate spike derivative (BPTT-style rules need this)
    has_surrogate: ClassVar[bool] = True
    #: the leak is a per-neuron tensor named ``leak`` that a rule may make trainable (BIP needs this)
    has_leak: ClassVar[bool] = False
    #: set by the network from ``--backend`` before each scan: a neuron runs its own fused kernels (in
    #: ``fused_scan`` or e.g. ``scan_chunk``) only when True, and calls ``snnkit_core.scan.note_kernel_call()``
    #: when one ran
    use_kernels: bool = True

    def __init__(self, size: int, **params: Any):
        nn.Module.__init__(self)
        self.size = size
        self.hparams = self.resolve(params)

    @abstractmethod
    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> NamedTuple:
        """Zero state for a batch (every sample starts from rest)."""

    @abstractmethod
    def step(self, current: torch.Tensor, state: NamedTuple) -> tuple[torch.Tensor, torch.Tensor, NamedTuple]:
        """One step: ``current`` (B, N) -> ``(y, s, new_state)`` with output ``y`` and spikes ``s``, both (B, N)."""

    def encode_input(self, x: torch.Tensor) -> torch.Tensor:
        """Map the network input (T, B, C) to what the first weight layer multiplies. Default: unchanged."""
        return x

    def clamp_(self) -> None:
        """Project trainable neuron parameters back to their valid range (called after each optimizer step)."""

    def fused_scan(self, current: torch.Tensor, recurrence: "Recurrence | None"):
        """A faster exact scan of the whole sequence, ``(y, s)`` each (T, B, N), or None where there is none.

        Called by the network under ``--backend auto|triton`` before the recurrence's own scan; it must
        equal the reference scan in forward and gradients. Default: None (no fused kernel).
        """
        return None

    def fast_scan(self, current: torch.Tensor, recurrence: "Recurrence | None"):
        """A faster exact scan without fused GPU kernels (e.g. one autograd node over a C or torch loop on the
        CPU), ``(y, s)`` each (T, B, N), or None where there is none.

        Called by the network under ``--backend auto|torch`` after ``fused_scan`` and before the recurrence's
        own scan; it must equal the reference scan in forward and gradients. Default: None.
        """
        return None

    # Optional methods, looked up by name by the rules and connectivities that use them (a neuron without
    # one simply does not support that feature; `snnkit info` and the rules' compatibility checks say so):
    #   set_surrogate(kind, width)   bptt: choose the surrogate derivative
    #   make_leak_trainable()        bip: turn ``leak`` into a per-neuron Parameter
    #   scan_chunk(current, state)   src/asrc: run several steps with known input in one call


# ------------------------------------------------------------------------------------------ connectivity


class Recurrence(nn.Module):
    """What a hidden layer feeds back to itself.

    ``structure`` is ``"diagonal"`` (one weight per neuron) or ``"dense"``; ``span`` is the furthest delay
    used. ``recurrent_input(past)`` gets ``past[j-1] = y[t-j]`` for ``j = 1..span`` (zeros before t = 0).
    A recurrence may override ``scan`` with a faster exact equivalent (for example k steps per product).
    """

    structure: ClassVar[str] = "dense"

    def __init__(self, size: int, span: int = 1):
        super().__init__()
        self.size = size
        self.span = span

    def recurrent_input(self, past: Sequence[torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def scan(self, neuron: Neuron, current: torch.Tensor):
        from .scan import reference_scan

        return reference_scan(neuron, current, self)

    def on_epoch_end(self, epoch: int) -> None:
        """Per-epoch schedule (e.g. ASRC's temperature)."""

    def describe(self) -> dict[str, Any]:
        """What to record about this recurrence in the run directory each epoch (e.g. learned spans)."""
        return {}


class Connectivity(_Component, ABC):
    """A connectivity pattern: per-layer recurrence plus extra layer-to-layer edges.

    Registered as a class; instantiated with its parameters. Capabilities:
    ``recurrence`` is ``"none"``, ``"diagonal"`` or ``"dense"``; ``has_skip`` says whether it adds edges.
    """

    recurrence: ClassVar[str] = "none"
    has_skip: ClassVar[bool] = False

    def __init__(self, **params: Any):
        self.hparams = self.resolve(params)

    def make_recurrence(self, layer: int, size: int) -> Recurrence | None:
        """The recurrence module of hidden layer ``layer`` (0-based), or None."""
        return None

    def skip_edges(self, num_hidden: int) -> list[tuple[int, int]]:
        """Extra feedforward edges ``(src, dst)`` between hidden layers (0-based, ``src < dst - 1``)."""
        return []


# ------------------------------------------------------------------------------------------------ rule


@frozen
class Compatibility:
    """What a rule accepts; ``None`` means any."""

    neurons: frozenset[str] | None = None
    connectivity: frozenset[str] | None = None
    neuron_caps: tuple[str, ...] = ()


class LearningRule(_Component, ABC):
    """How parameters get their updates.

    ``role = "gradient"`` rules own the loss, the readout and the optimizer; ``role = "addon"`` rules (BIP)
    compose with exactly one gradient rule: they may add trainable parameters (``setup``), install hooks,
    and act after each optimizer step. The five extension points a rule may use:

    (a) ``scan``: choose the forward/backward of a layer's scan (return None to keep the default);
    (b) ``setup``: install hooks on layer outputs or add parameters;
    (c) ``backward``: bypass autograd and write ``.grad`` directly;
    (d) ``param_groups``: change what is optimised and how;
    (e) ``on_epoch_end``: per-epoch schedules.
    """

    role: ClassVar[str] = "gradient"
    compatibility: ClassVar[Compatibility] = Compatibility()
    #: "spiking": an output layer of the same neuron, logits = sum over time of its output;
    #: "linear": logits = sum over time of a linear readout of the last hidden layer (ASRC's form)
    readout: ClassVar[str] = "spiking"

    def __init__(self, **params: Any):
        self.hparams = self.resolve(params)

    def check(self, neuron_cls: type[Neuron], conn_cls: type[Connectivity]) -> list[str]:
        """Reasons this rule cannot train that neuron with that connectivity (empty if it can)."""
        c = self.compatibility
        problems = []
        if c.neurons is not None and neuron_cls.name not in c.neurons:
            problems.append(f"rule {self.name!r} supports neurons {sorted(c.neurons)}, not {neuron_cls.name!r}")
        if c.connectivity is not None and conn_cls.name not in c.connectivity:
            problems.append(
                f"rule {self.name!r} supports connectivity {sorted(c.connectivity)}, not {conn_cls.name!r}"
            )
        for cap in c.neuron_caps:
            if not getattr(neuron_cls, cap, False):
                problems.append(f"rule {self.name!r} needs a neuron with {cap}; {neuron_cls.name!r} lacks it")
        return problems

    def setup(self, network) -> None:
        """Called once after assembly, before the optimizer is built."""

    def check_data(self, steps: int, channels: int) -> None:
        """Called once the data is loaded and before the run directory is written: raise
        :class:`~snnkit_core.errors.IncompatibleError` if this rule cannot train on ``steps``-step sequences."""

    def loss(self, output, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"rule {self.name!r} has no loss (is it an add-on?)")

    def logits(self, output) -> torch.Tensor:
        """Class scores (B, K) used for the prediction ``argmax``."""
        return output.logits

    def backward(self, loss: torch.Tensor, output, target: torch.Tensor, network) -> None:
        loss.backward()

    def param_groups(self, network, groups: list[dict]) -> list[dict]:
        return groups

    def make_optimizer(self, groups: list[dict], lr: float, weight_decay: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, epochs: int):
        """A learning-rate scheduler stepped once per epoch, or None."""
        return None

    def after_step(self, network) -> None:
        """Called after every optimizer step (weight clamping, parameter projection)."""

    def on_epoch_end(self, network, epoch: int) -> None:
        pass

    def describe(self, network) -> dict[str, Any]:
        """Extra per-epoch facts to record (e.g. BIP's leak distribution)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Rule state that a resumed run needs (tensors, numbers, strings); saved in the checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


# --------------------------------------------------------------------------------------------- dataset


@frozen
class ArrayData:
    """One split: ``x`` (N, T, C) float32 (dense or 0/1 spikes) and ``y`` (N,) int64.

    ``x`` may also be held in a compact dtype (uint8 / int16 spike counts, float16 features), typically a
    memory-mapped file from :mod:`snnkit_core.diskarray`, so a split larger than memory trains: :meth:`batch`
    reads only the indexed rows and converts them to float32 per batch. Counts up to 255 (uint8) or 32767
    (int16) convert exactly; float16 rounds features to 11 significant bits (relative error <= 2^-11).

    ``x`` may be a stride-0 ``expand`` (the same frame at every step); :meth:`rows` and :meth:`subset` keep it
    one. ``encode``, when given, turns each indexed batch ``x[idx]`` (B, T, C) into the network input (B, T, C),
    so a loader can keep intensities in memory and draw spikes per batch. It runs on the device the batch will
    be used on (so it should draw on ``x.device``) and takes its randomness from ``generator``: the training
    loop's per-epoch generator, or a fixed-seed one in evaluation, so both are reproducible; with ``None`` it
    must still be deterministic.
    """

    x: torch.Tensor
    y: torch.Tensor
    encode: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = field(
        default=None, validator=optional(is_callable())
    )

    def __attrs_post_init__(self):
        if self.x.ndim != 3 or self.y.ndim != 1 or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"ArrayData wants x (N, T, C) and y (N,); got {tuple(self.x.shape)} and {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return self.x.shape[0]

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """``x[idx]`` for integer indices ``idx`` (B,), keeping every stride-0 dimension a view.

        Plain ``x[idx]`` copies an ``expand``ed (N, T, C) into B x T x C floats; here each dimension of stride 0
        is narrowed to size 1, the (much smaller) base is indexed, and the result is expanded again.
        """
        if idx.dtype not in (torch.int64, torch.int32) or idx.ndim != 1:
            raise ValueError(f"ArrayData.rows wants integer indices (B,); got {idx.dtype} of shape {tuple(idx.shape)}")
        base = self.compact(self.x)
        picked = base.expand(len(idx), *base.shape[1:]) if base.shape[0] != self.x.shape[0] else base[idx]
        return picked.expand(len(idx), *self.x.shape[1:])

    @staticmethod
    def compact(x: torch.Tensor) -> torch.Tensor:
        """``x`` with every stride-0 dimension narrowed to size 1 (a view); ``compact(x).expand(x.shape)`` is ``x``."""
        for d in range(x.ndim):
            if x.stride(d) == 0 and x.shape[d] > 1:
                x = x.narrow(d, 0, 1)
        return x

    def batch(self, idx: torch.Tensor, device: torch.device | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """The network input for rows ``idx`` (B,): (B, T, C) float32 on ``device`` (default: where ``x`` is).

        Only the indexed rows are read (from a memory map: only their pages), moved to ``device`` in ``x``'s own
        dtype (a compact dtype moves 1/4 or 1/2 of the bytes), converted to float32 there, then ``encode``d.
        """
        x = self.rows(idx)
        if device is not None and x.device != device:
            x = self.compact(x).to(device, non_blocking=True).expand(x.shape)  # copy the base, not the expand
        if x.dtype != torch.float32:
            x = self.compact(x).float().expand(x.shape)
        if self.encode is not None:
            return self.encode(x, generator)
        return x.contiguous()

    def to(self, device: torch.device | str) -> "ArrayData":
        """The split on ``device`` as one tensor pair (a stride-0 ``expand`` moves only its base)."""
        x = self.compact(self.x).to(device).expand(self.x.shape)
        return evolve(self, x=x, y=self.y.to(device))

    def subset(self, limit: int | None, seed: int = 0) -> "ArrayData":
        """At most ``limit`` examples, drawn with a fixed seed so every class tends to appear (``encode`` kept)."""
        if limit is None or limit >= len(self):
            return self
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:limit].sort().values
        return evolve(self, x=self.rows(idx), y=self.y[idx])


class Dataset(_Component, ABC):
    """A dataset with named splits, loaded to memory as :class:`ArrayData`.

    ``data_dir`` is the data root (one folder per corpus) or a direct path to the corpus folder. Loaders
    raise :class:`snnkit_core.errors.DatasetError` naming the expected layout when files are missing.
    """

    source: ClassVar[str] = ""
    licence: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    #: False for a dataset that never reads ``data_dir`` (e.g. one shipped inside its package): ``--data-dir``
    #: given to it is refused instead of silently ignored
    reads_data_dir: ClassVar[bool] = True

    def __init__(self, data_dir: str | None = None, **params: Any):
        self.data_dir = data_dir
        self.hparams = self.resolve(params)

    @property
    @abstractmethod
    def num_classes(self) -> int: ...

    @property
    @abstractmethod
    def input_size(self) -> int: ...

    @property
    def class_names(self) -> list[str]:
        return [str(i) for i in range(self.num_classes)]

    @abstractmethod
    def load(self, split: str) -> ArrayData:
        """The whole split as tensors (cached on disk by the loader where preprocessing is costly)."""

    def identity(self) -> dict[str, Any]:
        """What the run manifest records to identify the data (name, parameters, checksums)."""
        return {"name": self.name, "params": dict(self.hparams)}
