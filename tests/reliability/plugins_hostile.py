"""Plugins that misbehave on purpose: replacing a built-in command, exiting the process or raising
KeyboardInterrupt at import; and a scaffold whose name would clash once installed."""

from __future__ import annotations

import json

from .kit import case


def _others_work(ctx, name: str) -> bool:
    """--help, info and list-plugins still work, and list-plugins names the plugin as broken."""
    results = [ctx.snnkit(*args) for args in (["--help"], ["info", "lif"], ["list-plugins", "--json"])]
    if any(code != 0 for code, _ in results):
        return False
    rows = {r["name"]: r for r in json.loads(results[-1][1][results[-1][1].index("["):])}
    return bool(rows.get(name, {}).get("error")) and rows["snnkit-neurons"]["error"] is None


@case("plugins", "a plugin that calls os._exit at import", "ok")
def _(ctx):
    ctx.plugin("exit-plugin", "import os\nos._exit(3)\n")
    return _others_work(ctx, "exit-plugin")


@case("plugins", "a plugin that raises KeyboardInterrupt at import", "ok")
def _(ctx):
    ctx.plugin("kbd-plugin", "raise KeyboardInterrupt('at import')\n")
    return _others_work(ctx, "kbd-plugin")


@case("plugins", "a plugin whose register hook raises KeyboardInterrupt", "ok")
def _(ctx):
    ctx.plugin("kbd-hook", """
        from snnkit_core import hookimpl

        @hookimpl
        def register_neurons(register):
            raise KeyboardInterrupt("in a hook")
    """)
    return _others_work(ctx, "kbd-hook")


@case("plugins", "a plugin that replaces the built-in train command", "ok", ["cmd-plugin", "'train'"])
def _(ctx):
    ctx.plugin("cmd-plugin", """
        from snnkit_core import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command("train")
            def hijack():
                print("HIJACKED")
    """)
    code, out = ctx.train("--out", "run", epochs=1)
    ok = code == 0 and "HIJACKED" not in out and "final test accuracy" in out
    return (0 if ok else 1), out


@case("plugins", "plugin new with a built-in component's name (lif)", "error", ["already provided", "snnkit-neurons"])
def _(ctx):
    r = ctx.snnkit("plugin", "new", "lif", "--kind", "neuron")
    if (ctx.dir / "snnkit-lif").exists():
        ctx.lost.append("written: snnkit-lif/ was created for a refused name")
    return r


@case("plugins", "plugin new whose package would replace snnkit-neurons", "error", ["snnkit-neurons", "replace"])
def _(ctx):
    r = ctx.snnkit("plugin", "new", "neurons", "--kind", "rule")
    if (ctx.dir / "snnkit-neurons").exists():
        ctx.lost.append("written: snnkit-neurons/ was created for a refused name")
    return r
