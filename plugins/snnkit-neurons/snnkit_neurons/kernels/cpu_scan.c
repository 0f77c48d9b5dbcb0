/* CPU scans of `lif` and `lif-soft`: the whole T-step forward and the reverse-time backward, each one call.
 *
 * Plain C (no Python or torch headers), loaded with ctypes by cpu.py. Built on install (setup.py, optional) or
 * on first use with the system C compiler; without a compiler the torch loops in lif_cpu.py / soft_cpu.py run.
 *
 * Exactness: compiled with -ffp-contract=off and without -ffast-math, so every a*b+c is rounded twice, in
 * the same order as the torch reference step (lif.lif_step, lif_soft.lif_soft_step): the forward equals the
 * reference bit for bit. Per element the elements are independent, so the loops run in blocks of BLK
 * elements (outer, optionally over OpenMP threads) x time x elements in the block (inner, vectorised).
 *
 * Layout: every (T, B, N) tensor is contiguous; element e = b*N + n of step t is at t*BN + e.
 *
 * lif (spec §1.2 + ScSr self term §3.2), per element, ũ[-1] = a[-1] = 0, w = 0 without self-recurrence:
 *   i = I[t] + w_n·a[t-1];  u[t] = λ_n·ũ[t-1] + i;  s[t] = u[t] > V_th;  ũ[t] = s ? 0 : u[t]
 *   a[t] = d·a[t-1] + s[t]/τs,  d = 1 - 1/τs
 * backward (g_a = ∂L/∂a[t], g_u = ∂L/∂u[t], carried backwards in time):
 *   g_a[t] = ∂L/∂a[t]|ext + d·g_a[t+1] + w_n·g_u[t+1];   g_ũ = λ_n·g_u[t+1]
 *   g_s = g_a[t]/τs + ∂L/∂s[t]|ext - u[t]·g_ũ  (last term dropped with a detached reset)
 *   g_u[t] = (1 - s[t])·g_ũ + σ'(u[t] - V_th)·g_s;   ∂L/∂I[t] = g_u[t]
 *   ∂L/∂w_n += g_u[t]·a[t-1];   ∂L/∂λ_n += g_u[t]·ũ[t-1]   (per element, then summed over b in order into
 *   the first N entries of gleak / gw)
 *
 * tssl-bp's backward (tssl_bwd): equations in cpu_scan_body.h and snnkit_rules/tssl_bp.py (its oracle).
 *
 * lif-soft (spec §5.1), per element over a chunk of L steps from U[-1] = u0:
 *   H[t] = λ·U[t-1] + (I[t] + R[t]);  S[t] = H[t] >= V_th;  U[t] = H[t] - V_th·S[t]
 * (R: an optional second input, SRC's recurrent product, added first as the reference does)
 * backward, g_U carried:  g_H = g_U + σ'(H - V_th)·(g_S - V_th·g_U)  (detached: g_U + σ'·g_S)
 *   with g_S = ∂L/∂S[t]|ext (+ G[t], an optional second gradient);  ∂L/∂I[t] = g_H;  g_U <- λ·g_H
 */
#include <math.h>
#include <stdint.h>

#if defined(__SSE__)
#include <xmmintrin.h>
/* The backward loops run with denormals flushed to zero (FTZ|DAZ, this thread only, restored after):
 * surrogate derivatives far from threshold are ~1e-38, and products with them would otherwise be denormal
 * and cost ~100 cycles each. It changes gradients by < 1e-37 absolute. The forward never does this (it
 * must round exactly like torch). */
#define FTZ_BEGIN unsigned int csr_ = _mm_getcsr(); _mm_setcsr(csr_ | 0x8040);
#define FTZ_END _mm_setcsr(csr_);
#else
#define FTZ_BEGIN
#define FTZ_END
#endif

/* x86-64 with GCC: each exported scan is compiled three times, for AVX-512, AVX2 and baseline SSE2, and the loader
 * picks the best the CPU supports (function multiversioning; exactness is unaffected: FMA is never contracted, and
 * each element's operations are the same at every vector width). AVX-512 takes lif's backward from 5.0 to 4.0 ms
 * per (100, 50, 400) layer on a Xeon (docs/performance.md) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EXPORT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EXPORT
#endif

#define BLK 512
#define R_ __restrict__
#define INLINE static inline __attribute__((always_inline))

enum { SIGMOID = 0, TRIANGLE = 1, FAST_SIGMOID = 2, ATAN = 3, RECTANGLE = 4 };

/* exp for float32 in straight-line code, so the surrogate loops vectorise (libm's expf is a call per element):
 * x = n·ln2 + r with n rounded to nearest (|r| <= ln2/2), e^r by Cephes' degree-6 polynomial, 2^n through the
 * exponent bits. Relative error about 2 ulp for x <= 0 (the surrogate's only use); x below -87 is clamped (a result
 * >= 1.6e-38, never denormal). */
static inline float exp_f32(float x) {
    x = x > -87.0f ? x : -87.0f;  /* callers pass x <= 0 */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  /* round to nearest via 1.5·2^23 */
    float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;             /* ln2 split in two for exactness */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale = { .i = ((int32_t)n + 127) << 23 };  /* 2^n (GNU C type punning) */
    return p * scale.f;
}

/* non-temporal stores (cpu_scan_body.h, stream): SSE2's 16-byte ones, in every x86-64 clone; a fence after them */
#if defined(__SSE2__)
#include <emmintrin.h>
#define STREAM_STORES 1
#define STREAM_FENCE() _mm_sfence()
#else
#define STREAM_STORES 0
#define STREAM_FENCE()
#endif

#define T_ float
#define SFX f32
#define EXP exp_f32
#define FABS fabsf
#define STREAM_W 4
#define STREAM_STORE(d, s) _mm_stream_ps((d), _mm_loadu_ps(s))
#include "cpu_scan_body.h"
#undef T_
#undef SFX
#undef EXP
#undef FABS
#undef STREAM_W
#undef STREAM_STORE

#define T_ double
#define SFX f64
#define EXP exp
#define FABS fabs
#define STREAM_W 2
#define STREAM_STORE(d, s) _mm_stream_pd((d), _mm_loadu_pd(s))
#include "cpu_scan_body.h"
#include "adaptive_scan.h"  /* alif and nrr */
#include "rsbp_scan_body.h"

/* version of this interface, and the hash of the sources it was built from (passed by the build):
 * cpu.py refuses a library built from other sources (e.g. an install-time build older than a git pull) */
#ifndef SNNKIT_SRC_HASH
#define SNNKIT_SRC_HASH "unknown"
#endif
int snnkit_cpu_scan_abi(void) { return 5; }
const char *snnkit_cpu_scan_source(void) { return SNNKIT_SRC_HASH; }
