"""Builds the C CPU scans (snnkit_neurons/kernels/cpu_scan.c) on install, as an optional extension: if the
build fails (no compiler), the install still succeeds and the scans build on first use or use torch loops
(see snnkit_neurons/kernels/cpu.py). The library is plain C loaded with ctypes, not a Python module."""

import hashlib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = Path("snnkit_neurons") / "kernels"
SOURCES = [KERNELS / f for f in ("cpu_scan.c", "cpu_scan_body.h", "adaptive_scan.h", "adaptive_body.h",
                                      "rsbp_scan_body.h")]  # as cpu.SOURCES
SRC_HASH = hashlib.sha256(b"".join(p.read_bytes() for p in SOURCES)).hexdigest()[:16]
CFLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-std=gnu99"]  # as cpu.CFLAGS


class BuildCScans(build_ext):
    """Try with OpenMP, then without; never fail the install."""

    def get_export_symbols(self, ext):
        return []  # no PyInit_: the library is loaded with ctypes

    def build_extension(self, ext):
        for omp in (["-fopenmp"], []):
            ext.extra_compile_args = [*CFLAGS, *omp]
            ext.extra_link_args = omp
            try:
                return super().build_extension(ext)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: try without OpenMP, then give up
                err = exc
        print(f"snnkit-neurons: the C CPU scans were not built ({err}); they build on first use or fall back to torch")


setup(
    ext_modules=[
        Extension("snnkit_neurons.kernels._cpu_scan", [str(KERNELS / "cpu_scan.c")],
                  depends=[str(p) for p in SOURCES[1:]], define_macros=[("SNNKIT_SRC_HASH", f'"{SRC_HASH}"')],
                  libraries=["m"], optional=True)
    ],
    cmdclass={"build_ext": BuildCScans},
)
