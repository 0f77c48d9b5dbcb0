"""``snnkit presets [NAME]``: parse -> snnkit_cli.presets (the files that ship in the package) -> render."""

from __future__ import annotations

import json

import click

from .errors import expected_errors


@click.command("presets")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@expected_errors
def presets_cmd(name, as_json):
    """The paper recipes that ship with snnkit (train one with: snnkit train --preset NAME). With NAME: that
    preset in full, as a TOML file --config also reads."""
    from . import presets

    if name is not None:
        preset = presets.get(name)
        if as_json:
            click.echo(json.dumps({**preset.to_json(), "train": preset.train}, indent=2, ensure_ascii=False))
        else:
            click.echo(preset.config_text(), nl=False)
        return
    found = presets.all_presets()
    if as_json:
        click.echo(json.dumps([p.to_json() for p in found], indent=2, ensure_ascii=False))
        return
    click.echo(listing(found))


LEGEND = ("paper, ours: test accuracy % (ours: with this recipe, at the best validation epoch unless noted)\n"
          "data: download = free, fetched with --set dataset.download=true; LDC = a licensed corpus you provide; "
          "yours = you provide it")


def listing(found) -> str:
    """Two lines per preset, readable at 80 columns and when piped: name, paper, ours, data; then what it
    reproduces, indented."""
    import textwrap

    rows = [[p.name, str(p.meta["paper"]), str(p.meta["ours"]),
             f"{p.dataset}, " + ("ships" if p.meta["ships"] else str(p.meta["data"]))] for p in found]
    widths = [max(len(r[i]) for r in rows + [["preset", "paper", "ours", "data"]]) + 2 for i in range(3)]

    def line(cells):
        return "".join(c.ljust(w) for c, w in zip(cells, widths)) + cells[-1]

    lines = [*textwrap.wrap(LEGEND.splitlines()[0], 80), *textwrap.wrap(LEGEND.splitlines()[1], 80), "",
             line(["preset", "paper", "ours", "data"]), "-" * min(80, len(line(max(rows, key=lambda r: len(line(r))))))]
    for p, row in zip(found, rows):
        lines.append(line(row))
        lines += textwrap.wrap(str(p.meta["reproduces"]), 80, initial_indent="    ", subsequent_indent="    ")
    lines += ["", "snnkit presets NAME shows one in full; snnkit train --preset NAME trains it"]
    return "\n".join(lines)
