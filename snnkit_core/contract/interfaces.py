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

from snnkit_core.contract.errors import IncompatibleError
from snnkit_core.contract.params import Param, resolve_params


class _Component:
    """Shared class attributes for anything that can be registered."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line; `snnkit info` prints the class docstring too
    params: ClassVar[tuple[Param, ...]] = ()

    @classmethod
    def resolve(cls, given: dict[str, Any] | None) -> dict[str, Any]:
        """``given`` merged over the ``params`` defaults, converted and checked (unknown keys fail with close matches)."""
        return resolve_params(cls.name, cls.params, given or {})


# --------------------------------------------------------------------------------------------- neuron


class Neuron(_Component, nn.Module, ABC):
    """Per-layer dynamics of ``size`` neurons.

    ``step`` is a pure function of the inputs and the explicit state (a NamedTuple); the module only holds
    parameters. The reference scan in :mod:`snnkit_core.contract.scan` loops ``step`` over time and is the oracle for
    every fused or custom scan. Every member a rule or connectivity uses is declared here with a default
    (docs/plugins.md lists them all).
    """

    #: output ``y`` is a normalised first-order PSC with time constant ``tau_s`` rather than the raw spikes
    has_psc: ClassVar[bool] = False
    #: ``step`` is differentiable through a surrogate spike derivative chosen by ``set_surrogate``
    has_surrogate: ClassVar[bool] = True
    #: the membrane decays by the per-neuron tensor ``leak`` (λ), which ``make_leak_trainable`` can train
    has_leak: ClassVar[bool] = False
    #: ``step`` depends on its two inputs only through ``current + recurrent``, so a fast path may add them first
    sums_inputs: ClassVar[bool] = True
    #: ``scan_chunk`` runs a fused kernel when ``kernel_mode`` allows it (a connectivity's chunked scan then uses it)
    has_chunk_kernel: ClassVar[bool] = False
    #: the surrogate ``(kind, width)`` a neuron uses until a rule calls ``set_surrogate``
    default_surrogate: ClassVar[tuple[str, float]] = ("sigmoid", 0.2)
    #: synaptic time constant of the PSC output in steps (``has_psc`` neurons set it), else None
    tau_s: float | None = None
    #: firing threshold (dimensionless), for rules that use it in their backward (tssl-bp), else None
    v_th: float | None = None
    #: "off", "auto" or "required": whether this neuron may / must run its own kernels; set once by the scan plan
    kernel_mode: str = "auto"

    def __init__(self, size: int, **params: Any):
        nn.Module.__init__(self)
        self.size = size
        self.hparams = self.resolve(params)
        #: per-neuron leak λ (N,) as a buffer or Parameter (``has_leak`` neurons set it), else None
        self.register_buffer("leak", None)
        self.surrogate = self.default_surrogate

    @abstractmethod
    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> NamedTuple:
        """Zero state for a batch (every sample starts from rest)."""

    @abstractmethod
    def step(self, current: torch.Tensor, state: NamedTuple, recurrent: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, NamedTuple]:
        """One step: feedforward ``current`` and ``recurrent`` input (B, N, or None) -> ``(y, s, new_state)``, each (B, N)."""

    def total_input(self, current: torch.Tensor, recurrent: torch.Tensor | None) -> torch.Tensor:
        """``current + recurrent`` (``current`` when there is no recurrent input): what a one-membrane neuron integrates."""
        return current if recurrent is None else current + recurrent

    def scan_chunk(self, current: torch.Tensor, state: NamedTuple, recurrent: torch.Tensor | None = None):
        """``current`` (L, B, N) and ``recurrent`` (L, B, N or None) -> ``(y, s, state)`` for L steps. Default: loops ``step``."""
        ys, ss = [], []
        recs = recurrent.unbind(0) if recurrent is not None else [None] * current.shape[0]
        for i_t, r_t in zip(current.unbind(0), recs):
            y, s, state = self.step(i_t, state, r_t)
            ys.append(y)
            ss.append(s)
        return torch.stack(ys), torch.stack(ss), state

    def encode_input(self, x: torch.Tensor) -> torch.Tensor:
        """Map the network input (T, B, C) to what the first weight layer multiplies. Default: unchanged."""
        return x

    def clamp_(self) -> None:
        """Project trainable neuron parameters back to their valid range (called after each optimizer step)."""

    def set_surrogate(self, kind: str, width: float) -> None:
        """Choose the surrogate derivative ``(kind, width)`` of ``step`` (bptt calls it). Default: stores ``self.surrogate``."""
        self.surrogate = (kind, width)

    def make_leak_trainable(self) -> nn.Parameter:
        """Turn the per-neuron ``leak`` buffer into a trainable Parameter and return it (bip calls it)."""
        if not self.has_leak or self.leak is None:
            raise IncompatibleError(f"neuron {self.name!r} has no per-neuron leak to train (has_leak is False)")
        if not isinstance(self.leak, nn.Parameter):
            value = self.leak.detach().clone()
            del self._buffers["leak"]
            self.leak = nn.Parameter(value)
        return self.leak

    def optim_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Optimizer groups for parameters that need their own settings (``params``, ``lr``, ...). Default: none."""
        return []

    def kernel_reason(self, device: torch.device) -> str | None:
        """Why this neuron's own kernels cannot run on ``device`` (None: they can). Default: it has none."""
        return f"neuron {self.name!r} has no fused kernel"

    def fused_scan_reason(self, recurrence: "Recurrence | None") -> str | None:
        """Why ``fused_scan`` cannot run this layer with ``recurrence`` (None: it can). Default: it has none."""
        return f"neuron {self.name!r} has no fused whole-sequence scan"

    def fused_scan(self, current: torch.Tensor, recurrence: "Recurrence | None"):
        """A faster exact scan of the whole sequence, ``(y, s)`` each (T, B, N), or None for an input it cannot take.

        The scan plan uses it for a layer when ``kernel_reason`` and ``fused_scan_reason`` are None; it must equal
        the reference scan in forward and gradients. Default: None (no fused kernel).
        """
        return None

    def fast_scan(self, current: torch.Tensor, recurrence: "Recurrence | None"):
        """A faster exact scan without GPU kernels (e.g. one autograd node over a C or torch loop on the CPU),
        ``(y, s)`` each (T, B, N), or None for an input it cannot take; must equal the reference scan in forward
        and gradients. The scan plan uses it under ``--backend auto|torch`` when ``fast_scan_reason`` is None."""
        return None

    def fast_scan_reason(self, recurrence: "Recurrence | None", device: torch.device) -> str | None:
        """Why ``fast_scan`` cannot run a layer with ``recurrence`` on ``device`` (None: it can). Default: it has none."""
        return f"neuron {self.name!r} has no fast scan"

    def skip_scan(self, current: torch.Tensor, weight: torch.Tensor, k: int):
        """A whole-sequence scan with the recurrent input ``weight @ y[t-k]`` (SRC's), ``(y, s)``, or None (the
        connectivity then runs its chunked scan). Default: None."""
        return None

    def mixed_scan(self, current: torch.Tensor, weight: torch.Tensor, alpha: torch.Tensor, chunk: int):
        """A whole-sequence scan with the recurrent input ``weight @ Σ_{j=1..K} alpha[j-1] y[t-j]`` (ASRC's in
        training), ``(y, s)``, or None (the connectivity then runs its own scan). Default: None."""
        return None

