"""snnkit: fast, tested, pluggable training of recurrent spiking neural networks.

The stable Python API (docs/api.md), loaded on first use so ``import snnkit`` stays light:

* :func:`build` -> :class:`Model`: a network with its rules, trainable in your own loop exactly as
  ``snnkit train`` trains it (``model.step``, ``model.optimizer()``, ``model.end_epoch``);
* :func:`train` -> :class:`Run`: ``snnkit train`` from Python, the same run directory;
* :func:`load_run` -> :class:`Run`: a run directory with its best weights, ``.predict``, ``.evaluate``;
* :func:`components` and :func:`component`: the installed neurons, connectivities, rules and datasets.

:mod:`snnkit.testing` holds the contract tests a plugin subclasses (also loaded as a pytest plugin). Everything
else (``snnkit_core``, ``snnkit_cli``) may change between releases.
"""

from __future__ import annotations

__version__ = "0.2.0"

_API = {"build": "snnkit.model", "Model": "snnkit.model", "train": "snnkit.run", "load_run": "snnkit.run",
        "Run": "snnkit.run", "components": "snnkit.registry", "component": "snnkit.registry",
        "TrainConfig": "snnkit_core.engine.config"}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'snnkit' has no attribute {name!r}")
