"""``snnkit plot``: PNG pictures of a run directory, written to ``RUN_DIR/plots/``.

* ``curves.png``: loss and accuracy (train, validation where recorded, test) per epoch, from metrics.jsonl.
* ``raster.png``: the spikes of every spiking layer (hidden layers, then the output layer for a spiking
  readout) for one test example run through the trained network; x = time step, y = neuron.
* ``rates.png``: per layer, the histogram over neurons of the firing rate (spikes per step, averaged over the
  first ``samples`` test examples and all steps).
* ``bip.png`` (runs with ``bip``): each layer's τm distribution over epochs (median, 10-90 % and min-max bands,
  from the deciles ``bip`` records every epoch) and, beside it, the trained network's final τm histogram.
* ``asrc.png`` (runs with ``asrc``): each layer's hard span per epoch and its span weights α over epochs.
* ``confusion_<split>.png`` for every ``RUN_DIR/eval/<split>.json`` that ``snnkit eval`` wrote
  ({"split", "n", "accuracy", "classes", "per_class_accuracy", "confusion"}; rows = true class).

Needs the optional matplotlib (``pip install 'snnkit[plot]'``); figures are drawn with matplotlib's
object API and saved with its Agg renderer, so no display is needed and no global pyplot state is touched.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnkit.run import open_network
from snnkit_core.contract.atomic import atomic_write
from snnkit_core.contract.errors import CheckpointError, ConfigError, MissingDependencyError, SnnkitError
from snnkit_core.engine.data import indexed_batches
from snnkit_core.engine.rundir import RunDir


def figure(**kw):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError(
            "snnkit plot needs matplotlib; install it with `pip install 'snnkit[plot]'` (or `pip install matplotlib`)"
        ) from None
    return Figure(**kw)


def save(fig, path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:  # epochs, steps, neurons and spans are whole numbers
        if ax.get_xlabel() in ("epoch", "time step"):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_ylabel() in ("span (steps)", "span j", "neurons"):
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)  # Figure.savefig uses the Agg canvas: no display, no pyplot
    return atomic_write(path, buf.getvalue())


def plot_curves(records: list[dict[str, Any]], path: Path) -> Path:
    epochs = [r["epoch"] for r in records]
    fig = figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for split, style in (("train", "-o"), ("val", "-s"), ("test", "-^")):
        for ax, key, scale in ((ax_loss, f"{split}_loss", 1), (ax_acc, f"{split}_accuracy", 100)):
            pts = [(r["epoch"], scale * r[key]) for r in records if isinstance(r.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts), style, label={"val": "validation"}.get(split, split), markersize=3)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    return save(fig, path)


def record_spikes(built, samples: int = 64, sample: int = 0):
    """Run the trained network on the first ``samples`` test examples (no gradients). Returns
    ``(names, spikes, x, label, prediction)``: ``spikes[i]`` is layer i's (T, B, N) 0/1 array, ``x`` the input of
    example ``sample`` (T, C)."""
    cfg, net = built.config, built.network
    split = "test" if "test" in built.dataset.splits else built.dataset.splits[-1]
    data = built.dataset.load(split).subset(cfg.limit, cfg.seed)
    if len(data) == 0:
        raise SnnkitError(f"the {split} split of {cfg.dataset!r} is empty; nothing to run the network on")
    if not 0 <= sample < len(data):
        raise SnnkitError(f"--sample must be in 0..{len(data) - 1} (the {split} split has {len(data)} examples); got "
                          f"{sample}")
    n = max(samples, sample + 1)
    gen = torch.Generator().manual_seed(0)  # the same encoding draws as `snnkit eval`
    x, y, _ = next(iter(indexed_batches(data, n, False, gen, built.device)))
    net.eval()
    with torch.no_grad():
        out = net(x.to(built.device).transpose(0, 1))  # (B, T, C) -> (T, B, C)
    names = [f"hidden {i}" for i in range(len(out.hidden))]
    spikes = [h.s.float().cpu().numpy() for h in out.hidden]
    if out.out_spikes is not None:
        names.append("output")
        spikes.append(out.out_spikes.float().cpu().numpy())
    pred = int(built.gradient_rule.logits(out).argmax(1)[sample])
    return names, spikes, x[sample].cpu().numpy(), int(y[sample]), pred


def plot_raster(names, spikes, x, label, pred, classes, path: Path, sample: int) -> Path:
    fig = figure(figsize=(10, 2.2 * (len(names) + 1)), layout="constrained")
    axes = fig.subplots(len(names) + 1, 1, sharex=True)
    axes[0].imshow(x.T, aspect="auto", origin="lower", interpolation="nearest", cmap="viridis")
    axes[0].set(ylabel="input channel", title=f"test example {sample}: label {classes[label]}, predicted "
                                              f"{classes[pred]}")
    for ax, name, s in zip(axes[1:], names, spikes):
        t, i = np.nonzero(s[:, sample, :])
        ax.scatter(t, i, s=40, marker="|", linewidths=1, color="black")
        ax.set(ylabel=f"{name}\nneuron", ylim=(-0.5, s.shape[2] - 0.5))
        ax.text(1.0, 1.0, f"{int(s[:, sample].sum())} "
                          "spikes", transform=ax.transAxes, ha="right", va="bottom", fontsize=8)
    axes[-1].set(xlabel="time step", xlim=(-0.5, x.shape[0] - 0.5))
    return save(fig, path)


def plot_rates(names, spikes, path: Path) -> Path:
    fig = figure(figsize=(4 * len(names), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    for ax, name, s in zip(axes, names, spikes):
        rates = s.mean(axis=(0, 1))  # (N,) spikes per step, over steps and examples
        ax.hist(
            rates, bins=min(30, max(5, rates.size // 4)), range=(0, max(1e-3, float(rates.max()))), color="tab:blue"
        )
        ax.set(title=f"{name}: mean {rates.mean():.3f}, silent {int((rates == 0).sum())}/{rates.size}",
               xlabel="firing rate (spikes / step)", ylabel="neurons")
    return save(fig, path)


def plot_bip(records, network, path: Path) -> Path | None:
    per_layer: dict[str, list[tuple[int, list[float]]]] = {}
    for r in records:
        for layer, d in (r.get("bip") or {}).items():
            q = d.get("tau_m_deciles") or [d["tau_m_min"], *[d["tau_m_mean"]] * 9, d["tau_m_max"]]
            per_layer.setdefault(layer, []).append((r["epoch"], q))
    if not per_layer:
        return None
    leaks = {}
    if network is not None:
        for i, layer in enumerate(network.layers):
            leaks[f"layer{i}"] = getattr(layer.neuron, "leak", None)
        if network.readout == "spiking":
            leaks["output"] = getattr(network.output.neuron, "leak", None)
    fig = figure(figsize=(10, 3 * len(per_layer)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(per_layer), 2))
    for (ax_t, ax_h), (layer, rows) in zip(axes, per_layer.items()):
        ep = np.array([e for e, _ in rows])
        q = np.array([v for _, v in rows])  # (epochs, 11)
        ax_t.fill_between(ep, q[:, 0], q[:, 10], alpha=0.2, label="min-max")
        ax_t.fill_between(ep, q[:, 1], q[:, 9], alpha=0.4, label="10-90 %")
        ax_t.plot(ep, q[:, 5], "-o", markersize=3, label="median")
        ax_t.set(title=f"bip {layer}: τm over epochs", xlabel="epoch", ylabel="τm (steps)")
        ax_t.legend(fontsize=8)
        theta = leaks.get(layer)
        if theta is None:
            ax_h.set_axis_off()
        else:
            tau = 1 / (1 - theta.detach().double().cpu().numpy())
            ax_h.hist(tau, bins=30, color="tab:green")
            ax_h.set(title=f"bip {layer}: final τm per neuron", xlabel="τm (steps)", ylabel="neurons")
    return save(fig, path)


def plot_asrc(records, path: Path) -> Path | None:
    per_layer: dict[str, list[tuple[int, int, list[float]]]] = {}
    for r in records:
        for layer, d in (r.get("recurrence") or {}).items():
            if isinstance(d, dict) and "alpha" in d:
                per_layer.setdefault(layer, []).append((r["epoch"], d["span"], d["alpha"]))
    if not per_layer:
        return None
    fig = figure(figsize=(10, 3 * len(per_layer)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(per_layer), 2))
    for (ax_s, ax_a), (layer, rows) in zip(axes, per_layer.items()):
        ep = [e for e, _, _ in rows]
        ax_s.step(ep, [s for _, s, _ in rows], where="mid", marker="o", markersize=3)
        ax_s.set(title=f"asrc {layer}: learned span", xlabel="epoch", ylabel="span (steps)")
        alpha = np.array([a for _, _, a in rows])  # (epochs, K)
        im = ax_a.imshow(alpha.T, aspect="auto", origin="lower", interpolation="nearest", cmap="magma",
                         extent=(ep[0] - 0.5, ep[-1] + 0.5, 0.5, alpha.shape[1] + 0.5), vmin=0, vmax=1)
        ax_a.set(title=f"asrc {layer}: span weights α", xlabel="epoch", ylabel="span j")
        fig.colorbar(im, ax=ax_a)
    return save(fig, path)


def read_eval(run: RunDir, name: str) -> dict[str, Any]:
    """One ``RUN_DIR/eval/<split>.json``, checked: a square ``confusion`` matrix over ``classes``."""
    path = run / name
    try:
        d = run.read_json(name)
        classes, conf = list(d["classes"]), np.asarray(d["confusion"], dtype=float)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is not an eval record with 'classes' and 'confusion' ({type(exc).__name__}: "
                              f"{exc})") from None
    if conf.shape != (len(classes), len(classes)):
        raise CheckpointError(f"{path}: 'confusion' is {conf.shape}, expected {len(classes)} x {len(classes)} (one row "
                              "and column per class)")
    return {**d, "classes": classes, "confusion": conf}


def plot_confusion(d: dict[str, Any], path: Path) -> Path:
    conf, classes = d["confusion"], d["classes"]
    k = len(classes)
    norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    size = min(12, 2.5 + 0.45 * k)
    fig = figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        ax.set_xticks(range(k), [str(c) for c in classes], rotation=90 if k > 10 else 0)
        ax.set_yticks(range(k), [str(c) for c in classes])
        for i in range(k):
            for j in range(k):
                if conf[i, j]:
                    ax.text(j, i, f"{int(conf[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    acc = d.get("accuracy")
    ax.set(
        xlabel="predicted class",
        ylabel="true class",
        title=f"{d.get('split', path.stem)}: "
        + (f"accuracy {100 * acc:.2f} %, " if isinstance(acc, (int, float)) else "")
        + f"n = {int(conf.sum())}",
    )
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    return save(fig, path)


def plot_run(run_dir: str | Path, sample: int = 0, samples: int = 64, weights: str = "best", network: bool = True,
             data_dir: str | None = None, out_dir: str | Path | None = None) -> list[Path]:
    """Write every picture that applies to ``out_dir`` (default ``RUN_DIR/plots/``); returns their paths.
    ``network=False`` skips what needs the trained network (raster, rates, final τm): only metrics and eval
    records are read. The run itself is only read, so a read-only run plots with ``out_dir`` elsewhere."""
    run = RunDir(run_dir)
    figure()  # fail early, with the install hint, when matplotlib is missing
    records = run.metrics()  # damaged lines skipped, as everywhere (run.damage_note() says which)
    if not records:
        raise CheckpointError(f"{run} has no finished epoch in {RunDir.METRICS}; nothing to plot yet")
    out = Path(out_dir) if out_dir is not None else run / "plots"
    try:
        return _plot_all(run, records, out, sample, samples, weights, network, data_dir)
    except OSError as exc:
        if not str(exc.filename).startswith(str(out)):  # not the plots' folder: another failure
            raise
        raise ConfigError(f"the plots cannot be written to {out} ({exc.strerror})"
                          + ("; give --out DIR to write them elsewhere" if out_dir is None else
                             "; choose another --out DIR")) from None


def _plot_all(run: RunDir, records: list, out: Path, sample: int, samples: int, weights: str, network: bool,
              data_dir: str | None) -> list[Path]:
    written = [plot_curves(records, out / "curves.png")]
    net = None
    if network:
        built, net, used = open_network(run.path, weights, data_dir=data_dir)
        names, spikes, x, label, pred = record_spikes(built, samples=samples, sample=sample)
        classes = getattr(built.dataset, "class_names", None) or [str(i) for i in range(built.dataset.num_classes)]
        written.append(plot_raster(names, spikes, x, label, pred, list(classes), out / "raster.png", sample))
        written.append(plot_rates(names, [s[:, :samples] for s in spikes], out / "rates.png"))
    written += [
        q for q in (plot_bip(records, net, out / "bip.png"), plot_asrc(records, out / "asrc.png")) if q is not None
    ]
    for ev in sorted((run / "eval").glob("*.json")) if (run / "eval").is_dir() else []:
        written.append(plot_confusion(read_eval(run, f"eval/{ev.name}"), out / f"confusion_{ev.stem}.png"))
    return written
