/*
 * cpu_conv.c - Conv2d forward and backward on the CPU.
 *
 * Four paths, chosen per node (conv_path_t):
 *  - pointwise (1x1, stride 1, no padding): the image is already the
 *    GEMM operand, y_n = W x_n per group, no copy at all;
 *  - masked (stride 1 with the output the input's size, the bulk of
 *    every network, depthwise ones included, on AVX-512): kernels that
 *    read and write the NCHW tensors in place, cpu_conv_masked.c;
 *  - direct (other stride-1 convolutions, and all of them on CPUs
 *    without AVX-512): the same kernels on zero-padded planes,
 *    cpu_conv_direct.c;
 *  - depthwise with a stride (one input channel per group): direct
 *    loops, which beat a GEMM whose inner dimension would be k*k;
 *  - everything else: im2col of several images side by side, so that
 *    one GEMM covers nb images (small channel counts make per-image
 *    GEMMs short and slow), then a scatter back to NCHW.  Backward
 *    uses the same columns: dW += dy_cols col^T per thread (summed at
 *    the end), and dcol = W^T dy_cols folded back with col2im.
 *
 * Padding is node->pad on both sides; with node->crop the last output
 * row and column are dropped, which needs nothing special because the
 * output size comes from the node's shape.  Images are split over
 * be->threads threads; each thread owns a slice of the workspace.
 */
#include "cpu_conv.h"

#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Aim for this many GEMM columns (nb * OH * OW) per im2col batch. */
#define CONV_TARGET_COLS 512

bool cpu_conv_geom(const net_t *net, const net_node_t *node,
                   const backend_t *be, conv_geom_t *g)
{
    const graph_shape_t *xs = &net->nodes[node->inputs[0]].shape;
    const graph_shape_t *ys = &node->shape;
    int want_oh, want_ow;

    memset(g, 0, sizeof(*g));
    if (xs->ndim != 4 || ys->ndim != 4 || node->groups < 1 ||
        node->kernel < 1 || node->stride < 1 || node->dilation < 1 ||
        node->pad < 0)
        return false;
    g->n = (int)xs->d[0];
    g->ci = (int)xs->d[1];
    g->h = (int)xs->d[2];
    g->w = (int)xs->d[3];
    g->co = (int)ys->d[1];
    g->oh = (int)ys->d[2];
    g->ow = (int)ys->d[3];
    g->k = (int)node->kernel;
    g->s = (int)node->stride;
    g->d = (int)node->dilation;
    g->p = (int)node->pad;
    g->g = (int)node->groups;
    if (ys->d[0] != g->n || g->ci != node->in_ch || g->co != node->out_ch ||
        g->ci % g->g || g->co % g->g)
        return false;
    g->e = g->d * (g->k - 1) + 1;
    want_oh = (g->h + 2 * g->p - g->e) / g->s + 1 - (node->crop ? 1 : 0);
    want_ow = (g->w + 2 * g->p - g->e) / g->s + 1 - (node->crop ? 1 : 0);
    if (g->oh != want_oh || g->ow != want_ow || g->oh < 1 || g->ow < 1)
        return false;

    g->cig = g->ci / g->g;
    g->cog = g->co / g->g;
    g->kk = g->cig * g->k * g->k;
    g->rows = g->ci * g->k * g->k;
    g->ihw = (int64_t)g->h * g->w;
    g->ohw = (int64_t)g->oh * g->ow;
    g->wsz = (int64_t)g->co * g->kk;
    g->threads = be->threads;
    if (g->k == 1 && g->s == 1 && g->p == 0 && g->oh == g->h && g->ow == g->w)
        g->path = CONV_PATH_POINTWISE;
    else if (cpu_conv_masked_ok(g))
        g->path = CONV_PATH_MASKED;
    else if (g->s == 1 && g->p <= g->e - 1)
        g->path = CONV_PATH_DIRECT;
    else if (g->cig == 1)
        g->path = CONV_PATH_DEPTHWISE;
    else
        g->path = CONV_PATH_IM2COL;

    if (g->path == CONV_PATH_DIRECT || g->path == CONV_PATH_MASKED)
        return true; /* their files plan the rest */
    g->nb = cpu_conv_batch(g->n, g->threads,
                           (int)((CONV_TARGET_COLS + g->ohw - 1) / g->ohw));
    return true;
}

