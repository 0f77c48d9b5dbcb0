"""``snnkit list-plugins``: parse -> snnkit_core.contract.plugins -> render."""

from __future__ import annotations

import json

import click
from rich.table import Table

from .render import console


@click.command("list-plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_plugins(as_json):
    """Installed plugins, their versions, the components each registers, and any that failed to load."""
    from snnkit_core.contract.plugins import listing

    rows = listing()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="snnkit plugins")
    table.add_column("plugin")
    table.add_column("version")
    table.add_column("components")
    table.add_column("status", overflow="fold")  # a broken plugin's whole reason, never cut
    for r in rows:
        comps = ", ".join(f"{c['kind']}:{c['name']}" for c in r["components"]) or "-"
        status = f"[red]broken: {r['error']}[/]" if r["error"] else "[green]ok[/]"
        table.add_row(r["name"], r["version"] or "-", comps, status)
    console.print(table)
    if not rows:
        console.print("No plugins loaded" + (" (SNNKIT_LOAD_PLUGINS is set)" if "SNNKIT_LOAD_PLUGINS" in __import__("os").environ else "") + ".")
