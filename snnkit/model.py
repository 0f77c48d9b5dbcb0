"""``snnkit.build``: a network with its rules, dataset and configuration, trainable in your own loop exactly as
``snnkit train`` trains it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from snnkit.recipes import fill_recipe
from snnkit_core.contract.dataset import ArrayData
from snnkit_core.contract.rule import Batch
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.data import indexed_batches, load_protocol_splits, to_batch
from snnkit_core.engine.training import Built, end_epoch, evaluate, make_optimizer, train_batches
from snnkit_core.engine.training import build as build_engine


def config_from(config: TrainConfig | dict | None = None, *, recipes: bool = True, **settings: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a config (or its dict) and keyword settings over it; ``rules`` may be one name,
    and ``params`` sections merge key by key. With ``recipes``, the components' recipes fill in what neither a
    config dict nor the settings name, as ``snnkit train`` does (:mod:`snnkit.recipes`); a :class:`TrainConfig`
    given whole counts as every key chosen."""
    given = {} if isinstance(config, TrainConfig) else dict(config or {})
    base = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(given, "config")
    if isinstance(settings.get("rules"), str):
        settings["rules"] = (settings["rules"],)
    new_params = settings.pop("params", {})
    chosen = {k for k in (*given, *settings) if k != "params"} | {
        f"{section}.{key}" for params in (given.get("params") or {}, new_params) for section, kv in params.items()
        for key in kv}
    if new_params:
        params = {k: dict(v) for k, v in base.params.items()}
        for section, values in new_params.items():
            params.setdefault(section, {}).update(values)
        settings["params"] = params
    if set(settings) - set(base.to_dict()):
        TrainConfig.from_dict(settings, "snnkit.build")  # raises, naming the keys with close matches
    cfg = base.evolve(**settings)
    if recipes and not isinstance(config, TrainConfig):
        data, filled = fill_recipe(cfg.to_dict(), chosen)
        cfg = TrainConfig.from_dict(data, source="a recipe") if filled else cfg
    return cfg


def build(config: TrainConfig | dict | None = None, *, recipes: bool = True, **settings: Any) -> Model:
    """The :class:`Model` of a configuration: the same components, parameters, seed and initial weights that
    ``snnkit train`` with these settings builds (the components' recipes fill in what you leave out unless
    ``recipes=False``). Settings are :class:`TrainConfig`'s keys (``neuron``, ``conn``, ``rules``, ``dataset``,
    ``hidden``, ``seed``, ``lr``, ``params={"neuron": {...}, "rule.bip": {...}}``, ...)."""
    return Model(build_engine(config_from(config, recipes=recipes, **settings)))


class Model(nn.Module):
    """A planned network with its rules, dataset and configuration (a ``torch.nn.Module``).

    ``model(x)`` maps ``x`` (B, T, C), batch first as :class:`ArrayData` holds it, to logits (B, K). A training
    loop that matches ``snnkit train`` step for step: ``opt = model.optimizer()``,
    ``sched = model.scheduler(opt)``, then per epoch
    ``for batch in model.batches(train, epoch): model.step(batch, opt)`` and ``model.end_epoch(epoch, sched)``.
    ``model.network`` is the underlying network.
    """

    def __init__(self, built: Built):
        super().__init__()
        self.network = built.network
        self.built = built

    @property
    def config(self) -> TrainConfig:
        return self.built.config

    @property
    def rules(self) -> list:
        return self.built.rules

    @property
    def dataset(self):
        return self.built.dataset

    @property
    def device(self) -> torch.device:
        return self.built.device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) of ``x`` (B, T, C)."""
        return self.built.gradient_rule.logits(self.network(x.to(self.device).transpose(0, 1)))

    def predict(self, x: torch.Tensor | ArrayData) -> torch.Tensor:
        """The predicted class (B,) of every example of ``x`` (B, T, C) or of a split, in eval mode, no gradients."""
        data = x if isinstance(x, ArrayData) else ArrayData(x, torch.zeros(len(x), dtype=torch.int64))
        was_training, out = self.network.training, []
        self.network.eval()
        try:
            with torch.no_grad():
                gen = torch.Generator().manual_seed(0)  # a split's encode draws from it: the same inputs every time
                for xb, _, _ in indexed_batches(data, self.config.batch_size, False, gen, self.device):
                    out.append(self.forward(xb).argmax(1).cpu())
        finally:
            self.network.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)

    def splits(self) -> tuple[ArrayData, ArrayData | None, ArrayData]:
        """``(train, val, test)`` exactly as ``snnkit train`` carves them (``val`` None without validation)."""
        train, val, test, _ = load_protocol_splits(self.built)
        return train, val, test

    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer ``snnkit train`` uses: the gradient rule's, with every rule's parameter groups (bip's)."""
        return make_optimizer(self.built)

    def scheduler(self, optimizer: torch.optim.Optimizer):
        """The gradient rule's per-epoch learning-rate schedule over ``config.epochs`` (or None)."""
        return self.built.gradient_rule.make_scheduler(optimizer, self.config.epochs)

    def batches(self, data: ArrayData, epoch: int) -> Iterator[Batch]:
        """Epoch ``epoch``'s (0-based) training batches, in ``snnkit train``'s order, on the model's device."""
        for x, y, idx in train_batches(self.built, data, epoch):
            yield to_batch(self.built, x, y, idx)

    def step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step as ``snnkit train`` takes it: the gradient rule's ``train_step`` (forward, loss, its
        own backward and clipping, the optimizer step, every rule's ``after_step`` and the neurons' clamping).
        Returns ``(loss, logits)``, detached."""
        self.network.train()
        return self.built.gradient_rule.train_step(self.network, batch, optimizer)

    def end_epoch(self, epoch: int, scheduler=None) -> dict[str, Any]:
        """End epoch ``epoch`` (0-based) as ``snnkit train`` does: the schedule steps, then every rule's and the
        network's ``on_epoch_end``. Returns what the rules and recurrences record for the epoch."""
        return end_epoch(self.built, epoch, scheduler)

    def evaluate(self, data: ArrayData) -> tuple[float, float]:
        """Mean loss and accuracy over ``data`` (no gradients; inputs encoded with a fixed seed)."""
        return evaluate(self.built, data, self.config.batch_size)
