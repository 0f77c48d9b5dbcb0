"""Entry point of snnkit-example-plugin (``[project.entry-points.snnkit]`` in pyproject.toml).

snnkit imports this module for every command (``snnkit --help`` included) and calls the hooks below once, each
with a ``register`` callback, only when a command needs the components. So this module imports nothing heavy:
each hook imports its component modules (and with them torch) itself.
"""

from snnkit_core import hookimpl


@hookimpl
def register_neurons(register):
    from .neuron import IF

    register(IF)


@hookimpl
def register_datasets(register):
    from .bands import PoissonBands

    register(PoissonBands)


@hookimpl
def register_connectivity(register):
    from .local import Local

    register(Local)


@hookimpl
def register_rules(register):
    from .rate import RateReg
    from .readout import ReadoutDelta

    register(ReadoutDelta)
    register(RateReg)