int cpu_conv_batch(int n, int threads, int most)
{
    int per_thread = (n + threads - 1) / threads;
    int rounds;

    if (most < 1)
        most = 1;
    if (most > per_thread)
        most = per_thread;
    rounds = (per_thread + most - 1) / most;
    return (n + threads * rounds - 1) / (threads * rounds);
}

static int s_conv_geom(backend_t *be, const backend_op_t *op, conv_geom_t *g)
{
    if (!cpu_conv_geom(op->net, op->node, be, g))
        return cpu_op_fail(be, op, -EINVAL,
                           "input and output shapes do not fit the "
                           "convolution's arguments");
    return 0;
}

/* Floats of workspace per thread: columns and the reordered dy of one
 * batch, then a private dW. */
static int64_t s_conv_ws_cols(const conv_geom_t *g)
{
    return (int64_t)g->nb * g->ohw * (g->rows + g->co);
}

size_t cpu_conv2d_workspace(const backend_t *be, const net_t *net,
                            const net_node_t *node)
{
    conv_geom_t g;

    if (!cpu_conv_geom(net, node, be, &g))
        return 0;
    switch (g.path) {
    case CONV_PATH_POINTWISE:
        return (size_t)(g.wsz * g.threads) * sizeof(float);
    case CONV_PATH_DEPTHWISE:
        return 0;
    case CONV_PATH_MASKED:
        return cpu_conv_masked_workspace(&g);
    case CONV_PATH_DIRECT:
        return cpu_conv_direct_workspace(&g);
    default:
        return (size_t)((g.wsz + s_conv_ws_cols(&g)) * g.threads) *
               sizeof(float);
    }
}

/* ------------------------------------------------------- im2col, col2im */

/* Output columns [lo, hi) whose input column ow*s + off is inside. */
static void s_valid_range(int out, int in, int s, int off, int *lo, int *hi)
{
    int a = off >= 0 ? 0 : (-off + s - 1) / s;
    int b = in - off <= 0 ? 0 : (in - off + s - 1) / s;

    *lo = a < out ? a : out;
    *hi = b < out ? b : out;
    if (*hi < *lo)
        *hi = *lo;
}

/*
 * Stride 2 is the common strided case (every reduction cell), and its
 * gathers and scatters were a third of those convolutions' time as
 * scalar loops.  With AVX-512 a pair of vectors is split into its even
 * elements with one permute, and a vector is spread onto even elements
 * with one permute and a masked add.
 */
#if defined(__x86_64__)
/* dst[i] = src[2i] for i < n; reads nothing past src[2n - 2]. */
__attribute__((target("avx512f"))) static void
s_take_even(float *dst, const float *src, int n)
{
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16,
                                          14, 12, 10, 8, 6, 4, 2, 0);
    int i = 0;

    for (; i + 16 < n; i += 16) {
        __m512 a = _mm512_loadu_ps(src + 2 * i);
        __m512 b = _mm512_loadu_ps(src + 2 * i + 16);
        _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(a, even, b));
    }
    if (i < n) {
        int r = n - i, need = 2 * r - 1;   /* floats to read */
        __mmask16 ma = need >= 16 ? 0xffff : (__mmask16)((1u << need) - 1);
        __mmask16 mb = need > 16 ? (__mmask16)((1u << (need - 16)) - 1) : 0;
        __m512 a = _mm512_maskz_loadu_ps(ma, src + 2 * i);
        __m512 b = _mm512_maskz_loadu_ps(mb, src + 2 * i + 16);
        _mm512_mask_storeu_ps(dst + i, (__mmask16)((1u << r) - 1),
                              _mm512_permutex2var_ps(a, even, b));
    }
}

