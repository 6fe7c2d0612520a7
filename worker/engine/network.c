/*
 * network.c - parameters, memory plan, forward and backward of an
 * assembled network on a backend (see network.h for the plan itself).
 *
 * Workload: networks of tens to a few hundred nodes, built once per job
 * (and once more for the last partial batch), then run for tens of
 * thousands of steps.  So everything that can be decided at build time
 * is: which nodes run backward, which input gradients are needed and
 * whether they add, and every buffer's address.  A step only fills the
 * small backend_op_t of each node and calls the backend.
 */
#include "network.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_ops.h"
#include "rng.h"

#define NW_ALIGN 256              /* bytes, for every arena buffer */
#define NW_PARAM_ALIGN 16         /* floats, for every parameter */
#define NW_MAX_NODE_PARAMS 4

typedef struct nw_buf {
    size_t size;                  /* bytes, aligned */
    int birth, death;             /* inclusive times */
    size_t offset;
} nw_buf_t;

struct network {
    backend_t *be;
    const net_t *net;

    int n_params;
    net_param_t *params;
    size_t *param_off;            /* floats into param_mem / grad / mom */
    size_t n_train, n_all;        /* floats */
    float *param_mem, *grad_mem, *mom_mem;
    bool owns_params;
    int *p_first, *p_count;       /* per node: its parameters */

    int *y_buf;                   /* per node: its output's buffer, -1 for
                                     the external input */
    int *g_buf;                   /* per node: output gradient, -1 none */
    int *s_buf;                   /* per node: saved state, -1 none */
    bool *run_bwd;
    bool *acc;                    /* per input slot: dx_accumulate */
    int *acc_at;                  /* per node: first slot in acc */
    int n_bufs;
    nw_buf_t *bufs;
    size_t arena_bytes, activation_sum;
    uint8_t *arena;
    bool owns_arena;
    size_t ws_bytes;
    void *ws;
    bool owns_ws;

    int max_inputs;
    const float **x;              /* scratch for one op's pointers */
    float **dx;

    const float *input;
    uint64_t seed, step;
    int flags;
};

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static size_t s_round(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

static size_t s_shape_bytes(const graph_shape_t *s)
{
    size_t n = sizeof(float);

    for (int i = 0; i < s->ndim; i++)
        n *= (size_t)s->d[i];
    return n;
}

/* ----------------------------------------------------------- parameters */

static int s_params_layout(network_t *nw, char *err, size_t errlen)
{
    const net_t *net = nw->net;
    size_t at = 0;

    nw->n_params = net_param_list(net, &nw->params);
    if (nw->n_params < 0) {
        nw->params = NULL;
        s_err(err, errlen, "out of memory listing parameters");
        return -ENOMEM;
    }
    nw->param_off = calloc((size_t)nw->n_params + 1, sizeof(size_t));
    nw->p_first = calloc((size_t)net->n_nodes, sizeof(int));
    nw->p_count = calloc((size_t)net->n_nodes, sizeof(int));
    if (!nw->param_off || !nw->p_first || !nw->p_count) {
        s_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* trainable parameters first, then the buffers, each in list order */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < nw->n_params; i++) {
            const net_param_t *p = &nw->params[i];
            if (p->trainable != (pass == 0))
                continue;
            nw->param_off[i] = at;
            at += s_round((size_t)p->numel, NW_PARAM_ALIGN);
        }
        if (pass == 0)
            nw->n_train = at;
    }
    nw->n_all = at;
    for (int i = nw->n_params - 1; i >= 0; i--) {
        int node = nw->params[i].node;
        if (node < 0 || node >= net->n_nodes) {
            s_err(err, errlen, "parameter %s belongs to no node",
                  nw->params[i].name);
            return -EINVAL;
        }
        nw->p_first[node] = i;
        if (++nw->p_count[node] > NW_MAX_NODE_PARAMS) {
            s_err(err, errlen, "node %s has more than %d parameters",
                  net->nodes[node].name, NW_MAX_NODE_PARAMS);
            return -EINVAL;
        }
    }
    return 0;
}

