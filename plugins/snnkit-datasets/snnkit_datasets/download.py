"""Checksum-verified, resumable downloads and archive extraction with a path-traversal filter.

Used by loaders whose licence allows redistribution. Tests exercise it with ``file://`` URLs; CI never
downloads anything.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from snnkit_core.contract.errors import DatasetError


def file_digest(path: Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    return file_digest(path, "sha256", chunk)


def _expected(sha256: str | None, md5: str | None) -> list[tuple[str, str]]:
    """The checksums to verify, sha256 first. md5 is accepted for files whose publishers give only md5."""
    return [(a, v.lower()) for a, v in (("sha256", sha256), ("md5", md5)) if v]


def _mismatch(path: Path, expected: list[tuple[str, str]]) -> tuple[str, str, str] | None:
    """``(algorithm, got, expected)`` of the first checksum ``path`` fails, else None."""
    for algorithm, want in expected:
        got = file_digest(path, algorithm)
        if got != want:
            return algorithm, got, want
    return None


def download(url: str, dest: Path, sha256: str | None = None, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest``, resuming a partial ``dest.part``, and verify its sha256 (or md5, or both).

    A ``dest`` that already passes the checksums is kept as it is (nothing is fetched). The bytes go to
    ``dest.part`` and are renamed to ``dest`` only once verified, so ``dest`` is never a partial or wrong file;
    a checksum mismatch deletes ``dest.part`` and raises :class:`DatasetError`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = _expected(sha256, md5)
    if dest.exists() and _mismatch(dest, expected) is None:
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resumed = have and getattr(resp, "status", 200) == 206
            with open(part, "ab" if resumed else "wb") as f:
                shutil.copyfileobj(resp, f)
    except urllib.error.HTTPError as exc:
        if not (have and exc.code == 416):  # 416: the range starts at the end, i.e. .part is already whole
            raise DatasetError(f"could not download {url} ({exc}). Download it by hand to {dest}, or point "
                               f"--data-dir / SNNKIT_DATA at a local copy.") from None
    except (OSError, http.client.HTTPException) as exc:  # IncompleteRead is not an OSError
        raise DatasetError(
            f"could not download {url} ({exc}). Download it by hand to {dest}, or point --data-dir / "
            f"SNNKIT_DATA at a local copy."
        ) from None
    bad = _mismatch(part, expected)
    if bad is not None:
        part.unlink()
        algorithm, got, want = bad
        raise DatasetError(f"{url} downloaded with {algorithm} {got}, expected {want}; the partial file was removed, "
                           f"try again")
    os.replace(part, dest)
    return dest


def download_any(urls: list[str] | tuple[str, ...], dest: Path, sha256: str | None = None, md5: str | None = None,
                 timeout: float = 60.0) -> Path:
    """:func:`download` from the first of ``urls`` (mirrors of the same bytes) that works; each failure (no
    connection, HTTP error, checksum mismatch) moves on to the next. All failing raises one
    :class:`DatasetError` that lists every mirror's error. A ``.part`` left by one mirror is resumed from the
    next: the checksum catches a mirror serving other bytes."""
    errors = []
    for url in urls:
        try:
            return download(url, dest, sha256=sha256, md5=md5, timeout=timeout)
        except DatasetError as exc:
            errors.append(str(exc))
    if len(errors) == 1:
        raise DatasetError(errors[0])
    raise DatasetError(
        f"could not download {Path(dest).name} from any of its {len(urls)} mirrors:\n  " + "\n  ".join(errors)
    )


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
