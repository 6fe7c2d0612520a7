/*
 * cpu_conv_direct.c - stride-1 Conv2d on zero-padded planes.
 *
 * The convolutions of a network are nearly all stride 1 with few
 * channels (16 to 64), where im2col spends as long copying as the GEMM
 * spends computing.  Here each image of a batch of nb is copied once
 * into a zero-padded hb x wb plane per channel, and a tap (kh, kw) of
 * the kernel becomes a constant shift of the flat position in the
 * plane, so:
 *
 *   forward   y  = corr(x padded by p, W)
 *   dx        dx = corr(dy padded by e-1-p, W flipped and transposed)
 *   dW        dW = sum over positions of dy * x shifted (wgrad)
 *
 * with the two kernels of cpu_conv_kern.h, vectorised along the flat
 * position and compiled for AVX-512, AVX2+FMA and plain SSE2, chosen at
 * run time.  A plane has e-1 columns more than the widest row, so the
 * positions past a row's end compute values nobody reads instead of
 * testing boundaries; the channels of a batch are laid out as
 * [channel][image][plane] so one kernel call covers the whole batch.
 *
 * Workspace: the packed weights, one private dW per thread, and per
 * thread the padded input and output of one batch, sized to stay within
 * about 1 MiB so a batch lives in the core's L2.
 */
#include "cpu_conv.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Flat positions are rounded up to this: a multiple of every kernel's
 * vector (16, 8, 4 floats). */
#define DIRECT_BLOCK 16
#define DIRECT_BATCH_BYTES (1 << 20)

typedef void (*corr_fn)(const float *in, int cin, int64_t ldi, int k,
                        int64_t dh, int64_t dw, const float *wpk, int cout,
                        float *out, int64_t ldo, int64_t nq);
typedef void (*wgrad_fn)(const float *g, int cout, int64_t ldg, const float *in,
                         int cin, int64_t ldi, int64_t shift0, int k,
                         int64_t dh, int64_t dw, float *dwt, int64_t nq);

typedef struct direct_kernels {
    const char *isa;
    int roc; /* output channels per packed weight block */
    corr_fn corr;
    wgrad_fn wgrad;
} direct_kernels_t;

#define KERN_SUFFIX generic
#define KERN_ATTR
#define KERN_VL 4
#define KERN_ROC 4
#define KERN_RW 3
#define KERN_WROC 4
#include "cpu_conv_kern.h"
#undef KERN_SUFFIX
#undef KERN_ATTR
#undef KERN_VL
#undef KERN_ROC
#undef KERN_RW
#undef KERN_WROC

#if defined(__x86_64__)
#define KERN_SUFFIX avx2
#define KERN_ATTR __attribute__((target("avx2,fma")))
#define KERN_VL 8
#define KERN_ROC 4
#define KERN_RW 3
#define KERN_WROC 4
#include "cpu_conv_kern.h"
#undef KERN_SUFFIX
#undef KERN_ATTR
#undef KERN_VL
#undef KERN_ROC
#undef KERN_RW
#undef KERN_WROC

#define KERN_SUFFIX avx512
#define KERN_ATTR __attribute__((target("avx512f")))
#define KERN_VL 16
#define KERN_ROC 4
#define KERN_RW 6
#define KERN_WROC 8
#include "cpu_conv_kern.h"
#undef KERN_SUFFIX
#undef KERN_ATTR
#undef KERN_VL
#undef KERN_ROC
#undef KERN_RW
#undef KERN_WROC
#endif

static const direct_kernels_t s_kernels[] = {
#if defined(__x86_64__)
    {"avx512", 4, s_corr_avx512, s_wgrad_avx512},
    {"avx2", 4, s_corr_avx2, s_wgrad_avx2},
#endif
    {"generic", 4, s_corr_generic, s_wgrad_generic},
};

static const direct_kernels_t *s_kern;

