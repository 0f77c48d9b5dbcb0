"""``snnkit list-plugins``: parse -> snnkit_core.contract.plugins -> render, with a listing cache so that a
repeated listing starts without importing torch."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from importlib.metadata import distributions, entry_points
from pathlib import Path

import click
from rich.table import Table

from snnkit_core.contract import plugins

from .render import console


def listing_cache() -> Path:
    root = os.environ.get("SNNKIT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "snnkit") / "plugin-listing.json"


def _source_roots() -> set[Path]:
    """The contract's folder and the package folder (or module file) of each ``snnkit`` entry point."""
    roots = {Path(plugins.__file__).parent}
    for ep in entry_points(group="snnkit"):
        try:
            spec = importlib.util.find_spec(ep.value.split(":")[0].split(".")[0])
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            roots.update(Path(p) for p in spec.submodule_search_locations)
        elif spec is not None and spec.origin:
            roots.add(Path(spec.origin))
    return roots


def fingerprint() -> str:
    """What a listing depends on: the plugin selection, every installed distribution's name and version, the
    entry points, and the size and mtime of every source file of each entry point's package (editable installs
    change code without changing versions). Stat calls only; nothing is imported."""
    h = hashlib.sha256()
    h.update(f"{plugins.ENV_VAR}={os.environ.get(plugins.ENV_VAR)!r}\n".encode())
    for d in sorted(f"{d.metadata['Name']} {d.version}" for d in distributions()):
        h.update(f"{d}\n".encode())
    for ep in sorted(entry_points(group="snnkit"), key=lambda e: e.name):
        h.update(f"ep {ep.name} {ep.value}\n".encode())
    for root in sorted(_source_roots()):
        for f in [root] if root.is_file() else sorted(root.rglob("*.py")):
            try:
                st = f.stat()
            except OSError:
                continue
            h.update(f"{f} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def listing() -> list[dict]:
    """``snnkit list-plugins`` rows: ``{"name", "version", "components": [{"kind", "name"}], "error"}``.

    Listing needs every component imported (and torch with them: seconds). When nothing installed changed
    since the last listing (:func:`fingerprint`) and no plugin was broken, the rows come from a cache file
    instead. A process that already collected components (or registered a plugin in-process) always lists live.
    """
    use_cache = not plugins.is_collected()
    key = fingerprint() if use_cache else None
    path = listing_cache()
    if use_cache:
        try:
            cached = json.loads(path.read_text())
            if cached.get("fingerprint") == key:
                return cached["rows"]
        except (OSError, ValueError, AttributeError, KeyError):
            pass
    reg = plugins.get_registry()
    rows = [
        {"name": info.name, "version": info.version,
         "components": [{"kind": c.kind, "name": c.name} for c in reg.by_plugin(info.name)], "error": info.error}
        for info in plugins.plugin_infos()
    ]
    from_entry_points = {ep.name for ep in entry_points(group="snnkit")}
    if use_cache and all(r["error"] is None and r["name"] in from_entry_points for r in rows):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
            tmp.write_text(json.dumps({"fingerprint": key, "rows": rows}))
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home only costs speed
    return rows


@click.command("list-plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_plugins(as_json):
    """Installed plugins, their versions, the components each registers, and any that failed to load."""
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
        selected = f" ({plugins.ENV_VAR} is set)" if plugins.ENV_VAR in os.environ else ""
        console.print(f"No plugins loaded{selected}.")
