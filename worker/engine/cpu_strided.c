/*
 * cpu_strided.c - strided copies and reductions over up to 12 dimensions.
 *
 * Broadcasting (Add, Mul), reductions (mean, max, sum and the gradients
 * of broadcast inputs), permute and repeat are all one of two loops: walk
 * a contiguous destination while reading a source at arbitrary strides
 * (0 broadcasts, permuted strides transpose, repeat is a broadcast of a
 * 12-D view), or fold a contiguous source into a smaller destination.
 * Both first drop size-1 dimensions and merge neighbours that are
 * contiguous in each other, so the common cases (same shapes, a
 * (B,C,1,1) gate, a per-channel sum) become one or two long inner loops
 * that the compiler vectorises.
 */
#include "cpu_ops.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <string.h>

void cpu_broadcast_strides(const graph_shape_t *in, const graph_shape_t *out,
                           int64_t *strides)
{
    int off = out->ndim - in->ndim;
    int64_t s = 1;

    assert(off >= 0);
    for (int i = out->ndim - 1; i >= 0; i--) {
        int j = i - off;
        if (j < 0) {
            strides[i] = 0;
            continue;
        }
        strides[i] = in->d[j] == 1 ? 0 : s;
        s *= in->d[j];
    }
}

/* ----------------------------------------------------------------- apply */

/* Drop size-1 dimensions and merge neighbours; returns the new count. */
static int s_apply_coalesce(int nd, const int64_t *dims, const int64_t *str,
                            int64_t *d, int64_t *s)
{
    int n = 0;

    for (int i = 0; i < nd; i++) {
        if (dims[i] == 1)
            continue;
        if (n > 0 && s[n - 1] == str[i] * dims[i]) {
            d[n - 1] *= dims[i];
            s[n - 1] = str[i];
            continue;
        }
        d[n] = dims[i];
        s[n] = str[i];
        n++;
    }
    if (n == 0) {
        d[0] = 1;
        s[0] = 0;
        n = 1;
    }
    return n;
}

static void s_apply_row(cpu_apply_mode_t mode, float *dst, const float *src,
                        int64_t n, int64_t stride, float scale)
{
    if (stride == 1) {
        switch (mode) {
        case CPU_APPLY_SET:
            if (scale == 1.0f) {
                memcpy(dst, src, (size_t)n * sizeof(float));
                return;
            }
#pragma omp simd
            for (int64_t i = 0; i < n; i++)
                dst[i] = scale * src[i];
            return;
        case CPU_APPLY_ADD:
#pragma omp simd
            for (int64_t i = 0; i < n; i++)
                dst[i] += scale * src[i];
            return;
        case CPU_APPLY_MUL:
#pragma omp simd
            for (int64_t i = 0; i < n; i++)
                dst[i] *= src[i];
            return;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        float v = src[i * stride];
        switch (mode) {
        case CPU_APPLY_SET:
            dst[i] = scale * v;
            break;
        case CPU_APPLY_ADD:
            dst[i] += scale * v;
            break;
        case CPU_APPLY_MUL:
            dst[i] *= v;
            break;
        }
    }
}

void cpu_strided_apply(const backend_t *be, cpu_apply_mode_t mode, int nd,
                       const int64_t *dims, float *dst, const float *src,
                       const int64_t *src_strides, float scale)
{
    int64_t d[CPU_MAX_ND], s[CPU_MAX_ND];
    int n;
    int64_t inner, rows, total = 1;

    assert(nd >= 0 && nd <= CPU_MAX_ND);
    for (int i = 0; i < nd; i++)
        total *= dims[i];
    if (total == 0)
        return;
    n = s_apply_coalesce(nd, dims, src_strides, d, s);
    inner = d[n - 1];
    rows = total / inner;

#pragma omp parallel num_threads(cpu_threads_for(be, total))
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
        int64_t idx[CPU_MAX_ND], off = 0, r = r0;

        for (int i = n - 2; i >= 0; i--) {
            idx[i] = r % d[i];
            r /= d[i];
            off += idx[i] * s[i];
        }
        for (int64_t row = r0; row < r1; row++) {
            s_apply_row(mode, dst + row * inner, src + off, inner, s[n - 1],
                        scale);
            for (int i = n - 2; i >= 0; i--) {
                off += s[i];
                if (++idx[i] < d[i])
                    break;
                off -= s[i] * d[i];
                idx[i] = 0;
            }
        }
    }
}

/* ---------------------------------------------------------------- reduce */

/* The coalesced problem: n dimensions of x, flagged reduced or kept; the
 * last is the inner loop, the others are split into kept (K) and reduced
 * (R) lists walked by index. */
typedef struct reduce_plan {
    cpu_reduce_kind_t kind;
    int64_t inner;
    bool inner_reduced;
    int nk, nr;
    int64_t kd[CPU_MAX_ND], kxs[CPU_MAX_ND], kys[CPU_MAX_ND];
    int64_t rd[CPU_MAX_ND], rxs[CPU_MAX_ND];
    int64_t kcount, rcount;
} reduce_plan_t;

