"""One rank of tests/test_distributed.py::test_sync_gradients_weights_and_missing_grads (run as a script by it).

Rank r holds n_r = r + 1 examples and gradients r + 1 (parameter a), a gradient on rank 1 only (b) and none
anywhere (c); it all-reduces them with both reductions and writes what it got to OUT/rank<r>.json.
"""

import json
import sys
from pathlib import Path

import torch

from snnkit_core.engine import distributed

out = Path(sys.argv[1])
world = distributed.setup(torch.device("cpu"))
result = {"world": [world.rank, world.size]}
for reduction in ("mean", "sum"):
    a, b, c = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
    a.grad = torch.full((3,), float(world.rank + 1))
    if world.rank == 1:
        b.grad = torch.full((3,), 5.0)
    distributed.sync_gradients([a, b, c], world.rank + 1, reduction, world)
    result[reduction] = {"a": a.grad.tolist(), "b": None if b.grad is None else b.grad.tolist(), "c": c.grad is None}
result["any"] = [distributed.any_rank(world.rank == 1, world), distributed.any_rank(False, world)]
result["sums"] = distributed.sum_scalars(world, 1.5, float(world.rank))
(out / f"rank{world.rank}.json").write_text(json.dumps(result))
