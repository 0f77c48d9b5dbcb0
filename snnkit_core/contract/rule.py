"""The learning-rule interface: loss, gradients, optimizer and the training step."""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from attrs import frozen

from snnkit_core.contract.compat import declared_reasons
from snnkit_core.contract.component import Component


@frozen
class Compatibility:
    """What a rule accepts: ``neuron_caps`` (flags of :class:`Neuron` that must be true), the ``recurrence`` /
    ``output_recurrence`` structures accepted, or ``neurons`` / ``connectivity`` names; ``None`` means any."""

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


class LearningRule(Component, ABC):
    """How parameters get their updates. ``role = "gradient"`` rules own the loss, the readout, the optimizer and
    the training step; ``role = "addon"`` rules (BIP) compose with exactly one gradient rule. docs/plugins.md
    lists every member with its default."""

    role: ClassVar[str] = "gradient"
    compatibility: ClassVar[Compatibility] = Compatibility()
    #: "spiking": an output layer of the same neuron; "linear": a linear readout of the last hidden layer
    readout: ClassVar[str] = "spiking"
    #: ``layer_scan`` replaces the default scan (so ``--backend triton|reference`` cannot choose it and is refused)
    owns_scan: ClassVar[bool] = False
    #: neuron state fields (names in ``initial_state``'s NamedTuple) to record per layer in the network output
    record_state: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any):
        self.hparams = self.resolve(params)

    def reasons(self, neuron_cls: type | None, conn_cls: type | None) -> list:
        """Why this rule cannot train that neuron with that connectivity (``compat.Reason``; either may be None)."""
        return declared_reasons(self, neuron_cls, conn_cls)

    def check(self, neuron_cls: type | None, conn_cls: type | None) -> list[str]:
        """The reasons as sentences (empty if this rule can train that neuron with that connectivity)."""
        return [r.text for r in self.reasons(neuron_cls, conn_cls)]

    def setup(self, network) -> None:
        """Called once after assembly, before the optimizer is built."""

    def check_data(self, steps: int, channels: int) -> None:
        """Called once the data is loaded: raise ``IncompatibleError`` if this rule cannot train on that data."""

    def layer_scan(self, layer, default: Callable) -> Callable | None:
        """A scan ``(layer, current) -> (y, s)`` (or ``(y, s, extra)``) for ``layer``, or None to keep ``default``,
        the scan chosen so far (which the returned scan may call). Default: None."""
        return None

    def train_step(self, network, batch: Batch, optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step: ``(loss, logits)``, the per-sample mean loss (0-dim) and (B, K), detached. Default:
        forward, ``loss``, zero_grad, ``backward``, ``optimizer.step()`` (which all-reduces ``.grad`` under several
        processes: call it once per batch), ``network.after_step()``."""
        out = network(batch.x)
        loss = self.loss(out, batch.y)
        optimizer.zero_grad(set_to_none=True)
        self.backward(loss, out, batch.y, network)
        optimizer.step()
        network.after_step()
        return loss.detach(), self.logits(out).detach()

    def eval_step(self, network, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """One evaluation step under ``torch.no_grad()``: ``(loss, logits)`` as ``train_step``, no update."""
        out = network(batch.x)
        return self.loss(out, batch.y).detach(), self.logits(out).detach()

    def grad_reduction(self) -> str:
        """How gradients combine across processes: ``"mean"`` (a batch-mean loss) or ``"sum"`` (a batch sum)."""
        return "mean"

    def default_lr(self) -> float:
        """The learning rate when ``--lr`` is not given. Default: the rule's ``lr`` parameter, else 1e-3."""
        return float(self.hparams.get("lr", 1e-3))

    def default_weight_decay(self) -> float:
        """The weight decay when ``--weight-decay`` is not given. Default: the ``weight_decay`` parameter, else 0."""
        return float(self.hparams.get("weight_decay", 0.0))

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
