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
 *   ∂L/∂w_n += g_u[t]·a[t-1];   ∂L/∂λ_n += g_u[t]·ũ[t-1]   (per element, summed over b by the caller)
 *
 * lif-soft (spec §5.1), per element over a chunk of L steps from U[-1] = u0:
 *   H[t] = λ·U[t-1] + (I[t] + R[t]);  S[t] = H[t] >= V_th;  U[t] = H[t] - V_th·S[t]
 * (R: an optional second input, SRC's recurrent product, added first as the reference does)
 * backward, g_U carried:  g_H = g_U + σ'(H - V_th)·(g_S - V_th·g_U)  (detached: g_U + σ'·g_S)
 *   with g_S = ∂L/∂S[t]|ext (+ G[t], an optional second gradient);  ∂L/∂I[t] = g_H;  g_U <- λ·g_H
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define BLK 512

enum { SIGMOID = 0, TRIANGLE = 1, FAST_SIGMOID = 2, ATAN = 3, RECTANGLE = 4 };

#define DEFINE_SCANS(T_, SFX, EXP, FABS)                                                                   \
static inline T_ surrogate_##SFX(T_ x, T_ width, int kind) {                                            \
    switch (kind) {                                                                                     \
    case SIGMOID: { T_ sg = (T_)1 / ((T_)1 + EXP(-x / width)); return sg * ((T_)1 - sg) / width; }      \
    case TRIANGLE: { T_ r = width - FABS(x); return (r > 0 ? r : (T_)0) / (width * width); }            \
    case FAST_SIGMOID: { T_ d = width + FABS(x); return (T_)0.5 * width / (d * d); }                    \
    case ATAN: { T_ z = (T_)3.141592653589793 * x / width; return ((T_)1 / width) / ((T_)1 + z * z); }  \
    default: return FABS(x) < width * (T_)0.5 ? (T_)1 / width : (T_)0;                                  \
    }                                                                                                   \
}                                                                                                       \
                                                                                                        \