static bool s_isa_usable(const char *isa)
{
#if defined(__x86_64__)
    if (strcmp(isa, "avx512") == 0)
        return __builtin_cpu_supports("avx512f");
    if (strcmp(isa, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return strcmp(isa, "generic") == 0;
}

const char *cpu_conv_isa_init(void)
{
    const char *want = getenv("NADER_CPU_ISA");
    const direct_kernels_t *k = NULL;
    const size_t n = sizeof(s_kernels) / sizeof(s_kernels[0]);

    for (size_t i = 0; i < n && !k; i++)
        if (s_isa_usable(s_kernels[i].isa) &&
            (!want || !*want || strcmp(want, s_kernels[i].isa) == 0))
            k = &s_kernels[i];
    if (!k)
        k = &s_kernels[n - 1];
    __atomic_store_n(&s_kern, k, __ATOMIC_RELEASE);
    return k->isa;
}

static const direct_kernels_t *s_kernels_get(void)
{
    const direct_kernels_t *k = __atomic_load_n(&s_kern, __ATOMIC_ACQUIRE);

    if (!k) {
        cpu_conv_isa_init();
        k = __atomic_load_n(&s_kern, __ATOMIC_ACQUIRE);
    }
    return k;
}

const char *cpu_conv_isa(void)
{
    return s_kernels_get()->isa;
}

/* ------------------------------------------------------------- planning */

static int64_t s_round(int64_t v, int64_t to)
{
    return (v + to - 1) / to * to;
}

/*
 * The padded grid and the batch size; idempotent.  Images are stacked
 * vertically, image j's padded origin at row j * sr: the zero rows
 * between two images serve as the bottom padding of one and the top
 * padding of the next (max(p, e-1-p) of them keep every tap of every
 * pass inside its own image), which for 8x8 images saves a tenth of
 * the work.
 */
static void s_plan(conv_geom_t *g)
{
    int hm = g->h > g->oh ? g->h : g->oh, wm = g->w > g->ow ? g->w : g->ow;
    int gap = g->p > g->e - 1 - g->p ? g->p : g->e - 1 - g->p;
    int sr = hm + gap;
    int64_t per_image;

    g->hb = hm + g->e - 1;
    g->wb = wm + g->e - 1;
    g->plane = (int64_t)sr * g->wb;
    g->margin = s_round((int64_t)(g->e - 1) * (g->wb + 1), 16);
    per_image =
        (int64_t)(2 * g->ci + g->co) * g->plane * (int64_t)sizeof(float);
    g->nb =
        cpu_conv_batch(g->n, g->threads, (int)(DIRECT_BATCH_BYTES / per_image));
    g->nq = s_round((int64_t)(g->nb - 1) * g->plane + (int64_t)g->hb * g->wb,
                    DIRECT_BLOCK);
}

/* Floats of a padded buffer of c channels. */
static int64_t s_padded(const conv_geom_t *g, int c)
{
    return 2 * g->margin + c * g->nq;
}

/* Floats of one thread's area: forward needs x padded and y's grid,
 * backward x and dy padded and dx's grid. */
static int64_t s_thread_floats(const conv_geom_t *g)
{
    int64_t fwd = s_padded(g, g->ci) + g->co * g->nq;
    int64_t bwd = s_padded(g, g->ci) + s_padded(g, g->co) + g->ci * g->nq;

    return s_round(fwd > bwd ? fwd : bwd, 16);
}

size_t cpu_conv_direct_workspace(const conv_geom_t *g0)
{
    conv_geom_t g = *g0;
    int64_t wszr;

    s_plan(&g);
    wszr = s_round(g.wsz, 16);
    return (size_t)(wszr * (1 + g.threads) + s_thread_floats(&g) * g.threads) *
           sizeof(float);
}

/* ----------------------------------------------------------- data moves */

/*
 * Pack the weights of each group for corr(): blocks of roc outputs as
 * [block][c][kh][kw][roc], then the remaining outputs one by one.  With
 * transpose, the outputs are the input channels and the taps flipped:
 * the weights of the gradient with respect to the input.
 */
static void s_pack(const conv_geom_t *g, const float *w, float *dst,
                   bool transpose, int roc)
{
    const int k = g->k, kk = k * k;
    const int nout = transpose ? g->cig : g->cog;
    const int nin = transpose ? g->cog : g->cig;

    for (int grp = 0; grp < g->g; grp++) {
        const float *wg = w + (int64_t)grp * g->cog * g->cig * kk;
        float *d = dst + (int64_t)grp * g->cog * g->cig * kk;
        for (int o0 = 0, ro; o0 < nout; o0 += ro) {
            ro = nout - o0 >= roc ? roc : 1;
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

/* Copy nbc images of c channels (h x w each) into a padded buffer at
 * row and column offset off.  Positions outside stay as they are (0). */
static void s_pad_in(const conv_geom_t *g, const float *src, int c, int h,
                     int w, int off, int nbc, float *dst)
{
    for (int ch = 0; ch < c; ch++)
        for (int j = 0; j < nbc; j++) {
            const float *s = src + ((int64_t)j * c + ch) * h * w;
            float *d =
                dst + ch * g->nq + j * g->plane + (int64_t)off * g->wb + off;
            for (int r = 0; r < h; r++)
                memcpy(d + (int64_t)r * g->wb, s + (int64_t)r * w,
                       (size_t)w * sizeof(float));
        }
}

/* Write (or add) the h x w corners of the grid's planes to nbc NCHW
 * images of c channels, plus a bias per channel when not NULL. */
static void s_extract(const conv_geom_t *g, const float *grid, int c, int h,
                      int w, int nbc, float *dst, const float *bias, bool acc)
{
    for (int j = 0; j < nbc; j++)
        for (int ch = 0; ch < c; ch++) {
            const float *s = grid + ch * g->nq + j * g->plane;
            float *d = dst + ((int64_t)j * c + ch) * h * w;
            float b = bias ? bias[ch] : 0.0f;
            for (int r = 0; r < h; r++) {
                const float *sr = s + (int64_t)r * g->wb;
                float *dr = d + (int64_t)r * w;
                if (acc) {
#pragma omp simd
                    for (int i = 0; i < w; i++)
                        dr[i] += sr[i];
                } else {
#pragma omp simd
                    for (int i = 0; i < w; i++)
                        dr[i] = sr[i] + b;
                }
            }
        }
}

/* ---------------------------------------------------------------- passes */

void cpu_conv_direct_forward(const conv_geom_t *g0, const float *x,
                             const float *w, const float *bias, float *y,
                             float *ws)
{
    conv_geom_t g = *g0;
    const direct_kernels_t *kern = s_kernels_get();
    int64_t wszr, tf;
    int chunks;
    float *base;

    s_plan(&g);
    wszr = s_round(g.wsz, 16);
    tf = s_thread_floats(&g);
    base = ws + wszr * (1 + g.threads);
    chunks = (g.n + g.nb - 1) / g.nb;
    s_pack(&g, w, ws, false, kern->roc);

#pragma omp parallel num_threads(g.threads)
    {
        float *xb = base + tf * omp_get_thread_num();
        float *yg = xb + s_padded(&g, g.ci);
        const float *wpk = ws;

        memset(xb, 0, (size_t)s_padded(&g, g.ci) * sizeof(float));
#pragma omp for schedule(static)
        for (int ch = 0; ch < chunks; ch++) {
            int n0 = ch * g.nb, nbc = g.n - n0 < g.nb ? g.n - n0 : g.nb;
            s_pad_in(&g, x + (int64_t)n0 * g.ci * g.ihw, g.ci, g.h, g.w, g.p,
                     nbc, xb + g.margin);
            for (int grp = 0; grp < g.g; grp++)
                kern->corr(xb + g.margin + (int64_t)grp * g.cig * g.nq, g.cig,
                           g.nq, g.k, (int64_t)g.d * g.wb, g.d,
                           wpk + (int64_t)grp * g.cog * g.kk, g.cog,
                           yg + (int64_t)grp * g.cog * g.nq, g.nq, g.nq);
            s_extract(&g, yg, g.co, g.oh, g.ow, nbc,
                      y + (int64_t)n0 * g.co * g.ohw, bias, false);
        }
    }
}

void cpu_conv_direct_backward(const conv_geom_t *g0, const float *x,
                              const float *w, const float *dy, float *dx,
                              bool acc, float *dw, float *ws)
{
    conv_geom_t g = *g0;
    const direct_kernels_t *kern = s_kernels_get();
    int64_t wszr, tf;
    int chunks, pb;
    float *base, *parts;

    s_plan(&g);
    wszr = s_round(g.wsz, 16);
    tf = s_thread_floats(&g);
    parts = ws + wszr;
    base = ws + wszr * (1 + g.threads);
    chunks = (g.n + g.nb - 1) / g.nb;
    pb = g.e - 1 - g.p;
    if (dx)
        s_pack(&g, w, ws, true, kern->roc);
    if (dw)
        memset(parts, 0, (size_t)(wszr * g.threads) * sizeof(float));

#pragma omp parallel num_threads(g.threads)
    {
        int t = omp_get_thread_num();
        float *xb = base + tf * t;
        float *dyb = xb + s_padded(&g, g.ci);
        float *dxg = dyb + s_padded(&g, g.co);
        float *dwt = parts + wszr * t;
        const float *wpk = ws;

        memset(xb, 0,
               (size_t)(s_padded(&g, g.ci) + s_padded(&g, g.co)) *
                   sizeof(float));
#pragma omp for schedule(static)
        for (int ch = 0; ch < chunks; ch++) {
            int n0 = ch * g.nb, nbc = g.n - n0 < g.nb ? g.n - n0 : g.nb;
            s_pad_in(&g, dy + (int64_t)n0 * g.co * g.ohw, g.co, g.oh, g.ow, pb,
                     nbc, dyb + g.margin);
            if (nbc < g.nb)
                for (int c = 0; c < g.co; c++)
                    memset(dyb + g.margin + c * g.nq + nbc * g.plane, 0,
                           (size_t)(g.nq - nbc * g.plane) * sizeof(float));
            if (dw) {
                s_pad_in(&g, x + (int64_t)n0 * g.ci * g.ihw, g.ci, g.h, g.w,
                         g.p, nbc, xb + g.margin);
                for (int grp = 0; grp < g.g; grp++)
                    kern->wgrad(dyb + g.margin + (int64_t)grp * g.cog * g.nq,
                                g.cog, g.nq,
                                xb + g.margin + (int64_t)grp * g.cig * g.nq,
                                g.cig, g.nq, -(int64_t)pb * (g.wb + 1), g.k,
                                (int64_t)g.d * g.wb, g.d,
                                dwt + (int64_t)grp * g.cog * g.kk, g.nq);
            }
            if (!dx)
                continue;
            for (int grp = 0; grp < g.g; grp++)
                kern->corr(dyb + g.margin + (int64_t)grp * g.cog * g.nq, g.cog,
                           g.nq, g.k, (int64_t)g.d * g.wb, g.d,
                           wpk + (int64_t)grp * g.cog * g.kk, g.cig,
                           dxg + (int64_t)grp * g.cig * g.nq, g.nq, g.nq);
            s_extract(&g, dxg, g.ci, g.h, g.w, nbc,
                      dx + (int64_t)n0 * g.ci * g.ihw, NULL, acc);
        }
    }
    if (!dw)
        return;
#pragma omp parallel for simd num_threads(g.threads)
    for (int64_t i = 0; i < g.wsz; i++) {
        float s = 0.0f;
        for (int t = 0; t < g.threads; t++)
            s += parts[wszr * t + i];
        dw[i] = s;
    }
}
