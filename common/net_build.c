/*
 * net_build.c - assemble a design into the flat network the engine runs
 * and the exporter prints, and list its parameters.
 *
 * Each block instance is inferred at its own bindings with the real
 * batch size, and its nodes are copied out in topological order with
 * every argument resolved; input and output nodes are not materialised
 * but mapped onto the nodes that produce them.  Names are the module
 * paths of the exported PyTorch network (docs/skeletons.md), so the
 * parameter list doubles as its state_dict.
 */
#include "net_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct builder {
    net_t *net;
    int cap;
    graph_errors_t *errs;
} builder_t;

static net_node_t *s_add(builder_t *b, graph_op_t op, int instance,
                         int block_node, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static net_node_t *s_add(builder_t *b, graph_op_t op, int instance,
                         int block_node, const char *fmt, ...)
{
    net_t *n = b->net;
    net_node_t *x;
    va_list ap;

    if (n->n_nodes == b->cap) {
        int cap = b->cap ? 2 * b->cap : 64;
        net_node_t *v = realloc(n->nodes, (size_t)cap * sizeof *v);
        if (!v)
            return NULL;
        n->nodes = v;
        b->cap = cap;
    }
    x = &n->nodes[n->n_nodes++];
    memset(x, 0, sizeof *x);
    x->op = op;
    x->instance = instance;
    x->block_node = block_node;
    va_start(ap, fmt);
    vsnprintf(x->name, sizeof x->name, fmt, ap);
    va_end(ap);
    return x;
}

static int s_set_inputs(net_node_t *x, const int *ids, int n)
{
    x->inputs = malloc((size_t)(n > 0 ? n : 1) * sizeof *x->inputs);
    if (!x->inputs)
        return -1;
    if (ids)
        memcpy(x->inputs, ids, (size_t)n * sizeof *ids);
    x->n_inputs = n;
    return 0;
}

/* ReLU -> Conv2d 1x1 (stride 1 or 2, no bias) -> BN, from node src. */
static int s_pre(builder_t *b, const net_slot_t *s, int slot, int k,
                 int src)
{
    net_t *n = b->net;
    bool strided = s->pre[k] == NET_PRE_STRIDED;
    graph_shape_t in = n->nodes[src].shape;
    int64_t w = s->bind.dim;
    net_node_t *x;
    int id;

    x = s_add(b, GRAPH_OP_RELU, slot, -1, "%s.pre%d.relu", s->name, k);
    if (!x || s_set_inputs(x, &src, 1) < 0)
        return -1;
    x->shape = in;
    id = n->n_nodes - 1;

    x = s_add(b, GRAPH_OP_CONV2D, slot, -1, "%s.pre%d.conv", s->name, k);
    if (!x || s_set_inputs(x, &id, 1) < 0)
        return -1;
    x->in_ch = in.d[1];
    x->out_ch = w;
    x->kernel = x->dilation = x->groups = 1;
    x->stride = strided ? 2 : 1;
    x->shape = in;
    x->shape.d[1] = w;
    x->shape.d[2] = graph_same_out(in.d[2], 1, x->stride, 1, &x->pad,
                                   &x->crop);
    x->shape.d[3] = graph_same_out(in.d[3], 1, x->stride, 1, &x->pad,
                                   &x->crop);
    x->params = x->in_ch * w;
    x->macs = x->params * x->shape.d[2] * x->shape.d[3];
    id = n->n_nodes - 1;

    x = s_add(b, GRAPH_OP_BN, slot, -1, "%s.pre%d.bn", s->name, k);
    if (!x || s_set_inputs(x, &id, 1) < 0)
        return -1;
    x->shape = n->nodes[id].shape;
    x->in_ch = x->out_ch = w;
    x->params = 2 * w;
    return n->n_nodes - 1;
}

/* Copy one resolved block node into the net (macs per image). */
static void s_copy(net_node_t *x, const graph_resolved_t *r, int batch)
{
    x->shape = r->shape;
    x->in_ch = r->in_ch;
    x->out_ch = r->out_ch;
    x->kernel = r->kernel;
    x->stride = r->stride;
    x->dilation = r->dilation;
    x->groups = r->groups;
    x->pad = r->pad;
    x->crop = r->crop;
    x->bias = x->op == GRAPH_OP_CONV2D || x->op == GRAPH_OP_LINEAR;
    x->out_size = r->out_h;
    x->out_size_w = r->out_w;
    x->n_dims = r->n_dims;
    memcpy(x->dims, r->dims, sizeof x->dims);
    x->n_sizes = r->n_sizes;
    memcpy(x->sizes, r->sizes, sizeof x->sizes);
    x->prob = r->prob;
    x->params = r->params;
    x->macs = r->macs / batch;
}

static int s_instance(builder_t *b, const net_slot_t *s, int slot,
                      const int *slot_out, int batch)
{
    const graph_block_t *blk = s->block;
    net_t *n = b->net;
    int in_ids[2];
    int *map = NULL, *order = NULL, rc = -1, out_id = -1;
    graph_resolved_t *res = NULL;

    for (int k = 0; k < s->n_src; k++) {
        in_ids[k] = s->src[k] < 0 ? 0 : slot_out[s->src[k]];
        if (s->pre[k] != NET_PRE_NONE &&
            (in_ids[k] = s_pre(b, s, slot, k, in_ids[k])) < 0)
            return -1;
    }
    map = malloc((size_t)blk->n_nodes * sizeof *map);
    order = malloc((size_t)blk->n_nodes * sizeof *order);
    res = calloc((size_t)blk->n_nodes, sizeof *res);
    if (!map || !order || !res)
        goto out;
    if (graph_block_infer_ex(blk, &s->bind, &s->in_shape,
                             b->net->config.stem_scale, res, NULL, b->errs,
                             false) != 0 ||
        graph_block_topo(blk, order) < 0)
        goto out;

    for (int i = 0; i < blk->n_nodes; i++) {
        int pos = order[i];
        const graph_node_t *nd = &blk->nodes[pos];
        net_node_t *x;

        switch (nd->op) {
        case GRAPH_OP_INPUT:
        case GRAPH_OP_INPUT1:
            map[pos] = in_ids[0];
            continue;
        case GRAPH_OP_INPUT2:
            map[pos] = in_ids[s->n_src - 1];
            continue;
        case GRAPH_OP_OUTPUT:
            map[pos] = out_id = map[nd->inputs[0]];
            continue;
        default:
            break;
        }
        x = s_add(b, nd->op, slot, nd->index, "%s.n%d", s->name, nd->index);
        if (!x || s_set_inputs(x, NULL, nd->n_inputs) < 0)
            goto out;
        for (int k = 0; k < nd->n_inputs; k++)
            x->inputs[k] = map[nd->inputs[k]];
        s_copy(x, &res[pos], batch);
        map[pos] = n->n_nodes - 1;
    }
    rc = out_id;

out:
    free(map);
    free(order);
    free(res);
    return rc;
}

static int s_head(builder_t *b, int from, int classes)
{
    net_t *n = b->net;
    graph_shape_t in = n->nodes[from].shape;
    net_node_t *x;
    int id;

    x = s_add(b, GRAPH_OP_ADAPTIVEAVGPOOL2D, -1, -1, "head.pool");
    if (!x || s_set_inputs(x, &from, 1) < 0)
        return -1;
    x->shape = in;
    x->shape.d[2] = x->shape.d[3] = 1;
    x->out_size = x->out_size_w = 1;
    id = n->n_nodes - 1;

    x = s_add(b, GRAPH_OP_RESHAPE, -1, -1, "head.flatten");
    if (!x || s_set_inputs(x, &id, 1) < 0)
        return -1;
    x->shape = (graph_shape_t){.ndim = 2, .d = {in.d[0], in.d[1]},
                               .batch_mask = 1};
    x->n_sizes = 2;
    x->sizes[0] = in.d[0];
    x->sizes[1] = in.d[1];
    id = n->n_nodes - 1;

    x = s_add(b, GRAPH_OP_LINEAR, -1, -1, "classifier");
    if (!x || s_set_inputs(x, &id, 1) < 0)
        return -1;
    x->in_ch = in.d[1];
    x->out_ch = classes;
    x->bias = true;
    x->shape = (graph_shape_t){.ndim = 2, .d = {in.d[0], classes},
                               .batch_mask = 1};
    x->params = in.d[1] * classes + classes;
    x->macs = in.d[1] * classes;
    return n->n_nodes - 1;
}

int net_build(const graph_design_t *d, const net_config_t *cfg, int batch,
              net_t **out, graph_errors_t *errs)
{
    net_slot_t *slots = NULL;
    int slot_out[NET_MAX_SLOTS];
    net_choice_t choice;
    builder_t b = {.errs = errs};
    int n_slots, before = errs ? errs->n : 0;

    *out = NULL;
    if (batch < 1) {
        graph_errors_add(errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                         "design: batch size %d is not positive", batch);
        return -1;
    }
    if (net_choose_width(d, cfg, &choice, errs) < 0)
        return -1;
    slots = malloc(NET_MAX_SLOTS * sizeof *slots);
    b.net = calloc(1, sizeof *b.net);
    if (!slots || !b.net)
        goto fail;
    n_slots = net_slots_make(d, cfg, choice.width, batch, slots, errs);
    if (n_slots < 0)
        goto fail;

    net_t *n = b.net;
    n->config = *cfg;
    if (n->config.stem_scale == 0)
        n->config.stem_scale = 1;
    n->width = choice.width;
    n->batch = batch;
    n->instances = calloc((size_t)n_slots, sizeof *n->instances);
    if (!n->instances)
        goto fail;
    net_node_t *img = s_add(&b, GRAPH_OP_INPUT, -1, -1, "input");
    if (!img)
        goto fail;
    img->shape = (graph_shape_t){
        .ndim = 4, .d = {batch, cfg->in_c, cfg->in_h, cfg->in_w},
        .batch_mask = 1};

    for (int i = 0; i < n_slots; i++) {
        net_instance_t *inst = &n->instances[i];
        inst->role = slots[i].role;
        snprintf(inst->name, sizeof inst->name, "%s", slots[i].name);
        inst->bind = slots[i].bind;
        inst->first_node = n->n_nodes;
        slot_out[i] = s_instance(&b, &slots[i], i, slot_out, batch);
        if (slot_out[i] < 0)
            goto fail;
        inst->end_node = n->n_nodes;
        n->n_instances = i + 1;
    }
    n->output = s_head(&b, slot_out[n_slots - 1], cfg->classes);
    if (n->output < 0)
        goto fail;
    for (int i = 0; i < n->n_nodes; i++) {
        n->params += n->nodes[i].params;
        n->macs += n->nodes[i].macs;
    }
    free(slots);
    *out = n;
    return 0;

fail:
    if (errs && errs->n == before)
        graph_errors_add(errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                         "design: out of memory while assembling the "
                         "network");
    free(slots);
    net_destroy(&b.net);
    return -1;
}

void net_destroy(net_t **n)
{
    if (!n || !*n)
        return;
    for (int i = 0; i < (*n)->n_nodes; i++)
        free((*n)->nodes[i].inputs);
    free((*n)->nodes);
    free((*n)->instances);
    free(*n);
    *n = NULL;
}

/* ------------------------------------------------------------ parameters */

static net_param_t *s_param(net_param_t *v, int *k, int node,
                            const net_node_t *x, net_param_kind_t kind,
                            int ndim, const int64_t *shape)
{
    static const char *suffix[] = {"weight", "bias", "running_mean",
                                   "running_var"};
    net_param_t *p = &v[(*k)++];

    memset(p, 0, sizeof *p);
    p->node = node;
    p->kind = kind;
    snprintf(p->name, sizeof p->name, "%s.%s", x->name, suffix[kind]);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= shape[i];
    }
    p->trainable = kind == NET_PARAM_WEIGHT || kind == NET_PARAM_BIAS;
    return p;
}

