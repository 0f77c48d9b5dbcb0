from importlib import import_module

from snnkit_core import hookimpl

#: modules of this package that define ``register(register)``
RULES = ["bptt"]


@hookimpl
def register_rules(register):
    for name in RULES:
        import_module(f"snnkit_rules.{name}").register(register)
