"""Process settings for CPU speed, applied by ``snnkit train``, ``eval`` and ``bench`` (never on import).

* :func:`set_threads`: ``--threads N``. On a machine shared with other jobs, torch's default (one thread per
  core) makes every op wait for the slowest core; a fixed small count is often several times faster there.
  The run manifest records the count in effect (``threads``).
* :func:`keep_freed_memory`: glibc returns large freed blocks (> 128 KiB, dynamically raised) to the
  system and the next allocation of the same size page-faults on every 4 KiB page again. A training step
  allocates and frees the same (T, B, N) tensors every step, so on the CPU this costs as much as the
  element-wise work itself (measured in docs/performance.md). We raise the mmap threshold to 32 MiB (glibc's
  maximum) and stop trimming the heap, so freed blocks are reused. The price: the process keeps its peak
  heap size until it exits.
"""

from __future__ import annotations

import ctypes
import platform

import torch

from snnkit_core.contract.errors import ConfigError

from .resources import check_threads

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def set_threads(n: int | None, force: bool | None = None) -> int:
    """Use ``n`` intra-op threads (None: leave torch's setting); returns the count now in effect. More than the
    cores is refused unless ``force`` (None: the command has no --force-threads; snnkit_cli.resources)."""
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"--threads must be a whole number >= 1, not {n!r}")
        check_threads(n, force)
        torch.set_num_threads(n)
    return torch.get_num_threads()


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks up to 32 MiB for reuse (see the module doc). True when applied; False on
    another C library or platform, where nothing changes."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20) == 1
        return bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**30) == 1 and ok)
    except (OSError, AttributeError):
        return False
