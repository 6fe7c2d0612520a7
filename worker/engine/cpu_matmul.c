/*
 * cpu_matmul.c - Linear and multiply on the CPU, and the threaded GEMM
 * helper the other files use.
 *
 * Linear maps the last dimension: with x viewed as (rows, in),
 * y = x W^T + b, dx = dy W, dW = dy^T x, db = column sums of dy.
 * multiply follows torch.matmul: 1-D operands gain a dimension that the
 * result drops again, and batch dimensions broadcast; each batch is one
 * GEMM, and the gradient of a broadcast operand sums over the batches
 * that read it.
 */
#include "cpu_ops.h"

#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <string.h>

void cpu_sgemm(const backend_t *be, bool trans_a, bool trans_b, int m, int n,
               int k, float alpha, const float *a, int lda, const float *b,
               int ldb, float beta, float *c, int ldc)
{
    const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    const enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    double flops = 2.0 * m * n * k;
    int threads = be->threads;

    if (m <= 0 || n <= 0)
        return;
    if (flops < 4e6 || threads < 2 || (m < 32 && n < 32)) {
        cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta,
                    c, ldc);
        return;
    }

#pragma omp parallel num_threads(threads)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        if (n >= m) {
            /* Split columns of op(B) and C, in multiples of 16. */
            int blocks = (n + 15) / 16;
            int n0 = blocks * t / nt * 16, n1 = blocks * (t + 1) / nt * 16;
            if (n1 > n)
                n1 = n;
            if (n1 > n0)
                cblas_sgemm(CblasRowMajor, ta, tb, m, n1 - n0, k, alpha, a, lda,
                            trans_b ? b + (size_t)n0 * ldb : b + n0, ldb, beta,
                            c + n0, ldc);
        } else {
            int m0 = m * t / nt, m1 = m * (t + 1) / nt;
            if (m1 > m0)
                cblas_sgemm(CblasRowMajor, ta, tb, m1 - m0, n, k, alpha,
                            trans_a ? a + m0 : a + (size_t)m0 * lda, lda, b,
                            ldb, beta, c + (size_t)m0 * ldc, ldc);
        }
    }
}

/* ---------------------------------------------------------------- Linear */

size_t cpu_linear_workspace(const backend_t *be, const net_t *net,
                            const net_node_t *node)
{
    (void)be;
    (void)net;
    (void)node;
    return 0;
}

/* Rows and features of a Linear node's input; -EINVAL when they do not
 * match the node. */
static int s_linear_dims(backend_t *be, const backend_op_t *op, int64_t *rows)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0);
    const net_node_t *node = op->node;

    if (xs->ndim < 1 || xs->d[xs->ndim - 1] != node->in_ch ||
        node->shape.d[node->shape.ndim - 1] != node->out_ch)
        return cpu_op_fail(be, op, -EINVAL,
                           "input's last dimension %lld is not in_ch %lld",
                           xs->ndim ? (long long)xs->d[xs->ndim - 1] : 0LL,
                           (long long)node->in_ch);
    *rows = cpu_shape_numel(xs) / node->in_ch;
    if (*rows > INT32_MAX || node->in_ch > INT32_MAX ||
        node->out_ch > INT32_MAX)
        return cpu_op_fail(be, op, -EINVAL, "too large for one GEMM");
    return 0;
}

int cpu_linear_forward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    const int in = (int)node->in_ch, out = (int)node->out_ch;
    int64_t rows = 0;
    int rc = s_linear_dims(be, op, &rows);

    if (rc)
        return rc;
    if (node->bias) {
        const float *b = op->w[1];
#pragma omp parallel for num_threads(cpu_threads_for(be, rows *out))
        for (int64_t r = 0; r < rows; r++)
            memcpy(op->y + r * out, b, (size_t)out * sizeof(float));
    }
    cpu_sgemm(be, false, true, (int)rows, out, in, 1.0f, op->x[0], in, op->w[0],
              in, node->bias ? 1.0f : 0.0f, op->y, out);
    return 0;
}