/* dst[2i] += src[i] for i < n; touches no odd element of dst. */
__attribute__((target("avx512f"))) static void
s_add_even(float *dst, const float *src, int n)
{
    const __m512i lo = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2,
                                        1, 1, 0, 0);
    const __m512i hi = _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11,
                                        11, 10, 10, 9, 9, 8, 8);

    for (int i = 0; i < n; i += 16) {
        int r = n - i < 16 ? n - i : 16;
        __mmask16 ms = (__mmask16)((1u << r) - 1);
        __mmask16 ma = (__mmask16)(0x5555u & ((1u << 2 * (r < 8 ? r : 8)) -
                                              1));
        __mmask16 mb = r > 8 ? (__mmask16)(0x5555u &
                                           ((1u << 2 * (r - 8)) - 1))
                             : 0;
        __m512 v = _mm512_maskz_loadu_ps(ms, src + i);
        float *d = dst + 2 * i;
        __m512 a = _mm512_maskz_loadu_ps(ma, d);
        __m512 b = _mm512_maskz_loadu_ps(mb, d + 16);
        a = _mm512_add_ps(a, _mm512_permutexvar_ps(lo, v));
        b = _mm512_add_ps(b, _mm512_permutexvar_ps(hi, v));
        _mm512_mask_storeu_ps(d, ma, a);
        _mm512_mask_storeu_ps(d + 16, mb, b);
    }
}

static bool s_even_vectors(const conv_geom_t *g)
{
    return g->s == 2 && strcmp(cpu_conv_isa(), "avx512") == 0;
}
#else
static bool s_even_vectors(const conv_geom_t *g)
{
    (void)g;
    return false;
}
static void s_take_even(float *dst, const float *src, int n)
{
    for (int i = 0; i < n; i++)
        dst[i] = src[2 * i];
}
static void s_add_even(float *dst, const float *src, int n)
{
    for (int i = 0; i < n; i++)
        dst[2 * i] += src[i];
}
#endif

/* Columns of one image x (ci, h, w) into col (rows, ld), from column 0. */
static void s_im2col(const conv_geom_t *g, const float *x, float *col,
                     int64_t ld)
{
    const bool even = s_even_vectors(g);

    for (int c = 0; c < g->ci; c++) {
        const float *xc = x + c * g->ihw;
        for (int kh = 0; kh < g->k; kh++) {
            for (int kw = 0; kw < g->k; kw++) {
                float *row = col + ((int64_t)(c * g->k + kh) * g->k + kw) * ld;
                int dh = kh * g->d - g->p, dw = kw * g->d - g->p;
                int lo, hi;
                s_valid_range(g->ow, g->w, g->s, dw, &lo, &hi);
                for (int oh = 0; oh < g->oh; oh++) {
                    int ih = oh * g->s + dh;
                    float *dst = row + (int64_t)oh * g->ow;
                    const float *src = xc + (int64_t)ih * g->w + dw;
                    if (ih < 0 || ih >= g->h) {
                        memset(dst, 0, (size_t)g->ow * sizeof(float));
                        continue;
                    }
                    for (int ow = 0; ow < lo; ow++)
                        dst[ow] = 0.0f;
                    if (g->s == 1)
                        memcpy(dst + lo, src + lo,
                               (size_t)(hi - lo) * sizeof(float));
                    else if (even)
                        s_take_even(dst + lo, src + 2 * lo, hi - lo);
                    else
                        for (int ow = lo; ow < hi; ow++)
                            dst[ow] = src[ow * g->s];
                    for (int ow = hi; ow < g->ow; ow++)
                        dst[ow] = 0.0f;
                }
            }
        }
    }
}

/* Add the columns col (rows, ld) back into one image dx (ci, h, w). */
static void s_col2im(const conv_geom_t *g, const float *col, int64_t ld,
                     float *dx)
{
    const bool even = s_even_vectors(g);

    for (int c = 0; c < g->ci; c++) {
        float *dc = dx + c * g->ihw;
        for (int kh = 0; kh < g->k; kh++) {
            for (int kw = 0; kw < g->k; kw++) {
                const float *row =
                    col + ((int64_t)(c * g->k + kh) * g->k + kw) * ld;
                int dh = kh * g->d - g->p, dw = kw * g->d - g->p;
                int lo, hi;
                s_valid_range(g->ow, g->w, g->s, dw, &lo, &hi);
                for (int oh = 0; oh < g->oh; oh++) {
                    int ih = oh * g->s + dh;
                    const float *src = row + (int64_t)oh * g->ow;
                    float *dst = dc + (int64_t)ih * g->w + dw;
                    if (ih < 0 || ih >= g->h)
                        continue;
                    if (g->s == 1) {
#pragma omp simd
                        for (int ow = lo; ow < hi; ow++)
                            dst[ow] += src[ow];
                    } else if (even) {
                        s_add_even(dst + 2 * lo, src + lo, hi - lo);
                    } else {
                        for (int ow = lo; ow < hi; ow++)
                            dst[ow * g->s] += src[ow];
                    }
                }
            }
        }
    }
}

