"""The ``snnkit`` command: ``list-plugins``, ``info``, ``train``, ``eval``, ``data``, plus plugin commands."""

from __future__ import annotations

import errno
import sys

import click
from rich.markup import escape

from snnkit_core.contract import plugins

from .errors import (
    expected_errors,  # noqa: F401  (re-exported for older imports)
    handle_fatal,
    quiet_stdout,
)
from .render import err_console

#: a plugin whose entry module takes longer than this to import is named in a warning (every command pays it)
SLOW_PLUGIN_S = 0.5


def add_commands(cli) -> list[str]:
    """Let every plugin add its CLI commands; returns one message per plugin whose hook raised.

    Each plugin's hook runs on its own, so one failing hook neither hides the others' commands nor goes
    unnamed: the error is recorded on that plugin (``snnkit list-plugins`` shows it).
    """
    plugins.load_plugins()
    problems = keep_commands(cli, BUILTINS, "a plugin, while it was imported,")
    for impl, plugin in plugins.hook_impls("register_commands"):
        if plugin.error:
            continue
        before = dict(cli.commands)
        try:
            with plugins.guard() as pressed:
                impl.function(cli=cli)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt) and pressed:
                raise  # the user's own Ctrl-C
            plugin.error = f"register_commands failed: {plugins.short_error(exc)}"
            problems.append(f"plugin {impl.plugin_name!r} failed to add its commands: {plugin.error}")
        problems += keep_commands(cli, before, f"plugin {impl.plugin_name!r}")
    return problems


def keep_commands(cli, before: dict, who: str) -> list[str]:
    """Put back every command of ``before`` (snnkit's own, or one an earlier plugin added) that ``who`` replaced
    or removed; one message per command put back."""
    problems = []
    for name, command in before.items():
        theirs = cli.commands.get(name)
        if theirs is not command:
            cli.commands[name] = command
            where = f" with one from {theirs.callback.__module__}" if getattr(theirs, "callback", None) else ""
            kind = "built-in" if BUILTINS.get(name) is command else "earlier plugin's"
            problems.append(f"{who} replaced the {kind} command {name!r}{where}; snnkit keeps the {kind} one. Give "
                            "the plugin's command a name of its own: this is an issue with that plugin, not snnkit.")
    return problems


def slow_plugins(limit: float = SLOW_PLUGIN_S) -> list[str]:
    """One message per plugin whose entry module took more than ``limit`` seconds to import."""
    return [f"plugin {p.name!r} took {p.load_s:.1f} s to load its entry module, which slows every snnkit command "
            f"(`snnkit --help` included). This is an issue with plugin {p.name!r}, not snnkit: its entry module "
            "should import heavy modules (torch) inside its hook functions (docs/plugins.md, 'The smallest plugin')."
            for p in plugins.load_plugins() if p.load_s is not None and p.load_s > limit]


class SnnkitGroup(click.Group):
    """Adds plugin commands lazily, so a broken plugin cannot break ``snnkit --help``."""

    _plugins_added = False

    def _add_plugin_commands(self):
        if self._plugins_added:
            return
        self._plugins_added = True
        for problem in add_commands(self) + slow_plugins():
            err_console.print("[yellow]warning:[/] " + escape(problem), highlight=False)

    def list_commands(self, ctx):
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        self._add_plugin_commands()
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        """Every error path ends in one line naming the cause and the fix (errors.one_line); click's own
        exceptions and snnkit's expected errors are already one line."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            raise
        except Exception as exc:  # noqa: BLE001 - errors.handle_fatal re-raises what it cannot name
            handle_fatal(exc, ctx.invoked_subcommand)

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        except OSError as exc:  # stdout failed while click printed (a closed pipe): end quietly, no traceback
            if exc.filename is not None or exc.errno not in (errno.EPIPE, errno.EBADF):
                raise
            quiet_stdout()
            sys.exit(141 if exc.errno == errno.EPIPE else 1)


@click.group(cls=SnnkitGroup)
@click.version_option(package_name="snnkit")
def cli():
    """snnkit: train recurrent spiking neural networks on speech and other temporal data."""


# Each command lives in its own module (parse -> snnkit_core -> render); they register here.

from .bench_cmd import bench  # noqa: E402
from .data_cmds import data  # noqa: E402
from .export import export_cmd, import_nir_cmd  # noqa: E402
from .info_cmd import info  # noqa: E402
from .plot import plot_cmd  # noqa: E402
from .plugin_new import plugin_cmd  # noqa: E402
from .plugins_cmd import list_plugins  # noqa: E402
from .presets_cmd import presets_cmd  # noqa: E402
from .protocol_cmds import eval_cmd, runs_cmd  # noqa: E402  (eval, runs: parse -> core.protocol -> render)
from .sweep_cmd import sweep_cmd  # noqa: E402
from .train_cmd import train  # noqa: E402

for _command in (list_plugins, info, train, eval_cmd, runs_cmd, sweep_cmd, data, bench, export_cmd, import_nir_cmd,
                 plot_cmd, plugin_cmd, presets_cmd):
    cli.add_command(_command)
#: snnkit's own commands: a plugin adds commands beside them, never in their place
BUILTINS = dict(cli.commands)


if __name__ == "__main__":  # pragma: no cover
    cli()