/* Use the parameters of share, after checking they are the same list. */
static int s_params_share(network_t *nw, network_t *share, char *err,
                          size_t errlen)
{
    bool same = share->n_params == nw->n_params &&
                share->n_all == nw->n_all && share->n_train == nw->n_train;

    for (int i = 0; same && i < nw->n_params; i++)
        same = strcmp(share->params[i].name, nw->params[i].name) == 0 &&
               share->params[i].numel == nw->params[i].numel;
    if (!same) {
        s_err(err, errlen, "cannot share parameters: the two networks "
              "have different parameter lists");
        return -EINVAL;
    }
    nw->param_mem = share->param_mem;
    nw->grad_mem = share->grad_mem;
    nw->mom_mem = share->mom_mem;
    nw->owns_params = false;
    return 0;
}

static int s_params_alloc(network_t *nw, char *err, size_t errlen)
{
    backend_t *be = nw->be;
    size_t all = (nw->n_all ? nw->n_all : 1) * sizeof(float);
    size_t tr = (nw->n_train ? nw->n_train : 1) * sizeof(float);

    nw->owns_params = true;
    nw->param_mem = be->vt->alloc(be, all);
    nw->grad_mem = be->vt->alloc(be, tr);
    nw->mom_mem = be->vt->alloc(be, tr);
    if (!nw->param_mem || !nw->grad_mem || !nw->mom_mem) {
        s_err(err, errlen, "%s: out of memory for %zu parameters",
              be->device, nw->n_all);
        return -ENOMEM;
    }
    if (be->vt->zero(be, nw->param_mem, all) ||
        be->vt->zero(be, nw->grad_mem, tr) ||
        be->vt->zero(be, nw->mom_mem, tr)) {
        s_err(err, errlen, "%s: %s", be->device, be->err);
        return -EIO;
    }
    return 0;
}

/* Uniform in [-bound, bound) from a stream. */
static float s_uniform(uint64_t *state, double bound)
{
    double u = (double)(engine_rng_next(state) >> 40) / 16777216.0;
    return (float)((2.0 * u - 1.0) * bound);
}

/* The value PyTorch's reset_parameters() gives parameter i, filled. */
static void s_param_init(const network_t *nw, int i, uint64_t seed,
                         float *dst)
{
    const net_param_t *p = &nw->params[i];
    const net_node_t *node = &nw->net->nodes[p->node];
    const net_param_t *w = &nw->params[nw->p_first[p->node]];
    uint64_t state = engine_rng_key(seed, 0x696e6974ULL, (uint64_t)i);
    bool affine = node->op == GRAPH_OP_CONV2D || node->op == GRAPH_OP_LINEAR;
    float fill = p->kind == NET_PARAM_WEIGHT ||
                 p->kind == NET_PARAM_RUNNING_VAR ? 1.0f : 0.0f;

    if (affine && (p->kind == NET_PARAM_WEIGHT ||
                   p->kind == NET_PARAM_BIAS)) {
        int64_t fan_in = w->shape[0] ? w->numel / w->shape[0] : 1;
        double bound = 1.0 / sqrt((double)(fan_in > 0 ? fan_in : 1));
        for (int64_t k = 0; k < p->numel; k++)
            dst[k] = s_uniform(&state, bound);
        return;
    }
    for (int64_t k = 0; k < p->numel; k++)
        dst[k] = fill;
}

int network_init(network_t *nw, uint64_t seed)
{
    backend_t *be = nw->be;
    float *host = calloc(nw->n_all ? nw->n_all : 1, sizeof(float));
    int rc;

    if (!host)
        return -ENOMEM;
    for (int i = 0; i < nw->n_params; i++)
        s_param_init(nw, i, seed, host + nw->param_off[i]);
    rc = be->vt->upload(be, nw->param_mem, host, nw->n_all * sizeof(float));
    if (rc == 0 && nw->n_train)
        rc = be->vt->zero(be, nw->mom_mem, nw->n_train * sizeof(float));
    free(host);
    return rc;
}

/* ------------------------------------------------------------------ plan */

static int s_buf_new(network_t *nw, size_t bytes, int birth, int death)
{
    nw_buf_t *b = &nw->bufs[nw->n_bufs];

    b->size = s_round(bytes ? bytes : 1, NW_ALIGN);
    b->birth = birth;
    b->death = death;
    nw->activation_sum += b->size;
    return nw->n_bufs++;
}

static void s_extend(network_t *nw, int buf, int t)
{
    if (buf >= 0 && nw->bufs[buf].death < t)
        nw->bufs[buf].death = t;
}

