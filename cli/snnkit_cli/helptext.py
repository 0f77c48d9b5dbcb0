"""Help-text helpers: an option whose ``show_default`` string is shown as the default itself.

``snnkit train``'s options have no click default (an option given overrides ``--config`` and ``--preset``, so
an unset one must stay unset); their help still shows the value a run gets, written as ``show_default="10"``.
Click puts such a string in parentheses (it expects a description); this class shows it as it is.
"""

from __future__ import annotations

import functools

import click


class ShownDefault(click.Option):
    """A ``click.Option`` whose ``show_default`` string reads ``[default: 10]``, not ``[default: (10)]``."""

    def get_help_extra(self, ctx):
        extra = super().get_help_extra(ctx)
        shown = extra.get("default")
        if isinstance(self.show_default, str) and shown == f"({self.show_default})":
            extra["default"] = self.show_default
        return extra


#: ``@option(...)``: ``click.option`` with :class:`ShownDefault`
option = functools.partial(click.option, cls=ShownDefault)
