/*
 * cuda_plan.h - the host-side index planning of the CUDA kernels, in plain
 * C so that a CPU unit test (tests/unit/test_cuda_plan.c) checks it where
 * no GPU is: the collapse of a reduction to the (A, K, R) form with its
 * split into slices, the collapse of broadcast operands, and the element
 * offsets the kernels compute from both.
 *
 * Reductions.  A reduction of a contiguous tensor over some of its
 * dimensions drops size-1 dimensions and merges neighbours of the same
 * kind (reduced or kept).  When at most one kept group remains, with
 * reduced groups only before and after it, the form is (A, K, R): element
 * (a, k, r) is at ((a * K + k) * R + r), kept index k.  The kernels split
 * each k's A*R values into slices of `chunk` (flattened (a, r) when
 * R >= 32, whole a's otherwise) and combine the slices in order.  Anything
 * else is the general form: kept and reduced groups with their strides.
 *
 * Broadcasting.  Operands are aligned on the right; a dimension of size 1
 * gets stride 0.  Dimensions of size 1 in the output are dropped and
 * neighbours that every operand walks alike are merged, so a kernel
 * decomposes an index over few dimensions.
 *
 * Also here: multiply's batch maps (torch.matmul broadcasting) and the
 * pooling windows with the range of windows covering an input element,
 * from which every pooling gradient is gathered.
 */
#ifndef NADER_CUDA_PLAN_H
#define NADER_CUDA_PLAN_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define CUDA_PLAN_FN static __host__ __device__ __forceinline__
#else
#define CUDA_PLAN_FN static inline
#endif

#define CUDA_PLAN_DIMS 6
#define CUDA_PLAN_MAX_IN 16

typedef struct cuda_red_plan {
    bool akr; /* the (A, K, R) form */
    bool col; /* R < 32: threads run along K */
    int A, K, R;
    int splits; /* slices per kept element */
    int chunk;  /* per slice: flattened (a, r) or a's (col) */
    /* the general form */
    int out_n, red_n;
    int nk, nr;
    int ksize[CUDA_PLAN_DIMS], kstride[CUDA_PLAN_DIMS];
    int rsize[CUDA_PLAN_DIMS], rstride[CUDA_PLAN_DIMS];
} cuda_red_plan_t;

/*
 * Plan the reduction of a contiguous tensor of the given shape over the
 * dimensions whose bit is set in red_mask, for a GPU with sm_count
 * multiprocessors (about four blocks per multiprocessor in all).  Kept
 * elements are numbered row-major over the kept dimensions, which is the
 * order of the keepdim output.
 */
CUDA_PLAN_FN void cuda_red_plan_make(cuda_red_plan_t *p, int ndim,
                                     const int64_t *shape, uint32_t red_mask,
                                     int sm_count)
{
    int gsize[CUDA_PLAN_DIMS], gred[CUDA_PLAN_DIMS], gstride[CUDA_PLAN_DIMS];
    int ng = 0, s = 1;

    memset(p, 0, sizeof(*p));
    for (int d = 0; d < ndim; d++) {
        int red = (red_mask >> d) & 1;
        if (shape[d] == 1)
            continue;
        if (ng > 0 && gred[ng - 1] == red) {
            gsize[ng - 1] *= (int)shape[d];
        } else {
            gsize[ng] = (int)shape[d];
            gred[ng] = red;
            ng++;
        }
    }
    for (int g = ng - 1; g >= 0; g--) {
        gstride[g] = s;
        s *= gsize[g];
    }
    p->out_n = p->red_n = 1;
    for (int g = 0; g < ng; g++) {
        if (gred[g]) {
            p->rsize[p->nr] = gsize[g];
            p->rstride[p->nr++] = gstride[g];
            p->red_n *= gsize[g];
        } else {
            p->ksize[p->nk] = gsize[g];
            p->kstride[p->nk++] = gstride[g];
            p->out_n *= gsize[g];
        }
    }

    /* At most one kept group, reduced groups only around it. */
    int first = 0, last = ng;
    p->A = p->K = p->R = 1;
    if (ng > 0 && gred[ng - 1])
        p->R = gsize[--last]; /* a lone reduced group goes here: rows */
    if (last > first && gred[first])
        p->A = gsize[first++];
    if (last - first > 1 || (last - first == 1 && gred[first]))
        return; /* the general form */
    if (last - first == 1)
        p->K = gsize[first];
    p->akr = true;

    int target = 4 * (sm_count > 0 ? sm_count : 1), splits, max_splits;
    if (p->R >= 32) {
        int e = p->A * p->R;
        splits = (target + p->K - 1) / p->K;
        max_splits = (e + 2047) / 2048;
        if (splits > max_splits)
            splits = max_splits;
        if (splits < 1)
            splits = 1;
        p->chunk = (e + splits - 1) / splits;
        p->splits = (e + p->chunk - 1) / p->chunk;
    } else {
        int kb = (p->K + 31) / 32;
        int rows_per = 64 / p->R > 8 ? 64 / p->R : 8;
        splits = (target + kb - 1) / kb;
        max_splits = (p->A + rows_per - 1) / rows_per;
        p->col = true;
        if (splits > max_splits)
            splits = max_splits;
        if (splits < 1)
            splits = 1;
        p->chunk = (p->A + splits - 1) / splits;
        p->splits = (p->A + p->chunk - 1) / p->chunk;
    }
    if (p->splits < 1)
        p->splits = 1;
}

