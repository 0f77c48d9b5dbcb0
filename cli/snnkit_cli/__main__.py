"""``python -m snnkit_cli``: the ``snnkit`` command, e.g. under
``torchrun --nproc-per-node 2 -m snnkit_cli train ...``."""

from .main import cli

cli(prog_name="snnkit")
