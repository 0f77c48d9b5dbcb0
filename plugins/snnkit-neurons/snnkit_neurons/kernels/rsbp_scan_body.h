/* ST-RSBP on lif-rsbp (kernels/rsbp_cpu.py; equations in snnkit_neurons/lif_rsbp.py and
 * snnkit_rules/st_rsbp_psp.py): included once by cpu_scan.c, after cpu_scan_body.h; it includes
 * itself once per float type (RSBP_TYPE). Both functions run one sample per (OpenMP) iteration, all T steps.
 *
 * rsbp_fwd: a whole layer's forward. Per step the input current is either read (cur, (T, B, N)) or summed from
 * the nonzero inputs (x (T, B, K) with wffT = Wᵀ (K, N)): I[t] = Σ_{k: x_k ≠ 0} x_k·Wᵀ[k, :] (spike inputs are
 * sparse, so this is far cheaper than the dense product); the recurrent input R[t] = Σ_{p: s_p[t-1] ≠ 0} Wrecᵀ[p, :]
 * (wrecT, or none) plus lateral inhibition -w0·(Σ_p s_p[t-1] - s_i[t-1]); then the neuron step in the reference's
 * order: ep ← ep·ds + I[t-1] (I[t] without the delay); ep ← ep + R[t] (t > 0); v ← v·dm + ep/τs; refractory
 * clamp; s = v > thr; reset. The sums run in another order than torch's matrix products, so a membrane within
 * rounding of the threshold can fire differently (tests compare the spikes exactly).
 *
 * rsbp_response: the S-PSPs e (B, N, K) += Σ_t A[t] ⊗ Q[t] of st_rsbp_psp.py without the (T, B, K) traces or a
 * dense product: per sample A (T, N) is built from the post spikes (+1 at a spike, -(dm)^(t_f - r_f) at r_f for
 * each later spike), then Q is stepped through time (p ← p·ds + x[t-d]; q ← q·dm + p/τs) and added into e's row
 * n only where A[t, n] ≠ 0. */
#ifndef RSBP_TYPE
#include <stdlib.h>
#undef T_
#undef SFX
#undef EXP
#undef FABS
#define RSBP_TYPE
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define NAME(f) CAT(f, SFX)
#define T_ float
#define SFX f32
#define POW powf
#include "rsbp_scan_body.h"
#undef T_
#undef SFX
#undef POW
#define T_ double
#define SFX f64
#define POW pow
#include "rsbp_scan_body.h"
#undef T_
#undef SFX
#undef POW
#undef NAME
#undef CAT
#undef CAT_
#undef RSBP_TYPE
#else

