"""How many CPU threads torch (and snnkit's CPU scans) use: ``--threads N`` of train, eval and bench.

On a machine shared with other jobs, torch's default (one thread per core) makes every op wait for the
slowest core; a fixed small count is often several times faster there. The run manifest records the count
in effect (``threads``).
"""

from __future__ import annotations

import torch

from .errors import ConfigError


def set_threads(n: int | None) -> int:
    """Use ``n`` intra-op threads (None: leave torch's setting); returns the count now in effect."""
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"--threads must be a whole number >= 1, not {n!r}")
        torch.set_num_threads(n)
    return torch.get_num_threads()
