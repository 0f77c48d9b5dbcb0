"""Inputs that used to train with exit 0 and a meaningless result (issue 13): each is refused with a clear
message before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from snnkit_cli.main import cli


def _npz(path, **over):
    rng = np.random.default_rng(0)
    d = dict(x_train=rng.random((8, 6, 4), dtype=np.float32), y_train=np.arange(8) % 2,
             x_test=rng.random((4, 6, 4), dtype=np.float32), y_test=np.arange(4) % 2)
    d.update(over)
    np.savez(path, **d)
    return path


def _train(tmp_path, *args):
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--hidden", "8,8,8", "--epochs", "1", "--out", str(out), "--quiet", *args])
    return res, out


@pytest.mark.parametrize("over, message", [
    (dict(x_train=np.zeros((0, 6, 4), np.float32), y_train=np.zeros(0, np.int64)), "the train split holds 0 examples"),
    (dict(y_test=np.array([0, 1, 5, 1])), "y_test holds label 5, which y_train never uses"),
])
def test_arrays_files_that_would_train_on_nothing_or_grow_the_classes(fake, tmp_path, over, message):
    f = _npz(tmp_path / "d.npz", **over)
    res, out = _train(tmp_path, "--dataset", "arrays", "--data-dir", str(f))
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output, res.output
    assert not out.exists()


def test_a_text_file_named_npz_is_not_called_pickled_data(fake, tmp_path):
    f = tmp_path / "d.npz"
    f.write_text("1,2,3\n")
    res, out = _train(tmp_path, "--dataset", "arrays", "--data-dir", str(f))
    assert res.exit_code == 1 and "not an .npz (zip) archive" in res.output and "pickle" not in res.output, res.output
    good = _npz(tmp_path / "g.npz")
    f.write_bytes(good.read_bytes()[:300])  # a cut-off copy starts like a zip but has no directory
    res, out = _train(tmp_path, "--dataset", "arrays", "--data-dir", str(f))
    assert res.exit_code == 1 and "truncated or damaged" in res.output and "not an .npz" not in res.output, res.output


def test_audio_too_short_for_one_frame(tmp_path):
    import soundfile as sf

    from snnkit_core.contract.errors import DatasetError
    from snnkit_datasets.audio import read_audio

    f = tmp_path / "0_x_0.wav"
    sf.write(f, np.zeros(100), 8000)
    with pytest.raises(DatasetError, match=r"0_x_0.wav holds 100 samples .* fewer than one 256-sample analysis frame"):
        read_audio(f, 8000)


@pytest.mark.parametrize("args, message", [
    (["--dataset", "espeak-digits", "--data-dir", "."], "does not read --data-dir"),
    (["--dataset", "tiny", "--rule", "bptt", "--rule", "bip", "--rule", "bip"], "rule 'bip' is given more than once"),
    (["--dataset", "tiny", "--set", "neuron.v_th=0"], "lif needs v_th > 0"),
    (["--dataset", "tiny", "--set", "neuron.v_th=-1"], "lif needs v_th > 0"),
])
def test_options_that_would_be_ignored_or_meaningless(fake, tmp_path, args, message):
    res, out = _train(tmp_path, *args)
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output, res.output
    assert not out.exists() and "snnkit train" not in res.output  # refused before the header and the folder


def test_an_unknown_section_next_to_train_in_a_config_file(fake, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\ndataset = "tiny"\nhidden = [8, 8, 8]\n\n[trian]\nepochs = 50\n')
    res, out = _train(tmp_path, "--config", str(cfg))
    assert res.exit_code == 1 and "unknown section 'trian' next to [train]" in res.output, res.output
    assert not out.exists()