int cpu_linear_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    const int in = (int)node->in_ch, out = (int)node->out_ch;
    int64_t rows = 0;
    int rc = s_linear_dims(be, op, &rows);

    if (rc)
        return rc;
    if (op->dx[0])
        cpu_sgemm(be, false, false, (int)rows, in, out, 1.0f, op->dy, out,
                  op->w[0], in, op->dx_accumulate[0] ? 1.0f : 0.0f, op->dx[0],
                  in);
    if (op->dw && op->dw[0])
        cpu_sgemm(be, true, false, out, in, (int)rows, 1.0f, op->dy, out,
                  op->x[0], in, 0.0f, op->dw[0], in);
    if (node->bias && op->dw && op->dw[1]) {
        int64_t dims[2] = {rows, out};
        bool red[2] = {true, false};
        cpu_strided_reduce(be, CPU_REDUCE_SUM, 2, dims, red, op->dy, op->dw[1],
                           1.0f, false);
    }
    return 0;
}

/* -------------------------------------------------------------- multiply */

/* torch.matmul's view of the two operands and the result. */
typedef struct mm_geom {
    int n, k, m;     /* (n,k) x (k,m) per batch */
    int64_t batches; /* of the result */
    int nbd;         /* batch dimensions of the result */
    int64_t bd[GRAPH_MAX_DIMS];
    int64_t as[GRAPH_MAX_DIMS], bs[GRAPH_MAX_DIMS]; /* batch strides */
    int64_t abatches, bbatches;
} mm_geom_t;

static int s_mm_geom(backend_t *be, const backend_op_t *op, mm_geom_t *g)
{
    const graph_shape_t *as = cpu_in_shape(op, 0), *bs = cpu_in_shape(op, 1);
    int an = as->ndim, bn = bs->ndim;
    int abd = an > 2 ? an - 2 : 0, bbd = bn > 2 ? bn - 2 : 0;
    int64_t ka, sa = 1, sb = 1;

    if (an < 1 || bn < 1)
        return cpu_op_fail(be, op, -EINVAL, "operand without dimensions");
    g->n = an == 1 ? 1 : (int)as->d[an - 2];
    ka = as->d[an - 1];
    g->k = bn == 1 ? (int)bs->d[0] : (int)bs->d[bn - 2];
    g->m = bn == 1 ? 1 : (int)bs->d[bn - 1];
    if (ka != g->k)
        return cpu_op_fail(be, op, -EINVAL,
                           "inner sizes %lld and %d do not match",
                           (long long)ka, g->k);

    g->nbd = abd > bbd ? abd : bbd;
    g->batches = g->abatches = g->bbatches = 1;
    for (int i = g->nbd - 1; i >= 0; i--) {
        int ia = i - (g->nbd - abd), ib = i - (g->nbd - bbd);
        int64_t da = ia >= 0 ? as->d[ia] : 1, db = ib >= 0 ? bs->d[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return cpu_op_fail(be, op, -EINVAL,
                               "batch sizes %lld and %lld do not broadcast",
                               (long long)da, (long long)db);
        g->bd[i] = da > db ? da : db;
        g->as[i] = da == 1 ? 0 : sa;
        g->bs[i] = db == 1 ? 0 : sb;
        sa *= da;
        sb *= db;
        g->batches *= g->bd[i];
    }
    g->abatches = sa;
    g->bbatches = sb;
    if (g->batches * g->n * g->m != cpu_shape_numel(&op->node->shape))
        return cpu_op_fail(be, op, -EINVAL,
                           "result does not have the node's shape");
    return 0;
}

/* Matrix offsets (in matrices) of operands a and b for result batch i. */
static void s_mm_batch(const mm_geom_t *g, int64_t i, int64_t *ai, int64_t *bi)
{
    *ai = *bi = 0;
    for (int d = g->nbd - 1; d >= 0; d--) {
        int64_t v = i % g->bd[d];
        i /= g->bd[d];
        *ai += v * g->as[d];
        *bi += v * g->bs[d];
    }
}

size_t cpu_multiply_workspace(const backend_t *be, const net_t *net,
                              const net_node_t *node)
{
    (void)be;
    (void)net;
    (void)node;
    return 0;
}

int cpu_multiply_forward(backend_t *be, const backend_op_t *op)
{
    mm_geom_t g;
    int rc = s_mm_geom(be, op, &g);
    const int64_t asz = (int64_t)g.n * g.k, bsz = (int64_t)g.k * g.m;
    const int64_t ysz = (int64_t)g.n * g.m;

    if (rc)
        return rc;
    if (g.batches >= be->threads && g.batches > 1) {
#pragma omp parallel for num_threads(be->threads) schedule(dynamic)
        for (int64_t i = 0; i < g.batches; i++) {
            int64_t ai, bi;
            s_mm_batch(&g, i, &ai, &bi);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.n, g.m,
                        g.k, 1.0f, op->x[0] + ai * asz, g.k,
                        op->x[1] + bi * bsz, g.m, 0.0f, op->y + i * ysz, g.m);
        }
        return 0;
    }
    for (int64_t i = 0; i < g.batches; i++) {
        int64_t ai, bi;
        s_mm_batch(&g, i, &ai, &bi);
        cpu_sgemm(be, false, false, g.n, g.m, g.k, 1.0f, op->x[0] + ai * asz,
                  g.k, op->x[1] + bi * bsz, g.m, 0.0f, op->y + i * ysz, g.m);
    }
    return 0;
}

