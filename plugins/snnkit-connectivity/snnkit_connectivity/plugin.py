from importlib import import_module

from snnkit_core import hookimpl

#: modules of this package that define ``register(register)``
PATTERNS = ["scsr"]


@hookimpl
def register_connectivity(register):
    for name in PATTERNS:
        import_module(f"snnkit_connectivity.{name}").register(register)
