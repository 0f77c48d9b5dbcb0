"""Reading IDX files (the MNIST / Fashion-MNIST container), gzip-compressed or raw.

Format (big-endian): a 4-byte magic number ``0x00 0x00 TYPE NDIM`` (TYPE ``0x08`` = uint8), then ``NDIM``
uint32 dimension sizes, then the data, row-major. Images are ``0x00000803`` (n, rows, cols), labels
``0x00000801`` (n,). Every check failure raises :class:`DatasetError` naming the file and what was expected.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from snnkit_core.contract.errors import DatasetError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
           0x0E: np.dtype(">f8")}


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (detected by its header, not its name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{path} is a damaged or truncated gzip file ({exc}); download it again") from None
    return raw


def read_idx(path: Path, magic: int | None = None, dims: tuple[int | None, ...] | None = None) -> np.ndarray:
    """The array stored in an IDX file.

    ``magic``: the expected magic number (e.g. :data:`IMAGES_MAGIC`); ``dims``: expected sizes after the first
    (``None`` = any), e.g. ``(28, 28)`` for images, ``()`` for labels.
    """
    path = Path(path)
    data = read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path} is {len(data)} bytes long: too short for an IDX header (truncated?)")
    found = struct.unpack(">I", data[:4])[0]
    if magic is not None and found != magic:
        kind = {IMAGES_MAGIC: "images, uint8, 3 dims", LABELS_MAGIC: "labels, uint8, 1 dim"}.get(magic, "IDX")
        raise DatasetError(
            f"{path} has magic number 0x{found:08x}; expected 0x{magic:08x} ({kind}). "
            f"Is it an IDX file of the right kind (images vs labels)?"
        )
    if found >> 16 != 0 or (found >> 8) & 0xFF not in _DTYPES or found & 0xFF == 0:
        raise DatasetError(f"{path} has magic number 0x{found:08x}, which is not an IDX header")
    dtype, ndim = np.dtype(_DTYPES[(found >> 8) & 0xFF]), found & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path} is {len(data)} bytes long: its header alone needs {header} (truncated?)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if dims is not None and (
        len(shape) != 1 + len(dims) or any(d is not None and d != s for d, s in zip(dims, shape[1:]))
    ):
        want = "(n" + "".join(f", {d if d is not None else '*'}" for d in dims) + ")"
        raise DatasetError(f"{path} holds an array of shape {shape}; expected {want}")
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(data) - header
    if have < need:
        raise DatasetError(f"{path} is truncated: shape {shape} needs {need} data bytes after the header, found {have}")
    if have > need:
        raise DatasetError(
            f"{path} has {have - need} bytes after the end of its {shape} array; expected exactly {need}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=need // dtype.itemsize, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=False) if dtype.byteorder == ">" else arr


def read_pair(
    images: Path, labels: Path, rows: int = 28, cols: int = 28, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, rows, cols) uint8 and labels (n,) uint8 from two IDX files, with matching counts."""
    x = read_idx(images, IMAGES_MAGIC, (rows, cols))
    y = read_idx(labels, LABELS_MAGIC, ())
    if x.shape[0] != y.shape[0]:
        raise DatasetError(
            f"{images} holds {x.shape[0]} images but {labels} holds {y.shape[0]} labels; expected the same count "
            f"(are they from the same split and corpus?)"
        )
    if y.size and int(y.max()) >= num_classes:
        raise DatasetError(f"{labels} holds label {int(y.max())}; expected labels 0..{num_classes - 1}")
    return x, y
