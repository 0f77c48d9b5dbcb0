"""The C scans in ``cpu_scan.c``, loaded with ctypes; None when they cannot be built (the torch loops run then).

Where the library comes from, first found wins:

1. built on install: ``pip install`` of snnkit-neurons compiles ``cpu_scan.c`` as the (ctypes-only)
   module ``snnkit_neurons.kernels._cpu_scan`` (setup.py; an optional extension, so a failed build does not
   fail the install). Used only if it was built from the current sources (an editable install keeps an old
   build after a ``git pull``);
2. built on first use: the system C compiler (``$CC``, else ``cc``/``gcc``) compiles it into
   ``$SNNKIT_CACHE`` (default ``~/.cache/snnkit``)``/cpu_scan-<source hash>.so``;
3. neither works: :func:`lib` returns None, :data:`failure` says why, and the torch loops run (the plan
   records why, and the CLI prints it when it starts).

``SNNKIT_CPU_KERNELS=0`` switches the C scans off (the torch loops run). Both are decided once per process.
Both are plain C over contiguous float32/float64 buffers; no Python or torch headers are needed, so a build
takes about a second. OpenMP is used when the compiler supports ``-fopenmp`` (threads = torch's).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).parent
SOURCE = HERE / "cpu_scan.c"
SOURCES = (SOURCE, HERE / "cpu_scan_body.h", HERE / "adaptive_scan.h", HERE / "adaptive_body.h",
           HERE / "rsbp_scan_body.h")  # the .c includes each body once per float type
ABI = 5  # 2: lif_bwd sums ∂L/∂λ and ∂L/∂w over the batch itself; 3: tssl_bwd (tssl-bp's backward), mix_add (ASRC);
# 4: mixed_fwd / mixed_bwd (ASRC's whole layer in one call, products through torch's BLAS);
# 5: psc_fwd (the network input's filter)
#: exactness needs every a*b+c rounded twice (no FMA contraction) and IEEE semantics (no -ffast-math)
CFLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-std=gnu99"]
SURROGATE = {"sigmoid": 0, "triangle": 1, "fast-sigmoid": 2, "atan": 3, "rectangle": 4}

_lib: ctypes.CDLL | None = None
#: the file it was loaded from
path: Path | None = None
_tried = False
#: why the C scans are not in use (None while they are, or before the first attempt)
failure: str | None = None


def _cache_dir() -> Path:
    return Path(os.environ.get("SNNKIT_CACHE") or Path.home() / ".cache" / "snnkit")


def source_hash() -> str:
    """Hash of the C sources; a library answers with the hash it was built from (``-DSNNKIT_SRC_HASH``)."""
    return hashlib.sha256(b"".join(p.read_bytes() for p in SOURCES)).hexdigest()[:16]


def _compile(target: Path) -> None:
    """Compile SOURCE into ``target`` (atomically: a concurrent process never sees a half-written file)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler was found (install gcc or clang, or set $CC)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    errors = []
    try:
        for extra in (["-fopenmp"], []):  # OpenMP when the compiler has it
            cmd = [cc, *CFLAGS, "-fPIC", "-shared", f'-DSNNKIT_SRC_HASH="{source_hash()}"', *extra, str(SOURCE),
                   "-o", tmp, "-lm"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode == 0:
                os.replace(tmp, target)
                return
            errors.append(r.stderr.strip()[-500:])
        raise RuntimeError(f"{cc} failed: {errors[-1]}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _installed() -> Path | None:
    """The library built on install (setup.py), wherever the install put it."""
    try:
        spec = importlib.util.find_spec(f"{__package__}._cpu_scan")
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def _candidates():
    installed = _installed()
    if installed is not None:
        yield installed
    key = hashlib.sha256((source_hash() + " ".join(CFLAGS)).encode()).hexdigest()[:16]
    yield _cache_dir() / f"cpu_scan-{key}.so"


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    if lib.snnkit_cpu_scan_abi() != ABI:
        raise RuntimeError(f"{path} was built for another interface version")
    lib.snnkit_cpu_scan_source.restype = ctypes.c_char_p
    built_from = lib.snnkit_cpu_scan_source().decode()
    if built_from != source_hash():
        raise RuntimeError(f"{path} was built from other sources ({built_from}, now {source_hash()}); "
                           f"reinstall snnkit-neurons to rebuild it")
    i64, i32, p = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    for sfx, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        getattr(lib, f"lif_fwd_{sfx}").argtypes = [i64, i64, i64, p, p, p, p, p, p, real, real, real, i32]
        getattr(lib, f"lif_bwd_{sfx}").argtypes = [i64, i64, i64, p, p, p, p, p, p, p, p, p,
                                                   real, real, real, real, i32, i32, i32]
        getattr(lib, f"soft_fwd_{sfx}").argtypes = [i64, i64, p, p, p, p, p, real, real, i32]
        getattr(lib, f"soft_bwd_{sfx}").argtypes = [i64, i64, p, p, p, p, p, real, real, real, i32, i32, i32]
        getattr(lib, f"tssl_bwd_{sfx}").argtypes = [i64, i64, i64, p, p, p, p, p, p, p, p, real, real, real, real, i32,
                                                    real, real, i32, real, p, i32]
        getattr(lib, f"mix_add_{sfx}").argtypes = [i64, p, p, i64, p, i64, i32]
        getattr(lib, f"psc_fwd_{sfx}").argtypes = [i64, i64, p, p, real, real, i32]
        getattr(lib, f"mixed_fwd_{sfx}").argtypes = [i64, i64, i64, i64, i64, p, p, p, p, p, p, p, p, p, real, real, p]
        getattr(lib, f"mixed_bwd_{sfx}").argtypes = [i64, i64, i64, i64, i64, p, p, p, p, p, p, p, p, p, real, real,
                                                     real, i32, i32, p]
        getattr(lib, f"alif_fwd_{sfx}").argtypes = [i64, i64, i64, p, p, p, p, p, p, p, p, p, real, real, real, real,
                                                    real, i32]
        getattr(lib, f"alif_bwd_{sfx}").argtypes = [i64, i64, i64, p, p, p, p, p, p, p, p, p, real, real, real, real,
                                                    real, real, i32, i32, i32]
        getattr(lib, f"nrr_fwd_{sfx}").argtypes = [i64, i64, p, p, p, p, p, p, p, real, real, real, real, real, i32,
                                                   i32]
        getattr(lib, f"nrr_bwd_{sfx}").argtypes = [i64, i64, p, p, p, p, p, p, p, p, p, real, real, real, real, real,
                                                   i32, real, i32, i32, i32]
        getattr(lib, f"alif_span_fwd_{sfx}").argtypes = [i64] * 4 + [p] * 9 + [real] * 5 + [p]
        getattr(lib, f"nrr_span_fwd_{sfx}").argtypes = [i64] * 4 + [p] * 8 + [real] * 5 + [i32, p]
        getattr(lib, f"alif_span_bwd_{sfx}").argtypes = [i64] * 4 + [p] * 8 + [real] * 6 + [i32, p]
        getattr(lib, f"nrr_span_bwd_{sfx}").argtypes = [i64] * 4 + [p] * 10 + [real] * 5 + [i32, real, i32, p]
        for name in ("lif_fwd", "lif_bwd", "psc_fwd", "soft_fwd", "soft_bwd", "tssl_bwd", "mix_add", "mixed_fwd",
                     "mixed_bwd", "alif_fwd", "alif_bwd", "nrr_fwd", "nrr_bwd", "alif_span_fwd", "nrr_span_fwd",
                     "alif_span_bwd", "nrr_span_bwd"):
            getattr(lib, f"{name}_{sfx}").restype = None
    return lib


def lib() -> ctypes.CDLL | None:
    """The loaded library, building it on first use if needed; None when it cannot be had (see ``failure``).
    Decided once per process, ``SNNKIT_CPU_KERNELS`` included (:func:`forget` starts over, for tests)."""
    global _lib, _tried, failure, path
    if _tried:
        return _lib
    _tried = True
    if os.environ.get("SNNKIT_CPU_KERNELS", "1") == "0":
        failure = "SNNKIT_CPU_KERNELS=0 switches the C scans off"
        return None
    errors = []
    for candidate in _candidates():
        try:
            if not candidate.exists():
                _compile(candidate)
            _lib = _load(candidate)
            failure, path = None, candidate
            return _lib
        except Exception as exc:  # a stale or foreign build, or no compiler: try the next, then the torch loops
            errors.append(f"{candidate.name}: {exc}")
    failure = "the C scans could not be loaded or built (" + "; ".join(errors) + ")"
    return None


def forget() -> None:
    """Decide again on the next :func:`lib` call (tests that change the environment)."""
    global _lib, _tried, failure, path
    _lib, _tried, failure, path = None, False, None, None


_gemm: dict = {}


def gemm(dtype: torch.dtype) -> int | None:
    """Address of the Fortran-interface BLAS ``sgemm_`` / ``dgemm_`` that torch's own library exports (MKL in the
    x86-64 wheels), for the C scans that need matrix products inside their time loop (``mixed_fwd``/``_bwd``);
    None when torch's library does not export it (then those scans run their products from Python, per step)
    or when ``SNNKIT_CPU_BLAS=0``."""
    if os.environ.get("SNNKIT_CPU_BLAS", "1") == "0" or dtype not in (torch.float32, torch.float64):
        return None
    name = "sgemm_" if dtype == torch.float32 else "dgemm_"
    if name not in _gemm:
        addr = None
        for so in sorted((Path(torch.__file__).parent / "lib").glob("libtorch_cpu*")):
            try:
                addr = ctypes.cast(getattr(ctypes.CDLL(str(so)), name), ctypes.c_void_p).value
                break
            except (OSError, AttributeError):
                continue
        _gemm[name] = addr
    return _gemm[name]


_blas_threads_local: list = []


class one_blas_thread:
    """``with one_blas_thread():`` the BLAS products called from C (``mixed_fwd``/``_bwd``: per step a (B, N) x
    (N, N) product) run on this thread only, through MKL's ``MKL_Set_Num_Threads_Local`` (the C entry; the
    lower-case names are the Fortran one, which takes a pointer) where torch's library exports it (restored on
    exit to what was there, the count torch.set_num_threads sets; elsewhere a no-op). A per-step product of
    32 x 128 x 128 is far too small to split: with 2 threads every one was a fork/join, and on a busy machine a
    wait for the other core. It also keeps those products' results independent of the thread count."""

    def __enter__(self):
        if not _blas_threads_local:
            fn = None
            for so in sorted((Path(torch.__file__).parent / "lib").glob("libtorch_cpu*")):
                try:
                    fn = ctypes.CDLL(str(so)).MKL_Set_Num_Threads_Local  # the C entry (by value)
                    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
                    break
                except (OSError, AttributeError):
                    continue
            _blas_threads_local.append(fn)
        fn = _blas_threads_local[0]
        self._prev = None if fn is None else fn(1)
        return self

    def __exit__(self, *exc):
        if self._prev is not None:  # what was there: torch.set_num_threads sets MKL's thread-local count itself
            _blas_threads_local[0](self._prev)
        return False


def usable(*tensors: torch.Tensor) -> bool:
    """The C scans apply: the library is there and every tensor is on the CPU, float32 or float64, one dtype."""
    if any(t.device.type != "cpu" for t in tensors):
        return False
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) != 1 or dtypes.pop() not in (torch.float32, torch.float64):
        return False
    return lib() is not None


def ptr(t: torch.Tensor | None):
    """Data pointer of a contiguous tensor (None -> NULL)."""
    if t is None:
        return None
    assert t.is_contiguous()
    return t.data_ptr()


def fn(name: str, dtype: torch.dtype):
    return getattr(_lib, f"{name}_{'f32' if dtype == torch.float32 else 'f64'}")


#: calls over fewer elements than this run on one thread (see :func:`threads`)
MIN_PARALLEL = 1 << 16


def threads(work: int | None = None) -> int:
    """Threads for one C call: torch's count, but 1 for a call over fewer than ``MIN_PARALLEL`` elements (``work``),
    e.g. one step of a (B, N) layer: there an OpenMP fork/join per call costs more than the loop itself, and
    far more on a machine whose cores are busy with other jobs. The results do not depend on it (elements are
    independent; batch sums run in a fixed order)."""
    n = max(1, torch.get_num_threads())
    return 1 if work is not None and work < MIN_PARALLEL else n
