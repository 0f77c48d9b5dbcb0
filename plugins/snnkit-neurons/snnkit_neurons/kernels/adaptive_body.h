/* The scans of adaptive_scan.h for one float type (T_, SFX defined). Layout as cpu_scan.c: (L, B, N)
 * contiguous, element e = b*N + n of step t at t*BN + e; state and carries are (B, N). */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define NAME(f) CAT(f, SFX)
#define BLOCKS(...) \
    int64_t nblk = (BN + BLK - 1) / BLK; \
    _Pragma("omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)") \
    for (int64_t blk = 0; blk < nblk; blk++) { \
        int64_t e0 = blk * BLK, m = BN - e0 < BLK ? BN - e0 : BLK; \
        __VA_ARGS__ \
    }

/* alif forward of elements [e0, e0+m): state u, a, sp (S[t-1]); I + R (R: recurrent input, optional) or
 * I + w_n·S[t-1] (w: diagonal) */
INLINE void NAME(alif_fwd_block)(int64_t L, int64_t BN, int64_t N, int64_t e0, int64_t m, const T_ *I, const T_ *R,
                                 const T_ *w, T_ *R_ u, T_ *R_ a, T_ *R_ sp, T_ *s_out, T_ *h_out, T_ *a_out,
                                 T_ decay, T_ v_th, T_ beta, T_ rho, T_ omr) {
    T_ wn[BLK];  /* the self weights of this block's elements, gathered once (no e % N in the step loop) */
    for (int64_t j = 0; j < m; j++) wn[j] = w ? w[(e0 + j) % N] : (T_)0;
    for (int64_t t = 0; t < L; t++) {
        const T_ *R_ it = I + t * BN + e0;
        const T_ *R_ rt = R ? R + t * BN + e0 : it;
        T_ *R_ st = s_out + t * BN + e0, *R_ ht = h_out + t * BN + e0, *R_ at = a_out + t * BN + e0;
        for (int64_t j = 0; j < m; j++) {
            int64_t e = e0 + j;
            T_ av = rho * a[e] + omr * sp[e];
            T_ thr = v_th + beta * av;
            T_ i = R ? it[j] + rt[j] : (w ? it[j] + wn[j] * sp[e] : it[j]);
            T_ h = decay * u[e] + i;
            T_ s = (T_)(h - thr >= 0);
            u[e] = h - thr * s; a[e] = av; sp[e] = s;
            st[j] = s; ht[j] = h; at[j] = av;
        }
    }
}

EXPORT void NAME(alif_fwd)(int64_t L, int64_t BN, int64_t N, const T_ *I, const T_ *R, const T_ *w, T_ *u, T_ *a,
                           T_ *sp, T_ *s_out, T_ *h_out, T_ *a_out, T_ decay, T_ v_th, T_ beta, T_ rho, T_ omr,
                           int nthreads) {
    BLOCKS(NAME(alif_fwd_block)(L, BN, N, e0, m, I, R, w, u, a, sp, s_out, h_out, a_out, decay, v_th, beta, rho,
                                omr);)
}

typedef void (*NAME(agemm_fn))(const char *, const char *, const int64_t *, const int64_t *, const int64_t *,
                               const T_ *, const T_ *, const int64_t *, const T_ *, const int64_t *, const T_ *,
                               T_ *, const int64_t *);

/* R[t0:t1] = S[t0-k : t1-k] Vᵀ for chunk [t0, t1) (zero for t < k), through the BLAS gemm torch uses, with the
 * call torch makes for (rows, N) @ (N, N)ᵀ so the products round as the reference's do */
INLINE void NAME(span_rec)(int64_t t0, int64_t t1, int64_t k, int64_t B, int64_t N, const T_ *W, const T_ *s, T_ *R,
                           void *gemm_) {
    const int64_t BN = B * N, rows = (t1 - t0) * B;
    const T_ f1 = 1, f0 = 0;
    if (t0 == 0) { for (int64_t e = 0; e < (t1 - t0) * BN; e++) R[e] = 0; return; }
    ((NAME(agemm_fn))gemm_)("T", "N", &N, &rows, &N, &f1, W, &N, s + (t0 - k) * BN, &N, &f0, R + t0 * BN, &N);
}

