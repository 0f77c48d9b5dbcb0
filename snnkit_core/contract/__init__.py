"""The contract: what a plugin author imports.

The four component interfaces (:mod:`.interfaces`), parameters, surrogate spike functions, errors, the hook
specifications, the registry and plugin loading, and capability compatibility. Imports nothing from
:mod:`snnkit_core.engine` or any tool.
"""
