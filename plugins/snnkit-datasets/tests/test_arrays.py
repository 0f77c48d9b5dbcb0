"""``arrays`` loader: dense and event files in .npz and .pt, and the validation errors (key, shape found, expected)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.arrays import Arrays


def _dense(**over):
    rng = np.random.default_rng(0)
    d = {"x_train": rng.random((6, 5, 3), dtype=np.float32), "y_train": np.array([0, 1, 2, 0, 1, 2]),
         "x_test": rng.random((4, 5, 3)).astype(np.float64), "y_test": np.array([2, 1, 0, 1], dtype=np.int32)}
    d.update(over)
    return {k: v for k, v in d.items() if v is not None}


def _npz(tmp_path: Path, name="d.npz", **over) -> Path:
    p = tmp_path / name
    np.savez(p, **_dense(**over))
    return p


def test_dense_npz_via_path_and_data_dir(tmp_path):
    p = _npz(tmp_path, class_names=np.array(["a", "b", "c", "d"]))
    ds = Arrays(path=str(p))
    tr, te = ds.load("train"), ds.load("test")
    assert tuple(tr.x.shape) == (6, 5, 3) and tr.x.dtype == torch.float32 and te.y.dtype == torch.int64
    assert ds.splits == ("train", "test") and ds.input_size == 3
    assert ds.num_classes == 4 and ds.class_names == ["a", "b", "c", "d"]
    assert torch.equal(Arrays(data_dir=str(tmp_path)).load("test").y, te.y)  # a folder with one file
    ident = ds.identity()
    assert ident["bytes"] == p.stat().st_size and len(ident["sha256"]) == 64


def test_a_file_given_as_data_dir_is_read_and_path_wins(tmp_path):
    p = _npz(tmp_path)
    ds = Arrays(data_dir=str(p))  # the loader takes the file itself as data_dir (the CLI's --data-dir takes folders)
    assert ds.file() == p and ds.splits == ("train", "test") and len(ds.load("train")) == 6
    (tmp_path / "sub").mkdir()
    other = _npz(tmp_path / "sub", name="o.npz", x_train=np.zeros((3, 5, 3)), y_train=np.array([0, 1, 2]))
    assert len(Arrays(data_dir=str(p), path=str(other)).load("train")) == 3  # path, when given, wins
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"notes.txt is neither .npz nor .pt"):
        Arrays(data_dir=str(tmp_path / "notes.txt")).load("train")
    with pytest.raises(DatasetError, match=r"gone.npz does not exist; expected a .npz or .pt file"):
        Arrays(data_dir=str(tmp_path / "gone.npz")).load("train")


def test_pt_file_with_val_split_and_inferred_classes(tmp_path):
    p = tmp_path / "d.pt"
    d = {k: torch.from_numpy(np.asarray(v)) for k, v in _dense().items()}
    d.update(x_val=torch.zeros(2, 5, 3, dtype=torch.bool), y_val=torch.tensor([2, 0]))
    torch.save(d, p)
    ds = Arrays(path=str(p))
    assert ds.splits == ("train", "val", "test") and ds.num_classes == 3  # largest training label + 1
    assert ds.load("val").x.dtype == torch.float32 and ds.class_names == ["0", "1", "2"]


def test_events_pt_and_npz_are_binned_to_counts(tmp_path):
    ev = [torch.tensor([[0, 0], [2, 3], [2, 3]]), torch.zeros(0, 2, dtype=torch.int64), torch.tensor([[1, 4]])]
    common = {"y_train": torch.tensor([0, 1, 1]), "events_test": [torch.tensor([[1, 1]])], "y_test": torch.tensor([0]),
              "num_channels": 3, "steps": 5}
    torch.save({"events_train": ev, **common}, tmp_path / "e.pt")
    x = Arrays(path=str(tmp_path / "e.pt")).load("train").x
    assert tuple(x.shape) == (3, 5, 3) and float(x.sum()) == 4.0
    assert x[0, 0, 0] == 1 and x[0, 3, 2] == 2 and x[1].sum() == 0 and x[2, 4, 1] == 1
    np.savez(tmp_path / "e.npz", events_train=np.array([[0, 0], [2, 3], [2, 3], [1, 4]]),
             events_train_offsets=np.array([0, 3, 3, 4]), y_train=np.array([0, 1, 1]), events_test=np.array([[1, 1]]),
             events_test_offsets=np.array([0, 1]), y_test=np.array([0]), num_channels=3, steps=5)
    assert torch.equal(Arrays(path=str(tmp_path / "e.npz")).load("train").x, x)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"x_train": np.zeros((6, 5))}, r"'x_train' has shape \(6, 5\); expected \(N, T, C\)"),
        ({"y_train": np.zeros((6, 1), np.int64)}, r"'y_train' has shape \(6, 1\); expected \(6,\)"),
        ({"y_train": np.zeros(5, np.int64)}, r"'y_train' has shape \(5,\); expected \(6,\)"),
        ({"y_train": np.zeros(6, np.float32)}, r"'y_train' has dtype torch.float32; expected integers"),
        ({"y_test": np.array([0, 1, -1, 0])}, r"y_test holds label -1; expected 0..2"),
        ({"x_test": np.zeros((4, 5, 2))}, r"different channel counts C \{'train': 3, 'test': 2\}"),
        ({"x_test": None, "y_test": None}, r"split 'test' is missing: expected x_test \(N, T, C\) and y_test \(N,\)"),
        ({"x_train": np.full((6, 5, 3), np.nan)}, r"'x_train' holds NaN"),
        ({"x_train": np.array([["a"] * 3] * 5 * 6).reshape(6, 5, 3)}, r"'x_train' is a ndarray of dtype <U1; expected "
                                                                      r"a numeric array"),
        ({"class_names": np.array(["a", "b"])}, r"y_train holds label 2; expected 0..1 \(2 class_names\)"),
    ],
)
def test_dense_validation_errors_name_key_and_shapes(tmp_path, over, match):
    with pytest.raises(DatasetError, match=match):
        Arrays(path=str(_npz(tmp_path, **over))).load("train")


def test_event_validation_errors(tmp_path):
    base = {"y_train": torch.tensor([0]), "events_test": [torch.tensor([[0, 0]])], "y_test": torch.tensor([0]),
            "num_channels": 3, "steps": 5}

    def err(**over):
        d = {"events_train": [torch.tensor([[0, 0]])], **base, **over}
        torch.save({k: v for k, v in d.items() if v is not None}, tmp_path / "e.pt")
        with pytest.raises(DatasetError) as info:
            Arrays(path=str(tmp_path / "e.pt")).load("train")
        return str(info.value)

    assert "events_train[0] has shape (3,); expected (k, 2)" in err(events_train=[torch.tensor([0, 1, 2])])
    assert "has channel 3; expected 0..2 (num_channels = 3)" in err(events_train=[torch.tensor([[3, 0]])])
    assert "has time step 5; expected 0..4 (steps = 5)" in err(events_train=[torch.tensor([[0, 5]])])
    assert "non-integer channel or time" in err(events_train=[torch.tensor([[0.5, 1.0]])])
    assert "'steps' must be a positive integer" in err(steps=0)
    assert "need the scalar 'num_channels'" in err(num_channels=None)
    np.savez(tmp_path / "o.npz", events_train=np.zeros((2, 2), np.int64), events_train_offsets=np.array([0, 1]),
             y_train=np.array([0]), x_test=np.zeros((1, 5, 3)), y_test=np.array([0]), num_channels=3, steps=5)
    with pytest.raises(DatasetError, match=r"'events_train_offsets' \(shape \(2,\)\) must rise from 0 to 2"):
        Arrays(path=str(tmp_path / "o.npz")).load("train")


def test_file_errors(tmp_path):
    with pytest.raises(DatasetError, match="arrays needs a file"):
        Arrays().load("train")
    with pytest.raises(DatasetError, match=r"holds 0 .npz/.pt files .*expected exactly one"):
        Arrays(data_dir=str(tmp_path)).load("train")
    with pytest.raises(DatasetError, match="does not exist"):
        Arrays(path=str(tmp_path / "nope.npz")).load("train")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(_npz(tmp_path).read_bytes()[:50])
    with pytest.raises(DatasetError, match="cannot read .*bad.npz"):
        Arrays(path=str(bad)).load("train")
    obj = tmp_path / "obj.npz"
    np.savez(obj, events_train=np.array([np.zeros((1, 2)), np.zeros((2, 2))], dtype=object), y_train=np.array([0, 1]))
    with pytest.raises(DatasetError, match="Object arrays are not read"):
        Arrays(path=str(obj)).load("train")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DatasetError, match="holds a list; expected a dict"):
        Arrays(path=str(tmp_path / "list.pt")).load("train")


def test_registered_by_name():
    from snnkit_core.contract.plugins import get_registry

    assert get_registry().get("dataset", "arrays") is Arrays


def test_a_folder_of_npy_files_is_memory_mapped_in_its_dtype(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.poisson(0.5, (12, 5, 3)).astype(np.uint8)
    y = np.arange(12) % 3
    folder = tmp_path / "big"
    folder.mkdir()
    for k, v in dict(x_train=x, y_train=y, x_test=x[:4], y_test=y[:4]).items():
        np.save(folder / f"{k}.npy", v)
    np.savez(tmp_path / "same.npz", x_train=x, y_train=y, x_test=x[:4], y_test=y[:4])
    ds = Arrays(data_dir=str(folder))
    tr = ds.load("train")
    assert tr.x.dtype == torch.uint8 and ds.splits == ("train", "test") and ds.input_size == 3
    mapped = ds._read()["x_train"]
    assert isinstance(mapped, np.memmap) and tr.x.data_ptr() == mapped.ctypes.data  # the file's map, not a copy
    ref = Arrays(path=str(tmp_path / "same.npz")).load("train")
    idx = torch.tensor([7, 0, 3])
    assert torch.equal(tr.batch(idx), ref.batch(idx)) and ref.x.dtype == torch.float32
    assert "files_identity" in ds.identity()
    np.save(folder / "x_val.npy", np.full((2, 5, 3), np.nan, np.float16))
    np.save(folder / "y_val.npy", np.zeros(2, np.int64))
    with pytest.raises(DatasetError, match="NaN"):
        Arrays(data_dir=str(folder)).load("val")
