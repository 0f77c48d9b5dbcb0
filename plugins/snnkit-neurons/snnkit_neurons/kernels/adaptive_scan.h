/* CPU scans of `alif` and `nrr` (the adaptive-threshold neurons): one chunk of L steps per call, forward and
 * reverse-time backward, state and carried adjoints updated in place. Included once from cpu_scan.c, after
 * cpu_scan_body.h (it uses that file's per-type surrogate and the BLK / EXPORT / FTZ macros).
 * Equations and the backward's derivation: kernels/adaptive_cpu.py. */
#undef T_
#undef SFX
#undef EXP
#undef FABS

#define T_ float
#define SFX f32
#include "adaptive_body.h"
#undef T_
#undef SFX

#define T_ double
#define SFX f64
#include "adaptive_body.h"
