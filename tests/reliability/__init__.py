"""The reliability sweep's catalogue: :mod:`.kit` (how a case runs and is classified) and one module of cases per
class of failure; ``tests/reliability_sweep.py`` runs them all."""