static void s_reduce_row(cpu_reduce_kind_t kind, float *y, bool to_scalar,
                         const float *x, int64_t n)
{
    if (to_scalar) {
        if (kind == CPU_REDUCE_SUM) {
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int64_t i = 0; i < n; i++)
                acc += x[i];
            *y += acc;
        } else {
            float m = *y;
#pragma omp simd reduction(max : m)
            for (int64_t i = 0; i < n; i++)
                m = fmaxf(m, x[i]);
            *y = m;
        }
        return;
    }
    if (kind == CPU_REDUCE_SUM) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] += x[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = fmaxf(y[i], x[i]);
    }
}

/* Kept indices [k0, k1), inner elements [c0, c1). */
static void s_reduce_block(const reduce_plan_t *p, const float *x, float *y,
                           int64_t k0, int64_t k1, int64_t c0, int64_t c1)
{
    for (int64_t k = k0; k < k1; k++) {
        int64_t xo = 0, yo = 0, q = k;
        int64_t idx[CPU_MAX_ND] = {0};

        for (int i = p->nk - 1; i >= 0; i--) {
            int64_t v = q % p->kd[i];
            q /= p->kd[i];
            xo += v * p->kxs[i];
            yo += v * p->kys[i];
        }
        for (int64_t r = 0; r < p->rcount; r++) {
            if (p->inner_reduced)
                s_reduce_row(p->kind, y + yo, true, x + xo + c0, c1 - c0);
            else
                s_reduce_row(p->kind, y + yo + c0, false, x + xo + c0, c1 - c0);
            for (int i = p->nr - 1; i >= 0; i--) {
                xo += p->rxs[i];
                if (++idx[i] < p->rd[i])
                    break;
                xo -= p->rxs[i] * p->rd[i];
                idx[i] = 0;
            }
        }
    }
}

/* Coalesce dims into a plan; returns the number of y elements. */
static int64_t s_reduce_plan(reduce_plan_t *p, int nd, const int64_t *dims,
                             const bool *reduce)
{
    int64_t d[CPU_MAX_ND], xs[CPU_MAX_ND], ys[CPU_MAX_ND];
    bool r[CPU_MAX_ND];
    int n = 0;
    int64_t sx = 1, sy = 1;

    for (int i = 0; i < nd; i++) {
        if (dims[i] == 1)
            continue;
        if (n > 0 && r[n - 1] == reduce[i]) {
            d[n - 1] *= dims[i];
            continue;
        }
        d[n] = dims[i];
        r[n] = reduce[i];
        n++;
    }
    if (n == 0) {
        d[0] = 1;
        r[0] = false;
        n = 1;
    }
    for (int i = n - 1; i >= 0; i--) {
        xs[i] = sx;
        sx *= d[i];
        ys[i] = r[i] ? 0 : sy;
        if (!r[i])
            sy *= d[i];
    }

    p->inner = d[n - 1];
    p->inner_reduced = r[n - 1];
    p->nk = p->nr = 0;
    p->kcount = p->rcount = 1;
    for (int i = 0; i < n - 1; i++) {
        if (r[i]) {
            p->rd[p->nr] = d[i];
            p->rxs[p->nr++] = xs[i];
            p->rcount *= d[i];
        } else {
            p->kd[p->nk] = d[i];
            p->kxs[p->nk] = xs[i];
            p->kys[p->nk++] = ys[i];
            p->kcount *= d[i];
        }
    }
    return sy;
}

void cpu_strided_reduce(const backend_t *be, cpu_reduce_kind_t kind, int nd,
                        const int64_t *dims, const bool *reduce, const float *x,
                        float *y, float scale, bool accumulate)
{
    reduce_plan_t p;
    int64_t ny, total = 1;
    int threads;

    assert(nd >= 0 && nd <= CPU_MAX_ND);
    assert(!accumulate || (kind == CPU_REDUCE_SUM && scale == 1.0f));
    for (int i = 0; i < nd; i++)
        total *= dims[i];
    p.kind = kind;
    ny = s_reduce_plan(&p, nd, dims, reduce);
    if (!accumulate) {
        float init = kind == CPU_REDUCE_SUM ? 0.0f : -INFINITY;
        for (int64_t i = 0; i < ny; i++)
            y[i] = init;
    }
    if (total == 0)
        return;

    threads = cpu_threads_for(be, total);
    if (p.kcount >= threads || p.inner_reduced) {
        if (p.kcount < threads)
            threads = 1;
#pragma omp parallel num_threads(threads)
        {
            int nt = omp_get_num_threads(), t = omp_get_thread_num();
            s_reduce_block(&p, x, y, p.kcount * t / nt, p.kcount * (t + 1) / nt,
                           0, p.inner);
        }
    } else {
#pragma omp parallel num_threads(threads)
        {
            int nt = omp_get_num_threads(), t = omp_get_thread_num();
            s_reduce_block(&p, x, y, 0, p.kcount, p.inner * t / nt,
                           p.inner * (t + 1) / nt);
        }
    }

    if (kind == CPU_REDUCE_SUM && scale != 1.0f)
        for (int64_t i = 0; i < ny; i++)
            y[i] *= scale;
}
