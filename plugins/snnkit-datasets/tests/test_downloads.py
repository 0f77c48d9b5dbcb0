"""Opt-in downloads: ``download()`` (sha256 or md5, resume over HTTP Range, mirrors) and the loaders that use it
(mnist, smnist, psmnist, fmnist, shd, ssc, gsc). Nothing leaves this machine: the loaders' URL and checksum
tables are pointed at small synthetic files through ``file://`` URLs, and resuming is checked against a local
HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import struct
import tarfile
import threading
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

import snnkit_datasets.gsc as gsc_mod
import snnkit_datasets.heidelberg as hd_mod
import snnkit_datasets.mnist as mnist_mod
from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.download import download, download_any
from snnkit_datasets.gsc import GSC
from snnkit_datasets.heidelberg import SHD, SSC
from snnkit_datasets.mnist import FMNIST, MNIST, MNIST_SHA256, PSMNIST, SMNIST


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SNNKIT_DATA", raising=False)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _count_calls(monkeypatch, module, name: str) -> list:
    """Wrap ``module.name`` so each call is recorded in the returned list."""
    calls, real = [], getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --------------------------------------------------------------------------------------------- download()


def test_download_verifies_sha256_or_md5_and_keeps_a_verified_file(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"spikes" * 1000)
    dest = tmp_path / "out" / "a.bin"
    assert download(src.as_uri(), dest, md5=_md5(src)) == dest and dest.read_bytes() == src.read_bytes()
    assert download(src.as_uri(), tmp_path / "out" / "b.bin", sha256=_sha256(src), md5=_md5(src)).is_file()
    src.write_bytes(b"changed")  # a verified dest is kept: nothing is fetched again
    assert download(src.as_uri(), dest, md5=hashlib.md5(b"spikes" * 1000).hexdigest()).read_bytes() == b"spikes" * 1000


@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_download_checksum_mismatch_names_both_values_and_leaves_no_file(tmp_path, algo):
    src = tmp_path / "src.bin"
    src.write_bytes(b"not the published bytes")
    dest = tmp_path / "out" / "a.bin"
    want = "0" * (64 if algo == "sha256" else 32)
    got = _sha256(src) if algo == "sha256" else _md5(src)
    with pytest.raises(DatasetError, match=rf"downloaded with {algo} {got}, expected {want}; the partial file was "
                                           rf"removed"):
        download(src.as_uri(), dest, **{algo: want})
    assert _all_files(tmp_path / "out") == []


def test_download_checks_sha256_before_md5(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 10)
    with pytest.raises(DatasetError, match="with sha256"):
        download(src.as_uri(), tmp_path / "a.bin", sha256="0" * 64, md5="0" * 32)
    with pytest.raises(DatasetError, match="with md5"):
        download(src.as_uri(), tmp_path / "a.bin", sha256=_sha256(src), md5="0" * 32)


def test_download_unreachable_url_says_how_to_fix_it(tmp_path):
    with pytest.raises(DatasetError, match=r"could not download .*Download it by hand to .*a.bin"):
        download((tmp_path / "absent.bin").as_uri(), tmp_path / "a.bin")
    assert not (tmp_path / "a.bin").exists()


class _RangeServer(http.server.BaseHTTPRequestHandler):
    """Serves ``payload`` at any path, honouring ``Range: bytes=N-`` (206, or 416 past the end)."""

    payload = b""
    ranges: list = []

    def do_GET(self):  # noqa: N802
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        body, status = self.payload, 200
        if rng:
            start = int(rng.split("=")[1].rstrip("-"))
            if start >= len(body):
                self.send_response(416)
                self.end_headers()
                return
            body, status = body[start:], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    _RangeServer.payload = bytes(range(256)) * 400
    _RangeServer.ranges = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/data.bin", _RangeServer
    server.shutdown()
    server.server_close()


def test_download_resumes_a_partial_file_with_a_range_request(tmp_path, http_server):
    url, handler = http_server
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(handler.payload[:40000])
    download(url, dest, sha256=hashlib.sha256(handler.payload).hexdigest())
    assert handler.ranges == ["bytes=40000-"] and dest.read_bytes() == handler.payload
    assert not (tmp_path / "data.bin.part").exists()


def test_download_accepts_a_whole_part_file_the_server_answers_416_for(tmp_path, http_server):
    url, handler = http_server
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(handler.payload)
    download(url, dest, md5=hashlib.md5(handler.payload).hexdigest())
    assert handler.ranges == [f"bytes={len(handler.payload)}-"] and dest.read_bytes() == handler.payload


class _CutChunkedServer(http.server.BaseHTTPRequestHandler):
    """A chunked response cut off in the middle of a chunk (a dropped connection)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"400\r\n" + b"x" * 100)  # promises 1024 bytes, sends 100, closes
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_a_connection_dropped_mid_chunk_is_a_clean_error(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CutChunkedServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(DatasetError, match="could not download"):
            download(f"http://127.0.0.1:{server.server_address[1]}/x.bin", tmp_path / "x.bin", sha256="0" * 64)
    finally:
        server.shutdown()
        server.server_close()
    assert not (tmp_path / "x.bin").exists()


def test_download_any_tries_the_next_mirror_and_lists_every_failure(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "f.bin").write_bytes(b"abc")
    dead = (tmp_path / "dead").as_uri() + "/"
    dest = download_any(
        [dead + "f.bin", good.as_uri() + "/f.bin"], tmp_path / "out" / "f.bin", sha256=_sha256(good / "f.bin")
    )
    assert dest.read_bytes() == b"abc"
    with pytest.raises(DatasetError, match=r"(?s)from any of its 2 mirrors:.*dead/f.bin.*expected 0000"):
        download_any([dead + "f.bin", good.as_uri() + "/f.bin"], tmp_path / "out2" / "f.bin", sha256="0" * 64)
    assert _all_files(tmp_path / "out2") == []


# ------------------------------------------------------------------------------ mnist, smnist, psmnist, fmnist

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx_gz(path: Path, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(gzip.compress(header + arr.tobytes()))


def _mnist_source(folder: Path, n_train=20, n_test=10) -> dict[str, str]:
    """The four synthetic IDX .gz files in ``folder``; returns their sha256 by file name."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for img, lbl, n in ((STEMS[0], STEMS[1], n_train), (STEMS[2], STEMS[3], n_test)):
        _idx_gz(folder / f"{img}.gz", rng.integers(0, 256, (n, 28, 28)))
        _idx_gz(folder / f"{lbl}.gz", np.arange(n) % 10)
    return {p.name: _sha256(p) for p in folder.iterdir()}


@pytest.fixture(params=[MNIST, SMNIST, PSMNIST, FMNIST], ids=lambda c: c.name)
def idx_loader(request, tmp_path, monkeypatch):
    """A loader class whose mirrors are a dead file:// folder and then the synthetic one."""
    cls = request.param
    sums = _mnist_source(tmp_path / "mirror")
    monkeypatch.setattr(cls, "mirrors", ((tmp_path / "dead").as_uri() + "/", (tmp_path / "mirror").as_uri() + "/"))
    monkeypatch.setattr(cls, "sha256", sums)
    monkeypatch.setattr(cls, "system_dirs", ())
    return cls, tmp_path / "root", tmp_path / "root" / cls.folder_name


def test_idx_loaders_download_only_when_asked(idx_loader):
    cls, root, _ = idx_loader
    with pytest.raises(DatasetError, match=r"not found: .*add --set dataset.download=true"):
        cls(data_dir=str(root)).load("train")
    assert _all_files(root) == []


def test_idx_loaders_download_to_the_folder_they_read_and_only_once(idx_loader, monkeypatch):
    cls, root, folder = idx_loader
    calls = _count_calls(monkeypatch, mnist_mod, "download_any")
    train = cls(data_dir=str(root), download=True).load("train")
    assert len(train) == 20 and train.y.tolist()[:3] == [0, 1, 2] and len(calls) == 4
    assert _all_files(root) == sorted(f"{cls.folder_name}/{s}.gz" for s in STEMS)
    assert {p.name: _sha256(p) for p in folder.iterdir()} == cls.sha256
    assert len(cls(data_dir=str(root), download=True).load("test")) == 10 and len(calls) == 4  # nothing fetched again
    assert len(cls(data_dir=str(folder)).load("test")) == 10  # and the plain loader reads the same folder


def test_idx_loaders_complete_a_partial_folder(idx_loader, monkeypatch):
    cls, root, folder = idx_loader
    folder.mkdir(parents=True)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(
        (root.parent / "mirror" / "train-labels-idx1-ubyte.gz").read_bytes()
    )
    with pytest.raises(DatasetError, match=r"incomplete: missing .*add --set dataset.download=true"):
        cls(data_dir=str(root)).load("test")
    calls = _count_calls(monkeypatch, mnist_mod, "download_any")
    assert len(cls(data_dir=str(root), download=True).load("test")) == 10 and len(calls) == 3


def test_idx_loaders_checksum_mismatch_is_an_error_and_leaves_no_file(idx_loader, monkeypatch):
    cls, root, folder = idx_loader
    monkeypatch.setattr(cls, "sha256", {**cls.sha256, "t10k-images-idx3-ubyte.gz": "0" * 64})
    with pytest.raises(DatasetError, match=r"(?s)t10k-images-idx3-ubyte.gz from any of its 2 mirrors.*with sha256 "
                                           r"[0-9a-f]{64}, expected 0{64}"):
        cls(data_dir=str(root), download=True).load("train")
    assert not (folder / "t10k-images-idx3-ubyte.gz").exists() and not list(folder.glob("*.part"))


def _shared_mnist() -> Path | None:
    env = os.environ.get("SNNKIT_TEST_DATA")
    p = (Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "datasets") / "mnist"
    return p if (p / "train-images-idx3-ubyte.gz").is_file() else None


@pytest.mark.skipif(_shared_mnist() is None, reason="../shared/datasets/mnist is not present")
def test_real_mnist_files_pass_the_published_sha256(tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", (_shared_mnist().as_uri() + "/",))
    folder = MNIST(data_dir=str(tmp_path)).fetch()
    assert {p.name: _sha256(p) for p in folder.iterdir()} == MNIST_SHA256


# ------------------------------------------------------------------------------------------------ shd, ssc


def _h5(path: Path, n: int, classes: int) -> None:
    rng = np.random.default_rng(n)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(n):
            times[i] = np.sort(rng.uniform(0, 1.3, 10)).astype(np.float32)
            units[i] = rng.integers(0, 700, 10).astype(np.uint16)
        f.create_dataset("labels", data=(np.arange(n) % classes).astype(np.uint16))


@pytest.fixture
def heidelberg_mirror(tmp_path, monkeypatch):
    """zenkelab's zip archives, synthetic: <name>.h5.zip holding <name>.h5 with n examples; md5s patched in."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    sizes = {"shd_train": 10, "shd_test": 4, "ssc_train": 12, "ssc_valid": 5, "ssc_test": 6}
    for name, n in sizes.items():
        _h5(tmp_path / f"{name}.h5", n, 20 if name.startswith("shd") else 35)
        with zipfile.ZipFile(mirror / f"{name}.h5.zip", "w") as zf:
            zf.write(tmp_path / f"{name}.h5", f"{name}.h5")
        monkeypatch.setitem(hd_mod.ZIP_MD5, f"{name}.h5.zip", _md5(mirror / f"{name}.h5.zip"))
    monkeypatch.setattr(hd_mod, "BASE_URL", mirror.as_uri() + "/")
    return sizes


@pytest.mark.parametrize("cls", [SHD, SSC], ids=["shd", "ssc"])
def test_heidelberg_downloads_only_when_asked(tmp_path, heidelberg_mirror, cls):
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match=r"not found: .*add --set dataset.download=true to fetch it"):
        cls(data_dir=str(root)).load("test")
    assert _all_files(root) == []


@pytest.mark.parametrize(
    "cls, split, file, n", [(SHD, "test", "shd_test", 4), (SSC, "val", "ssc_valid", 5)], ids=["shd", "ssc"]
)
def test_heidelberg_downloads_the_h5_where_it_reads_it_and_only_once(
    tmp_path, heidelberg_mirror, monkeypatch, cls, split, file, n
):
    root = tmp_path / "root"
    calls = _count_calls(monkeypatch, hd_mod, "download")
    x = cls(data_dir=str(root), download=True).load(split)
    assert len(x) == n and len(calls) == 1
    assert _all_files(root) == [f"{cls.prefix}/{file}.h5"]  # archive, staging and temporary folder removed
    assert len(cls(data_dir=str(root), download=True).load(split)) == n and len(calls) == 1
    assert len(cls(data_dir=str(root)).load(split)) == n
    train = cls(data_dir=str(root), download=True).load("train")  # fetches only the training file
    assert len(calls) == 2 and len(train) == (9 if cls is SHD else 12)  # SHD: 10 minus the 10 % val hold-out


@pytest.mark.parametrize("cls", [SHD, SSC], ids=["shd", "ssc"])
def test_heidelberg_checksum_mismatch_is_an_error_and_leaves_no_file(tmp_path, heidelberg_mirror, monkeypatch, cls):
    monkeypatch.setitem(hd_mod.ZIP_MD5, f"{cls.prefix}_test.h5.zip", "0" * 32)
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match=rf"{cls.prefix}_test.h5.zip downloaded with md5 [0-9a-f]{{32}}, expected "
                                           rf"0{{32}}"):
        cls(data_dir=str(root), download=True).load("test")
    assert _all_files(root) == []


def test_heidelberg_archive_without_the_file_is_an_error(tmp_path, heidelberg_mirror, monkeypatch):
    mirror = tmp_path / "mirror"
    with zipfile.ZipFile(mirror / "shd_test.h5.zip", "w") as zf:
        zf.writestr("other.h5", b"x")
    monkeypatch.setitem(hd_mod.ZIP_MD5, "shd_test.h5.zip", _md5(mirror / "shd_test.h5.zip"))
    with pytest.raises(DatasetError, match=r"shd_test.h5.zip holds no shd_test.h5"):
        SHD(data_dir=str(tmp_path / "root"), download=True).load("test")
    assert not (tmp_path / "root" / "shd" / "shd_test.h5").exists()


# ---------------------------------------------------------------------------------------------------- gsc


def _gsc_archive(tmp_path: Path, version: str) -> Path:
    """A tiny Speech Commands tree packed as the official archives are (members ./<word>/..., ./testing_list.txt)."""
    tree = tmp_path / "tree"
    rng = np.random.default_rng(0)
    for w in ("yes", "cat"):
        (tree / w).mkdir(parents=True)
        for i in range(3):
            sf.write(tree / w / f"{i:08x}_nohash_0.wav", 0.1 * rng.standard_normal(16000), 16000, subtype="PCM_16")
    (tree / "validation_list.txt").write_text("yes/00000000_nohash_0.wav\n")
    (tree / "testing_list.txt").write_text("cat/00000001_nohash_0.wav\nyes/00000002_nohash_0.wav\n")
    (tree / "_background_noise_").mkdir()
    sf.write(tree / "_background_noise_" / "noise.wav", 0.1 * rng.standard_normal(20000), 16000, subtype="PCM_16")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = mirror / f"speech_commands_{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tree, arcname=".")
    return archive


@pytest.fixture(params=["v0.01", "v0.02"])
def gsc_mirror(request, tmp_path, monkeypatch):
    version = request.param
    archive = _gsc_archive(tmp_path, version)
    monkeypatch.setattr(gsc_mod, "ARCHIVE_URL", archive.parent.as_uri() + "/speech_commands_{version}.tar.gz")
    monkeypatch.setitem(gsc_mod.ARCHIVE_SHA256, version, _sha256(archive))
    return version


def test_gsc_downloads_only_when_asked(tmp_path, gsc_mirror):
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match=r"not found: .*add --set dataset.download=true"):
        GSC(data_dir=str(root), download_version=gsc_mirror).load("train")
    assert _all_files(root) == []


def test_gsc_downloads_and_unpacks_where_it_reads_and_only_once(tmp_path, gsc_mirror, monkeypatch):
    root = tmp_path / "root"
    calls = _count_calls(monkeypatch, gsc_mod, "download")
    ds = GSC(data_dir=str(root), download=True, download_version=gsc_mirror)
    tr, va, te = (ds.load(s) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (3 + 1, 1, 2) and len(calls) == 1  # 3 clips + 1 silence crop
    target = root / f"speech_commands_{gsc_mirror}"
    assert (
        ds.folder == target
        and (target / "testing_list.txt").is_file()
        and (target / "yes" / "00000000_nohash_0.wav").is_file()
    )
    assert sorted(p.name for p in root.iterdir()) == [target.name]  # archive and staging removed
    again = GSC(data_dir=str(root), download=True, download_version=gsc_mirror)
    assert len(again.load("test")) == 2 and len(calls) == 1
    assert len(GSC(data_dir=str(root)).load("test")) == 2  # the same features: download is not in the cache key


def test_gsc_checksum_mismatch_is_an_error_and_leaves_no_file(tmp_path, gsc_mirror, monkeypatch):
    monkeypatch.setitem(gsc_mod.ARCHIVE_SHA256, gsc_mirror, "0" * 64)
    root = tmp_path / "root"
    with pytest.raises(DatasetError, match=rf"speech_commands_{gsc_mirror}.tar.gz downloaded with sha256 "
                                           rf"[0-9a-f]{{64}}, expected 0{{64}}"):
        GSC(data_dir=str(root), download=True, download_version=gsc_mirror).load("train")
    assert _all_files(root) == [] and not (root / f"speech_commands_{gsc_mirror}").exists()


def test_gsc_refuses_to_download_over_a_partial_folder(tmp_path, gsc_mirror):
    partial = tmp_path / "root" / f"speech_commands_{gsc_mirror}" / "yes"
    partial.mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"exists but holds no testing_list.txt: a partial copy\? Remove it"):
        GSC(data_dir=str(tmp_path / "root"), download=True, download_version=gsc_mirror).load("train")
