"""The per-epoch learning-rate schedules every gradient rule offers: ``--set rule.NAME.scheduler=KIND``."""

from __future__ import annotations

import math

import torch

from snnkit_core import Param

KINDS = ("none", "cosine", "onecycle", "step", "sqrt")


def schedule_params(default: str) -> tuple[Param, ...]:
    """The ``scheduler``, ``step_size`` and ``step_gamma`` parameters, with the rule's own default schedule."""
    return (
        Param("scheduler", default, "per-epoch learning-rate schedule: none; cosine = CosineAnnealingLR(T_max = "
              "epochs); onecycle = OneCycleLR(max_lr = each group's lr, total_steps = epochs, PyTorch defaults incl. "
              "cycle_momentum, so Adam beta1 cycles 0.95 -> 0.85 -> 0.95); step = x step_gamma every step_size "
              "epochs; sqrt = lr / sqrt(epoch + 1)", choices=KINDS),
        Param("step_size", 20, "scheduler step: multiply the learning rate by step_gamma every step_size epochs",
              unit="epochs"),
        Param("step_gamma", 0.8, "scheduler step: the factor"),
    )


def make_schedule(hparams: dict, optimizer: torch.optim.Optimizer, epochs: int):
    """The scheduler ``hparams["scheduler"]`` names (stepped once per epoch by the training loop), or None."""
    kind, epochs = hparams["scheduler"], max(int(epochs), 1)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if kind == "onecycle":  # stepped per epoch (ASRC's code does the same), so total_steps = epochs
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=epochs)
    if kind == "step":
        step = max(int(hparams["step_size"]), 1)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=hparams["step_gamma"])
    if kind == "sqrt":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1 / math.sqrt(e + 1))
    return None