/* y (co, ohw) of one image += bias per channel. */
static void s_add_bias(const conv_geom_t *g, float *y, const float *bias)
{
    for (int c = 0; c < g->co; c++) {
        float b = bias[c], *yc = y + c * g->ohw;
#pragma omp simd
        for (int64_t i = 0; i < g->ohw; i++)
            yc[i] += b;
    }
}

/* ---------------------------------------------------------------- forward */

static void s_forward_pointwise(const conv_geom_t *g, const float *x,
                                const float *w, const float *bias, float *y)
{
#pragma omp parallel for num_threads(g->threads) schedule(static)
    for (int n = 0; n < g->n; n++) {
        const float *xn = x + (int64_t)n * g->ci * g->ihw;
        float *yn = y + (int64_t)n * g->co * g->ohw;
        for (int gi = 0; gi < g->g; gi++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->cog,
                        (int)g->ohw, g->cig, 1.0f, w + gi * g->cog * g->cig,
                        g->cig, xn + gi * g->cig * g->ihw, (int)g->ohw, 0.0f,
                        yn + gi * g->cog * g->ohw, (int)g->ohw);
        if (bias)
            s_add_bias(g, yn, bias);
    }
}

static void s_forward_depthwise(const conv_geom_t *g, const float *x,
                                const float *w, const float *bias, float *y)
{
#pragma omp parallel for num_threads(g->threads) schedule(static)
    for (int64_t nc = 0; nc < (int64_t)g->n * g->co; nc++) {
        int n = (int)(nc / g->co), c = (int)(nc % g->co);
        const float *xc = x + ((int64_t)n * g->ci + c / g->cog) * g->ihw;
        const float *wc = w + (int64_t)c * g->k * g->k;
        float *yc = y + nc * g->ohw, b = bias ? bias[c] : 0.0f;

        for (int64_t i = 0; i < g->ohw; i++)
            yc[i] = b;
        for (int kh = 0; kh < g->k; kh++) {
            for (int kw = 0; kw < g->k; kw++) {
                float wv = wc[kh * g->k + kw];
                int dh = kh * g->d - g->p, dw = kw * g->d - g->p, lo, hi;
                s_valid_range(g->ow, g->w, g->s, dw, &lo, &hi);
                for (int oh = 0; oh < g->oh; oh++) {
                    int ih = oh * g->s + dh;
                    const float *src;
                    float *dst = yc + (int64_t)oh * g->ow;
                    if (ih < 0 || ih >= g->h)
                        continue;
                    src = xc + (int64_t)ih * g->w + dw;
                    if (g->s == 1) {
#pragma omp simd
                        for (int ow = lo; ow < hi; ow++)
                            dst[ow] += wv * src[ow];
                    } else {
                        for (int ow = lo; ow < hi; ow++)
                            dst[ow] += wv * src[ow * g->s];
                    }
                }
            }
        }
    }
}

