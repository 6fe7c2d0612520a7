/*
 * cpu_conv_masked.c - stride-1 "same" Conv2d straight on NCHW tensors,
 * with AVX-512 masked loads.
 *
 * When the output plane has the input's size (every stride-1
 * convolution of the format's "same" rule), tap (kh, kw) of output
 * position q reads input position q + (kh*d - p)*W + (kw*d - p) of the
 * same plane: a constant shift.  Vectors of 16 output positions then
 * need 16 consecutive inputs, except where the tap falls off the image
 * (a row's ends, the first and last rows): those lanes are masked off
 * by the load itself, which AVX-512 does at no cost and without
 * touching the masked addresses.  So the kernels read x and dy where
 * they lie and write y and dx in place: no padded copy, no padding
 * computed, no copy back (cpu_conv_direct.c, the fallback for other
 * CPUs and shapes, pays for all three, which costs 30% on 8x8 planes).
 *
 *   forward  y[o] = bias + sum over c, taps of w * x[c] shifted, masked
 *   dx       the same on dy with the flipped, transposed weights and
 *            padding e-1-p; accumulating into dx costs nothing (the
 *            tile starts from dx instead of zero)
 *   dW       dot products of dy with x shifted and masked, summed over
 *            a thread's images before one horizontal sum per weight
 *
 * The masks of every (tap, vector of the plane) are tabulated once per
 * call in the workspace, with the packed weights and a private dW per
 * thread.
 */
#include "cpu_conv.h"

#include <omp.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define MASKED_ROC 4  /* output channels per tile (corr) */
#define MASKED_RW 6   /* vectors per tile (corr) */
#define MASKED_WROC 8 /* output channels per tile (wgrad) */
#define MASKED_WGRAD_VECS 128

/* Shifts and masks of one pass: for tap t, the flat shift offs[t] and
 * for vector v of the plane the lanes masks[t * nvec + v] whose tap
 * falls inside the image (and inside the plane, for the last vector). */
typedef struct masked_taps {
    int taps, nvec;
    int64_t hw;
    int64_t offs[64];
    __mmask16 *masks;
    __mmask16 tail; /* lanes of the last vector in the plane */
} masked_taps_t;

static int64_t s_round(int64_t v, int64_t to)
{
    return (v + to - 1) / to * to;
}

static int s_nvec(const conv_geom_t *g)
{
    return (int)((g->ihw + 15) / 16);
}

bool cpu_conv_masked_ok(const conv_geom_t *g)
{
    return g->s == 1 && g->oh == g->h && g->ow == g->w &&
           (int64_t)g->k * g->k <= 64 && g->p <= g->e - 1 &&
           strcmp(cpu_conv_isa(), "avx512") == 0;
}

/* Workspace floats: packed weights, a dW per thread, two mask tables. */
size_t cpu_conv_masked_workspace(const conv_geom_t *g)
{
    int64_t wszr = s_round(g->wsz, 16);
    int64_t masks = s_round((int64_t)g->k * g->k * s_nvec(g), 32) / 2;

    return (size_t)(wszr * (1 + g->threads) + 2 * masks) * sizeof(float);
}

/* Fill t for a pass whose input is padded by pad. */
static void s_taps(const conv_geom_t *g, int pad, __mmask16 *store,
                   masked_taps_t *t)
{
    const int h = g->h, w = g->w;

    t->taps = g->k * g->k;
    t->nvec = s_nvec(g);
    t->hw = g->ihw;
    t->masks = store;
    t->tail = (__mmask16)(g->ihw % 16 ? (1u << (g->ihw % 16)) - 1 : 0xffff);
    for (int kh = 0; kh < g->k; kh++)
        for (int kw = 0; kw < g->k; kw++) {
            int tap = kh * g->k + kw, dh = kh * g->d - pad;
            int dw = kw * g->d - pad;
            t->offs[tap] = (int64_t)dh * w + dw;
            for (int v = 0; v < t->nvec; v++) {
                unsigned m = 0;
                for (int l = 0; l < 16; l++) {
                    int64_t q = (int64_t)v * 16 + l;
                    int oh = (int)(q / w), ow = (int)(q % w);
                    if (q < g->ihw && oh + dh >= 0 && oh + dh < h &&
                        ow + dw >= 0 && ow + dw < w)
                        m |= 1u << l;
                }
                store[tap * t->nvec + v] = (__mmask16)m;
            }
        }
}

/* Pack as cpu_conv_direct.c does: [block][c][tap][roc], then the
 * remaining outputs one by one; transpose gives the weights of dx. */
