"""Helper for first-party plugins: register every submodule that defines ``register(register)``."""

from __future__ import annotations

import pkgutil
from importlib import import_module


def register_submodules(package: str, path, register) -> None:
    """Import each module of ``package`` (sorted) and call its ``register(register)`` if it has one."""
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        fn = None if info.name.startswith("_") or info.name == "plugin" else getattr(
            import_module(f"{package}.{info.name}"), "register", None)
        if callable(fn):
            fn(register)