# ------------------------------------------------------------------------------------------ connectivity


class Recurrence(nn.Module):
    """What a layer feeds back to itself.

    ``structure`` is ``"diagonal"`` (one weight per neuron) or ``"dense"``; ``span`` is the furthest delay
    used. ``recurrent_input(past)`` gets ``past[j-1] = y[t-j]`` for ``j = 1..span`` (zeros before t = 0) and
    returns the recurrent input, which the scan passes to ``Neuron.step`` separately from the feedforward
    current. A recurrence may override ``scan`` with a faster exact equivalent (for example k steps per product).
    """

    structure: ClassVar[str] = "dense"
    #: its ``scan`` runs the neuron through ``Neuron.scan_chunk`` (so a neuron's chunk kernel is used there)
    uses_scan_chunk: ClassVar[bool] = False

    def __init__(self, size: int, span: int = 1):
        super().__init__()
        self.size = size
        self.span = span
        #: the recurrent weight: (N,) for "diagonal", (N, N) for "dense" (None until a subclass sets it)
        self.register_parameter("weight", None)
        #: a fixed 0/1 mask of the weight's shape (None: every connection exists); ``recurrent_input`` applies it
        self.register_buffer("mask", None)

    def recurrent_input(self, past: Sequence[torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        """The recurrent input (B, N) at step t from ``past[j-1] = y[t-j]``."""
        raise NotImplementedError

    def scan(self, neuron: Neuron, current: torch.Tensor):
        """``(y, s)`` of ``neuron`` over ``current`` (T, B, N) with this recurrence. Default: the reference scan."""
        from snnkit_core.contract.scan import reference_scan

        return reference_scan(neuron, current, self)

    def optim_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Optimizer groups for parameters that need their own settings (e.g. ASRC's kernel). Default: none."""
        return []

    def on_epoch_end(self, epoch: int) -> None:
        """Per-epoch schedule (e.g. ASRC's temperature)."""

    def describe(self) -> dict[str, Any]:
        """What to record about this recurrence in the run directory each epoch (e.g. learned spans)."""
        return {}


class Connectivity(_Component, ABC):
    """A connectivity pattern: per-layer recurrence plus extra layer-to-layer edges.

    Registered as a class; instantiated with its parameters. Capabilities:
    ``recurrence`` is ``"none"``, ``"diagonal"`` or ``"dense"``; ``has_skip`` says whether it adds edges;
    ``output_recurrence`` says what the (spiking) output layer feeds back to itself.
    """

    recurrence: ClassVar[str] = "none"
    has_skip: ClassVar[bool] = False
    #: "none", "diagonal" or "dense": the structure of ``make_output_recurrence``'s recurrence
    output_recurrence: ClassVar[str] = "none"

    def __init__(self, **params: Any):
        self.hparams = self.resolve(params)

    def make_recurrence(self, layer: int, size: int) -> Recurrence | None:
        """The recurrence module of hidden layer ``layer`` (0-based), or None."""
        return None

    def make_output_recurrence(self, size: int) -> Recurrence | None:
        """The recurrence of the spiking output layer (e.g. lateral inhibition), or None. Default: None."""
        return None

    def make_feedforward(self, layer: int, in_size: int, out_size: int, bias: bool) -> nn.Module | None:
        """The input map of hidden layer ``layer`` ((…, in_size) -> (…, out_size), e.g. a convolution over the
        input channels), or None for the default ``nn.Linear``. Default: None."""
        return None

    def input_delay(self, layer: int) -> int:
        """Steps (0 or more) by which layer ``layer``'s feedforward input arrives late (the output layer is
        ``layer = number of hidden layers``): ``I[t] = W y_pre[t - d]``, zeros before. Default: 0."""
        return 0

    def skip_edges(self, num_hidden: int) -> list[tuple[int, int]]:
        """Extra feedforward edges ``(src, dst)`` between hidden layers (0-based, ``src < dst - 1``)."""
        return []


# ------------------------------------------------------------------------------------------------ rule


@frozen
class Compatibility:
    """What a rule accepts, by declared capability; ``None`` means any.

    ``neuron_caps``: class flags of :class:`Neuron` that must be true (``has_psc``, ``has_leak``, ...);
    ``recurrence``: the hidden-layer recurrence structures accepted (``Connectivity.recurrence``);
    ``output_recurrence``: the same for the output layer; ``neurons`` / ``connectivity``: names, for a rule that
    really is tied to particular components (first-party rules declare capabilities instead).
    """

    neurons: frozenset[str] | None = None
    connectivity: frozenset[str] | None = None
    neuron_caps: tuple[str, ...] = ()
    recurrence: frozenset[str] | None = None
    output_recurrence: frozenset[str] | None = None


@frozen
class Batch:
    """One training or evaluation batch on the network's device: ``x`` (T, B, C), labels ``y`` (B,) and
    ``index`` (B,): each sample's row in its split (for per-sample rule state)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor


class LearningRule(_Component, ABC):
    """How parameters get their updates.

    ``role = "gradient"`` rules own the loss, the readout, the optimizer and the training step; ``role =
    "addon"`` rules (BIP) compose with exactly one gradient rule. The extension points a rule may use:

    (a) ``train_step``: the whole step (forward, loss, update), e.g. a forward without autograd that writes
        ``.grad`` itself, or one that sees the labels while the forward runs; the default calls (c)-(e);
    (b) ``layer_scan``: wrap or replace a layer's scan (composed in order: gradient rule, then add-ons);
    (c) ``setup``: add parameters or change the neurons once the network is assembled;
    (d) ``backward``: turn the loss into ``.grad`` (default ``loss.backward()``);
    (e) ``param_groups``: change what is optimised and how;
    (f) ``after_step`` / ``on_epoch_end``: projections after each step, per-epoch schedules.
    """

    role: ClassVar[str] = "gradient"
    compatibility: ClassVar[Compatibility] = Compatibility()
    #: "spiking": an output layer of the same neuron, logits = sum over time of its output;
    #: "linear": logits = sum over time of a linear readout of the last hidden layer (ASRC's form)
    readout: ClassVar[str] = "spiking"
    #: ``layer_scan`` replaces the default scan (so ``--backend triton|reference`` cannot choose it and is refused)
    owns_scan: ClassVar[bool] = False
    #: neuron state fields (names in ``initial_state``'s NamedTuple) to record per layer in the network output
    record_state: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any):
        self.hparams = self.resolve(params)

    def reasons(self, neuron_cls: type[Neuron] | None, conn_cls: type[Connectivity] | None) -> list:
        """Structured reasons (:class:`snnkit_core.contract.compat.Reason`) this rule cannot train that neuron with that
        connectivity; either may be None to check only the other. Default: from ``compatibility``."""
        from snnkit_core.contract.compat import declared_reasons

        return declared_reasons(self, neuron_cls, conn_cls)

    def check(self, neuron_cls: type[Neuron] | None, conn_cls: type[Connectivity] | None) -> list[str]:
        """The reasons as sentences (empty if this rule can train that neuron with that connectivity)."""
        return [r.text for r in self.reasons(neuron_cls, conn_cls)]

    def setup(self, network) -> None:
        """Called once after assembly, before the optimizer is built."""

    def check_data(self, steps: int, channels: int) -> None:
        """Called once the data is loaded and before the run directory is written: raise
        :class:`~snnkit_core.contract.errors.IncompatibleError` if this rule cannot train on ``steps``-step sequences."""

    def layer_scan(self, layer, default: Callable) -> Callable | None:
        """A scan ``(layer, current) -> (y, s)`` (or ``(y, s, extra)``) for ``layer``, or None to keep ``default``,
        the scan chosen so far (which the returned scan may call). Default: None."""
        return None

    def train_step(self, network, batch: Batch, optimizer: torch.optim.Optimizer | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step on ``batch``; returns the per-sample mean loss (0-dim) and the logits (B, K), both detached.

        ``optimizer`` None means evaluation (called under ``torch.no_grad()``): no update. Default: forward,
        ``loss``, zero_grad, ``backward``, ``optimizer.step()``, ``network.after_step()`` (every rule's
        ``after_step``, then each neuron's ``clamp_``). The training loop stops on a non-finite loss right after
        the step (the last checkpoint stays good); under several processes the optimizer it passes all-reduces
        ``.grad`` inside ``step()``, so every rank must call ``step()`` once per batch.
        """
        out = network(batch.x)
        loss = self.loss(out, batch.y)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            self.backward(loss, out, batch.y, network)
            optimizer.step()
            network.after_step()
        return loss.detach(), self.logits(out).detach()

    def loss(self, output, target: torch.Tensor) -> torch.Tensor:
        """The mean loss over the batch from the network output and the labels (gradient rules only)."""
        raise NotImplementedError(f"rule {self.name!r} has no loss (is it an add-on?)")

    def logits(self, output) -> torch.Tensor:
        """Class scores (B, K) used for the prediction ``argmax``."""
        return output.logits

    def backward(self, loss: torch.Tensor, output, target: torch.Tensor, network) -> None:
        """Turn the loss into ``.grad`` on the parameters. Default: ``loss.backward()``."""
        loss.backward()

    def param_groups(self, network, groups: list[dict]) -> list[dict]:
        """The optimizer's parameter groups, changed (e.g. bip moves the leaks into their own group)."""
        return groups

    def make_optimizer(self, groups: list[dict], lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """The optimizer over ``groups`` (gradient rules). Default: Adam."""
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, epochs: int):
        """A learning-rate scheduler stepped once per epoch, or None."""
        return None

    def after_step(self, network) -> None:
        """Called after every optimizer step (weight clamping, parameter projection)."""

    def on_epoch_end(self, network, epoch: int) -> None:
        """Per-epoch schedule, called after each epoch's evaluation."""

    def describe(self, network) -> dict[str, Any]:
        """Extra per-epoch facts to record (e.g. BIP's leak distribution)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Rule state that a resumed run needs (tensors, numbers, strings); saved in the checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (on ``--resume``)."""


# --------------------------------------------------------------------------------------------- dataset


@frozen
class ArrayData:
    """One split: ``x`` (N, T, C) float32 (dense or 0/1 spikes) and ``y`` (N,) int64.

    ``x`` may also be held in a compact dtype (uint8 / int16 spike counts, float16 features), typically a
    memory-mapped file from :mod:`snnkit_datasets.diskarray`, so a split larger than memory trains: :meth:`batch`
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
    raise :class:`snnkit_core.contract.errors.DatasetError` naming the expected layout when files are missing.
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
    def num_classes(self) -> int:
        """K, the number of classes (labels are 0..K-1)."""

    @property
    @abstractmethod
    def input_size(self) -> int:
        """C, the input channels per step."""

    @property
    def class_names(self) -> list[str]:
        """One display name per class (default: the class numbers)."""
        return [str(i) for i in range(self.num_classes)]

    @abstractmethod
    def load(self, split: str) -> ArrayData:
        """The whole split as tensors (cached on disk by the loader where preprocessing is costly)."""

    def identity(self) -> dict[str, Any]:
        """What the run manifest records to identify the data (name, parameters, checksums)."""
        return {"name": self.name, "params": dict(self.hparams)}