static void s_pack(const conv_geom_t *g, const float *w, float *dst,
                   bool transpose)
{
    const int kk = g->k * g->k;
    const int nout = transpose ? g->cig : g->cog;
    const int nin = transpose ? g->cog : g->cig;

    for (int grp = 0; grp < g->g; grp++) {
        const float *wg = w + (int64_t)grp * g->cog * g->cig * kk;
        float *d = dst + (int64_t)grp * g->cog * g->cig * kk;
        for (int o0 = 0, ro; o0 < nout; o0 += ro) {
            ro = nout - o0 >= MASKED_ROC ? MASKED_ROC : 1;
            for (int c = 0; c < nin; c++)
                for (int t = 0; t < kk; t++)
                    for (int r = 0; r < ro; r++) {
                        int o = o0 + r;
                        *d++ = transpose
                                   ? wg[((int64_t)c * g->cig + o) * kk +
                                        (kk - 1 - t)]
                                   : wg[((int64_t)o * g->cig + c) * kk + t];
                    }
        }
    }
}

/* ---------------------------------------------------------------- corr */

/*
 * One tile: RO output channels at o, RW vectors from vector v0 of the
 * plane.  The tile starts from the bias, from out itself (acc), or 0.
 */
#define MASKED_TILE(RO, RW)                                                    \
    do {                                                                       \
        __m512 a[RO][RW];                                                      \
        const float *wp = wb;                                                  \
        _Pragma("GCC unroll 8") for (int r = 0; r < RO; r++)                   \
            _Pragma("GCC unroll 8") for (int v = 0; v < RW; v++)               \
        {                                                                      \
            float *op = out + (int64_t)(o + r) * t->hw + (v0 + v) * 16;        \
            __mmask16 sm = v0 + v == t->nvec - 1 ? t->tail : 0xffff;           \
            a[r][v] = acc ? _mm512_maskz_loadu_ps(sm, op)                      \
                          : _mm512_set1_ps(bias ? bias[o + r] : 0.0f);         \
        }                                                                      \
        for (int c = 0; c < cin; c++) {                                        \
            const float *ip = in + (int64_t)c * t->hw + v0 * 16;               \
            for (int tap = 0; tap < t->taps; tap++) {                          \
                const float *p = ip + t->offs[tap];                            \
                const __mmask16 *mk = t->masks + tap * t->nvec + v0;           \
                __m512 xv[RW];                                                 \
                _Pragma("GCC unroll 8") for (int v = 0; v < RW; v++) xv[v] =   \
                    _mm512_maskz_loadu_ps(mk[v], p + 16 * v);                  \
                _Pragma("GCC unroll 8") for (int r = 0; r < RO; r++)           \
                {                                                              \
                    __m512 wv = _mm512_set1_ps(wp[r]);                         \
                    _Pragma("GCC unroll 8") for (int v = 0; v < RW; v++)       \
                        a[r][v] = _mm512_fmadd_ps(wv, xv[v], a[r][v]);         \
                }                                                              \
                wp += RO;                                                      \
            }                                                                  \
        }                                                                      \
        _Pragma("GCC unroll 8") for (int r = 0; r < RO; r++)                   \
            _Pragma("GCC unroll 8") for (int v = 0; v < RW; v++)               \
        {                                                                      \
            float *op = out + (int64_t)(o + r) * t->hw + (v0 + v) * 16;        \
            __mmask16 sm = v0 + v == t->nvec - 1 ? t->tail : 0xffff;           \
            _mm512_mask_storeu_ps(op, sm, a[r][v]);                            \
        }                                                                      \
    } while (0)

#define MASKED_ROW(RO)                                                         \
    do {                                                                       \
        const float *wb = wpk + (int64_t)o * per;                              \
        int v0 = 0;                                                            \
        for (; v0 + MASKED_RW <= t->nvec; v0 += MASKED_RW)                     \
            MASKED_TILE(RO, MASKED_RW);                                        \
        for (; v0 + 4 <= t->nvec; v0 += 4)                                     \
            MASKED_TILE(RO, 4);                                                \
        for (; v0 < t->nvec; v0++)                                             \
            MASKED_TILE(RO, 1);                                                \
    } while (0)

/* out[o] (= or +=) bias[o] + sum over c, taps of in[c] shifted, masked,
 * times the packed weights; one image, planes hw floats apart. */
__attribute__((target("avx512f"))) static void
s_corr(const masked_taps_t *t, const float *in, int cin, const float *wpk,
       int cout, float *out, const float *bias, bool acc)
{
    const int64_t per = (int64_t)cin * t->taps;
    int o = 0;

    for (; o + MASKED_ROC <= cout; o += MASKED_ROC)
        MASKED_ROW(MASKED_ROC);
    for (; o < cout; o++)
        MASKED_ROW(1);
}