/* Which nodes run backward and which outputs need a gradient. */
static int s_plan_flow(network_t *nw, bool *wants)
{
    const net_t *net = nw->net;
    int n = net->n_nodes;
    bool *reach = calloc((size_t)n, sizeof(bool));

    if (!reach)
        return -ENOMEM;
    reach[net->output] = true;
    for (int i = n - 1; i >= 0; i--)
        for (int s = 0; reach[i] && s < net->nodes[i].n_inputs; s++)
            reach[net->nodes[i].inputs[s]] = true;
    for (int i = 1; i < n; i++) {
        const net_node_t *nd = &net->nodes[i];
        bool any = false;
        for (int k = nw->p_first[i]; k < nw->p_first[i] + nw->p_count[i];
             k++)
            any |= nw->params[k].trainable;
        for (int s = 0; s < nd->n_inputs; s++)
            any |= wants[nd->inputs[s]];
        wants[i] = reach[i] && any;
        nw->run_bwd[i] = wants[i];
    }
    free(reach);
    return 0;
}

/* Activation and saved-state buffers with their lifetimes. */
static void s_plan_activations(network_t *nw)
{
    const net_t *net = nw->net;
    backend_t *be = nw->be;
    int n = net->n_nodes, t_loss = n;

    nw->y_buf[0] = -1;
    for (int i = 1; i < n; i++) {
        const net_node_t *nd = &net->nodes[i];
        size_t saved = be->vt->saved_bytes(be, net, nd);
        if (nd->op == GRAPH_OP_RESHAPE)
            nw->y_buf[i] = nw->y_buf[nd->inputs[0]];
        else
            nw->y_buf[i] = s_buf_new(nw, s_shape_bytes(&nd->shape), i, i);
        nw->s_buf[i] = saved ? s_buf_new(nw, saved, i,
                                         nw->run_bwd[i] ? 2 * n - i : i)
                             : -1;
    }
    for (int j = 1; j < n; j++) {
        const net_node_t *nd = &net->nodes[j];
        const graph_op_info_t *info = graph_op_info(nd->op);
        for (int s = 0; s < nd->n_inputs; s++) {
            int b = nw->y_buf[nd->inputs[s]];
            s_extend(nw, b, j);
            if (nw->run_bwd[j] && info->bwd_needs_input)
                s_extend(nw, b, 2 * n - j);
        }
        if (nw->run_bwd[j] && info->bwd_needs_output)
            s_extend(nw, nw->y_buf[j], 2 * n - j);
    }
    s_extend(nw, nw->y_buf[net->output], t_loss);
}

/* Output gradients: born at the first writer, dead after their node. */
static int s_plan_gradients(network_t *nw, const bool *wants)
{
    const net_t *net = nw->net;
    int n = net->n_nodes;
    bool *written = calloc((size_t)n, sizeof(bool));
    int *first = malloc((size_t)n * sizeof(int));

    if (!written || !first) {
        free(written);
        free(first);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        first[i] = 2 * n + 1;
        nw->g_buf[i] = -1;        /* the image (node 0) never has one */
    }
    first[net->output] = n;
    written[net->output] = true;
    for (int j = n - 1; j >= 1; j--) {
        const net_node_t *nd = &net->nodes[j];
        if (!nw->run_bwd[j])
            continue;
        for (int s = 0; s < nd->n_inputs; s++) {
            int k = nd->inputs[s];
            if (!wants[k])
                continue;
            nw->acc[nw->acc_at[j] + s] = written[k];
            written[k] = true;
            if (first[k] > 2 * n - j)
                first[k] = 2 * n - j;
        }
    }
    for (int i = 1; i < n; i++) {
        if (!wants[i])
            continue;
        /* a node that needs a gradient reaches the output, so some
         * consumer (or the loss) writes it */
        assert(first[i] <= 2 * n - i);
        nw->g_buf[i] = s_buf_new(nw, s_shape_bytes(&net->nodes[i].shape),
                                 first[i], 2 * n - i);
    }
    free(written);
    free(first);
    return 0;
}

static int s_by_size(const void *a, const void *b)
{
    const nw_buf_t *x = *(nw_buf_t *const *)a, *y = *(nw_buf_t *const *)b;

    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    return x->birth - y->birth;
}

