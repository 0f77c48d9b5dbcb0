"""Heaviside spikes with surrogate derivatives: ``spike(x, kind, width)`` is ``H(x)`` (``x > 0``, or ``x >= 0`` with
``inclusive=True``) forward and ``kind``'s surrogate derivative backward, ``x = u - V_th``. Each surrogate is the
exact derivative of the smooth stand-in for H named beside it (the tests check it by finite differences)."""

from __future__ import annotations

import math

import torch

KINDS = ("sigmoid", "triangle", "fast-sigmoid", "atan", "rectangle")


def surrogate_grad(x: torch.Tensor, kind: str, width: float) -> torch.Tensor:
    """d/dx of the smooth stand-in for H(x), with width ``width`` (in units of membrane potential)."""
    if kind == "sigmoid":  # d/dx sigmoid(x / w)
        sg = torch.sigmoid(x / width)
        return sg * (1 - sg) / width
    if kind == "triangle":  # (1/w^2) max(0, w - |x|)  (ASRC's Triangle with gamma = w)
        return (width - x.abs()).clamp(min=0) / width**2
    if kind == "fast-sigmoid":  # d/dx  x / (w + |x|) / 2  (SuperSpike)
        return 0.5 * width / (width + x.abs()) ** 2
    if kind == "atan":  # d/dx  atan(pi x / w) / pi
        return (1.0 / width) / (1 + (math.pi * x / width) ** 2)
    if kind == "rectangle":  # d/dx  clamp(x / w, -1/2, 1/2)
        return (x.abs() < width / 2).to(x.dtype) / width
    raise ValueError(f"unknown surrogate {kind!r}; choose one of {', '.join(KINDS)}")


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kind, width, inclusive):
        ctx.save_for_backward(x)
        ctx.kind, ctx.width = kind, width
        return (x >= 0).to(x.dtype) if inclusive else (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * surrogate_grad(x, ctx.kind, ctx.width), None, None, None


def spike(x: torch.Tensor, kind: str = "sigmoid", width: float = 0.2, inclusive: bool = False) -> torch.Tensor:
    """H(x) forward, ``kind``'s surrogate derivative of width ``width`` backward."""
    if kind not in KINDS:
        raise ValueError(f"unknown surrogate {kind!r}; choose one of {', '.join(KINDS)}")
    return _Spike.apply(x, kind, width, inclusive)
