"""``snnkit data prepare|info NAME``: parse -> the dataset -> render."""

from __future__ import annotations

import sys
import time

import click
from rich.table import Table

from .errors import expected_errors
from .render import RichProgress, console


@click.group()
def data():
    """Prepare and inspect datasets."""


def _dataset(name, data_dir, sets):
    from snnkit_cli.options import parse_sets
    from snnkit_core.contract.errors import ConfigError
    from snnkit_core.contract.plugins import get_registry

    params = parse_sets([f"dataset.{s}" if not s.startswith("dataset.") else s for s in sets]).get("dataset", {})
    cls = get_registry().get("dataset", name)
    if data_dir and not getattr(cls, "reads_data_dir", True):
        raise ConfigError(f"dataset {name!r} does not read --data-dir (its data ships with it); leave --data-dir out")
    return cls(data_dir=data_dir, **params)


@data.command("prepare")
@click.argument("name")
@click.option("--data-dir", type=click.Path(), help="Data root (or the corpus folder); default $SNNKIT_DATA.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Dataset parameter (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@expected_errors
def data_prepare(name, data_dir, sets, quiet):
    """Preprocess every split of a dataset into the feature cache."""
    from snnkit_core.contract.dataset import preprocessing_progress

    ds = _dataset(name, data_dir, sets)
    # one bar per split (0/1 until it is loaded) and, beneath it, one per loop over the corpus's files
    with RichProgress(enabled=not quiet and sys.stderr.isatty()) as progress, preprocessing_progress(progress):
        for split in ds.splits:
            t0 = time.perf_counter()
            for _ in progress([split], total=1, description=f"preparing {name}/{split}"):
                d = ds.load(split)
            console.print(f"{name}/{split}: {len(d)} examples, x {tuple(d.x.shape)} in {time.perf_counter() - t0:.1f}s")


@data.command("info")
@click.argument("name")
@click.option("--data-dir", type=click.Path(), help="Data root (or the corpus folder); default $SNNKIT_DATA.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Dataset parameter (repeatable).")
@expected_errors
def data_info(name, data_dir, sets):
    """Shapes, class counts and cache location of a dataset."""
    import torch

    from snnkit_datasets.cache import USED_CACHE_FILES

    ds = _dataset(name, data_dir, sets)
    USED_CACHE_FILES.clear()
    t = Table(title=f"{name}: {ds.num_classes} classes, input {ds.input_size} channels")
    t.add_column("split")
    t.add_column("examples", justify="right")
    t.add_column("x shape")
    t.add_column("per class")
    for split in ds.splits:
        d = ds.load(split)
        counts = torch.bincount(d.y, minlength=ds.num_classes).tolist()
        t.add_row(split, str(len(d)), str(tuple(d.x.shape)), " ".join(map(str, counts)))
    console.print(t)
    if USED_CACHE_FILES:
        for path in USED_CACHE_FILES:
            console.print(f"cache: {path}", markup=False, highlight=False, soft_wrap=True)
    else:
        console.print("cache: none (this dataset is read directly, not preprocessed into the cache)")
