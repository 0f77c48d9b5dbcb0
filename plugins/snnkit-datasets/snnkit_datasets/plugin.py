"""Entry point of snnkit-datasets: registers every loader module listed in ``LOADERS``."""

from importlib import import_module

from snnkit_core import hookimpl

#: modules of this package that define ``register(register)``
LOADERS = ["fsdd", "espeak_digits"]


@hookimpl
def register_datasets(register):
    for name in LOADERS:
        import_module(f"snnkit_datasets.{name}").register(register)