static int s_by_offset(const void *a, const void *b)
{
    const nw_buf_t *x = *(nw_buf_t *const *)a, *y = *(nw_buf_t *const *)b;

    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/*
 * Place the buffers: largest first, each at the lowest offset that no
 * already placed buffer with an overlapping lifetime occupies.
 */
static int s_plan_place(network_t *nw)
{
    int n = nw->n_bufs, placed = 0;
    nw_buf_t **order = malloc((size_t)(n + 1) * sizeof(*order));
    nw_buf_t **live = malloc((size_t)(n + 1) * sizeof(*live));

    if (!order || !live) {
        free(order);
        free(live);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++)
        order[i] = &nw->bufs[i];
    qsort(order, (size_t)n, sizeof(*order), s_by_size);
    nw->arena_bytes = 0;
    for (int i = 0; i < n; i++) {
        nw_buf_t *b = order[i];
        int m = 0;
        size_t at = 0;
        if (nw->flags & NETWORK_NO_REUSE) {
            b->offset = nw->arena_bytes;
            nw->arena_bytes += b->size;
            continue;
        }
        for (int k = 0; k < placed; k++)
            if (order[k]->birth <= b->death && b->birth <= order[k]->death)
                live[m++] = order[k];
        qsort(live, (size_t)m, sizeof(*live), s_by_offset);
        for (int k = 0; k < m; k++) {
            if (live[k]->offset >= at + b->size)
                break;
            if (live[k]->offset + live[k]->size > at)
                at = live[k]->offset + live[k]->size;
        }
        b->offset = at;
        placed++;
        if (at + b->size > nw->arena_bytes)
            nw->arena_bytes = at + b->size;
    }
    free(order);
    free(live);
    return 0;
}

static int s_plan(network_t *nw, char *err, size_t errlen)
{
    const net_t *net = nw->net;
    int n = net->n_nodes, slots = 0;
    bool *wants = calloc((size_t)n, sizeof(bool));
    int rc = -ENOMEM;

    nw->y_buf = calloc((size_t)n, sizeof(int));
    nw->g_buf = calloc((size_t)n, sizeof(int));
    nw->s_buf = calloc((size_t)n, sizeof(int));
    nw->run_bwd = calloc((size_t)n, sizeof(bool));
    nw->acc_at = calloc((size_t)n, sizeof(int));
    nw->bufs = calloc((size_t)n * 3 + 1, sizeof(nw_buf_t));
    if (!wants || !nw->y_buf || !nw->g_buf || !nw->s_buf || !nw->run_bwd ||
        !nw->acc_at || !nw->bufs)
        goto out;
    for (int i = 0; i < n; i++) {
        nw->acc_at[i] = slots;
        slots += net->nodes[i].n_inputs;
        if (net->nodes[i].n_inputs > nw->max_inputs)
            nw->max_inputs = net->nodes[i].n_inputs;
    }
    nw->acc = calloc((size_t)slots + 1, sizeof(bool));
    nw->x = calloc((size_t)nw->max_inputs + 1, sizeof(float *));
    nw->dx = calloc((size_t)nw->max_inputs + 1, sizeof(float *));
    if (!nw->acc || !nw->x || !nw->dx)
        goto out;
    rc = s_plan_flow(nw, wants);
    if (rc)
        goto out;
    s_plan_activations(nw);
    rc = s_plan_gradients(nw, wants);
    if (rc == 0)
        rc = s_plan_place(nw);
out:
    if (rc)
        s_err(err, errlen, "out of memory planning %d nodes", n);
    free(wants);
    return rc;
}

/* The arena and workspace: own ones, or those of share if they fit. */
static int s_arena(network_t *nw, network_t *share, char *err, size_t errlen)
{
    backend_t *be = nw->be;
    const net_t *net = nw->net;

    for (int i = 1; i < net->n_nodes; i++) {
        size_t w = be->vt->workspace_bytes(be, net, &net->nodes[i]);
        if (w > nw->ws_bytes)
            nw->ws_bytes = w;
    }
    if (share && share->arena_bytes >= nw->arena_bytes) {
        nw->arena = share->arena;
    } else {
        nw->arena = be->vt->alloc(be, nw->arena_bytes ? nw->arena_bytes
                                                      : 1);
        nw->owns_arena = true;
    }
    if (share && share->ws_bytes >= nw->ws_bytes) {
        nw->ws = share->ws;
    } else if (nw->ws_bytes) {
        nw->ws = be->vt->alloc(be, nw->ws_bytes);
        nw->owns_ws = true;
    }
    if (!nw->arena || (nw->ws_bytes && !nw->ws)) {
        s_err(err, errlen, "%s: out of memory for activations (%zu bytes) "
              "and workspace (%zu bytes)", be->device, nw->arena_bytes,
              nw->ws_bytes);
        return -ENOMEM;
    }
    return 0;
}

int network_new(backend_t *be, const net_t *net, network_t *share,
                network_t **out, char *err, size_t errlen)
{
    return network_new_ex(be, net, share, 0, out, err, errlen);
}

int network_new_ex(backend_t *be, const net_t *net, network_t *share,
                   int flags, network_t **out, char *err, size_t errlen)
{
    network_t *nw = calloc(1, sizeof(*nw));
    int rc = -ENOMEM;

    *out = NULL;
    if (!nw) {
        s_err(err, errlen, "out of memory");
        return rc;
    }
    nw->be = be;
    nw->net = net;
    nw->flags = flags;
    for (int i = 1; i < net->n_nodes; i++) {
        if (!be->vt->supports(be, &net->nodes[i])) {
            s_err(err, errlen, "backend %s does not support node %s (%s)",
                  be->device, net->nodes[i].name,
                  graph_op_name(net->nodes[i].op));
            rc = -ENOTSUP;
            goto fail;
        }
    }
    rc = s_params_layout(nw, err, errlen);
    if (rc == 0)
        rc = share ? s_params_share(nw, share, err, errlen)
                   : s_params_alloc(nw, err, errlen);
    if (rc == 0)
        rc = s_plan(nw, err, errlen);
    if (rc == 0)
        rc = s_arena(nw, share, err, errlen);
    if (rc)
        goto fail;
    *out = nw;
    return 0;
fail:
    network_destroy(&nw);
    return rc;
}

void network_destroy(network_t **pnw)
{
    network_t *nw = pnw ? *pnw : NULL;
    backend_t *be;

    if (!nw)
        return;
    be = nw->be;
    if (nw->owns_params) {
        if (nw->param_mem)
            be->vt->free(be, nw->param_mem);
        if (nw->grad_mem)
            be->vt->free(be, nw->grad_mem);
        if (nw->mom_mem)
            be->vt->free(be, nw->mom_mem);
    }
    if (nw->owns_arena && nw->arena)
        be->vt->free(be, nw->arena);
    if (nw->owns_ws && nw->ws)
        be->vt->free(be, nw->ws);
    free(nw->params);
    free(nw->param_off);
    free(nw->p_first);
    free(nw->p_count);
    free(nw->y_buf);
    free(nw->g_buf);
    free(nw->s_buf);
    free(nw->run_bwd);
    free(nw->acc);
    free(nw->acc_at);
    free(nw->bufs);
    free(nw->x);
    free(nw->dx);
    free(nw);
    *pnw = NULL;
}

const net_t *network_net(const network_t *nw)
{
    return nw->net;
}

/* ------------------------------------------------------------ execution */

static float *s_buf_ptr(const network_t *nw, int b)
{
    return (float *)(nw->arena + nw->bufs[b].offset);
}

static float *s_y(const network_t *nw, int node)
{
    int b = nw->y_buf[node];
    return b < 0 ? (float *)nw->input : s_buf_ptr(nw, b);
}

/* The op of node i with its inputs, output, parameters and state. */
static void s_op_fill(network_t *nw, int i, backend_op_t *op,
                      const float **w, float **dw, bool training)
{
    const net_node_t *nd = &nw->net->nodes[i];
    int m = 0;

    for (int s = 0; s < nd->n_inputs; s++)
        nw->x[s] = s_y(nw, nd->inputs[s]);
    for (int k = nw->p_first[i]; k < nw->p_first[i] + nw->p_count[i]; k++) {
        w[k - nw->p_first[i]] = nw->param_mem + nw->param_off[k];
        if (nw->params[k].trainable)
            dw[m++] = nw->grad_mem + nw->param_off[k];
    }
    memset(op, 0, sizeof(*op));
    op->net = nw->net;
    op->node = nd;
    op->n_inputs = nd->n_inputs;
    op->x = nw->x;
    op->y = s_y(nw, i);
    op->w = w;
    op->dw = dw;
    op->saved = nw->s_buf[i] >= 0 ? s_buf_ptr(nw, nw->s_buf[i]) : NULL;
    op->workspace = nw->ws;
    op->workspace_size = nw->ws_bytes;
    op->training = training;
    op->rng_key = engine_rng_key(nw->seed, nw->step, (uint64_t)i);
}

int network_forward(network_t *nw, const float *x, bool training,
                    uint64_t seed, uint64_t step, char *err, size_t errlen)
{
    backend_t *be = nw->be;
    const float *w[NW_MAX_NODE_PARAMS];
    float *dw[NW_MAX_NODE_PARAMS];
    backend_op_t op;

    nw->input = x;
    nw->seed = seed;
    nw->step = step;
    for (int i = 1; i < nw->net->n_nodes; i++) {
        s_op_fill(nw, i, &op, w, dw, training);
        op.dw = NULL;
        if (be->vt->forward(be, &op) != 0) {
            s_err(err, errlen, "forward of %s (%s): %s",
                  nw->net->nodes[i].name,
                  graph_op_name(nw->net->nodes[i].op), be->err);
            return -EIO;
        }
    }
    return 0;
}

const float *network_logits(const network_t *nw)
{
    return s_y(nw, nw->net->output);
}

float *network_dlogits(network_t *nw)
{
    return s_buf_ptr(nw, nw->g_buf[nw->net->output]);
}

int network_backward(network_t *nw, char *err, size_t errlen)
{
    backend_t *be = nw->be;
    const float *w[NW_MAX_NODE_PARAMS];
    float *dw[NW_MAX_NODE_PARAMS];
    backend_op_t op;

    for (int i = nw->net->n_nodes - 1; i >= 1; i--) {
        const net_node_t *nd = &nw->net->nodes[i];
        if (!nw->run_bwd[i])
            continue;
        s_op_fill(nw, i, &op, w, dw, true);
        for (int s = 0; s < nd->n_inputs; s++) {
            int g = nw->g_buf[nd->inputs[s]];
            nw->dx[s] = g >= 0 ? s_buf_ptr(nw, g) : NULL;
        }
        op.dx = nw->dx;
        op.dx_accumulate = nw->acc + nw->acc_at[i];
        op.dy = s_buf_ptr(nw, nw->g_buf[i]);
        if (be->vt->backward(be, &op) != 0) {
            s_err(err, errlen, "backward of %s (%s): %s", nd->name,
                  graph_op_name(nd->op), be->err);
            return -EIO;
        }
    }
    return 0;
}

int network_sgd(network_t *nw, const backend_sgd_t *p, char *err,
                size_t errlen)
{
    backend_t *be = nw->be;

    if (nw->n_train == 0)
        return 0;
    if (be->vt->sgd(be, nw->param_mem, nw->grad_mem, nw->mom_mem,
                    nw->n_train, p) != 0) {
        s_err(err, errlen, "SGD step: %s", be->err);
        return -EIO;
    }
    return 0;
}

/* ------------------------------------------------------------ accessors */

int network_param_count(const network_t *nw)
{
    return nw->n_params;
}

const net_param_t *network_param(const network_t *nw, int i)
{
    return &nw->params[i];
}

float *network_param_data(network_t *nw, int i)
{
    return nw->param_mem + nw->param_off[i];
}

float *network_param_grad(network_t *nw, int i)
{
    return nw->params[i].trainable ? nw->grad_mem + nw->param_off[i] : NULL;
}

float *network_param_momentum(network_t *nw, int i)
{
    return nw->params[i].trainable ? nw->mom_mem + nw->param_off[i] : NULL;
}

void network_stats(const network_t *nw, network_stats_t *s)
{
    memset(s, 0, sizeof(*s));
    s->param_bytes = nw->n_all * sizeof(float);
    s->train_bytes = nw->n_train * sizeof(float);
    s->arena_bytes = nw->arena_bytes;
    s->activation_sum = nw->activation_sum;
    s->workspace_bytes = nw->ws_bytes;
    s->n_buffers = nw->n_bufs;
}

/* ------------------------------------------------------ weights on disk */

/* Host copies of the parameter and momentum memory. */
static int s_download(network_t *nw, float **params, float **mom)
{
    backend_t *be = nw->be;

    *params = calloc(nw->n_all + 1, sizeof(float));
    *mom = calloc(nw->n_train + 1, sizeof(float));
    if (!*params || !*mom)
        return -ENOMEM;
    if (be->vt->download(be, *params, nw->param_mem,
                         nw->n_all * sizeof(float)) != 0 ||
        (nw->n_train && be->vt->download(be, *mom, nw->mom_mem,
                                         nw->n_train * sizeof(float)) != 0))
        return -EIO;
    return 0;
}

int network_weights_save(network_t *nw, const char *path,
                         const char *const *meta, bool momenta, char *err,
                         size_t errlen)
{
    int n = nw->n_params, m = 0, rc;
    safetensors_entry_t *t = calloc((size_t)n * 2 + 1, sizeof(*t));
    char (*names)[80] = calloc((size_t)n + 1, sizeof(*names));
    float *host = NULL, *mom = NULL;

    rc = t && names ? s_download(nw, &host, &mom) : -ENOMEM;
    if (rc) {
        s_err(err, errlen, "%s: cannot read the weights back: %s", path,
              rc == -ENOMEM ? "out of memory" : nw->be->err);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const net_param_t *p = &nw->params[i];
        t[m++] = (safetensors_entry_t){p->name, p->ndim, p->shape,
                                       host + nw->param_off[i]};
    }
    for (int i = 0; momenta && i < n; i++) {
        const net_param_t *p = &nw->params[i];
        if (!p->trainable)
            continue;
        snprintf(names[i], sizeof(names[i]), "momentum.%s", p->name);
        t[m++] = (safetensors_entry_t){names[i], p->ndim, p->shape,
                                       mom + nw->param_off[i]};
    }
    rc = safetensors_save(path, t, m, meta, err, errlen);
out:
    free(t);
    free(names);
    free(host);
    free(mom);
    return rc;
}

static int s_param_index(const network_t *nw, const char *name)
{
    for (int i = 0; i < nw->n_params; i++)
        if (strcmp(nw->params[i].name, name) == 0)
            return i;
    return -1;
}

static bool s_ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

/* Every tensor of st must be one the network has (see the header). */
static int s_check_unexpected(const network_t *nw, const safetensors_t *st,
                              bool momenta, char *err, size_t errlen)
{
    for (int k = 0; k < safetensors_count(st); k++) {
        const char *name = safetensors_at(st, k)->name;
        bool is_mom = strncmp(name, "momentum.", 9) == 0;
        int i = s_param_index(nw, is_mom ? name + 9 : name);
        if (s_ends_with(name, ".num_batches_tracked") ||
            (is_mom && !momenta))
            continue;
        if (i < 0 || (is_mom && !nw->params[i].trainable)) {
            s_err(err, errlen, "%s: unexpected tensor %s (the network "
                  "has no such %s; another design or width?)",
                  safetensors_path(st), name,
                  is_mom ? "trainable parameter" : "parameter");
            return -EINVAL;
        }
    }
    return 0;
}

int network_weights_load(network_t *nw, const safetensors_t *st,
                         bool momenta, char *err, size_t errlen)
{
    backend_t *be = nw->be;
    float *host = calloc(nw->n_all + 1, sizeof(float));
    float *mom = calloc(nw->n_train + 1, sizeof(float));
    char name[80];
    int rc = host && mom ? 0 : -ENOMEM;

    if (rc)
        s_err(err, errlen, "out of memory loading weights");
    if (rc == 0)
        rc = s_check_unexpected(nw, st, momenta, err, errlen);
    for (int i = 0; rc == 0 && i < nw->n_params; i++) {
        const net_param_t *p = &nw->params[i];
        rc = safetensors_read_f32(st, p->name, p->ndim, p->shape,
                                  host + nw->param_off[i], err, errlen);
        if (rc == 0 && momenta && p->trainable) {
            snprintf(name, sizeof(name), "momentum.%s", p->name);
            rc = safetensors_read_f32(st, name, p->ndim, p->shape,
                                      mom + nw->param_off[i], err, errlen);
        }
    }
    if (rc == 0 && (be->vt->upload(be, nw->param_mem, host,
                                   nw->n_all * sizeof(float)) != 0 ||
                    (momenta && nw->n_train &&
                     be->vt->upload(be, nw->mom_mem, mom,
                                    nw->n_train * sizeof(float)) != 0))) {
        s_err(err, errlen, "%s: upload failed: %s", safetensors_path(st),
              be->err);
        rc = -EIO;
    }
    free(host);
    free(mom);
    return rc;
}