/* --------------------------------------------------------------- wgrad */

/* One vector v of the plane: x at three taps, RO rows of g (loaded with
 * mask GM), into a[RO][3]. */
#define MASKED_WGRAD_STEP(RO, GM)                                              \
    do {                                                                       \
        __m512 xv[3];                                                          \
        xv[0] = _mm512_maskz_loadu_ps(m0[v], p0 + v * 16);                     \
        xv[1] = nk > 1 ? _mm512_maskz_loadu_ps(m1[v], p1 + v * 16)             \
                       : _mm512_setzero_ps();                                  \
        xv[2] = nk > 2 ? _mm512_maskz_loadu_ps(m2[v], p2 + v * 16)             \
                       : _mm512_setzero_ps();                                  \
        _Pragma("GCC unroll 8") for (int r = 0; r < RO; r++)                   \
        {                                                                      \
            __m512 gv = _mm512_maskz_loadu_ps(GM, gb + r * hw + v * 16);       \
            __asm__("" : "+v"(gv));                                            \
            a[r][0] = _mm512_fmadd_ps(gv, xv[0], a[r][0]);                     \
            a[r][1] = _mm512_fmadd_ps(gv, xv[1], a[r][1]);                     \
            a[r][2] = _mm512_fmadd_ps(gv, xv[2], a[r][2]);                     \
        }                                                                      \
    } while (0)

#define MASKED_WGRAD(RO)                                                       \
    do {                                                                       \
        for (int c = 0; c < cin; c++) {                                        \
            for (int kh = 0; kh < k; kh++) {                                   \
                for (int kw0 = 0; kw0 < k; kw0 += 3) {                         \
                    const int nk = k - kw0 < 3 ? k - kw0 : 3;                  \
                    const int t0 = kh * k + kw0;                               \
                    const int t1 = nk > 1 ? t0 + 1 : t0;                       \
                    const int t2 = nk > 2 ? t0 + 2 : t0;                       \
                    const __mmask16 *m0 = t->masks + t0 * t->nvec;             \
                    const __mmask16 *m1 = t->masks + t1 * t->nvec;             \
                    const __mmask16 *m2 = t->masks + t2 * t->nvec;             \
                    __m512 a[RO][3];                                           \
                    _Pragma("GCC unroll 8") for (int r = 0; r < RO; r++)       \
                        _Pragma("GCC unroll 3") for (int j = 0; j < 3; j++)    \
                            a[r][j] = _mm512_setzero_ps();                     \
                    for (int n = 0; n < nimg; n++) {                           \
                        const float *xc = x + n * xstride + c * hw;            \
                        const float *gb = g + n * gstride + o * hw;            \
                        const float *p0 = xc + t->offs[t0];                    \
                        const float *p1 = xc + t->offs[t1];                    \
                        const float *p2 = xc + t->offs[t2];                    \
                        int v = 0;                                             \
                        for (; v < nfull; v++)                                 \
                            MASKED_WGRAD_STEP(RO, 0xffff);                     \
                        for (; v < t->nvec; v++)                               \
                            MASKED_WGRAD_STEP(RO, t->tail);                    \
                    }                                                          \
                    _Pragma("GCC unroll 8") for (int r = 0; r < RO; r++)       \
                        _Pragma("GCC unroll 3") for (int j = 0; j < 3;         \
                                                     j++) if (j < nk)          \
                            dwt[(((int64_t)(o + r) * cin + c) * k + kh) * k +  \
                                kw0 + j] += _mm512_reduce_add_ps(a[r][j]);     \
                }                                                              \
            }                                                                  \
        }                                                                      \
    } while (0)

/* dwt[o][c][tap] += sum over nimg images and positions of g[o] * x[c]
 * shifted by the tap, masked; images xstride and gstride floats apart. */
__attribute__((target("avx512f"))) static void
s_wgrad(const masked_taps_t *t, int k, const float *g, int cout,
        int64_t gstride, const float *x, int cin, int64_t xstride, int nimg,
        float *dwt)
{
    const int64_t hw = t->hw;
    const int nfull = t->tail == 0xffff ? t->nvec : t->nvec - 1;
    int o = 0;

    for (; o + MASKED_WROC <= cout; o += MASKED_WROC)
        MASKED_WGRAD(MASKED_WROC);
    for (; o < cout; o++)
        MASKED_WGRAD(1);
}

/* -------------------------------------------------------------- passes */

