/*
 * test_cuda_plan.c - the CUDA kernels' index planning (worker/cuda/
 * cuda_plan.h), checked on the CPU where no GPU is: reductions collapsed to
 * the (A, K, R) form and walked slice by slice as the kernels walk them
 * must give the sums of a plain reduction, over thousands of random shapes
 * and dimension sets; broadcast operands collapsed must address the same
 * elements as NumPy's rule applied dimension by dimension; multiply's batch
 * maps must follow torch.matmul's broadcasting; and the range of pooling
 * windows gathered for an input element must hold every window covering it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cuda/cuda_plan.h"
#include "rng.h"

static uint64_t s_state = 12345;

static int s_pick(int n)
{
    return (int)(engine_rng_next(&s_state) % (uint64_t)n);
}

static int64_t s_numel(int nd, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= shape[d];
    return n;
}

/* The keepdim reduction, element by element. */
static void s_reduce_naive(int nd, const int64_t *shape, uint32_t mask,
                           const double *x, double *out, int64_t n_out)
{
    int64_t n = s_numel(nd, shape);
    memset(out, 0, (size_t)n_out * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        int64_t t = i, o = 0, ostride = 1;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t c = t % shape[d];
            t /= shape[d];
            if (!((mask >> d) & 1)) {
                o += c * ostride;
                ostride *= shape[d];
            }
        }
        out[o] += x[i];
    }
}

/* The reduction as the kernels traverse it (cuda_reduce.cuh), thread by
 * thread for the rows kernel. */
static void s_reduce_plan(const cuda_red_plan_t *p, const double *x,
                          double *out)
{
    if (!p->akr) {
        for (int o = 0; o < p->out_n; o++) {
            int base = cuda_red_base(p, o);
            out[o] = 0;
            for (int j = 0; j < p->red_n; j++)
                out[o] += x[base + cuda_red_step(p, j)];
        }
        return;
    }
    double *part = calloc(cuda_red_partials(p, 1), sizeof(double));
    assert_non_null(part);
    for (int k = 0; k < p->K; k++)
        for (int s = 0; s < p->splits; s++) {
            double acc = 0;
            if (!p->col) {
                /* 256 threads, each dividing once and carrying (a, r) */
                int e = p->A * p->R, j0 = s * p->chunk;
                int j1 = j0 + p->chunk < e ? j0 + p->chunk : e;
                for (int t = 0; t < 256; t++) {
                    int j = j0 + t, a = j / p->R, r = j - a * p->R;
                    for (; j < j1; j += 256) {
                        acc += x[cuda_red_akr_offset(p, a, k, r)];
                        for (r += 256; r >= p->R; r -= p->R)
                            a++;
                    }
                }
            } else {
                int a1 = s * p->chunk + p->chunk;
                for (int a = s * p->chunk; a < (a1 < p->A ? a1 : p->A); a++)
                    for (int r = 0; r < p->R; r++)
                        acc += x[cuda_red_akr_offset(p, a, k, r)];
            }
            part[(size_t)s * p->K + k] = acc;
        }
    for (int k = 0; k < p->K; k++) {
        out[k] = part[k];
        for (int s = 1; s < p->splits; s++)
            out[k] += part[(size_t)s * p->K + k];
    }
    free(part);
}

static void s_check_reduce(int nd, const int64_t *shape, uint32_t mask, int sm)
{
    int64_t n = s_numel(nd, shape), n_out = 1;
    cuda_red_plan_t p;

    for (int d = 0; d < nd; d++)
        if (!((mask >> d) & 1))
            n_out *= shape[d];
    double *x = malloc((size_t)n * sizeof(double));
    double *a = malloc((size_t)n_out * sizeof(double));
    double *b = malloc((size_t)n_out * sizeof(double));
    assert_true(x && a && b);
    for (int64_t i = 0; i < n; i++)
        x[i] = (double)(engine_rng_next(&s_state) % 1000);
    cuda_red_plan_make(&p, nd, shape, mask, sm);
    assert_int_equal(p.out_n, n_out);
    assert_int_equal((int64_t)p.out_n * p.red_n, n);
    if (p.akr) {
        assert_int_equal((int64_t)p.A * p.K * p.R, n);
        assert_int_equal(p.K, n_out);
        assert_true(p.splits >= 1 && p.chunk >= 1);
        int64_t cover = p.col ? p.A : (int64_t)p.A * p.R;
        assert_true((int64_t)p.splits * p.chunk >= cover);
        assert_true((int64_t)(p.splits - 1) * p.chunk < cover || cover == 0);
        assert_true(p.col == (p.R < 32));
    }
    s_reduce_naive(nd, shape, mask, x, a, n_out);
    s_reduce_plan(&p, x, b);
    for (int64_t i = 0; i < n_out; i++)
        assert_true(a[i] == b[i]);
    free(x);
    free(a);
    free(b);
}