/* Floats of partial results the plan needs for nv values per element. */
CUDA_PLAN_FN size_t cuda_red_partials(const cuda_red_plan_t *p, int nv)
{
    return p->akr ? (size_t)p->splits * p->K * nv : 0;
}

/* The element offset of (a, k, r) in the (A, K, R) form. */
CUDA_PLAN_FN int cuda_red_akr_offset(const cuda_red_plan_t *p, int a, int k,
                                     int r)
{
    return (a * p->K + k) * p->R + r;
}

/* General form: the offset of kept element o's first element. */
CUDA_PLAN_FN int cuda_red_base(const cuda_red_plan_t *p, int o)
{
    int base = 0;
    for (int d = p->nk - 1; d >= 0; d--) {
        int c = o % p->ksize[d];
        o /= p->ksize[d];
        base += c * p->kstride[d];
    }
    return base;
}

/* General form: the offset of reduced element j from its kept base. */
CUDA_PLAN_FN int cuda_red_step(const cuda_red_plan_t *p, int j)
{
    int off = 0;
    for (int d = p->nr - 1; d >= 0; d--) {
        int c = j % p->rsize[d];
        j /= p->rsize[d];
        off += c * p->rstride[d];
    }
    return off;
}

/* Broadcast operands over a collapsed output shape. */
typedef struct cuda_bcast {
    int ndim, nin;
    int size[CUDA_PLAN_DIMS];
    int stride[CUDA_PLAN_MAX_IN][CUDA_PLAN_DIMS];
} cuda_bcast_t;

/*
 * Collapse: the output shape out[out_ndim], operand i of shape
 * in[i][in_ndim[i]] (nin <= CUDA_PLAN_MAX_IN, every in_ndim <= out_ndim).
 */
CUDA_PLAN_FN void cuda_bcast_make(cuda_bcast_t *b, int out_ndim,
                                  const int64_t *out, int nin,
                                  const int64_t *const *in, const int *in_ndim)
{
    int stride[CUDA_PLAN_MAX_IN][CUDA_PLAN_DIMS];

    for (int i = 0; i < nin; i++) {
        int off = out_ndim - in_ndim[i], s = 1;
        for (int d = out_ndim - 1; d >= 0; d--) {
            int64_t n = d >= off ? in[i][d - off] : 1;
            stride[i][d] = n == 1 ? 0 : s;
            s *= (int)n;
        }
    }
    memset(b, 0, sizeof(*b));
    b->nin = nin;
    for (int d = 0; d < out_ndim; d++) {
        int size = (int)out[d], g = b->ndim - 1;
        bool merge = g >= 0;
        if (size == 1)
            continue;
        for (int i = 0; merge && i < nin; i++)
            merge = b->stride[i][g] == stride[i][d] * size;
        if (!merge)
            g = b->ndim++;
        b->size[g] = merge ? b->size[g] * size : size;
        for (int i = 0; i < nin; i++)
            b->stride[i][g] = stride[i][d];
    }
}

/* Operand i's offset of output element o. */
CUDA_PLAN_FN int cuda_bcast_offset(const cuda_bcast_t *b, int i, int o)
{
    int off = 0;
    for (int d = b->ndim - 1; d >= 0; d--) {
        int c = o % b->size[d];
        o /= b->size[d];
        off += c * b->stride[i][d];
    }
    return off;
}

/* ------------------------------------------------------------ matmul */

#define CUDA_PLAN_MM_BATCH 4

/* Batch offsets (in floats) of one operand for each output batch index. */
typedef struct cuda_bmap {
    int ndim;
    int size[CUDA_PLAN_MM_BATCH];   /* the output's batch shape */
    int stride[CUDA_PLAN_MM_BATCH]; /* this operand's; 0 when broadcast */
} cuda_bmap_t;

/* torch.matmul of a (sa[ra]) and b (sb[rb]): per batch A (n x k) . B
 * (k x m) = C (n x m); a 1-D a is (1 x k), a 1-D b is (k x 1). */
typedef struct cuda_mm_plan {
    int n, k, m;
    int nb; /* output batch count */
    int bdims;
    int64_t bshape[CUDA_PLAN_MM_BATCH];
    cuda_bmap_t amap, bmap, cmap;
    bool a_bcast, b_bcast; /* a batch dim of the operand repeats */
    uint32_t a_red, b_red; /* batch dims its gradient sums over */
} cuda_mm_plan_t;