EXPORT void NAME(rsbp_fwd)(int64_t T, int64_t B, int64_t N, int64_t K, const T_ *x, const T_ *wffT, const T_ *cur,
                           const T_ *wrecT, T_ lateral, T_ *s_out, T_ ds, T_ dm, T_ tau_s, T_ thr, int t_ref,
                           int delay, int nthreads) {
    const int64_t BN = B * N;
    #pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1) if(nthreads > 1)
    for (int64_t b = 0; b < B; b++) {
        T_ *buf = (T_ *)malloc(sizeof(T_) * 6 * N);
        T_ *v = buf, *ep = buf + N, *pend = buf + 2 * N, *inp = buf + 3 * N, *r = buf + 4 * N, *cnt = buf + 5 * N;
        for (int64_t n = 0; n < N; n++) { v[n] = 0; ep[n] = 0; pend[n] = 0; cnt[n] = 0; }
        for (int64_t t = 0; t < T; t++) {
            const T_ *I;
            if (cur) {
                I = cur + t * BN + b * N;
            } else {
                T_ *R_ in = inp;
                for (int64_t n = 0; n < N; n++) in[n] = 0;
                const T_ *xr = x + (t * B + b) * K;
                for (int64_t k = 0; k < K; k++) {
                    T_ xk = xr[k];
                    if (xk == 0) continue;
                    const T_ *R_ w = wffT + k * N;
                    if (xk == 1) for (int64_t n = 0; n < N; n++) in[n] += w[n];
                    else for (int64_t n = 0; n < N; n++) in[n] += xk * w[n];
                }
                I = inp;
            }
            const T_ *arr = delay ? pend : I;
            int has_r = t > 0 && (wrecT || lateral != 0);
            if (has_r) {
                const T_ *sp = s_out + (t - 1) * BN + b * N;
                T_ total = 0, *R_ rs = r;
                for (int64_t n = 0; n < N; n++) rs[n] = 0;
                for (int64_t p = 0; p < N; p++) {
                    if (sp[p] == 0) continue;
                    total += 1;
                    if (wrecT) { const T_ *R_ w = wrecT + p * N; for (int64_t n = 0; n < N; n++) rs[n] += w[n]; }
                }
                if (lateral != 0)
                    for (int64_t n = 0; n < N; n++) {
                        T_ lat = -lateral * (total - sp[n]);
                        r[n] = wrecT ? r[n] + lat : lat;
                    }
            }
            T_ *R_ st = s_out + t * BN + b * N;
            T_ *R_ vv = v, *R_ ee = ep, *R_ cc = cnt;
            const T_ *R_ aa = arr, *R_ rr = r;
            for (int64_t n = 0; n < N; n++) {  /* branch-free, so it vectorises */
                T_ e = ee[n] * ds + aa[n];
                e = has_r ? e + rr[n] : e;
                ee[n] = e;
                T_ u = vv[n] * dm + e / tau_s;
                T_ c = cc[n];
                u = c > 0 ? (T_)0 : u;
                c = c > 0 ? c - 1 : c;
                T_ s = (T_)(u - thr > 0);
                cc[n] = s != 0 ? (T_)t_ref : c;
                vv[n] = s != 0 ? (T_)0 : u;
                st[n] = s;
            }
            if (delay) {  /* this step's current arrives at the next step */
                if (I == inp) { T_ *tmp = pend; pend = inp; inp = tmp; }
                else for (int64_t n = 0; n < N; n++) pend[n] = I[n];
            }
        }
        free(buf);
    }
}

EXPORT void NAME(rsbp_response)(int64_t T, int64_t B, int64_t N, int64_t K, const T_ *s_post, const T_ *x_pre,
                                T_ *e, T_ ds, T_ dm, T_ tau_s, int t_ref, int delay, int nthreads) {
    const int64_t BN = B * N, BK = B * K;
    #pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1) if(nthreads > 1)
    for (int64_t b = 0; b < B; b++) {
        T_ *A = (T_ *)calloc((size_t)(T * N), sizeof(T_));
        T_ *pq = (T_ *)calloc((size_t)(2 * K), sizeof(T_));
        T_ *p = pq, *q = pq + K;
        char *any = (char *)calloc((size_t)T, 1);
        for (int64_t n = 0; n < N; n++) {
            int64_t last = -1;
            for (int64_t t = 0; t < T; t++) {
                if (s_post[t * BN + b * N + n] <= 0) continue;
                A[t * N + n] += 1;
                any[t] = 1;
                if (last >= 0) {
                    int64_t rf = last + t_ref < t ? last + t_ref : t;
                    A[rf * N + n] += -POW(dm, (T_)(t - rf));
                    any[rf] = 1;
                }
                last = t;
            }
        }
        T_ *eb = e + b * N * K;
        for (int64_t t = 0; t < T; t++) {
            const T_ *R_ xt = t - delay >= 0 ? x_pre + (t - delay) * BK + b * K : 0;
            if (xt) for (int64_t k = 0; k < K; k++) { p[k] = p[k] * ds + xt[k]; q[k] = q[k] * dm + p[k] / tau_s; }
            else for (int64_t k = 0; k < K; k++) { p[k] = p[k] * ds; q[k] = q[k] * dm + p[k] / tau_s; }
            if (!any[t]) continue;
            const T_ *R_ at = A + t * N;
            for (int64_t n = 0; n < N; n++) {
                T_ a = at[n];
                if (a == 0) continue;
                T_ *R_ en = eb + n * K;
                const T_ *R_ qq = q;
                for (int64_t k = 0; k < K; k++) en[k] += a * qq[k];
            }
        }
        free(any);
        free(pq);
        free(A);
    }
}
#endif