static void test_reduce_forms(void **state)
{
    cuda_red_plan_t p;
    (void)state;

    /* BN statistics of NCHW: (N, C, H*W) */
    int64_t nchw[4] = {256, 25, 32, 32};
    cuda_red_plan_make(&p, 4, nchw, 0xd, 132);
    assert_true(p.akr && !p.col);
    assert_int_equal(p.A, 256);
    assert_int_equal(p.K, 25);
    assert_int_equal(p.R, 1024);
    assert_true(p.splits * p.K >= 132); /* fills the GPU */

    /* mean over (2, 3): rows */
    cuda_red_plan_make(&p, 4, nchw, 0xc, 132);
    assert_true(p.akr && !p.col);
    assert_int_equal(p.A, 1);
    assert_int_equal(p.K, 256 * 25);
    assert_int_equal(p.R, 1024);

    /* Linear's bias gradient: (M, N) over dim 0: columns */
    int64_t mn[2] = {300, 7};
    cuda_red_plan_make(&p, 2, mn, 0x1, 132);
    assert_true(p.akr && p.col);
    assert_int_equal(p.A, 300);
    assert_int_equal(p.K, 7);
    assert_int_equal(p.R, 1);

    /* everything: one row */
    int64_t v[3] = {4, 5, 6};
    cuda_red_plan_make(&p, 3, v, 0x7, 132);
    assert_true(p.akr && !p.col);
    assert_int_equal(p.K, 1);
    assert_int_equal(p.R, 120);

    /* kept, reduced, kept, reduced: the general form */
    int64_t g[4] = {3, 4, 5, 6};
    cuda_red_plan_make(&p, 4, g, 0xa, 132);
    assert_false(p.akr);
    assert_int_equal(p.out_n, 15);
    assert_int_equal(p.red_n, 24);
    assert_int_equal(cuda_red_partials(&p, 2), 0);

    /* size-1 dimensions drop out; nothing reduced is a copy */
    int64_t ones[5] = {1, 7, 1, 1, 9};
    cuda_red_plan_make(&p, 5, ones, 0x0, 132);
    assert_true(p.akr);
    assert_int_equal(p.K, 63);
    assert_int_equal(p.A * p.R, 1);
}

static void test_reduce_random(void **state)
{
    static const int64_t sizes[] = {1, 1, 2, 3, 4, 5, 7, 16, 33, 64};
    (void)state;

    s_check_reduce(4, (int64_t[]){16, 25, 32, 32}, 0xd, 132);
    s_check_reduce(2, (int64_t[]){3, 5000}, 0x2, 132);
    s_check_reduce(2, (int64_t[]){5000, 3}, 0x1, 132);
    for (int t = 0; t < 3000; t++) {
        int nd = 1 + s_pick(6);
        int64_t shape[6];
        int64_t n = 1;
        for (int d = 0; d < nd; d++) {
            shape[d] = sizes[s_pick(10)];
            n *= shape[d];
        }
        if (n > 200000)
            continue;
        uint32_t mask = (uint32_t)s_pick(1 << nd);
        int sm = 1 + s_pick(140);
        s_check_reduce(nd, shape, mask, sm);
    }
}

