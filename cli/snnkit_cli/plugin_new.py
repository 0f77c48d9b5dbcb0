"""``snnkit plugin new NAME --kind KIND``: parse -> snnkit_cli.scaffold -> render."""

from __future__ import annotations

import click

from .errors import expected_errors
from .scaffold import new_plugin


@click.group("plugin")
def plugin_cmd():
    """Start a plugin of your own."""


@plugin_cmd.command("new")
@click.argument("name")
@click.option("--kind", type=click.Choice(["neuron", "connectivity", "rule", "dataset"]), required=True,
              help="The kind of component the plugin provides.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder to write (default ./snnkit-NAME).")
@expected_errors
def new_cmd(name, kind, out):
    """Write an installable plugin package (entry point, component skeleton, contract tests) whose tests pass."""
    root, files = new_plugin(name, kind, out)
    click.echo(f"wrote {root}/ ({len(files)} files): pip install -e '{root}[test]' && (cd {root} && pytest -q)")
