/* Event-driven products of a layer whose input is mostly zeros (spikes), for snnkit_connectivity.spike_product.
 * Plain C, loaded with ctypes. Every product skips the zero entries of x, so its cost scales with the number of
 * nonzero inputs (the spike rate) instead of M*K:
 *   fwd:   out (M, N)  = x (M, K) @ Wt (K, N)        out[m, :] = sum over x[m, k] != 0 of x[m, k] * Wt[k, :]
 *   wgrad: dWt (K, N)  = x^T (K, M) @ g (M, N)       dWt[k, :] = sum over x[m, k] != 0 of x[m, k] * g[m, :]
 * Sums run in ascending m / k; compiled without contraction, so each term is rounded as written. Row-major,
 * contiguous arrays. Both return the number of nonzero entries of x. */
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SNNKIT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SNNKIT_CLONES
#endif

#define SPIKE_PRODUCTS(T, SUFFIX)                                                                          \
    SNNKIT_CLONES long spike_fwd_##SUFFIX(const T *x, long M, long K, const T *Wt, long N, T *out) {       \
        long nnz = 0;                                                                                       \
        for (long m = 0; m < M; m++) {                                                                      \
            T *o = out + m * N;                                                                             \
            const T *xr = x + m * K;                                                                        \
            memset(o, 0, (size_t)N * sizeof(T));                                                           \
            for (long k = 0; k < K; k++) {                                                                  \
                const T v = xr[k];                                                                          \
                if (v == 0) continue;                                                                       \
                const T *w = Wt + k * N;                                                                    \
                nnz++;                                                                                      \
                for (long n = 0; n < N; n++) o[n] += v * w[n];                                              \
            }                                                                                               \
        }                                                                                                   \
        return nnz;                                                                                         \
    }                                                                                                       \
    SNNKIT_CLONES long spike_wgrad_##SUFFIX(const T *x, long M, long K, const T *g, long N, T *dWt) {      \
        long nnz = 0;                                                                                       \
        memset(dWt, 0, (size_t)(K * N) * sizeof(T));                                                       \
        for (long m = 0; m < M; m++) {                                                                      \
            const T *xr = x + m * K;                                                                        \
            const T *gr = g + m * N;                                                                        \
            for (long k = 0; k < K; k++) {                                                                  \
                const T v = xr[k];                                                                          \
                if (v == 0) continue;                                                                       \
                T *d = dWt + k * N;                                                                         \
                nnz++;                                                                                      \
                for (long n = 0; n < N; n++) d[n] += v * gr[n];                                             \
            }                                                                                               \
        }                                                                                                   \
        return nnz;                                                                                         \
    }

SPIKE_PRODUCTS(float, f32)
SPIKE_PRODUCTS(double, f64)

const char *spike_product_hash(void) { return SNNKIT_SRC_HASH; }