void cpu_conv_masked_forward(const conv_geom_t *g, const float *x,
                             const float *w, const float *bias, float *y,
                             float *ws)
{
    int64_t wszr = s_round(g->wsz, 16);
    __mmask16 *store = (__mmask16 *)(ws + wszr * (1 + g->threads));
    masked_taps_t t;

    s_pack(g, w, ws, false);
    s_taps(g, g->p, store, &t);

#pragma omp parallel for num_threads(g->threads) schedule(static)
    for (int n = 0; n < g->n; n++)
        for (int grp = 0; grp < g->g; grp++)
            s_corr(&t,
                   x + ((int64_t)n * g->ci + (int64_t)grp * g->cig) * g->ihw,
                   g->cig, ws + (int64_t)grp * g->cog * g->kk, g->cog,
                   y + ((int64_t)n * g->co + (int64_t)grp * g->cog) * g->ohw,
                   bias ? bias + grp * g->cog : NULL, false);
}

void cpu_conv_masked_backward(const conv_geom_t *g, const float *x,
                              const float *w, const float *dy, float *dx,
                              bool acc, float *dw, float *ws)
{
    int64_t wszr = s_round(g->wsz, 16);
    int64_t mfl = s_round((int64_t)g->k * g->k * s_nvec(g), 32) / 2;
    float *parts = ws + wszr;
    __mmask16 *fwd = (__mmask16 *)(ws + wszr * (1 + g->threads));
    __mmask16 *bwd = (__mmask16 *)(ws + wszr * (1 + g->threads) + mfl);
    masked_taps_t tf, tb;
    const int group = (MASKED_WGRAD_VECS + s_nvec(g) - 1) / s_nvec(g);

    s_taps(g, g->p, fwd, &tf);
    s_taps(g, g->e - 1 - g->p, bwd, &tb);
    if (dx)
        s_pack(g, w, ws, true);
    if (dw)
        memset(parts, 0, (size_t)(wszr * g->threads) * sizeof(float));

#pragma omp parallel num_threads(g->threads)
    {
        int nt = omp_get_num_threads(), th = omp_get_thread_num();
        int n0 = g->n * th / nt, n1 = g->n * (th + 1) / nt;

        /* Images in groups of about MASKED_WGRAD_VECS vectors: enough
         * work per horizontal sum, little enough data to stay cached. */
        for (int a = n0; dw && a < n1; a += group) {
            int b = a + group < n1 ? a + group : n1;
            for (int grp = 0; grp < g->g; grp++)
                s_wgrad(
                    &tf, g->k,
                    dy + ((int64_t)a * g->co + (int64_t)grp * g->cog) * g->ohw,
                    g->cog, (int64_t)g->co * g->ohw,
                    x + ((int64_t)a * g->ci + (int64_t)grp * g->cig) * g->ihw,
                    g->cig, (int64_t)g->ci * g->ihw, b - a,
                    parts + wszr * th + (int64_t)grp * g->cog * g->kk);
        }
        for (int n = n0; dx && n < n1; n++)
            for (int grp = 0; grp < g->g; grp++)
                s_corr(
                    &tb,
                    dy + ((int64_t)n * g->co + (int64_t)grp * g->cog) * g->ohw,
                    g->cog, ws + (int64_t)grp * g->cog * g->kk, g->cig,
                    dx + ((int64_t)n * g->ci + (int64_t)grp * g->cig) * g->ihw,
                    NULL, acc);
    }
    if (!dw)
        return;
#pragma omp parallel for simd num_threads(g->threads)
    for (int64_t i = 0; i < g->wsz; i++) {
        float s = 0.0f;
        for (int th = 0; th < g->threads; th++)
            s += parts[wszr * th + i];
        dw[i] = s;
    }
}

#else /* not x86-64: the direct path serves every stride-1 convolution */

bool cpu_conv_masked_ok(const conv_geom_t *g)
{
    (void)g;
    return false;
}

size_t cpu_conv_masked_workspace(const conv_geom_t *g)
{
    (void)g;
    return 0;
}

void cpu_conv_masked_forward(const conv_geom_t *g, const float *x,
                             const float *w, const float *bias, float *y,
                             float *ws)
{
    (void)g, (void)x, (void)w, (void)bias, (void)y, (void)ws;
}

void cpu_conv_masked_backward(const conv_geom_t *g, const float *x,
                              const float *w, const float *dy, float *dx,
                              bool acc, float *dw, float *ws)
{
    (void)g, (void)x, (void)w, (void)dy, (void)dx, (void)acc, (void)dw;
    (void)ws;
}
#endif
