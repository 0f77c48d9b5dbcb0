from importlib import import_module

from snnkit_core import hookimpl

#: modules of this package that define ``register(register)``
MODELS = ["lif"]


@hookimpl
def register_neurons(register):
    for name in MODELS:
        import_module(f"snnkit_neurons.{name}").register(register)
