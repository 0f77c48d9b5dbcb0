"""The sweep's first catalogue: data loss, plugins, silent acceptance, tracebacks, wording, and inputs handled
well before it (kept so they stay handled)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import numpy as np

from .kit import SMALL, case, metrics, wait_for

# ----------------------------------------------------------------------------------------- data lost


@case("data lost", "two processes started together with one --out", "error", ["in use by process"])
def _(ctx):
    # both start at once and train "forever": one must be refused while the other holds the run; the owner is then
    # stopped with Ctrl-C (the records it kept must be its own epochs, in order, once each)
    data = ctx.npz()
    procs = [ctx.popen("train", "--dataset", "arrays", "--data-dir", data, "--epochs", 100000, *SMALL, "--out", "run")
             for _ in range(2)]
    t0 = time.time()
    while all(p.poll() is None for p in procs) and time.time() - t0 < 200:
        time.sleep(0.2)
    wait_for(ctx.dir / "run" / "metrics.jsonl", timeout=60)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    outs = [p.communicate(timeout=120)[0] for p in procs]
    ctx.outputs += outs
    epochs = [r["epoch"] for r in metrics(ctx.dir / "run")] if (ctx.dir / "run" / "metrics.jsonl").exists() else []
    if epochs != list(range(1, len(epochs) + 1)):
        ctx.lost.append(f"metrics.jsonl interleaved: epochs {epochs[:12]} ...")
    refused = [(p.returncode, o) for p, o in zip(procs, outs) if p.returncode not in (0, 130)]
    if len(refused) == 1 and epochs and sum(p.returncode == 130 for p in procs) == 1:
        return refused[0]  # one owner kept the run; the other was refused
    return 0, "\n".join(outs)


@case("data lost", "two runs without --out started together", "ok")
def _(ctx):
    data = ctx.npz()
    procs = [ctx.popen("train", "--dataset", "arrays", "--data-dir", data, "--epochs", 2, *SMALL) for _ in range(2)]
    outs = [p.communicate()[0] for p in procs]
    ctx.outputs += outs
    runs = sorted((ctx.dir / "runs").iterdir()) if (ctx.dir / "runs").exists() else []
    ok = all(p.returncode == 0 for p in procs) and len(runs) == 2 and all(len(metrics(r)) == 2 for r in runs)
    if len(runs) == 1:
        ctx.lost.append(f"both runs wrote into {runs[0].name}: {[r['epoch'] for r in metrics(runs[0])]}")
    return ok


@case("data lost", "--out is the user's own folder (config.toml)", "error", ["not a snnkit run"])
def _(ctx):
    mine = ctx.dir / "mine"
    mine.mkdir()
    (mine / "config.toml").write_text("# my own settings\nx = 1\n")
    code, out = ctx.train("--out", mine)
    if (mine / "config.toml").read_text() != "# my own settings\nx = 1\n" or len(list(mine.iterdir())) != 1:
        ctx.lost.append(f"the folder now holds {sorted(p.name for p in mine.iterdir())}; config.toml overwritten")
    return code, out


_REF: dict[str, list] = {}  # the uninterrupted run's records, trained once per sweep (the data are the same)
_REF_LOCK = threading.Lock()


def _reference(ctx, data) -> tuple[int, list]:
    with _REF_LOCK:
        if "records" not in _REF:
            code, _ = ctx.train("--out", "ref", epochs=3, data=data)
            if code != 0:
                return code, []
            _REF["records"] = metrics(ctx.dir / "ref")
    return 0, _REF["records"]


for point in ("metrics:2", "checkpoint-tmp:2", "checkpoint:1", "status:1"):

    @case("data lost", f"killed at write {point}, then --resume", "ok")
    def _(ctx, point=point):
        data = ctx.npz()
        ref_code, ref = _reference(ctx, data)
        code, out = ctx.train("--out", "run", epochs=3, data=data, env={"SNNKIT_FAULT_AT": point})
        if code == 0:
            return "n/a"  # this tree has no fault-injection points: nothing was killed
        run = ctx.dir / "run"
        if (run / "checkpoint.pt").exists():
            code, out = ctx.snnkit("train", "--resume", run)
        else:
            code, out = ctx.train("--out", run, epochs=3, data=data)
        leftovers = [p.name for p in run.iterdir() if ".tmp" in p.name]
        if leftovers:
            ctx.lost.append(f"temporary files left: {leftovers}")
        if code == 0 and metrics(run) != ref:
            ctx.lost.append(f"metrics differ from an uninterrupted run: epochs {[r['epoch'] for r in metrics(run)]}")
        return ref_code == 0 and code == 0 and metrics(run) == ref


# ----------------------------------------------------------------------------------------- plugins

_PLUGINS = {
    "misspelt hook": "from snnkit_core import hookimpl\n\n@hookimpl\ndef register_nurons(register):\n    pass\n",
    "SystemExit at import": "raise SystemExit('plugin exits at import')\n",
    "argv parsing at import": "import argparse\np = argparse.ArgumentParser()\np.add_argument('--mine', "
                              "required=True)\np.parse_args()\n",
    "BaseException subclass raised at import": "class Boom(BaseException):\n    pass\n\nraise Boom('base exception')\n",
}

for label, source in _PLUGINS.items():

    @case("plugin", f"plugin with a {label}: --help, info, list-plugins", "ok")
    def _(ctx, source=source):
        ctx.plugin("bad-plugin", source)
        results = [ctx.snnkit(*args) for args in (["--help"], ["info", "lif"], ["list-plugins", "--json"])]
        if any(code != 0 for code, _ in results):
            return False
        rows = {r["name"]: r for r in json.loads(results[-1][1])}
        return bool(rows.get("bad-plugin", {}).get("error")) and rows["snnkit-neurons"]["error"] is None


@case("plugin", "name clash: a harmless component of the broken plugin", "error",
      ["would provide it but is not loaded", "aaa-clash"])
def _(ctx):
    ctx.plugin("aaa-clash", """
        from snnkit_core import hookimpl
        from snnkit_neurons.lif import LIF

        class Impostor(LIF):
            name = "lif"

        class Harmless(LIF):
            name = "harmless-neuron"

        @hookimpl
        def register_neurons(register):
            register(Harmless)
            register(Impostor)
    """)
    return ctx.snnkit("info", "harmless-neuron")


@case("plugin", "a broken plugin's long reason in the list-plugins table", "ok")
def _(ctx):
    ctx.plugin("long-plugin", "raise RuntimeError('reason ' + 'word ' * 40 + 'THE-END')\n")
    code, out = ctx.snnkit("list-plugins")
    return code == 0 and "THE-END" in "".join(c for c in out if c not in " \n│┃")


# ----------------------------------------------------------------------------------------- nothing silently


def _not_written(ctx, out="run"):
    if (ctx.dir / out).exists():
        ctx.lost.append(f"written: {out}/ was created for a refused run: "
                        f"{sorted(p.name for p in (ctx.dir / out).iterdir())}")


@case("silent", "arrays file with zero training examples", "error", ["0 examples"])
def _(ctx):
    r = ctx.train("--out", "run", data=ctx.npz(x_train=np.zeros((0, 10, 4), np.float32), y_train=np.zeros(0, np.int64)))
    _not_written(ctx)
    return r


@case("silent", "test labels outside the training labels", "error", ["never uses"])
def _(ctx):
    r = ctx.train("--out", "run", data=ctx.npz(y_test=np.array([0, 1, 7, 1, 0, 1, 0, 1])))
    _not_written(ctx)
    return r


@case("silent", "audio too short for one frame (fsdd)", "error", ["fewer than one", "0_x_1.wav"])
def _(ctx):
    import soundfile as sf

    rec = ctx.dir / "data" / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for d in range(2):
        for t in range(6):
            n = 100 if (d, t) == (0, 1) else 4000
            sf.write(rec / f"{d}_x_{t}.wav", rng.standard_normal(n) * 0.1, 8000)
    return ctx.snnkit("data", "info", "fsdd", "--data-dir", ctx.dir / "data")


@case("silent", "unknown section next to [train] in a config file", "error", ["unknown section"])
def _(ctx):
    data = ctx.npz()
    (ctx.dir / "c.toml").write_text(f'[train]\ndataset = "arrays"\ndata_dir = "{data}"\nhidden = [8, 8, '
                                    f'8]\n\n[trian]\nepochs = 50\n')
    r = ctx.snnkit("train", "--config", "c.toml", "--out", "run", "--quiet")
    _not_written(ctx)
    return r


@case("silent", "--data-dir given to a dataset that ignores it", "error", ["does not read --data-dir"])
def _(ctx):
    r = ctx.snnkit(
        "train", "--dataset", "espeak-digits", "--data-dir", ctx.dir, "--epochs", 1, "--out", "run", "--quiet"
    )
    _not_written(ctx)
    return r


@case("silent", "the same add-on rule twice", "error", ["more than once"])
def _(ctx):
    r = ctx.train("--rule", "bptt", "--rule", "bip", "--rule", "bip", "--out", "run")
    _not_written(ctx)
    return r


@case("silent", "non-positive threshold (lif v_th=0)", "error", ["v_th > 0"])
def _(ctx):
    r = ctx.train("--set", "neuron.v_th=0", "--out", "run")
    _not_written(ctx)
    return r


@case("silent", "learning rate so large the loss explodes without NaN", "error", ["diverged"])
def _(ctx):
    return ctx.train("--lr", "1e6", "--out", "run", epochs=3)


@case("silent", "--resume on a finished run", "ok", ["is complete"])
def _(ctx):
    ctx.train("--out", "run")
    return ctx.snnkit("train", "--resume", "run")


@case("silent", "after divergence: --init-from with a lower --lr", "ok", ["final test accuracy"])
def _(ctx):
    data = ctx.npz()
    ctx.train("--out", "good", epochs=1, data=data)
    code, out = ctx.train("--init-from", "good", "--lr", "1e6", "--out", "bad", epochs=2, data=data)
    if code == 0 or "--init-from" not in out and "lower --lr" not in out:
        return False
    return ctx.train("--init-from", "good", "--lr", "1e-3", "--out", "again", epochs=1, data=data)


# ----------------------------------------------------------------------------------------- tracebacks


@case("traceback", "--out under a file", "error", ["is a file"])
def _(ctx):
    (ctx.dir / "f").write_text("x")
    return ctx.train("--out", ctx.dir / "f" / "run")


@case("traceback", "--out on a read-only path (/proc)", "error", ["cannot be"])
def _(ctx):
    return ctx.train("--out", "/proc/snnkit-sweep-run")


@case("traceback", "bench --repeats 0", "error", ["--repeats"])
def _(ctx):
    return ctx.snnkit("bench", "--repeats", "0")


@case("traceback", "optimizer overflow at --lr 1e300", "error", ["lower --lr"])
def _(ctx):  # torch's per-tensor Adam raises ("overflowed"); the fused one makes the next loss nan: both advise
    return ctx.train("--lr", "1e300", "--out", "run")


def _damaged_run(ctx, change) -> Path:
    import torch

    ctx.train("--out", "run", epochs=3, env={"SNNKIT_FAULT_AT": "metrics:2"})
    run = ctx.dir / "run"
    if not (run / "checkpoint.pt").exists():  # a tree without fault points ran all 3 epochs
        pass
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    change(ck)
    torch.save(ck, run / "checkpoint.pt")
    return run


@case("traceback", "--resume with a checkpoint that lacks the model", "error", ["lacks 'model'"])
def _(ctx):
    run = _damaged_run(ctx, lambda ck: ck.pop("model"))
    return ctx.snnkit("train", "--resume", run)


@case("traceback", "eval with a checkpoint of the wrong shapes", "error", ["does not fit"])
def _(ctx):
    import torch

    run = _damaged_run(ctx, lambda ck: ck["model"].update({k: torch.zeros(2) for k in ck["model"]}))
    return ctx.snnkit(
        "eval", run, "--checkpoint", "last"
    )  # the file damaged is checkpoint.pt (eval reads best.pt by default)


@case("traceback", "--resume after config.toml was edited", "error", ["was edited"])
def _(ctx):
    run = _damaged_run(ctx, lambda ck: None)
    text = (run / "config.toml").read_text()
    (run / "config.toml").write_text(text.replace("hidden = [8, 8, 8]", "hidden = [8, 16, 8]"))
    return ctx.snnkit("train", "--resume", run)


@case("traceback", "--resume with a torn last line in metrics.jsonl", "ok")
def _(ctx):
    run = _damaged_run(ctx, lambda ck: None)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "train_lo')
    code, out = ctx.snnkit("train", "--resume", run)
    return code == 0 and [r["epoch"] for r in metrics(run)] == [1, 2, 3]


@case("traceback", "Ctrl-C during training", "error", ["snnkit train --resume"])
def _(ctx):
    data = ctx.npz()
    p = ctx.popen("train", "--dataset", "arrays", "--data-dir", data, "--epochs", 100000, *SMALL, "--out", "run")
    wait_for(ctx.dir / "run" / "metrics.jsonl")
    p.send_signal(signal.SIGINT)
    out = p.communicate(timeout=60)[0]
    ctx.outputs.append(out)
    return p.returncode, out


# ----------------------------------------------------------------------------------------- wording


@case("wording", "info --kind dataset lif", "error", ["is a neuron"], forbidden=["Did you mean 'lif'"])
def _(ctx):
    return ctx.snnkit("info", "--kind", "dataset", "lif")


@case("wording", "unknown component name", "error", ["Installed components"], forbidden=["component components"])
def _(ctx):
    return ctx.snnkit("info", "lfi")


@case(
    "wording", "incompatible combination with no working neuron", "error", ["incompatible"], forbidden=["neurons none"]
)
def _(ctx):
    return ctx.train("--rule", "tssl-bp", "--conn", "dense", "--out", "run")


@case("wording", "a text file given as .npz", "error", ["not an .npz"], forbidden=["pickle"])
def _(ctx):
    (ctx.dir / "d.npz").write_text("1,2,3\n")
    return ctx.snnkit("train", "--dataset", "arrays", "--data-dir", ctx.dir / "d.npz", *SMALL, "--out", "run")


@case("wording", "a checkpoint holding an unsafe pickle", "error", ["cannot be read"],
      forbidden=["file an issue", "Please use", "Check the documentation of torch.load"])
def _(ctx):
    import datetime

    import torch

    ctx.train("--out", "run", epochs=1)
    torch.save({"epoch": 0, "model": {}, "when": datetime.date(2026, 1, 1)}, ctx.dir / "run" / "checkpoint.pt")
    return ctx.snnkit("eval", "run", "--checkpoint", "last")


# ----------------------------------------------------------------------------------------- handled before


@case("kept", "kill -9 during training, then --resume", "ok", ["final test accuracy"])
def _(ctx):
    data = ctx.npz()
    p = ctx.popen("train", "--dataset", "arrays", "--data-dir", data, "--epochs", 30, *SMALL, "--out", "run")
    wait_for(ctx.dir / "run" / "checkpoint.pt")
    p.send_signal(signal.SIGKILL)
    p.wait()
    return ctx.snnkit("train", "--resume", "run")


@case("kept", "truncated .npz", "error", ["cannot read"])
def _(ctx):
    f = ctx.npz()
    f.write_bytes(f.read_bytes()[:200])
    return ctx.snnkit("train", "--dataset", "arrays", "--data-dir", f, *SMALL, "--out", "run")


@case("kept", "checkpoint overwritten with garbage", "error", ["corrupt"])
def _(ctx):
    ctx.train("--out", "run", epochs=1)
    (ctx.dir / "run" / "checkpoint.pt").write_bytes(b"garbage")
    return ctx.snnkit("eval", "run", "--checkpoint", "last")


@case("kept", "unknown connectivity with a close match", "error", ["Did you mean"])
def _(ctx):
    return ctx.train("--conn", "srcs", "--out", "run")