/*
 * Gradient of one operand.  which == 0: dA = dY B^T (n x k); which == 1:
 * dB = A^T dY (k x m).  When the operand is broadcast over batches, the
 * batches reading one matrix are summed one after the other.
 */
static void s_mm_grad(backend_t *be, const backend_op_t *op, const mm_geom_t *g,
                      int which)
{
    const int64_t asz = (int64_t)g->n * g->k, bsz = (int64_t)g->k * g->m;
    const int64_t ysz = (int64_t)g->n * g->m;
    int64_t own = which ? g->bbatches : g->abatches;
    int64_t sz = which ? bsz : asz;
    float *d = op->dx[which];
    bool acc = op->dx_accumulate[which];
    bool disjoint = own == g->batches;

    if (!disjoint && !acc)
        memset(d, 0, (size_t)(own * sz) * sizeof(float));

    if (disjoint && g->batches >= be->threads && g->batches > 1) {
        float beta = acc ? 1.0f : 0.0f;
#pragma omp parallel for num_threads(be->threads) schedule(dynamic)
        for (int64_t i = 0; i < g->batches; i++) {
            int64_t ai, bi;
            const float *dy = op->dy + i * ysz;
            s_mm_batch(g, i, &ai, &bi);
            if (which == 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->n, g->k,
                            g->m, 1.0f, dy, g->m, op->x[1] + bi * bsz, g->m,
                            beta, d + ai * asz, g->k);
            else
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->k, g->m,
                            g->n, 1.0f, op->x[0] + ai * asz, g->k, dy, g->m,
                            beta, d + bi * bsz, g->m);
        }
        return;
    }
    for (int64_t i = 0; i < g->batches; i++) {
        int64_t ai, bi;
        float beta = disjoint && !acc ? 0.0f : 1.0f;
        const float *dy = op->dy + i * ysz;
        s_mm_batch(g, i, &ai, &bi);
        if (which == 0)
            cpu_sgemm(be, false, true, g->n, g->k, g->m, 1.0f, dy, g->m,
                      op->x[1] + bi * bsz, g->m, beta, d + ai * asz, g->k);
        else
            cpu_sgemm(be, true, false, g->k, g->m, g->n, 1.0f,
                      op->x[0] + ai * asz, g->k, dy, g->m, beta, d + bi * bsz,
                      g->m);
    }
}

int cpu_multiply_backward(backend_t *be, const backend_op_t *op)
{
    mm_geom_t g;
    int rc = s_mm_geom(be, op, &g);

    if (rc)
        return rc;
    for (int which = 0; which < 2; which++)
        if (op->dx[which])
            s_mm_grad(be, op, &g, which);
    return 0;
}