/* the whole forward of alif with R[t] = V S[t-k]: per chunk of k steps one product into R, then the steps */
EXPORT void NAME(alif_span_fwd)(int64_t T, int64_t B, int64_t N, int64_t k, const T_ *I, const T_ *W, T_ *R, T_ *u,
                                T_ *a, T_ *sp, T_ *s_out, T_ *h_out, T_ *a_out, T_ decay, T_ v_th, T_ beta, T_ rho,
                                T_ omr, void *gemm_) {
    const int64_t BN = B * N;
    for (int64_t t0 = 0; t0 < T; t0 += k) {
        int64_t t1 = t0 + k < T ? t0 + k : T, o = t0 * BN;
        NAME(span_rec)(t0, t1, k, B, N, W, s_out, R, gemm_);
        for (int64_t e0 = 0; e0 < BN; e0 += BLK)
            NAME(alif_fwd_block)(t1 - t0, BN, N, e0, BN - e0 < BLK ? BN - e0 : BLK, I + o, R + o, 0, u, a, sp,
                                 s_out + o, h_out + o, a_out + o, decay, v_th, beta, rho, omr);
    }
}

/* alif backward of elements [e0, e0+m) over one chunk, reverse time; carries gu = dL/dU[t], ga = dL/da[t+1],
 * ghn = dL/dH[t+1] (diagonal). mode 0: BPTT, g_S = gs + G + (1-rho)·ga + w·ghn - thr·gu; mode 1: reward-prop,
 * g_S = G (the replaced gradient; the spikes feed nothing differentiable); mode 2: reward-prop with '- h',
 * g_S = G - S. G is indexed from the chunk's first step. hs, hg, hw: gs, G, w are given (constants at every
 * call, so each combination is its own loop, without branches, and vectorises). */
INLINE void NAME(alif_bwd_block)(int64_t L, int64_t BN, int64_t N, int64_t e0, int64_t m, const T_ *R_ gs,
                                 const T_ *R_ G, const T_ *R_ h, const T_ *R_ a, const T_ *w, T_ *R_ gu, T_ *R_ ga,
                                 T_ *R_ ghn, T_ *R_ gi, T_ decay, T_ v_th, T_ beta, T_ rho, T_ omr, T_ width, int kind,
                                 int mode, int hs, int hg, int hw) {
    T_ wn[BLK];  /* as in the forward: the self weights gathered once per block */
    for (int64_t j = 0; j < m; j++) wn[j] = w ? w[(e0 + j) % N] : (T_)0;
    for (int64_t t = L - 1; t >= 0; t--) {
        int64_t o = t * BN + e0;
        for (int64_t j = 0; j < m; j++) {
            int64_t e = e0 + j;
            T_ thr = v_th + beta * a[o + j];
            T_ x = h[o + j] - thr;
            T_ s = (T_)(x >= 0);
            T_ sg = NAME(surrogate)(x, width, kind);
            T_ g_s, g_u = gu[e];
            if (mode) {
                g_s = mode == 2 ? G[o + j] - s : G[o + j];
            } else {
                g_s = omr * ga[e] - thr * g_u;
                if (hs) g_s += gs[o + j];
                if (hg) g_s += G[o + j];
                if (hw) g_s += wn[j] * ghn[e];
                ga[e] = rho * ga[e] + beta * (-(s * g_u) - sg * g_s);
            }
            T_ g_h = g_u + sg * g_s;
            gi[o + j] = g_h; gu[e] = decay * g_h;
            if (hw) ghn[e] = g_h;
        }
    }
}

/* one copy of a block loop per surrogate (the switch leaves the inner loop) */
#define BY_KIND(CALL) switch (kind) { \
    case SIGMOID: CALL(SIGMOID); break; case TRIANGLE: CALL(TRIANGLE); break; \
    case FAST_SIGMOID: CALL(FAST_SIGMOID); break; case ATAN: CALL(ATAN); break; default: CALL(RECTANGLE); }

EXPORT void NAME(alif_bwd)(int64_t L, int64_t BN, int64_t N, const T_ *gs, const T_ *G, const T_ *h, const T_ *a,
                           const T_ *w, T_ *gu, T_ *ga, T_ *ghn, T_ *gi, T_ decay, T_ v_th, T_ beta, T_ rho, T_ omr,
                           T_ width, int kind, int mode, int nthreads) {
#define ALIF_BWD_(K, MODE, HS, HG, HW) NAME(alif_bwd_block)(L, BN, N, e0, m, gs, G, h, a, w, gu, ga, ghn, gi, decay, \
                                                        v_th, beta, rho, omr, width, K, MODE, HS, HG, HW)
    /* the combinations the layers use, each its own loop; mode 0 without gs and the others through the last */
#define ALIF_BWD(K) \
    if (mode == 0 && gs && !G && w) ALIF_BWD_(K, 0, 1, 0, 1); \
    else if (mode == 0 && gs && G && !w) ALIF_BWD_(K, 0, 1, 1, 0); \
    else if (mode == 0 && gs && !G && !w) ALIF_BWD_(K, 0, 1, 0, 0); \
    else if (mode == 1 && !w) ALIF_BWD_(K, 1, 0, 1, 0); \
    else if (mode == 2 && !w) ALIF_BWD_(K, 2, 0, 1, 0); \
    else ALIF_BWD_(K, mode, gs != 0, G != 0, w != 0)
    BLOCKS(FTZ_BEGIN BY_KIND(ALIF_BWD) FTZ_END)
#undef ALIF_BWD
#undef ALIF_BWD_
}

/* G[0 : n·B] = gr[t0+k : t0+k+n] V (row-major (rows, N) @ (N, N)): ∂L/∂S of a chunk's steps through the later
 * steps' R, zero for the chunk's steps that feed none */
INLINE void NAME(span_back)(int64_t t0, int64_t t1, int64_t k, int64_t T, int64_t B, int64_t N, const T_ *W,
                            const T_ *gr, T_ *G, void *gemm_) {
    const int64_t BN = B * N, n = (t1 + k < T ? t1 + k : T) - (t0 + k), rows = n * B;
    const T_ f1 = 1, f0 = 0;
    if (n > 0) ((NAME(agemm_fn))gemm_)("N", "N", &N, &rows, &N, &f1, W, &N, gr + (t0 + k) * BN, &N, &f0, G, &N);
    for (int64_t e = (n > 0 ? n : 0) * BN; e < (t1 - t0) * BN; e++) G[e] = 0;
}

/* the whole BPTT backward of alif with R[t] = V S[t-k]: chunks in reverse, one product each (G: (k·B, N)) */
EXPORT void NAME(alif_span_bwd)(int64_t T, int64_t B, int64_t N, int64_t k, const T_ *gs, const T_ *h, const T_ *a,
                                const T_ *W, T_ *G, T_ *gu, T_ *ga, T_ *gi, T_ decay, T_ v_th, T_ beta, T_ rho,
                                T_ omr, T_ width, int kind, void *gemm_) {
    const int64_t BN = B * N;
    FTZ_BEGIN
    for (int64_t t0 = (T - 1) / k * k; t0 >= 0; t0 -= k) {
        int64_t t1 = t0 + k < T ? t0 + k : T, o = t0 * BN;
        NAME(span_back)(t0, t1, k, T, B, N, W, gi, G, gemm_);
        for (int64_t e0 = 0; e0 < BN; e0 += BLK) {
            int64_t m = BN - e0 < BLK ? BN - e0 : BLK;
#define ALIF_BWD(K) \
            if (gs) NAME(alif_bwd_block)(t1 - t0, BN, N, e0, m, gs + o, G, h + o, a + o, 0, gu, ga, 0, gi + o, decay, \
                                         v_th, beta, rho, omr, width, K, 0, 1, 1, 0); \
            else NAME(alif_bwd_block)(t1 - t0, BN, N, e0, m, 0, G, h + o, a + o, 0, gu, ga, 0, gi + o, decay, v_th, \
                                      beta, rho, omr, width, K, 0, 0, 1, 0)
            BY_KIND(ALIF_BWD)
#undef ALIF_BWD
        }
    }
    FTZ_END
}

/* nrr forward of elements [e0, e0+m): state v (V[t-1]), sp (S[t-1]), a; R: the recurrent channel's input */
INLINE void NAME(nrr_fwd_block)(int64_t L, int64_t BN, int64_t e0, int64_t m, const T_ *I, const T_ *R, T_ *R_ v,
                                T_ *R_ sp, T_ *R_ a, T_ *s_out, T_ *vf_out, T_ decay, T_ v_th, T_ alpha, T_ beta,
                                T_ gamma, int quirk) {
    for (int64_t t = 0; t < L; t++) {
        const T_ *R_ it = I + t * BN + e0;
        const T_ *R_ rt = R ? R + t * BN + e0 : it;
        T_ *R_ st = s_out + t * BN + e0, *R_ ft = vf_out + t * BN + e0;
        for (int64_t j = 0; j < m; j++) {
            int64_t e = e0 + j;
            T_ S = sp[e];
            T_ av = alpha * a[e] + beta * S;
            T_ keep = quirk ? (T_)1 - S : (T_)1 - (S < (T_)1 ? S : (T_)1);
            T_ vf = (decay * v[e] * keep + it[j]) - gamma * av;
            T_ s = (T_)(vf - v_th > 0);
            T_ V = vf;
            if (R) { s += (T_)(rt[j] - v_th > 0); V = vf + rt[j]; }
            v[e] = V; sp[e] = s; a[e] = av;
            st[j] = s; ft[j] = vf;
        }
    }
}

EXPORT void NAME(nrr_fwd)(int64_t L, int64_t BN, const T_ *I, const T_ *R, T_ *v, T_ *sp, T_ *a, T_ *s_out,
                          T_ *vf_out, T_ decay, T_ v_th, T_ alpha, T_ beta, T_ gamma, int quirk, int nthreads) {
    BLOCKS(NAME(nrr_fwd_block)(L, BN, e0, m, I, R, v, sp, a, s_out, vf_out, decay, v_th, alpha, beta, gamma, quirk);)
}

/* the whole forward of nrr with R[t] = V S[t-k] (as alif_span_fwd) */
EXPORT void NAME(nrr_span_fwd)(int64_t T, int64_t B, int64_t N, int64_t k, const T_ *I, const T_ *W, T_ *R, T_ *v,
                               T_ *sp, T_ *a, T_ *s_out, T_ *vf_out, T_ decay, T_ v_th, T_ alpha, T_ beta, T_ gamma,
                               int quirk, void *gemm_) {
    const int64_t BN = B * N;
    for (int64_t t0 = 0; t0 < T; t0 += k) {
        int64_t t1 = t0 + k < T ? t0 + k : T, o = t0 * BN;
        NAME(span_rec)(t0, t1, k, B, N, W, s_out, R, gemm_);
        for (int64_t e0 = 0; e0 < BN; e0 += BLK)
            NAME(nrr_fwd_block)(t1 - t0, BN, e0, BN - e0 < BLK ? BN - e0 : BLK, I + o, R + o, v, sp, a, s_out + o,
                                vf_out + o, decay, v_th, alpha, beta, gamma, quirk);
    }
}

/* nrr backward of elements [e0, e0+m) over one chunk, reverse time; carries gvf = dL/dV_f[t+1], ga = dL/da[t+1].
 * Writes dL/dI (gi) and dL/dR (gr, with R). mode 0: BPTT, g_S = gs + G + beta·ga - (dL/dr(S))·r'(S); 1, 2:
 * reward-prop as alif's (G is the replaced gradient of each channel's spikes; 2: minus that channel's spikes).
 * hs, hg, hr: gs, G, R are given (constants at every call: one branch-free loop per combination, as alif's). */
INLINE void NAME(nrr_bwd_block)(int64_t L, int64_t BN, int64_t e0, int64_t m, const T_ *R_ gs, const T_ *R_ G,
                                const T_ *R_ s, const T_ *R_ vf, const T_ *R_ R, T_ *R_ gvf, T_ *R_ ga, T_ *R_ gi,
                                T_ *R_ gr, T_ decay, T_ v_th, T_ alpha, T_ beta, T_ gamma, int quirk, T_ width,
                                int kind, int mode, int hs, int hg, int hr) {
    for (int64_t t = L - 1; t >= 0; t--) {
        int64_t o = t * BN + e0;
        for (int64_t j = 0; j < m; j++) {
            int64_t e = e0 + j;
            T_ S = s[o + j], f = vf[o + j], r = hr ? R[o + j] : (T_)0;
            T_ keep = quirk ? (T_)1 - S : (T_)1 - (S < (T_)1 ? S : (T_)1);
            T_ g_n = gvf[e];
            T_ g_v = decay * (keep * g_n);
            T_ g_f, g_r;
            if (mode) {
                g_f = G[o + j]; g_r = g_f;
                if (mode == 2) { g_f -= (T_)(f - v_th > 0); g_r -= (T_)(r - v_th > 0); }
            } else {
                T_ V = hr ? f + r : f;
                T_ g_keep = g_n * (decay * V);
                g_f = beta * ga[e] - ((quirk || S <= (T_)1) ? g_keep : (T_)0);
                if (hs) g_f += gs[o + j];
                if (hg) g_f += G[o + j];
                g_r = g_f;
            }
            T_ g_vf = g_v + NAME(surrogate)(f - v_th, width, kind) * g_f;
            if (hr) gr[o + j] = g_v + NAME(surrogate)(r - v_th, width, kind) * g_r;
            if (!mode) ga[e] = alpha * ga[e] - gamma * g_vf;
            gi[o + j] = g_vf; gvf[e] = g_vf;
        }
    }
}

EXPORT void NAME(nrr_bwd)(int64_t L, int64_t BN, const T_ *gs, const T_ *G, const T_ *s, const T_ *vf, const T_ *R,
                          T_ *gvf, T_ *ga, T_ *gi, T_ *gr, T_ decay, T_ v_th, T_ alpha, T_ beta, T_ gamma, int quirk,
                          T_ width, int kind, int mode, int nthreads) {
#define NRR_BWD_(K, MODE, HS, HG, HR) NAME(nrr_bwd_block)(L, BN, e0, m, gs, G, s, vf, R, gvf, ga, gi, gr, decay, \
                                                      v_th, alpha, beta, gamma, quirk, width, K, MODE, HS, HG, HR)
#define NRR_BWD(K) \
    if (mode == 1 && G && R) NRR_BWD_(K, 1, 0, 1, 1); \
    else if (mode == 1 && G && !R) NRR_BWD_(K, 1, 0, 1, 0); \
    else if (mode == 2 && G && R) NRR_BWD_(K, 2, 0, 1, 1); \
    else if (mode == 2 && G && !R) NRR_BWD_(K, 2, 0, 1, 0); \
    else if (mode == 0 && gs && !G && !R) NRR_BWD_(K, 0, 1, 0, 0); \
    else if (mode == 0 && gs && G && R) NRR_BWD_(K, 0, 1, 1, 1); \
    else NRR_BWD_(K, mode, gs != 0, G != 0, R != 0)
    BLOCKS(FTZ_BEGIN BY_KIND(NRR_BWD) FTZ_END)
#undef NRR_BWD
#undef NRR_BWD_
}

/* the whole BPTT backward of nrr with R[t] = V S[t-k] (as alif_span_bwd; ∂L/∂R into gr) */
EXPORT void NAME(nrr_span_bwd)(int64_t T, int64_t B, int64_t N, int64_t k, const T_ *gs, const T_ *s, const T_ *vf,
                               const T_ *R, const T_ *W, T_ *G, T_ *gvf, T_ *ga, T_ *gi, T_ *gr, T_ decay, T_ v_th,
                               T_ alpha, T_ beta, T_ gamma, int quirk, T_ width, int kind, void *gemm_) {
    const int64_t BN = B * N;
    FTZ_BEGIN
    for (int64_t t0 = (T - 1) / k * k; t0 >= 0; t0 -= k) {
        int64_t t1 = t0 + k < T ? t0 + k : T, o = t0 * BN;
        NAME(span_back)(t0, t1, k, T, B, N, W, gr, G, gemm_);
        for (int64_t e0 = 0; e0 < BN; e0 += BLK) {
            int64_t m = BN - e0 < BLK ? BN - e0 : BLK;
#define NRR_BWD(K) \
            if (gs) NAME(nrr_bwd_block)(t1 - t0, BN, e0, m, gs + o, G, s + o, vf + o, R + o, gvf, ga, gi + o, gr + o, \
                                        decay, v_th, alpha, beta, gamma, quirk, width, K, 0, 1, 1, 1); \
            else NAME(nrr_bwd_block)(t1 - t0, BN, e0, m, 0, G, s + o, vf + o, R + o, gvf, ga, gi + o, gr + o, decay, \
                                     v_th, alpha, beta, gamma, quirk, width, K, 0, 0, 1, 1)
            BY_KIND(NRR_BWD)
#undef NRR_BWD
        }
    }
    FTZ_END
}

#undef BY_KIND
#undef BLOCKS
#undef NAME
#undef CAT
#undef CAT_