static void s_forward_im2col(const conv_geom_t *g, const float *x,
                             const float *w, const float *bias, float *y,
                             float *ws)
{
    const int chunks = (g->n + g->nb - 1) / g->nb;
    const int64_t per = g->wsz + s_conv_ws_cols(g);

#pragma omp parallel num_threads(g->threads)
    {
        float *col = ws + per * omp_get_thread_num();
        float *tmp = col + (int64_t)g->nb * g->ohw * g->rows;

#pragma omp for schedule(static)
        for (int ch = 0; ch < chunks; ch++) {
            int n0 = ch * g->nb;
            int nbc = g->n - n0 < g->nb ? g->n - n0 : g->nb;
            int64_t ld = nbc * g->ohw;

            for (int j = 0; j < nbc; j++)
                s_im2col(g, x + (int64_t)(n0 + j) * g->ci * g->ihw,
                         col + j * g->ohw, ld);
            if (nbc == 1) {
                float *yn = y + (int64_t)n0 * g->co * g->ohw;
                for (int gi = 0; gi < g->g; gi++)
                    cblas_sgemm(
                        CblasRowMajor, CblasNoTrans, CblasNoTrans, g->cog,
                        (int)ld, g->kk, 1.0f, w + (int64_t)gi * g->cog * g->kk,
                        g->kk, col + (int64_t)gi * g->kk * ld, (int)ld, 0.0f,
                        yn + (int64_t)gi * g->cog * g->ohw, (int)g->ohw);
                if (bias)
                    s_add_bias(g, yn, bias);
                continue;
            }
            for (int gi = 0; gi < g->g; gi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->cog,
                            (int)ld, g->kk, 1.0f,
                            w + (int64_t)gi * g->cog * g->kk, g->kk,
                            col + (int64_t)gi * g->kk * ld, (int)ld, 0.0f,
                            tmp + (int64_t)gi * g->cog * ld, (int)ld);
            for (int j = 0; j < nbc; j++) {
                for (int c = 0; c < g->co; c++) {
                    const float *src = tmp + c * ld + j * g->ohw;
                    float *dst = y + ((int64_t)(n0 + j) * g->co + c) * g->ohw;
                    float b = bias ? bias[c] : 0.0f;
#pragma omp simd
                    for (int64_t i = 0; i < g->ohw; i++)
                        dst[i] = src[i] + b;
                }
            }
        }
    }
}

int cpu_conv2d_forward(backend_t *be, const backend_op_t *op)
{
    conv_geom_t g;
    int rc = s_conv_geom(be, op, &g);
    const float *bias = op->node->bias ? op->w[1] : NULL;

    if (rc)
        return rc;
    if (op->workspace_size < cpu_conv2d_workspace(be, op->net, op->node))
        return cpu_op_fail(be, op, -EINVAL,
                           "workspace of %zu bytes is too small",
                           op->workspace_size);
    switch (g.path) {
    case CONV_PATH_POINTWISE:
        s_forward_pointwise(&g, op->x[0], op->w[0], bias, op->y);
        break;
    case CONV_PATH_DEPTHWISE:
        s_forward_depthwise(&g, op->x[0], op->w[0], bias, op->y);
        break;
    case CONV_PATH_MASKED:
        cpu_conv_masked_forward(&g, op->x[0], op->w[0], bias, op->y,
                                op->workspace);
        break;
    case CONV_PATH_DIRECT:
        cpu_conv_direct_forward(&g, op->x[0], op->w[0], bias, op->y,
                                op->workspace);
        break;
    default:
        s_forward_im2col(&g, op->x[0], op->w[0], bias, op->y, op->workspace);
        break;
    }
    return 0;
}

/* --------------------------------------------------------------- backward */

/* dw = the sum of the threads' private gradients, `per` floats apart. */
static void s_sum_partials(const conv_geom_t *g, const float *parts,
                           int64_t per, float *dw)
{
#pragma omp parallel for simd num_threads(g->threads)
    for (int64_t i = 0; i < g->wsz; i++) {
        float s = 0.0f;
        for (int t = 0; t < g->threads; t++)
            s += parts[t * per + i];
        dw[i] = s;
    }
}

static void s_backward_pointwise(const conv_geom_t *g, const float *x,
                                 const float *w, const float *dy, float *dx,
                                 bool acc, float *dw, float *ws)
{
    const int ohw = (int)g->ohw;

    /* Every private dW is cleared here, not by its thread: a team may
     * get fewer threads than asked for, and all of them are summed. */
    if (dw)
        memset(ws, 0, (size_t)(g->wsz * g->threads) * sizeof(float));
#pragma omp parallel num_threads(g->threads)
    {
        float *dwt = ws + g->wsz * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int n = 0; n < g->n; n++) {
            const float *dyn = dy + (int64_t)n * g->co * g->ohw;
            const float *xn = x + (int64_t)n * g->ci * g->ihw;
            for (int gi = 0; gi < g->g; gi++) {
                const float *dyg = dyn + (int64_t)gi * g->cog * g->ohw;
                if (dw)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->cog,
                                g->cig, ohw, 1.0f, dyg, ohw,
                                xn + (int64_t)gi * g->cig * g->ihw, ohw, 1.0f,
                                dwt + (int64_t)gi * g->cog * g->cig, g->cig);
                if (dx)
                    cblas_sgemm(
                        CblasRowMajor, CblasTrans, CblasNoTrans, g->cig, ohw,
                        g->cog, 1.0f, w + (int64_t)gi * g->cog * g->cig, g->cig,
                        dyg, ohw, acc ? 1.0f : 0.0f,
                        dx + ((int64_t)n * g->ci + gi * g->cig) * g->ihw, ohw);
            }
        }
    }
    if (dw)
        s_sum_partials(g, ws, g->wsz, dw);
}