/* Returns false when there are more than CUDA_PLAN_MM_BATCH batch dims. */
CUDA_PLAN_FN bool cuda_mm_plan_make(cuda_mm_plan_t *g, int ra,
                                    const int64_t *sa, int rb,
                                    const int64_t *sb)
{
    int ba = ra > 2 ? ra - 2 : 0, bb = rb > 2 ? rb - 2 : 0;

    memset(g, 0, sizeof(*g));
    g->n = ra >= 2 ? (int)sa[ra - 2] : 1;
    g->k = (int)sa[ra - 1];
    g->m = rb >= 2 ? (int)sb[rb - 1] : 1;
    g->bdims = ba > bb ? ba : bb;
    if (g->bdims > CUDA_PLAN_MM_BATCH)
        return false;
    g->nb = 1;
    for (int d = 0; d < g->bdims; d++) {
        int64_t x = d - (g->bdims - ba) >= 0 ? sa[d - (g->bdims - ba)] : 1;
        int64_t y = d - (g->bdims - bb) >= 0 ? sb[d - (g->bdims - bb)] : 1;
        g->bshape[d] = x > y ? x : y;
        g->nb *= (int)g->bshape[d];
    }
    for (int o = 0; o < 3; o++) {
        cuda_bmap_t *mp = o == 0 ? &g->amap : o == 1 ? &g->bmap : &g->cmap;
        const int64_t *shp = o == 0 ? sa : o == 1 ? sb : NULL;
        int nbat = o == 0 ? ba : o == 1 ? bb : g->bdims;
        int s = o == 0 ? g->n * g->k : o == 1 ? g->k * g->m : g->n * g->m;
        mp->ndim = g->bdims;
        for (int d = g->bdims - 1; d >= 0; d--) {
            int od = d - (g->bdims - nbat);
            int64_t size = shp ? (od >= 0 ? shp[od] : 1) : g->bshape[d];
            mp->size[d] = (int)g->bshape[d];
            mp->stride[d] = size == 1 ? 0 : s;
            s *= (int)size;
            if (size == 1 && g->bshape[d] > 1 && o < 2) {
                *(o == 0 ? &g->a_bcast : &g->b_bcast) = true;
                *(o == 0 ? &g->a_red : &g->b_red) |= 1u << d;
            }
        }
    }
    return true;
}

/* The offset of output batch i in the operand. */
CUDA_PLAN_FN int cuda_bmap_offset(const cuda_bmap_t *mp, int i)
{
    int off = 0;
    for (int d = mp->ndim - 1; d >= 0; d--) {
        int c = i % mp->size[d];
        i /= mp->size[d];
        off += c * mp->stride[d];
    }
    return off;
}

/* One stride for the whole batch (0 or elems), or -1: pointers needed. */
CUDA_PLAN_FN int64_t cuda_bmap_uniform(const cuda_bmap_t *mp, int elems)
{
    bool zero = true, whole = true;
    int64_t s = elems;
    for (int d = mp->ndim - 1; d >= 0; d--) {
        if (mp->size[d] == 1)
            continue;
        zero = zero && mp->stride[d] == 0;
        whole = whole && mp->stride[d] == s;
        s *= mp->size[d];
    }
    return zero ? 0 : whole ? elems : -1;
}

/* A contiguous map over the whole output batch, elems per batch. */
CUDA_PLAN_FN cuda_bmap_t cuda_bmap_full(const cuda_mm_plan_t *g, int elems)
{
    cuda_bmap_t mp = g->cmap;
    int s = elems;
    for (int d = mp.ndim - 1; d >= 0; d--) {
        mp.stride[d] = mp.size[d] == 1 ? 0 : s;
        s *= mp.size[d];
    }
    return mp;
}

/* ------------------------------------------------------------- pools */

/* Pooling over the last two dims; k == 0 for the adaptive pools. */
typedef struct cuda_pool {
    int planes, h, w, oh, ow;
    int k, s, p;
} cuda_pool_t;

/* Input window [lo, hi) of output i along one dimension (n_in -> n_out);
 * fixed windows are not clamped to the input. */
CUDA_PLAN_FN void cuda_pool_window(const cuda_pool_t *g, int i, int n_in,
                                   int n_out, int *lo, int *hi)
{
    if (g->k) {
        *lo = i * g->s - g->p;
        *hi = *lo + g->k;
    } else {
        *lo = (i * n_in) / n_out;
        *hi = ((i + 1) * n_in + n_out - 1) / n_out;
    }
}

/* Outputs [lo, hi] whose windows may cover input index h: every window
 * that does is in the range (a superset for adaptive windows). */
CUDA_PLAN_FN void cuda_pool_cover(const cuda_pool_t *g, int h, int n_in,
                                  int n_out, int *lo, int *hi)
{
    if (g->k) {
        int a = h + g->p - g->k + 1;
        *lo = a <= 0 ? 0 : (a + g->s - 1) / g->s;
        *hi = (h + g->p) / g->s;
    } else {
        *lo = (h * n_out) / n_in - 1;
        *hi = ((h + 1) * n_out + n_in - 1) / n_in;
        if (*lo < 0)
            *lo = 0;
    }
    if (*hi > n_out - 1)
        *hi = n_out - 1;
}

#endif
