"""The built-in gradient rules' optimizer: torch's Adam or AdamW, fused where this torch has it for the device.

torch picks its per-tensor Adam on the CPU (its multi-tensor form is for CUDA only): nine small ops per parameter
tensor, each allocating, 2.9 ms of a 145 ms step of the scsr-ti46 workload (1 thread). The fused form (torch >= 2.4
on the CPU) does each parameter tensor in one pass: 0.7 ms. Same update, same state layout (a checkpoint of
either resumes in the other); the numbers may differ in the last bit. Where the fused form is not available
(an older torch, a device without it) the plain one is used.
"""

from __future__ import annotations

import torch


def adam(groups: list[dict], *, adamw: bool = False, **options) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` (``AdamW`` with ``adamw``) over ``groups`` with ``options``, fused when it can be."""
    cls = torch.optim.AdamW if adamw else torch.optim.Adam
    try:
        return cls(groups, fused=True, **options)
    except (RuntimeError, ValueError, TypeError):  # this torch or device has no fused form for these parameters
        return cls(groups, **options)