static void s_backward_depthwise(const conv_geom_t *g, const float *x,
                                 const float *w, const float *dy, float *dx,
                                 bool acc, float *dw)
{
    const int kk = g->k * g->k;

    if (dx) {
#pragma omp parallel for num_threads(g->threads) schedule(static)
        for (int64_t nc = 0; nc < (int64_t)g->n * g->ci; nc++) {
            float *dxc = dx + nc * g->ihw;
            int c = (int)(nc % g->ci);
            int64_t n = nc / g->ci;
            if (!acc)
                memset(dxc, 0, (size_t)g->ihw * sizeof(float));
            for (int j = 0; j < g->cog; j++) {
                int o = c * g->cog + j;
                const float *dyc = dy + (n * g->co + o) * g->ohw;
                for (int kh = 0; kh < g->k; kh++) {
                    for (int kw = 0; kw < g->k; kw++) {
                        float wv = w[(int64_t)o * kk + kh * g->k + kw];
                        int dh = kh * g->d - g->p, dw_ = kw * g->d - g->p;
                        int lo, hi;
                        s_valid_range(g->ow, g->w, g->s, dw_, &lo, &hi);
                        for (int oh = 0; oh < g->oh; oh++) {
                            int ih = oh * g->s + dh;
                            const float *src = dyc + (int64_t)oh * g->ow;
                            float *dst;
                            if (ih < 0 || ih >= g->h)
                                continue;
                            dst = dxc + (int64_t)ih * g->w + dw_;
                            if (g->s == 1) {
#pragma omp simd
                                for (int ow = lo; ow < hi; ow++)
                                    dst[ow] += wv * src[ow];
                            } else {
                                for (int ow = lo; ow < hi; ow++)
                                    dst[ow * g->s] += wv * src[ow];
                            }
                        }
                    }
                }
            }
        }
    }
    if (!dw)
        return;

#pragma omp parallel for num_threads(g->threads) schedule(static)
    for (int64_t ok = 0; ok < (int64_t)g->co * kk; ok++) {
        int o = (int)(ok / kk), kh = (int)(ok % kk) / g->k;
        int kw = (int)(ok % kk) % g->k, c = o / g->cog;
        int dh = kh * g->d - g->p, dw_ = kw * g->d - g->p, lo, hi;
        double sum = 0.0;
        s_valid_range(g->ow, g->w, g->s, dw_, &lo, &hi);
        for (int n = 0; n < g->n; n++) {
            const float *dyc = dy + ((int64_t)n * g->co + o) * g->ohw;
            const float *xc = x + ((int64_t)n * g->ci + c) * g->ihw;
            for (int oh = 0; oh < g->oh; oh++) {
                int ih = oh * g->s + dh;
                const float *src, *d = dyc + (int64_t)oh * g->ow;
                float part = 0.0f;
                if (ih < 0 || ih >= g->h)
                    continue;
                src = xc + (int64_t)ih * g->w + dw_;
#pragma omp simd reduction(+ : part)
                for (int ow = lo; ow < hi; ow++)
                    part += d[ow] * src[ow * g->s];
                sum += part;
            }
        }
        dw[ok] = (float)sum;
    }
}