static void test_broadcast_random(void **state)
{
    (void)state;
    for (int t = 0; t < 3000; t++) {
        int nd = 1 + s_pick(6), nin = 1 + s_pick(4);
        int64_t out[6], in[4][6];
        const int64_t *inp[4];
        int ind[4];
        cuda_bcast_t b;

        for (int d = 0; d < nd; d++)
            out[d] = 1 + s_pick(5);
        for (int i = 0; i < nin; i++) {
            ind[i] = 1 + s_pick(nd);
            for (int d = 0; d < ind[i]; d++)
                in[i][d] = s_pick(3) == 0 ? 1 : out[nd - ind[i] + d];
            inp[i] = in[i];
        }
        cuda_bcast_make(&b, nd, out, nin, inp, ind);

        int64_t n = s_numel(nd, out), prod = 1;
        assert_true(b.ndim <= nd);
        for (int d = 0; d < b.ndim; d++)
            prod *= b.size[d];
        assert_int_equal(prod, n);
        for (int64_t o = 0; o < n; o++)
            for (int i = 0; i < nin; i++) {
                /* NumPy's rule, dimension by dimension */
                int64_t u = o, off = 0, st = 1;
                for (int d = nd - 1; d >= 0; d--) {
                    int64_t c = u % out[d];
                    u /= out[d];
                    int di = d - (nd - ind[i]);
                    if (di < 0)
                        continue;
                    if (in[i][di] != 1)
                        off += c * st;
                    st *= in[i][di];
                }
                assert_int_equal(cuda_bcast_offset(&b, i, (int)o), off);
            }
    }
}

static void test_broadcast_gate(void **state)
{
    /* (B,C,H,W) * (B,C,1,1): two dimensions, the gate's stride (1, 0) */
    int64_t out[4] = {8, 16, 5, 5}, gate[4] = {8, 16, 1, 1};
    const int64_t *in[2] = {out, gate};
    int nd[2] = {4, 4};
    cuda_bcast_t b;
    (void)state;

    cuda_bcast_make(&b, 4, out, 2, in, nd);
    assert_int_equal(b.ndim, 2);
    assert_int_equal(b.size[0], 128);
    assert_int_equal(b.size[1], 25);
    assert_int_equal(b.stride[1][0], 1);
    assert_int_equal(b.stride[1][1], 0);
    assert_int_equal(b.stride[0][0], 25);
    assert_int_equal(b.stride[0][1], 1);
}

