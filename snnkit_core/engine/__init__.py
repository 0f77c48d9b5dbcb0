"""The engine: what ``snnkit train`` and a Python user need.

Assembly and the network, implementation plans, the training loop, evaluation, the run directory, metrics,
configuration and multi-process training. Imports the contract, never a tool (plots, NIR, bench, scaffold).
"""