static void s_backward_im2col(const conv_geom_t *g, const float *x,
                              const float *w, const float *dy, float *dx,
                              bool acc, float *dw, float *ws)
{
    const int chunks = (g->n + g->nb - 1) / g->nb;
    const int64_t cols = s_conv_ws_cols(g), per = g->wsz + cols;

    for (int t = 0; dw && t < g->threads; t++)
        memset(ws + per * t + cols, 0, (size_t)g->wsz * sizeof(float));
#pragma omp parallel num_threads(g->threads)
    {
        float *col = ws + per * omp_get_thread_num();
        float *dyt = col + (int64_t)g->nb * g->ohw * g->rows;
        float *dwt = col + cols;

#pragma omp for schedule(static)
        for (int ch = 0; ch < chunks; ch++) {
            int n0 = ch * g->nb;
            int nbc = g->n - n0 < g->nb ? g->n - n0 : g->nb;
            int64_t ld = nbc * g->ohw;
            const float *dyp = dy + (int64_t)n0 * g->co * g->ohw;

            if (nbc > 1) {
                for (int j = 0; j < nbc; j++)
                    for (int c = 0; c < g->co; c++)
                        memcpy(dyt + c * ld + j * g->ohw,
                               dyp + ((int64_t)j * g->co + c) * g->ohw,
                               (size_t)g->ohw * sizeof(float));
                dyp = dyt;
            }
            if (dw) {
                for (int j = 0; j < nbc; j++)
                    s_im2col(g, x + (int64_t)(n0 + j) * g->ci * g->ihw,
                             col + j * g->ohw, ld);
                for (int gi = 0; gi < g->g; gi++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->cog,
                                g->kk, (int)ld, 1.0f,
                                dyp + (int64_t)gi * g->cog * ld, (int)ld,
                                col + (int64_t)gi * g->kk * ld, (int)ld, 1.0f,
                                dwt + (int64_t)gi * g->cog * g->kk, g->kk);
            }
            if (!dx)
                continue;
            for (int gi = 0; gi < g->g; gi++)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->kk,
                            (int)ld, g->cog, 1.0f,
                            w + (int64_t)gi * g->cog * g->kk, g->kk,
                            dyp + (int64_t)gi * g->cog * ld, (int)ld, 0.0f,
                            col + (int64_t)gi * g->kk * ld, (int)ld);
            for (int j = 0; j < nbc; j++) {
                float *dxn = dx + (int64_t)(n0 + j) * g->ci * g->ihw;
                if (!acc)
                    memset(dxn, 0, (size_t)(g->ci * g->ihw) * sizeof(float));
                s_col2im(g, col + j * g->ohw, ld, dxn);
            }
        }
    }
    if (dw)
        s_sum_partials(g, ws + cols, per, dw);
}

int cpu_conv2d_backward(backend_t *be, const backend_op_t *op)
{
    conv_geom_t g;
    int rc = s_conv_geom(be, op, &g);
    float *dx = op->dx[0], *dw = op->dw ? op->dw[0] : NULL;
    bool acc = op->dx_accumulate[0];

    if (rc)
        return rc;
    if (op->workspace_size < cpu_conv2d_workspace(be, op->net, op->node))
        return cpu_op_fail(be, op, -EINVAL,
                           "workspace of %zu bytes is too small",
                           op->workspace_size);
    switch (g.path) {
    case CONV_PATH_POINTWISE:
        s_backward_pointwise(&g, op->x[0], op->w[0], op->dy, dx, acc, dw,
                             op->workspace);
        break;
    case CONV_PATH_DEPTHWISE:
        s_backward_depthwise(&g, op->x[0], op->w[0], op->dy, dx, acc, dw);
        break;
    case CONV_PATH_MASKED:
        cpu_conv_masked_backward(&g, op->x[0], op->w[0], op->dy, dx, acc, dw,
                                 op->workspace);
        break;
    case CONV_PATH_DIRECT:
        cpu_conv_direct_backward(&g, op->x[0], op->w[0], op->dy, dx, acc, dw,
                                 op->workspace);
        break;
    default:
        s_backward_im2col(&g, op->x[0], op->w[0], op->dy, dx, acc, dw,
                          op->workspace);
        break;
    }

    if (op->node->bias && op->dw && op->dw[1]) {
        int64_t dims[3] = {g.n, g.co, g.ohw};
        bool red[3] = {true, false, true};
        cpu_strided_reduce(be, CPU_REDUCE_SUM, 3, dims, red, op->dy, op->dw[1],
                           1.0f, false);
    }
    return 0;
}
