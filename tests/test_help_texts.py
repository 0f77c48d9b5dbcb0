"""Every option of every command says what it does, and `snnkit train --help` shows every default."""

from __future__ import annotations

import re

import click
from click.testing import CliRunner

from snnkit_cli.main import cli
from snnkit_core.engine.config import TrainConfig

#: train options with no default to show: unset means "not asked for"
NO_DEFAULT = {"--seeds", "--config", "--preset", "--resume", "--init-from", "--set", "--logger"}


def _commands(cmd, path=()):
    yield path, cmd
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            yield from _commands(cmd.get_command(ctx, name), (*path, name))


def test_every_option_of_every_command_has_help_text():
    found = list(_commands(cli))
    assert len(found) > 10 and ("train",) in [p for p, _ in found]  # the walk reaches the commands
    missing = [f"snnkit {' '.join(path)} {p.opts[0]}" for path, cmd in found for p in cmd.params
               if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert not missing, "options without help text: " + ", ".join(missing)


def test_train_help_shows_every_default():
    train = dict(_commands(cli))[("train",)]
    unshown = [p.opts[0] for p in train.params if isinstance(p, click.Option) and not p.is_flag
               and p.opts[0] not in NO_DEFAULT and not p.show_default]
    assert not unshown, f"snnkit train options that do not show their default: {unshown}"
    out = CliRunner().invoke(cli, ["train", "--help"], terminal_width=400).output
    d = TrainConfig()
    for opt, value in {"--epochs": d.epochs, "--batch-size": d.batch_size, "--seed": d.seed, "--neuron": d.neuron,
                       "--val-fraction": d.val_fraction, "--hidden": ",".join(map(str, d.hidden))}.items():
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(opt + " "))
        assert re.search(rf"\[default: {re.escape(str(value))}[;\]]", line), line  # shown as the value, not "(10)"