void lif_fwd_##SFX(int64_t T, int64_t BN, int64_t N, const T_ *I, const T_ *leak, const T_ *w,           \
                   T_ *a_out, T_ *u_out, T_ *s_out, T_ decay, T_ inv_tau_s, T_ v_th, int nthreads) {      \
    int64_t nblk = (BN + BLK - 1) / BLK;                                                                \
    _Pragma("omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)")                 \
    for (int64_t blk = 0; blk < nblk; blk++) {                                                          \
        int64_t e0 = blk * BLK, e1 = e0 + BLK < BN ? e0 + BLK : BN, m = e1 - e0;                        \
        T_ ur[BLK], a[BLK], lam[BLK], wn[BLK];                                                          \
        for (int64_t j = 0; j < m; j++) {                                                               \
            ur[j] = 0; a[j] = 0; lam[j] = leak[(e0 + j) % N]; wn[j] = w ? w[(e0 + j) % N] : (T_)0;      \
        }                                                                                               \
        for (int64_t t = 0; t < T; t++) {                                                               \
            const T_ *it = I + t * BN + e0;                                                             \
            T_ *at = a_out + t * BN + e0, *ut = u_out + t * BN + e0, *st = s_out + t * BN + e0;        \
            if (w) {                                                                                    \
                for (int64_t j = 0; j < m; j++) {                                                       \
                    T_ i = it[j] + wn[j] * a[j];                                                        \
                    T_ u = lam[j] * ur[j] + i;                                                          \
                    T_ s = u > v_th ? (T_)1 : (T_)0;                                                    \
                    ur[j] = u * ((T_)1 - s);                                                            \
                    a[j] = decay * a[j] + s * inv_tau_s;                                                \
                    at[j] = a[j]; ut[j] = u; st[j] = s;                                                 \
                }                                                                                       \
            } else {                                                                                    \
                for (int64_t j = 0; j < m; j++) {                                                       \
                    T_ u = lam[j] * ur[j] + it[j];                                                      \
                    T_ s = u > v_th ? (T_)1 : (T_)0;                                                    \
                    ur[j] = u * ((T_)1 - s);                                                            \
                    a[j] = decay * a[j] + s * inv_tau_s;                                                \
                    at[j] = a[j]; ut[j] = u; st[j] = s;                                                 \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
}                                                                                                       \
                                                                                                        \
void lif_bwd_##SFX(int64_t T, int64_t BN, int64_t N, const T_ *ga, const T_ *gs, const T_ *a,            \
                   const T_ *u, const T_ *leak, const T_ *w, T_ *gi, T_ *gleak, T_ *gw,                  \
                   T_ decay, T_ inv_tau_s, T_ v_th, T_ width, int kind, int detach, int nthreads) {      \
    int64_t nblk = (BN + BLK - 1) / BLK;                                                                \
    _Pragma("omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)")                 \
    for (int64_t blk = 0; blk < nblk; blk++) {                                                          \
        int64_t e0 = blk * BLK, e1 = e0 + BLK < BN ? e0 + BLK : BN, m = e1 - e0;                        \
        T_ gan[BLK], gun[BLK], lam[BLK], wn[BLK];                                                       \
        double accw[BLK], accl[BLK];                                                                    \
        for (int64_t j = 0; j < m; j++) {                                                               \
            gan[j] = 0; gun[j] = 0; accw[j] = 0; accl[j] = 0;                                           \
            lam[j] = leak[(e0 + j) % N]; wn[j] = w ? w[(e0 + j) % N] : (T_)0;                           \
        }                                                                                               \
        for (int64_t t = T - 1; t >= 0; t--) {                                                          \
            const T_ *gat = ga + t * BN + e0, *ut = u + t * BN + e0;                                    \
            const T_ *gst = gs ? gs + t * BN + e0 : 0;                                                  \
            const T_ *ap = t > 0 ? a + (t - 1) * BN + e0 : 0, *up = t > 0 ? u + (t - 1) * BN + e0 : 0;  \
            T_ *git = gi + t * BN + e0;                                                                 \
            for (int64_t j = 0; j < m; j++) {                                                           \
                T_ g_a = gat[j] + decay * gan[j] + wn[j] * gun[j];                                      \
                T_ g_ur = lam[j] * gun[j];                                                              \
                T_ g_s = g_a * inv_tau_s;                                                               \
                if (gst) g_s += gst[j];                                                                 \
                T_ uu = ut[j];                                                                          \
                T_ s = uu > v_th ? (T_)1 : (T_)0;                                                       \
                if (!detach) g_s -= uu * g_ur;                                                          \
                T_ g_u = ((T_)1 - s) * g_ur + surrogate_##SFX(uu - v_th, width, kind) * g_s;            \
                git[j] = g_u;                                                                           \
                if (t > 0) {                                                                            \
                    accw[j] += (double)g_u * ap[j];                                                     \
                    accl[j] += (double)g_u * (up[j] > v_th ? (T_)0 : up[j]);                            \
                }                                                                                       \
                gan[j] = g_a; gun[j] = g_u;                                                             \
            }                                                                                           \
        }                                                                                               \
        for (int64_t j = 0; j < m; j++) {                                                               \
            gleak[e0 + j] = (T_)accl[j];                                                                \
            if (gw) gw[e0 + j] = (T_)accw[j];                                                           \
        }                                                                                               \
    }                                                                                                   \
}                                                                                                       \
                                                                                                        \
void soft_fwd_##SFX(int64_t L, int64_t BN, const T_ *I, const T_ *R, T_ *u, T_ *s_out, T_ *h_out,        \
                    T_ decay, T_ v_th, int nthreads) {                                                   \
    int64_t nblk = (BN + BLK - 1) / BLK;                                                                \
    _Pragma("omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)")                 \
    for (int64_t blk = 0; blk < nblk; blk++) {                                                          \
        int64_t e0 = blk * BLK, e1 = e0 + BLK < BN ? e0 + BLK : BN, m = e1 - e0;                        \
        T_ *ub = u + e0;                                                                                \
        for (int64_t t = 0; t < L; t++) {                                                               \
            const T_ *it = I + t * BN + e0, *rt = R ? R + t * BN + e0 : 0;                              \
            T_ *st = s_out + t * BN + e0, *ht = h_out + t * BN + e0;                                    \
            if (rt) {                                                                                   \
                for (int64_t j = 0; j < m; j++) {                                                       \
                    T_ h = decay * ub[j] + (it[j] + rt[j]);                                             \
                    T_ s = h >= v_th ? (T_)1 : (T_)0;                                                   \
                    ub[j] = h - v_th * s; st[j] = s; ht[j] = h;                                         \
                }                                                                                       \
            } else {                                                                                    \
                for (int64_t j = 0; j < m; j++) {                                                       \
                    T_ h = decay * ub[j] + it[j];                                                       \
                    T_ s = h >= v_th ? (T_)1 : (T_)0;                                                   \
                    ub[j] = h - v_th * s; st[j] = s; ht[j] = h;                                         \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
}                                                                                                       \
                                                                                                        \
void soft_bwd_##SFX(int64_t L, int64_t BN, const T_ *gs, const T_ *G, const T_ *h, T_ *gu, T_ *gi,       \
                    T_ decay, T_ v_th, T_ width, int kind, int detach, int nthreads) {                   \
    int64_t nblk = (BN + BLK - 1) / BLK;                                                                \
    _Pragma("omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)")                 \
    for (int64_t blk = 0; blk < nblk; blk++) {                                                          \
        int64_t e0 = blk * BLK, e1 = e0 + BLK < BN ? e0 + BLK : BN, m = e1 - e0;                        \
        T_ *gub = gu + e0;                                                                              \
        for (int64_t t = L - 1; t >= 0; t--) {                                                          \
            const T_ *gst = gs ? gs + t * BN + e0 : 0, *Gt = G ? G + t * BN + e0 : 0;                   \
            const T_ *ht = h + t * BN + e0;                                                             \
            T_ *git = gi + t * BN + e0;                                                                 \
            for (int64_t j = 0; j < m; j++) {                                                           \
                T_ g_s = gst ? gst[j] : (T_)0;                                                          \
                if (Gt) g_s += Gt[j];                                                                   \
                T_ sg = surrogate_##SFX(ht[j] - v_th, width, kind);                                     \
                T_ g = gub[j];                                                                          \
                T_ g_h = detach ? g + sg * g_s : g + sg * (g_s - v_th * g);                             \
                git[j] = g_h; gub[j] = decay * g_h;                                                     \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
}

DEFINE_SCANS(float, f32, expf, fabsf)
DEFINE_SCANS(double, f64, exp, fabs)

/* version of this interface: cpu.py refuses a library built from another source */
int snnkit_cpu_scan_abi(void) { return 1; }
