"""Checksum-verified, resumable downloads and archive extraction with a path-traversal filter.

Used by loaders whose licence allows redistribution. Tests exercise it with ``file://`` URLs; CI never
downloads anything.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
import zipfile
from pathlib import Path

from snnkit_core.errors import DatasetError


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest``, resuming a partial ``dest.part``, and verify its sha256."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resumed = have and getattr(resp, "status", 200) == 206
            with open(part, "ab" if resumed else "wb") as f:
                shutil.copyfileobj(resp, f)
    except OSError as exc:
        raise DatasetError(
            f"could not download {url} ({exc}). Download it by hand to {dest}, or point --data-dir / "
            f"SNNKIT_DATA at a local copy."
        ) from None
    if sha256 is not None:
        got = sha256_file(part)
        if got != sha256:
            part.unlink()
            raise DatasetError(f"{url} downloaded with sha256 {got}, expected {sha256}; the partial file was removed, try again")
    os.replace(part, dest)
    return dest


def _safe_target(root: Path, name: str) -> Path:
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()):
        raise DatasetError(f"archive member {name!r} would be written outside {root}; refusing to extract it")
    return target


def extract(archive: Path, dest: Path) -> None:
    """Extract a .tar(.gz) or .zip into ``dest``; members escaping ``dest`` (../, absolute, links) are refused."""
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                _safe_target(dest, name)
            zf.extractall(dest)
        return
    try:
        with tarfile.open(archive) as tf:
            for m in tf.getmembers():
                _safe_target(dest, m.name)
                if m.issym() or m.islnk():
                    raise DatasetError(f"archive {archive} holds a link {m.name!r}; refusing to extract links")
            tf.extractall(dest, filter="data")
    except tarfile.TarError as exc:
        raise DatasetError(f"{archive} is not a readable tar or zip archive ({exc})") from None
