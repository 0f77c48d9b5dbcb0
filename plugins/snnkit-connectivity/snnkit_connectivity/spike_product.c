/* Event-driven products of a layer whose input is mostly zeros (spikes), for snnkit_connectivity.spike_product.
 * Plain C, loaded with ctypes. Every product skips the zero entries of x, so its cost scales with the number of
 * nonzero inputs (the spike rate) instead of M*K:
 *   fwd:   out (M, N)  = x (M, K) @ Wt (K, N)        out[m, :] = sum over x[m, k] != 0 of x[m, k] * Wt[k, :]
 *   wgrad: dWt (K, N)  = x^T (K, M) @ g (M, N)       dWt[k, :] = sum over x[m, k] != 0 of x[m, k] * g[m, :]
 * Sums run in ascending m / k; compiled without contraction, so each term is rounded as written. Row-major,
 * contiguous arrays. Both return the number of nonzero entries of x; idx and val are scratch of K entries. */
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SNNKIT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SNNKIT_CLONES
#endif

/* The nonzero entries of row xr (K entries) as positions idx and values val, without a branch per entry (at rates
 * of 5-50 % a branch per entry mispredicts often); returns their count. */
#define SPIKE_COMPRESS(T, SUFFIX)                                                                          \
    static long compress_##SUFFIX(const T *xr, long K, long *idx, T *val) {                                \
        long c = 0;                                                                                         \
        for (long k = 0; k < K; k++) {                                                                      \
            idx[c] = k;                                                                                     \
            val[c] = xr[k];                                                                                 \
            c += xr[k] != 0;                                                                                \
        }                                                                                                   \
        return c;                                                                                           \
    }

/* Forward: four nonzeros per pass over out[m] (o = ((((o + a) + b) + c) + d), the order of one at a time), so
 * out[m] is loaded and stored once per four rows of Wt. idx/val: caller's scratch of K entries each. */
#define SPIKE_PRODUCTS(T, SUFFIX)                                                                          \
    SPIKE_COMPRESS(T, SUFFIX)                                                                               \
    SNNKIT_CLONES long spike_fwd_##SUFFIX(const T *x, long M, long K, const T *Wt, long N, T *out,          \
                                          long *idx, T *val) {                                              \
        long nnz = 0;                                                                                       \
        for (long m = 0; m < M; m++) {                                                                      \
            T *o = out + m * N;                                                                             \
            const long c = compress_##SUFFIX(x + m * K, K, idx, val);                                       \
            long j = 0;                                                                                     \
            nnz += c;                                                                                       \
            memset(o, 0, (size_t)N * sizeof(T));                                                            \
            for (; j + 4 <= c; j += 4) {                                                                    \
                const T *w0 = Wt + idx[j] * N, *w1 = Wt + idx[j + 1] * N;                                   \
                const T *w2 = Wt + idx[j + 2] * N, *w3 = Wt + idx[j + 3] * N;                               \
                const T v0 = val[j], v1 = val[j + 1], v2 = val[j + 2], v3 = val[j + 3];                     \
                for (long n = 0; n < N; n++) {                                                              \
                    T a = o[n];                                                                             \
                    a += v0 * w0[n];                                                                        \
                    a += v1 * w1[n];                                                                        \
                    a += v2 * w2[n];                                                                        \
                    a += v3 * w3[n];                                                                        \
                    o[n] = a;                                                                               \
                }                                                                                           \
            }                                                                                               \
            for (; j < c; j++) {                                                                            \
                const T *w = Wt + idx[j] * N;                                                               \
                const T v = val[j];                                                                         \
                for (long n = 0; n < N; n++) o[n] += v * w[n];                                              \
            }                                                                                               \
        }                                                                                                   \
        return nnz;                                                                                         \
    }                                                                                                       \
    SNNKIT_CLONES long spike_wgrad_##SUFFIX(const T *x, long M, long K, const T *g, long N, T *dWt,        \
                                            long *idx, T *val) {                                            \
        long nnz = 0;                                                                                       \
        memset(dWt, 0, (size_t)(K * N) * sizeof(T));                                                       \
        for (long m = 0; m < M; m++) {                                                                      \
            const T *gr = g + m * N;                                                                        \
            const long c = compress_##SUFFIX(x + m * K, K, idx, val);                                       \
            nnz += c;                                                                                       \
            for (long j = 0; j < c; j++) {                                                                  \
                T *d = dWt + idx[j] * N;                                                                    \
                const T v = val[j];                                                                         \
                for (long n = 0; n < N; n++) d[n] += v * gr[n];                                             \
            }                                                                                               \
        }                                                                                                   \
        return nnz;                                                                                         \
    }

SPIKE_PRODUCTS(float, f32)
SPIKE_PRODUCTS(double, f64)

const char *spike_product_hash(void) { return SNNKIT_SRC_HASH; }
