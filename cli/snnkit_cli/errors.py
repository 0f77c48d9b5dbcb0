"""How every command turns snnkit's expected errors into a message (no traceback).

Kept apart from ``main`` so command modules can import it without importing ``main`` (which imports them):
``import snnkit_cli.data_cmds`` first then works too."""

from __future__ import annotations

import functools

import click

from snnkit_core.contract.errors import SnnkitError


def expected_errors(fn):
    """Turn snnkit's expected errors into a clean message and exit code 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SnnkitError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper
