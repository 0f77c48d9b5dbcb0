/* The scans of cpu_scan.c for one float type: included once per type with T_ (the type), SFX (the name
 * suffix), EXP and FABS defined. Equations and layout: cpu_scan.c. */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define NAME(f) CAT(f, SFX)

/* The reciprocals of the width are loop invariants, hoisted out of the element loops by the compiler: one division
 * per element at most (a vector division costs 5-10 cycles per vector; the sigmoid had three) */
INLINE T_ NAME(surrogate)(T_ x, T_ width, int kind) {
    T_ iw = (T_)1 / width;
    switch (kind) {
    case SIGMOID: {  /* σ(z)(1-σ(z)) = e/(1+e)², e = exp(-|z|) <= 1: no overflow */
        T_ e = EXP(-FABS(x) * iw), d = (T_)1 + e;
        return e * iw / (d * d);
    }
    case TRIANGLE: { T_ r = width - FABS(x); return (r > 0 ? r : (T_)0) * (iw * iw); }
    case FAST_SIGMOID: { T_ d = width + FABS(x); return (T_)0.5 * width / (d * d); }
    case ATAN: { T_ z = ((T_)3.141592653589793 * iw) * x; return iw / ((T_)1 + z * z); }
    default: return (T_)(FABS(x) < width * (T_)0.5) * iw;
    }
}

/* dst[0..m) = src[0..m) with non-temporal stores where the CPU has them (SSE2): a (T, B, N) output that is read
 * only much later would otherwise be read into the cache before it is written (as much traffic again) */
INLINE void NAME(stream)(T_ *R_ dst, const T_ *R_ src, int64_t m) {
    int64_t j = 0;
#if STREAM_STORES
    for (; j < m && ((uintptr_t)(dst + j) & 15); j++) dst[j] = src[j];
    for (; j + STREAM_W <= m; j += STREAM_W) STREAM_STORE(dst + j, src + j);
#endif
    for (; j < m; j++) dst[j] = src[j];
}

/* one block of m <= BLK elements starting at e0, all T steps */
INLINE void NAME(lif_fwd_block)(int64_t T, int64_t BN, int64_t N, int64_t e0, int64_t m, const T_ *R_ I,
                                const T_ *R_ leak, const T_ *R_ w, T_ *R_ a_out, T_ *R_ u_out, T_ *R_ s_out,
                                T_ decay, T_ inv_tau_s, T_ v_th, int has_w) {
    T_ ur[BLK], a[BLK], lam[BLK], wn[BLK], ub[BLK], sb[BLK];
    for (int64_t j = 0; j < m; j++) {
        ur[j] = 0; a[j] = 0; lam[j] = leak[(e0 + j) % N]; wn[j] = has_w ? w[(e0 + j) % N] : (T_)0;
    }
    for (int64_t t = 0; t < T; t++) {
        const T_ *R_ it = I + t * BN + e0;
        T_ *R_ at = a_out + t * BN + e0;
        T_ *R_ ut = u_out + t * BN + e0;
        T_ *R_ st = s_out + t * BN + e0;
        for (int64_t j = 0; j < m; j++) {
            T_ i = has_w ? it[j] + wn[j] * a[j] : it[j];  /* I + w·a[t-1], as I[t] + recurrent_input */
            T_ u = lam[j] * ur[j] + i;
            T_ s = (T_)(u > v_th);
            ur[j] = u * ((T_)1 - s);
            a[j] = decay * a[j] + s * inv_tau_s;
            at[j] = a[j]; ub[j] = u; sb[j] = s;
        }
        /* u and s are read only by the backward, long after: written around the cache (a is read next) */
        NAME(stream)(ut, ub, m); NAME(stream)(st, sb, m);
    }
    STREAM_FENCE();
}

EXPORT void NAME(lif_fwd)(int64_t T, int64_t BN, int64_t N, const T_ *I, const T_ *leak, const T_ *w, T_ *a_out,
                   T_ *u_out, T_ *s_out, T_ decay, T_ inv_tau_s, T_ v_th, int nthreads) {
    int64_t nblk = (BN + BLK - 1) / BLK;
    #pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t e0 = blk * BLK, m = BN - e0 < BLK ? BN - e0 : BLK;
        if (w) NAME(lif_fwd_block)(T, BN, N, e0, m, I, leak, w, a_out, u_out, s_out, decay, inv_tau_s, v_th, 1);
        else NAME(lif_fwd_block)(T, BN, N, e0, m, I, leak, leak, a_out, u_out, s_out, decay, inv_tau_s, v_th, 0);
    }
}

INLINE void NAME(lif_bwd_block)(int64_t T, int64_t BN, int64_t N, int64_t e0, int64_t m, const T_ *R_ ga,
                                const T_ *R_ gs, const T_ *R_ a, const T_ *R_ u, const T_ *R_ leak,
                                const T_ *R_ w, T_ *R_ gi, T_ *R_ gleak, T_ *R_ gw, T_ decay, T_ inv_tau_s,
                                T_ v_th, T_ width, int kind, int detach, int has_gs, int has_w) {
    T_ gan[BLK], gun[BLK], lam[BLK], wn[BLK], accw[BLK], accl[BLK];
    for (int64_t j = 0; j < m; j++) {
        gan[j] = 0; gun[j] = 0; accw[j] = 0; accl[j] = 0;
        lam[j] = leak[(e0 + j) % N]; wn[j] = has_w ? w[(e0 + j) % N] : (T_)0;
    }
    for (int64_t t = T - 1; t >= 0; t--) {
        const T_ *R_ gat = ga + t * BN + e0;
        const T_ *R_ ut = u + t * BN + e0;
        const T_ *R_ gst = gs + t * BN + e0;  /* only read when has_gs */
        T_ *R_ git = gi + t * BN + e0;
        for (int64_t j = 0; j < m; j++) {
            T_ g_a = gat[j] + decay * gan[j] + wn[j] * gun[j];
            T_ g_ur = lam[j] * gun[j];
            T_ g_s = g_a * inv_tau_s;
            if (has_gs) g_s += gst[j];
            T_ uu = ut[j];
            T_ s = (T_)(uu > v_th);
            if (!detach) g_s -= uu * g_ur;
            T_ g_u = ((T_)1 - s) * g_ur + NAME(surrogate)(uu - v_th, width, kind) * g_s;
            git[j] = g_u;
            gan[j] = g_a; gun[j] = g_u;
        }
        if (t > 0) {  /* ∂L/∂w += g_u[t]·a[t-1];  ∂L/∂λ += g_u[t]·ũ[t-1] */
            const T_ *R_ ap = a + (t - 1) * BN + e0;
            const T_ *R_ up = u + (t - 1) * BN + e0;
            for (int64_t j = 0; j < m; j++) {
                accw[j] += gun[j] * ap[j];
                accl[j] += gun[j] * (up[j] > v_th ? (T_)0 : up[j]);
            }
        }
    }
    for (int64_t j = 0; j < m; j++) {
        gleak[e0 + j] = accl[j];
        if (has_w) gw[e0 + j] = accw[j];
    }
}

EXPORT void NAME(lif_bwd)(int64_t T, int64_t BN, int64_t N, const T_ *ga, const T_ *gs, const T_ *a, const T_ *u,
                   const T_ *leak, const T_ *w, T_ *gi, T_ *gleak, T_ *gw, T_ decay, T_ inv_tau_s, T_ v_th,
                   T_ width, int kind, int detach, int nthreads) {
    int64_t nblk = (BN + BLK - 1) / BLK;
    #pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t e0 = blk * BLK, m = BN - e0 < BLK ? BN - e0 : BLK;
        int hs = gs != 0, hw = w != 0;  /* absent inputs: a valid dummy pointer that is never read */
        const T_ *gs_ = hs ? gs : ga, *w_ = hw ? w : leak;
        T_ *gw_ = hw ? gw : gleak;
        /* one copy of the loop per surrogate and reset mode: the switch leaves the inner loop */
#define LIF_BWD(K, D) NAME(lif_bwd_block)(T, BN, N, e0, m, ga, gs_, a, u, leak, w_, gi, gleak, gw_, decay, inv_tau_s, v_th, width, K, D, hs, hw)
#define LIF_BWD_K(K) if (detach) LIF_BWD(K, 1); else LIF_BWD(K, 0); break
        FTZ_BEGIN
        switch (kind) {
        case SIGMOID: LIF_BWD_K(SIGMOID);
        case TRIANGLE: LIF_BWD_K(TRIANGLE);
        case FAST_SIGMOID: LIF_BWD_K(FAST_SIGMOID);
        case ATAN: LIF_BWD_K(ATAN);
        default: LIF_BWD_K(RECTANGLE);
        }
        FTZ_END
#undef LIF_BWD
#undef LIF_BWD_K
    }
    /* ∂L/∂λ_n, ∂L/∂w_n = Σ_b of the per-element sums, into row 0, always in the order b = 0, 1, ...: the
     * result does not depend on the thread count (a torch sum over b may split it between threads) */
    int64_t B = BN / N;
    for (int64_t b = 1; b < B; b++) {
        for (int64_t n = 0; n < N; n++) gleak[n] += gleak[b * N + n];
        if (w) for (int64_t n = 0; n < N; n++) gw[n] += gw[b * N + n];
    }
}

/* the network input's PSC filter (lif.psc_filter without gradient), E = B·C elements per step:
 * out[0] = x[0]/τs,  out[t] = d·out[t-1] + x[t]/τs, rounded as psc_filter's torch loop (two roundings per step) */
EXPORT void NAME(psc_fwd)(int64_t T, int64_t E, const T_ *x, T_ *out, T_ decay, T_ tau_s, int nthreads) {
    int64_t nblk = (E + BLK - 1) / BLK;
    #pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t e0 = blk * BLK, m = E - e0 < BLK ? E - e0 : BLK;
        for (int64_t t = 0; t < T; t++) {
            const T_ *R_ xt = x + t * E + e0;
            const T_ *R_ op = out + (t > 0 ? t - 1 : 0) * E + e0;
            T_ *R_ ot = out + t * E + e0;
            if (t == 0) for (int64_t j = 0; j < m; j++) ot[j] = xt[j] / tau_s;
            else for (int64_t j = 0; j < m; j++) ot[j] = op[j] * decay + xt[j] / tau_s;
        }
    }
}

INLINE void NAME(soft_fwd_block)(int64_t L, int64_t BN, int64_t e0, int64_t m, const T_ *R_ I, const T_ *R_ R,
                                 T_ *R_ u, T_ *R_ s_out, T_ *R_ h_out, T_ decay, T_ v_th, int has_r) {
    T_ ub[BLK];
    for (int64_t j = 0; j < m; j++) ub[j] = u[e0 + j];
    for (int64_t t = 0; t < L; t++) {
        const T_ *R_ it = I + t * BN + e0;
        const T_ *R_ rt = R + t * BN + e0;  /* only read when has_r */
        T_ *R_ st = s_out + t * BN + e0;
        T_ *R_ ht = h_out + t * BN + e0;
        for (int64_t j = 0; j < m; j++) {
            T_ h = decay * ub[j] + (has_r ? it[j] + rt[j] : it[j]);
            T_ s = (T_)(h >= v_th);
            ub[j] = h - v_th * s; st[j] = s; ht[j] = h;
        }
    }
    for (int64_t j = 0; j < m; j++) u[e0 + j] = ub[j];
}

EXPORT void NAME(soft_fwd)(int64_t L, int64_t BN, const T_ *I, const T_ *R, T_ *u, T_ *s_out, T_ *h_out, T_ decay,
                    T_ v_th, int nthreads) {
    int64_t nblk = (BN + BLK - 1) / BLK;
    #pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t e0 = blk * BLK, m = BN - e0 < BLK ? BN - e0 : BLK;
        if (R) NAME(soft_fwd_block)(L, BN, e0, m, I, R, u, s_out, h_out, decay, v_th, 1);
        else NAME(soft_fwd_block)(L, BN, e0, m, I, I, u, s_out, h_out, decay, v_th, 0);
    }
}

INLINE void NAME(soft_bwd_block)(int64_t L, int64_t BN, int64_t e0, int64_t m, const T_ *R_ gs, const T_ *R_ G,
                                 const T_ *R_ h, T_ *R_ gu, T_ *R_ gi, T_ decay, T_ v_th, T_ width, int kind,
                                 int detach, int has_gs, int has_g) {
    T_ gub[BLK];
    for (int64_t j = 0; j < m; j++) gub[j] = gu[e0 + j];
    for (int64_t t = L - 1; t >= 0; t--) {
        const T_ *R_ gst = gs + t * BN + e0;
        const T_ *R_ Gt = G + t * BN + e0;
        const T_ *R_ ht = h + t * BN + e0;
        T_ *R_ git = gi + t * BN + e0;
        for (int64_t j = 0; j < m; j++) {
            T_ g_s = has_gs ? gst[j] : (T_)0;
            if (has_g) g_s += Gt[j];
            T_ sg = NAME(surrogate)(ht[j] - v_th, width, kind);
            T_ g = gub[j];
            T_ g_h = detach ? g + sg * g_s : g + sg * (g_s - v_th * g);
            git[j] = g_h; gub[j] = decay * g_h;
        }
    }
    for (int64_t j = 0; j < m; j++) gu[e0 + j] = gub[j];
}

EXPORT void NAME(soft_bwd)(int64_t L, int64_t BN, const T_ *gs, const T_ *G, const T_ *h, T_ *gu, T_ *gi, T_ decay,
                    T_ v_th, T_ width, int kind, int detach, int nthreads) {
    int64_t nblk = (BN + BLK - 1) / BLK;
    #pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t e0 = blk * BLK, m = BN - e0 < BLK ? BN - e0 : BLK;
        int hs = gs != 0, hg = G != 0;
        const T_ *gs_ = hs ? gs : h, *G_ = hg ? G : h;  /* dummies, never read */
#define SOFT_BWD(K, D) NAME(soft_bwd_block)(L, BN, e0, m, gs_, G_, h, gu, gi, decay, v_th, width, K, D, hs, hg)
#define SOFT_BWD_K(K) if (detach) SOFT_BWD(K, 1); else SOFT_BWD(K, 0); break
        FTZ_BEGIN
        switch (kind) {
        case SIGMOID: SOFT_BWD_K(SIGMOID);
        case TRIANGLE: SOFT_BWD_K(TRIANGLE);
        case FAST_SIGMOID: SOFT_BWD_K(FAST_SIGMOID);
        case ATAN: SOFT_BWD_K(ATAN);
        default: SOFT_BWD_K(RECTANGLE);
        }
        FTZ_END
#undef SOFT_BWD
#undef SOFT_BWD_K
    }
}


/* tssl-bp's reverse-time backward (snnkit_rules/tssl_bp.py: tssl_backward is the oracle; equations there and in
 * docs/rules/tssl-bp.md), per element, over the forward of lif_fwd (u, a; s = u > V_th, ũ[t-1] = u[t-1]·(1-s[t-1])).
 * form 0 = surrogate, 1 = 2021, 2 = 2020 (``active``: the layer-level warm-up decided by the caller). Carried
 * backwards: conv, c (2021) or cg (2020), and G[t+1]. f(u) = e/(w(1+e)²), e = exp(-|clamp((V_th-u)/w, ±8)|)
 * (the symmetric form of e^z/(w(1+e^z)²)). ∂L/∂w_n, ∂L/∂θ_n summed over b into row 0 as in lif_bwd; cnt[0..2]:
 * entries on the exact branch at a spike, between spikes, and at the derivative bound (the rule's diagnostics). */
INLINE T_ NAME(tssl_f)(T_ u, T_ v_th, T_ width) {
    T_ iw = (T_)1 / width;  /* hoisted: one division per element */
    T_ z = (v_th - u) * iw;
    z = z > (T_)8 ? (T_)8 : (z < (T_)-8 ? (T_)-8 : z);
    T_ e = EXP(-FABS(z)), d = (T_)1 + e;
    return e * iw / (d * d);
}

INLINE void NAME(tssl_bwd_block)(int64_t T, int64_t BN, int64_t N, int64_t e0_, int64_t m, const T_ *R_ gx,
                                 const T_ *R_ u, const T_ *R_ a, const T_ *R_ leak, const T_ *R_ w, T_ *R_ G,
                                 T_ *R_ gleak, T_ *R_ gw, T_ e0, T_ d, T_ v_th, T_ width, int form, T_ bound,
                                 T_ warm_thr, int active, T_ bound20, int has_w, double *R_ cnt) {
    T_ conv[BLK], c[BLK], gn[BLK], th[BLK], wn[BLK], accw[BLK], accl[BLK], n_sp[BLK], n_si[BLK], n_bd[BLK];
    for (int64_t j = 0; j < m; j++) {
        conv[j] = 0; c[j] = 0; gn[j] = 0; accw[j] = 0; accl[j] = 0; n_sp[j] = 0; n_si[j] = 0; n_bd[j] = 0;
        th[j] = leak[(e0_ + j) % N]; wn[j] = has_w ? w[(e0_ + j) % N] : (T_)0;
    }
    for (int64_t t = T - 1; t >= 0; t--) {
        const T_ *R_ gt = gx + t * BN + e0_;
        const T_ *R_ ut = u + t * BN + e0_;
        const T_ *R_ up = u + (t > 0 ? t - 1 : 0) * BN + e0_;  /* only read for t > 0 */
        const T_ *R_ at = a + t * BN + e0_;
        T_ *R_ Gt = G + t * BN + e0_;
        if (form == 0) {
            for (int64_t j = 0; j < m; j++) {
                T_ g = has_w ? gt[j] + wn[j] * gn[j] : gt[j];
                conv[j] = e0 * g + d * conv[j];
                gn[j] = NAME(tssl_f)(ut[j], v_th, width) * conv[j];
                Gt[j] = gn[j];
            }
        } else if (form == 1) {
            for (int64_t j = 0; j < m; j++) {
                T_ uu = ut[j], s = (T_)(uu > v_th);
                T_ urp = t > 0 ? (up[j] > v_th ? (T_)0 : up[j]) : (T_)0;
                T_ phi = s > 0 ? (T_)1 / (uu - urp) : (T_)0;
                phi = phi > bound ? bound : phi;
                T_ A = s * phi, Lk = ((T_)1 - s) * th[j];
                T_ P = s * ((T_)1 - th[j]) * uu * phi + Lk;
                T_ warm = (T_)(at[j] < warm_thr), M = (T_)1 - warm;
                T_ Fm = warm > 0 ? NAME(tssl_f)(uu, v_th, width) : (T_)0;
                T_ g = has_w ? gt[j] + wn[j] * gn[j] : gt[j];
                conv[j] = e0 * g + d * conv[j];
                T_ R = A * conv[j] + P * c[j];
                c[j] = s * R + Lk * c[j];
                gn[j] = M * R + Fm * conv[j];
                Gt[j] = gn[j];
                n_sp[j] += M * s; n_si[j] += M * ((T_)1 - s); n_bd[j] += M * s * (T_)(phi >= bound);
            }
        } else {
            for (int64_t j = 0; j < m; j++) {
                T_ uu = ut[j], s = (T_)(uu > v_th);
                T_ urp = t > 0 ? (up[j] > v_th ? (T_)0 : up[j]) : (T_)0;
                T_ phi = s > 0 ? (T_)1 / (uu - urp) : (T_)0;
                T_ fac;
                if (active) {
                    T_ cl = phi > bound20 ? bound20 : (phi < -bound20 ? -bound20 : phi);
                    fac = cl * s;
                    n_bd[j] += s * (T_)(FABS(phi) >= bound20);
                } else {
                    fac = NAME(tssl_f)(uu, v_th, width);
                }
                T_ Hk = s * ((T_)1 - th[j]) * uu, Lk = ((T_)1 - s) * th[j];
                T_ g = has_w ? gt[j] + wn[j] * gn[j] : gt[j];
                conv[j] = e0 * (g + Hk * c[j]) + d * conv[j];
                c[j] = s * g + Lk * c[j];
                gn[j] = conv[j] * fac;
                Gt[j] = gn[j];
            }
        }
        if (t > 0) {  /* ∂L/∂w += G[t]·a[t-1];  ∂L/∂θ += G[t]·ũ[t-1] */
            const T_ *R_ ap = a + (t - 1) * BN + e0_;
            for (int64_t j = 0; j < m; j++) {
                accw[j] += gn[j] * ap[j];
                accl[j] += gn[j] * (up[j] > v_th ? (T_)0 : up[j]);
            }
        }
    }
    double c0 = 0, c1 = 0, c2 = 0;
    for (int64_t j = 0; j < m; j++) {
        gleak[e0_ + j] = accl[j];
        if (has_w) gw[e0_ + j] = accw[j];
        c0 += n_sp[j]; c1 += n_si[j]; c2 += n_bd[j];
    }
    cnt[0] = c0; cnt[1] = c1; cnt[2] = c2;
}

EXPORT void NAME(tssl_bwd)(int64_t T, int64_t BN, int64_t N, const T_ *gx, const T_ *u, const T_ *a, const T_ *leak,
                    const T_ *w, T_ *G, T_ *gleak, T_ *gw, T_ e0, T_ d, T_ v_th, T_ width, int form, T_ bound,
                    T_ warm_thr, int active, T_ bound20, double *cnt, int nthreads) {
    int64_t nblk = (BN + BLK - 1) / BLK;
    double c0 = 0, c1 = 0, c2 = 0;
    #pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1) reduction(+:c0, c1, c2)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t e0_ = blk * BLK, m = BN - e0_ < BLK ? BN - e0_ : BLK;
        int hw = w != 0;
        const T_ *w_ = hw ? w : leak;  /* dummy, never read */
        T_ *gw_ = hw ? gw : gleak;
        double cb[3];
        FTZ_BEGIN
        /* one copy of the loop per form: the branch on form leaves the inner loops */
        if (form == 0) NAME(tssl_bwd_block)(T, BN, N, e0_, m, gx, u, a, leak, w_, G, gleak, gw_, e0, d, v_th, width, 0, bound, warm_thr, active, bound20, hw, cb);
        else if (form == 1) NAME(tssl_bwd_block)(T, BN, N, e0_, m, gx, u, a, leak, w_, G, gleak, gw_, e0, d, v_th, width, 1, bound, warm_thr, active, bound20, hw, cb);
        else NAME(tssl_bwd_block)(T, BN, N, e0_, m, gx, u, a, leak, w_, G, gleak, gw_, e0, d, v_th, width, 2, bound, warm_thr, active, bound20, hw, cb);
        FTZ_END
        c0 += cb[0]; c1 += cb[1]; c2 += cb[2];
    }
    cnt[0] = c0; cnt[1] = c1; cnt[2] = c2;
    int64_t B = BN / N;  /* Σ over b into row 0 in the order b = 0, 1, ... (independent of the thread count) */
    for (int64_t b = 1; b < B; b++) {
        for (int64_t n = 0; n < N; n++) gleak[n] += gleak[b * N + n];
        if (w) for (int64_t n = 0; n < N; n++) gw[n] += gw[b * N + n];
    }
}

/* ASRC's in-chunk window terms (soft_cpu.MixedScan): out[e] += Σ_{q<n} coef[q]·x[q·stride + e], e < BN, the terms
 * added one after the other in q order (stride in elements, may be negative: x walks back in time) */
EXPORT void NAME(mix_add)(int64_t BN, T_ *out, const T_ *x, int64_t stride, const T_ *coef, int64_t n, int nthreads) {
    int64_t nblk = (BN + BLK - 1) / BLK;
    #pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t e0 = blk * BLK, m = BN - e0 < BLK ? BN - e0 : BLK;
        T_ *R_ o = out + e0;
        for (int64_t q = 0; q < n; q++) {
            const T_ *R_ xq = x + q * stride + e0;
            T_ cq = coef[q];
            for (int64_t j = 0; j < m; j++) o[j] += cq * xq[j];
        }
    }
}


/* ASRC on lif-soft (soft_cpu.MixedScan; equations there): the whole layer's forward / reverse-time backward in
 * ONE call each, the per-step (B, N) x (N, N) products and the per-chunk Toeplitz products through the BLAS
 * gemm torch itself uses (``gemm``: a Fortran-interface ?gemm_ pointer found in torch's library by cpu.py), so
 * no Python runs per step. Row-major (R, C) tensors are column-major (C, R) to BLAS. Integer arguments are
 * passed as pointers to int64 holding values < 2^31: an LP64 BLAS reads their low 32 bits (little-endian), an
 * ILP64 one all 64. Scratch: ``A`` holds L·K window coefficients, ``rec`` / ``G`` one (L, B, N) chunk. */
typedef void (*NAME(gemm_fn))(const char *, const char *, const int64_t *, const int64_t *, const int64_t *,
                              const T_ *, const T_ *, const int64_t *, const T_ *, const int64_t *, const T_ *,
                              T_ *, const int64_t *);

EXPORT void NAME(mixed_fwd)(int64_t T, int64_t B, int64_t N, int64_t K, int64_t L, const T_ *I, const T_ *W,
                            const T_ *alpha, T_ *A, T_ *rec, T_ *s, T_ *h, T_ *mm, T_ *u, T_ decay, T_ v_th,
                            void *gemm_) {
    NAME(gemm_fn) gemm = (NAME(gemm_fn))gemm_;
    const int64_t BN = B * N;
    const T_ f1 = 1, f0 = 0;
    for (int64_t e = 0; e < BN; e++) u[e] = 0;
    for (int64_t t0 = 0; t0 < T; t0 += L) {
        int64_t t1 = t0 + L < T ? t0 + L : T, n = t1 - t0, M = K < t0 ? K : t0;
        if (M > 0) {  /* m[t0+i] = Σ_r A[i, r] S[t0-M+r], A[i, r] = α[M-1+i-r] (zero at index >= K) */
            for (int64_t i = 0; i < n; i++)
                for (int64_t r = 0; r < M; r++) { int64_t q = M - 1 + i - r; A[i * M + r] = q < K ? alpha[q] : (T_)0; }
            gemm("N", "N", &BN, &n, &M, &f1, s + (t0 - M) * BN, &BN, A, &M, &f0, mm + t0 * BN, &BN);
        } else {
            for (int64_t e = 0; e < n * BN; e++) mm[t0 * BN + e] = 0;
        }
        for (int64_t t = t0; t < t1; t++) {
            int64_t nin = t - t0 < K ? t - t0 : K;
            T_ *R_ mt = mm + t * BN;
            for (int64_t q = 0; q < nin; q++) {  /* the in-chunk terms, j = q+1 (mix_add's order) */
                const T_ *R_ sq = s + (t - 1 - q) * BN;
                T_ c = alpha[q];
                for (int64_t e = 0; e < BN; e++) mt[e] += c * sq[e];
            }
            if (t > 0)  /* rec = m[t] Vᵀ */
                gemm("T", "N", &N, &B, &N, &f1, W, &N, mt, &N, &f0, rec, &N);
            for (int64_t e0 = 0; e0 < BN; e0 += BLK) {
                int64_t m = BN - e0 < BLK ? BN - e0 : BLK;
                if (t > 0) NAME(soft_fwd_block)(1, BN, e0, m, I + t * BN, rec, u, s + t * BN, h + t * BN, decay, v_th, 1);
                else NAME(soft_fwd_block)(1, BN, e0, m, I + t * BN, I + t * BN, u, s + t * BN, h + t * BN, decay, v_th, 0);
            }
        }
    }
}

/* gm[t] = ∂L/∂m[t] = gi[t] V (gm[0] is set to 0); gu: ∂L/∂U carried, zero on entry */
EXPORT void NAME(mixed_bwd)(int64_t T, int64_t B, int64_t N, int64_t K, int64_t L, const T_ *gs, const T_ *h,
                            const T_ *W, const T_ *alpha, T_ *A, T_ *G, T_ *gi, T_ *gm, T_ *gu, T_ decay, T_ v_th,
                            T_ width, int kind, int detach, void *gemm_) {
    NAME(gemm_fn) gemm = (NAME(gemm_fn))gemm_;
    const int64_t BN = B * N;
    const T_ f1 = 1, f0 = 0;
    int64_t nchunks = (T + L - 1) / L;
    for (int64_t e = 0; e < BN; e++) { gu[e] = 0; gm[e] = 0; }
    for (int64_t c = nchunks - 1; c >= 0; c--) {
        int64_t t0 = c * L, t1 = t0 + L < T ? t0 + L : T, n = t1 - t0, Mp = K < T - t1 ? K : T - t1;
        if (Mp > 0) {  /* G[i] = Σ_r A[i, r] gm[t1+r], A[i, r] = α[n-1+r-i] (zero at index >= K) */
            for (int64_t i = 0; i < n; i++)
                for (int64_t r = 0; r < Mp; r++) { int64_t q = n - 1 + r - i; A[i * Mp + r] = q < K ? alpha[q] : (T_)0; }
            gemm("N", "N", &BN, &n, &Mp, &f1, gm + t1 * BN, &BN, A, &Mp, &f0, G, &BN);
        } else {
            for (int64_t e = 0; e < n * BN; e++) G[e] = 0;
        }
        for (int64_t t = t1 - 1; t >= t0; t--) {
            int64_t i = t - t0, nin = t1 - 1 - t < K ? t1 - 1 - t : K;
            T_ *R_ Gi = G + i * BN;
            for (int64_t q = 0; q < nin; q++) {  /* the later in-chunk steps t+q+1 */
                const T_ *R_ gq = gm + (t + 1 + q) * BN;
                T_ cq = alpha[q];
                for (int64_t e = 0; e < BN; e++) Gi[e] += cq * gq[e];
            }
            FTZ_BEGIN  /* around the neuron's step only, as in soft_bwd (the products run as torch's would) */
            for (int64_t e0 = 0; e0 < BN; e0 += BLK) {
                int64_t m = BN - e0 < BLK ? BN - e0 : BLK;
                const T_ *gs_ = gs ? gs + t * BN : h;  /* dummy, never read without gs */
#define MIXED_BWD(KD, D) NAME(soft_bwd_block)(1, BN, e0, m, gs_, Gi, h + t * BN, gu, gi + t * BN, decay, v_th, width, KD, D, gs != 0, 1)
#define MIXED_BWD_K(KD) if (detach) MIXED_BWD(KD, 1); else MIXED_BWD(KD, 0); break
                switch (kind) {
                case SIGMOID: MIXED_BWD_K(SIGMOID);
                case TRIANGLE: MIXED_BWD_K(TRIANGLE);
                case FAST_SIGMOID: MIXED_BWD_K(FAST_SIGMOID);
                case ATAN: MIXED_BWD_K(ATAN);
                default: MIXED_BWD_K(RECTANGLE);
                }
#undef MIXED_BWD
#undef MIXED_BWD_K
            }
            FTZ_END
            if (t > 0)  /* gm[t] = gi[t] V */
                gemm("N", "N", &N, &B, &N, &f1, W, &N, gi + t * BN, &N, &f0, gm + t * BN, &N);
        }
    }
}

#undef NAME
#undef CAT
#undef CAT_