int net_param_list(const net_t *n, net_param_t **out)
{
    int count = 0, k = 0;
    net_param_t *v;

    *out = NULL;
    for (int i = 0; i < n->n_nodes; i++) {
        const net_node_t *x = &n->nodes[i];
        if (x->op == GRAPH_OP_CONV2D || x->op == GRAPH_OP_LINEAR)
            count += 1 + x->bias;
        else if (x->op == GRAPH_OP_BN)
            count += 4;
        else if (x->op == GRAPH_OP_LN)
            count += 2;
    }
    v = calloc((size_t)count + 1, sizeof *v);
    if (!v)
        return -1;
    for (int i = 0; i < n->n_nodes; i++) {
        const net_node_t *x = &n->nodes[i];
        int64_t c = x->out_ch;
        int64_t conv[4] = {x->out_ch, x->groups ? x->in_ch / x->groups : 0,
                           x->kernel, x->kernel};
        int64_t lin[2] = {x->out_ch, x->in_ch};

        switch (x->op) {
        case GRAPH_OP_CONV2D:
            s_param(v, &k, i, x, NET_PARAM_WEIGHT, 4, conv);
            if (x->bias)
                s_param(v, &k, i, x, NET_PARAM_BIAS, 1, &c);
            break;
        case GRAPH_OP_LINEAR:
            s_param(v, &k, i, x, NET_PARAM_WEIGHT, 2, lin);
            if (x->bias)
                s_param(v, &k, i, x, NET_PARAM_BIAS, 1, &c);
            break;
        case GRAPH_OP_BN:
        case GRAPH_OP_LN:
            s_param(v, &k, i, x, NET_PARAM_WEIGHT, 1, &c);
            s_param(v, &k, i, x, NET_PARAM_BIAS, 1, &c);
            if (x->op == GRAPH_OP_BN) {
                s_param(v, &k, i, x, NET_PARAM_RUNNING_MEAN, 1, &c);
                s_param(v, &k, i, x, NET_PARAM_RUNNING_VAR, 1, &c);
            }
            break;
        default:
            break;
        }
    }
    *out = v;
    return k;
}