static void test_matmul_maps(void **state)
{
    (void)state;
    for (int t = 0; t < 3000; t++) {
        int bd = s_pick(5), ba = s_pick(bd + 1), bb = s_pick(bd + 1);
        int64_t bshape[4], sa[6], sb[6];
        int n = 1 + s_pick(4), k = 1 + s_pick(4), m = 1 + s_pick(4);
        int ra, rb;
        cuda_mm_plan_t g;

        if (s_pick(2))
            ba = bd;
        else
            bb = bd;
        for (int d = 0; d < bd; d++)
            bshape[d] = 1 + s_pick(3);
        for (int d = 0; d < ba; d++)
            sa[d] = s_pick(3) ? bshape[bd - ba + d] : 1;
        for (int d = 0; d < bb; d++)
            sb[d] = s_pick(3) ? bshape[bd - bb + d] : 1;
        /* the output batch is the broadcast of the two */
        for (int d = 0; d < bd; d++) {
            int64_t x = d >= bd - ba ? sa[d - (bd - ba)] : 1;
            int64_t y = d >= bd - bb ? sb[d - (bd - bb)] : 1;
            bshape[d] = x > y ? x : y;
        }
        ra = ba + 2;
        sa[ba] = n;
        sa[ba + 1] = k;
        rb = bb + 2;
        sb[bb] = k;
        sb[bb + 1] = m;
        if (ba == 0 && s_pick(4) == 0) { /* a vector: (k) */
            ra = 1;
            sa[0] = k;
            n = 1;
        }
        if (bb == 0 && s_pick(4) == 0) { /* b vector: (k) */
            rb = 1;
            sb[0] = k;
            m = 1;
        }
        assert_true(cuda_mm_plan_make(&g, ra, sa, rb, sb));
        assert_int_equal(g.n, n);
        assert_int_equal(g.k, k);
        assert_int_equal(g.m, m);
        int64_t nb = s_numel(bd, bshape);
        assert_int_equal(g.nb, nb);
        for (int64_t i = 0; i < nb; i++) {
            int64_t u = i, oa = 0, ob = 0, sta = 1, stb = 1;
            for (int d = bd - 1; d >= 0; d--) {
                int64_t c = u % bshape[d];
                u /= bshape[d];
                if (d >= bd - ba) {
                    int64_t sz = sa[d - (bd - ba)];
                    oa += (sz == 1 ? 0 : c) * sta;
                    sta *= sz;
                }
                if (d >= bd - bb) {
                    int64_t sz = sb[d - (bd - bb)];
                    ob += (sz == 1 ? 0 : c) * stb;
                    stb *= sz;
                }
            }
            assert_int_equal(cuda_bmap_offset(&g.amap, (int)i), oa * n * k);
            assert_int_equal(cuda_bmap_offset(&g.bmap, (int)i), ob * k * m);
            assert_int_equal(cuda_bmap_offset(&g.cmap, (int)i), i * n * m);
            cuda_bmap_t full = cuda_bmap_full(&g, n * k);
            assert_int_equal(cuda_bmap_offset(&full, (int)i), i * n * k);
        }
        /* a single stride, when claimed, is right */
        const cuda_bmap_t *maps[2] = {&g.amap, &g.bmap};
        int el[2] = {n * k, k * m};
        for (int o = 0; o < 2; o++) {
            int64_t st = cuda_bmap_uniform(maps[o], el[o]);
            if (st < 0)
                continue;
            for (int64_t i = 0; i < nb; i++)
                assert_int_equal(cuda_bmap_offset(maps[o], (int)i), i * st);
        }
        /* the gradient of a broadcast operand sums its repeated dims */
        for (int d = 0; d < bd; d++) {
            int64_t x = d >= bd - ba ? sa[d - (bd - ba)] : 1;
            int64_t y = d >= bd - bb ? sb[d - (bd - bb)] : 1;
            assert_int_equal((g.a_red >> d) & 1, x == 1 && bshape[d] > 1);
            assert_int_equal((g.b_red >> d) & 1, y == 1 && bshape[d] > 1);
        }
    }
}

static void s_check_cover(const cuda_pool_t *g, int n_in, int n_out)
{
    for (int h = 0; h < n_in; h++) {
        int lo, hi;
        cuda_pool_cover(g, h, n_in, n_out, &lo, &hi);
        for (int i = 0; i < n_out; i++) {
            int a, b;
            cuda_pool_window(g, i, n_in, n_out, &a, &b);
            if (a <= h && h < b)
                assert_true(lo <= i && i <= hi);
        }
    }
}

static void test_pool_windows(void **state)
{
    (void)state;
    for (int t = 0; t < 5000; t++) {
        int n_in = 1 + s_pick(12);
        cuda_pool_t g = {0};
        if (s_pick(2)) {
            /* the block format's "same" padding */
            g.k = 1 + s_pick(5);
            g.s = 1 + s_pick(3);
            g.p = g.k > g.s ? (g.k - g.s + 1) / 2 : 0;
            int full = (n_in + 2 * g.p - g.k) / g.s + 1;
            int crop = g.k % 2 == 0 && 2 * g.p == g.k;
            int n_out = full - crop;
            if (n_in + 2 * g.p < g.k || n_out < 1)
                continue;
            s_check_cover(&g, n_in, n_out);
        } else {
            int n_out = 1 + s_pick(n_in + 3);
            s_check_cover(&g, n_in, n_out);
            /* PyTorch's adaptive windows cover the whole input */
            int lo, hi;
            cuda_pool_window(&g, 0, n_in, n_out, &lo, &hi);
            assert_int_equal(lo, 0);
            cuda_pool_window(&g, n_out - 1, n_in, n_out, &lo, &hi);
            assert_int_equal(hi, n_in);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reduce_forms),
        cmocka_unit_test(test_reduce_random),
        cmocka_unit_test(test_broadcast_random),
        cmocka_unit_test(test_broadcast_gate),
        cmocka_unit_test(test_matmul_maps),
        cmocka_unit_test(test_pool_windows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
