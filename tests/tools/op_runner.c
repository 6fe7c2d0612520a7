/*
 * op_runner.c - run single operations on the CPU backend for the PyTorch
 * parity tests (tests/py/test_ops_parity.py).
 *
 *   op_runner [--threads N] IN.json OUT.json
 *
 * IN.json holds {"cases": [...]}; each case is one of:
 *  - an operation of the block format: {"op": "Conv2d", "args": {...
 *    net_node_t fields ...}, "inputs": [{"shape": [...], "data": [...]}],
 *    "out_shape": [...], "params": [[...]...], "dy": [...],
 *    "training": bool, "rng_key": "decimal u64", "need_dx": [bool...],
 *    "accumulate": [bool...], "dx_init": [[...]|null ...]}: runs forward
 *    then backward and writes y, dx, dw and the parameters after the
 *    forward pass (BN's running statistics);
 *  - {"op": "xent", "logits": [...], "n", "classes", "labels": [...]}:
 *    writes loss, correct and dlogits;
 *  - {"op": "sgd", "w": [...], "momentum", "weight_decay", "nesterov",
 *    "steps": [{"lr", "g": [...]}...]}: writes w and m after the steps;
 *  - {"op": "batch", "images": [...uint8...], "labels", "h", "w",
 *    "index", "shift_x", "shift_y", "flip", "pad", "mean", "std"}:
 *    writes out and labels_out.
 * Every buffer an operation must overwrite is filled with NaN first, so
 * an element it forgets shows up in the comparison.  A case that fails
 * gets {"error": MESSAGE}; the program exits 1 only when it cannot read
 * its input or write its output.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "graph_ops.h"
#include "net.h"

#define MAX_INPUTS 8
#define MAX_PARAMS 4

typedef struct runner {
    backend_t *be;
    char err[512];
} runner_t;

/* A float array from JSON, allocated with the backend; NULL on error. */
static float *s_floats(runner_t *r, json_t *a, int64_t want, bool nan_fill)
{
    float *p;
    int64_t n = a ? (int64_t)json_array_size(a) : 0;

    if (!nan_fill && n != want) {
        snprintf(r->err, sizeof(r->err),
                 "array of %" PRId64 " values where %" PRId64 " are needed", n,
                 want);
        return NULL;
    }
    p = r->be->vt->alloc(r->be, (size_t)(want ? want : 1) * sizeof(float));
    if (!p) {
        snprintf(r->err, sizeof(r->err), "%s", r->be->err);
        return NULL;
    }
    for (int64_t i = 0; i < want; i++)
        p[i] = nan_fill
                   ? NAN
                   : (float)json_number_value(json_array_get(a, (size_t)i));
    return p;
}

static json_t *s_array(const float *p, int64_t n)
{
    json_t *a = json_array();

    /* JSON has no NaN: non-finite values become null. */
    for (int64_t i = 0; i < n; i++)
        json_array_append_new(a,
                              isfinite(p[i]) ? json_real(p[i]) : json_null());
    return a;
}

static int s_shape(json_t *a, graph_shape_t *s)
{
    s->ndim = (int)json_array_size(a);
    s->batch_mask = 0;
    if (s->ndim < 1 || s->ndim > GRAPH_MAX_DIMS)
        return -1;
    for (int i = 0; i < s->ndim; i++)
        s->d[i] = json_integer_value(json_array_get(a, (size_t)i));
    return 0;
}

static int64_t s_numel(const graph_shape_t *s)
{
    int64_t n = 1;

    for (int i = 0; i < s->ndim; i++)
        n *= s->d[i];
    return n;
}

static int64_t s_int(json_t *o, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(o, key);
    return v ? json_integer_value(v) : dflt;
}

/* Fill the node's resolved arguments from the case's "args". */
static void s_node_args(net_node_t *node, json_t *args)
{
    json_t *v;

    node->in_ch = s_int(args, "in_ch", 0);
    node->out_ch = s_int(args, "out_ch", 0);
    node->kernel = s_int(args, "kernel", 1);
    node->stride = s_int(args, "stride", 1);
    node->dilation = s_int(args, "dilation", 1);
    node->groups = s_int(args, "groups", 1);
    node->pad = s_int(args, "pad", 0);
    node->crop = json_is_true(json_object_get(args, "crop"));
    node->bias = json_is_true(json_object_get(args, "bias"));
    node->out_size = s_int(args, "out_size", 0);
    node->out_size_w = s_int(args, "out_size_w", node->out_size);
    v = json_object_get(args, "prob");
    node->prob = v ? (float)json_number_value(v) : 0.0f;
    v = json_object_get(args, "dims");
    node->n_dims = v ? (int)json_array_size(v) : 0;
    for (int i = 0; i < node->n_dims && i < GRAPH_MAX_DIMS; i++)
        node->dims[i] = (int)json_integer_value(json_array_get(v, i));
    v = json_object_get(args, "sizes");
    node->n_sizes = v ? (int)json_array_size(v) : 0;
    for (int i = 0; i < node->n_sizes && i < GRAPH_MAX_DIMS; i++)
        node->sizes[i] = json_integer_value(json_array_get(v, i));
}

/* One operation of the block format, forward then backward. */
static json_t *s_run_op(runner_t *r, json_t *c, graph_op_t opcode)
{
    backend_t *be = r->be;
    json_t *ins = json_object_get(c, "inputs");
    json_t *params = json_object_get(c, "params");
    json_t *need = json_object_get(c, "need_dx");
    json_t *accj = json_object_get(c, "accumulate");
    json_t *init = json_object_get(c, "dx_init");
    json_t *out = NULL, *dxs, *dws, *pa;
    int ni = (int)json_array_size(ins), np = (int)json_array_size(params);
    net_node_t nodes[MAX_INPUTS + 1];
    int inputs[MAX_INPUTS];
    net_t net;
    float *x[MAX_INPUTS] = {0}, *dx[MAX_INPUTS] = {0};
    float *w[MAX_PARAMS] = {0}, *dw[MAX_PARAMS] = {0};
    bool acc[MAX_INPUTS] = {false};
    int64_t wn[MAX_PARAMS] = {0}, ny;
    float *y = NULL, *dy = NULL;
    void *saved = NULL, *ws = NULL;
    size_t ssz = 0, wsz = 0;
    backend_op_t op;
    const char *key = json_string_value(json_object_get(c, "rng_key"));

    memset(nodes, 0, sizeof(nodes));
    memset(&net, 0, sizeof(net));
    if (ni < 1 || ni > MAX_INPUTS || np > MAX_PARAMS) {
        snprintf(r->err, sizeof(r->err), "%d inputs, %d params", ni, np);
        return NULL;
    }
    for (int i = 0; i < ni; i++) {
        json_t *in = json_array_get(ins, i);
        nodes[i].op = GRAPH_OP_INPUT;
        if (s_shape(json_object_get(in, "shape"), &nodes[i].shape)) {
            snprintf(r->err, sizeof(r->err), "bad shape of input %d", i);
            goto done;
        }
        x[i] = s_floats(r, json_object_get(in, "data"),
                        s_numel(&nodes[i].shape), false);
        if (!x[i])
            goto done;
        inputs[i] = i;
    }
    net_node_t *node = &nodes[ni];
    node->op = opcode;
    snprintf(node->name, sizeof(node->name), "%s",
             json_string_value(json_object_get(c, "name"))
                 ? json_string_value(json_object_get(c, "name"))
                 : "case");
    node->instance = -1;
    node->block_node = -1;
    node->n_inputs = ni;
    node->inputs = inputs;
    s_node_args(node, json_object_get(c, "args"));
    if (s_shape(json_object_get(c, "out_shape"), &node->shape)) {
        snprintf(r->err, sizeof(r->err), "bad out_shape");
        goto done;
    }
    net.nodes = nodes;
    net.n_nodes = ni + 1;
    net.batch = (int)nodes[0].shape.d[0];

    ny = s_numel(&node->shape);
    for (int i = 0; i < np; i++) {
        json_t *pj = json_array_get(params, i);
        wn[i] = (int64_t)json_array_size(pj);
        w[i] = s_floats(r, pj, wn[i], false);
        dw[i] = s_floats(r, NULL, wn[i], true);
        if (!w[i] || !dw[i])
            goto done;
    }
    y = s_floats(r, NULL, ny, true);
    dy = s_floats(r, json_object_get(c, "dy"), ny, false);
    if (!y || !dy)
        goto done;
    for (int i = 0; i < ni; i++) {
        json_t *ij = init ? json_array_get(init, i) : NULL;
        acc[i] = json_is_true(json_array_get(accj, i));
        if (need && !json_is_true(json_array_get(need, i)))
            continue;
        dx[i] =
            s_floats(r, acc[i] ? ij : NULL, s_numel(&nodes[i].shape), !acc[i]);
        if (!dx[i])
            goto done;
    }
    ssz = be->vt->saved_bytes(be, &net, node);
    wsz = be->vt->workspace_bytes(be, &net, node);
    saved = be->vt->alloc(be, ssz ? ssz : 1);
    ws = be->vt->alloc(be, wsz ? wsz : 1);
    if (!saved || !ws) {
        snprintf(r->err, sizeof(r->err), "%s", be->err);
        goto done;
    }
    memset(ws, 0xff, wsz);

    memset(&op, 0, sizeof(op));
    op.net = &net;
    op.node = node;
    op.n_inputs = ni;
    op.x = (const float *const *)x;
    op.y = y;
    op.w = (const float *const *)w;
    op.dw = dw;
    op.dx = dx;
    op.dx_accumulate = acc;
    op.dy = dy;
    op.saved = saved;
    op.workspace = ws;
    op.workspace_size = wsz;
    op.training = json_is_true(json_object_get(c, "training"));
    op.rng_key = key ? strtoull(key, NULL, 10) : 0;

    if (!be->vt->supports(be, node)) {
        snprintf(r->err, sizeof(r->err), "not supported");
        goto done;
    }
    if (be->vt->forward(be, &op)) {
        snprintf(r->err, sizeof(r->err), "forward: %s", be->err);
        goto done;
    }
    out = json_object();
    json_object_set_new(out, "y", s_array(y, ny));
    pa = json_array();
    for (int i = 0; i < np; i++)
        json_array_append_new(pa, s_array(w[i], wn[i]));
    json_object_set_new(out, "params_after", pa);

    memset(ws, 0xff, wsz);
    if (be->vt->backward(be, &op)) {
        snprintf(r->err, sizeof(r->err), "backward: %s", be->err);
        json_decref(out);
        out = NULL;
        goto done;
    }
    dxs = json_array();
    for (int i = 0; i < ni; i++)
        json_array_append_new(dxs,
                              dx[i] ? s_array(dx[i], s_numel(&nodes[i].shape))
                                    : json_null());
    json_object_set_new(out, "dx", dxs);
    dws = json_array();
    for (int i = 0; i < np; i++)
        json_array_append_new(dws, s_array(dw[i], wn[i]));
    json_object_set_new(out, "dw", dws);

done:
    for (int i = 0; i < MAX_INPUTS; i++) {
        be->vt->free(be, x[i]);
        be->vt->free(be, dx[i]);
    }
    for (int i = 0; i < MAX_PARAMS; i++) {
        be->vt->free(be, w[i]);
        be->vt->free(be, dw[i]);
    }
    be->vt->free(be, y);
    be->vt->free(be, dy);
    be->vt->free(be, saved);
    be->vt->free(be, ws);
    return out;
}

static json_t *s_run_xent(runner_t *r, json_t *c)
{
    int n = (int)s_int(c, "n", 0), k = (int)s_int(c, "classes", 0);
    json_t *lj = json_object_get(c, "labels"), *out = NULL;
    float *z = s_floats(r, json_object_get(c, "logits"), (int64_t)n * k, false);
    float *g = s_floats(r, NULL, (int64_t)n * k, true);
    float acc[2] = {0.5f, 1.0f};
    int32_t *labels = calloc((size_t)(n > 0 ? n : 1), sizeof(int32_t));

    if (!z || !g || !labels)
        goto done;
    for (int i = 0; i < n; i++)
        labels[i] = (int32_t)json_integer_value(json_array_get(lj, i));
    if (r->be->vt->xent(r->be, z, labels, n, k, g, acc)) {
        snprintf(r->err, sizeof(r->err), "%s", r->be->err);
        goto done;
    }
    /* acc started at (0.5, 1): the function adds to it. */
    out = json_object();
    json_object_set_new(out, "loss", json_real(acc[0] - 0.5f));
    json_object_set_new(out, "correct", json_real(acc[1] - 1.0f));
    json_object_set_new(out, "dlogits", s_array(g, (int64_t)n * k));
done:
    r->be->vt->free(r->be, z);
    r->be->vt->free(r->be, g);
    free(labels);
    return out;
}

static json_t *s_run_sgd(runner_t *r, json_t *c)
{
    json_t *wj = json_object_get(c, "w"), *steps = json_object_get(c, "steps");
    int64_t n = (int64_t)json_array_size(wj);
    float *w = s_floats(r, wj, n, false), *m = NULL, *g = NULL;
    json_t *out = NULL;
    backend_sgd_t p;

    p.momentum = (float)json_number_value(json_object_get(c, "momentum"));
    p.weight_decay =
        (float)json_number_value(json_object_get(c, "weight_decay"));
    p.nesterov = json_is_true(json_object_get(c, "nesterov"));
    m = r->be->vt->alloc(r->be, (size_t)n * sizeof(float));
    if (!w || !m)
        goto done;
    r->be->vt->zero(r->be, m, (size_t)n * sizeof(float));
    for (size_t s = 0; s < json_array_size(steps); s++) {
        json_t *st = json_array_get(steps, s);
        p.lr = (float)json_number_value(json_object_get(st, "lr"));
        g = s_floats(r, json_object_get(st, "g"), n, false);
        if (!g)
            goto done;
        if (r->be->vt->sgd(r->be, w, g, m, (size_t)n, &p)) {
            snprintf(r->err, sizeof(r->err), "%s", r->be->err);
            goto done;
        }
        r->be->vt->free(r->be, g);
        g = NULL;
    }
    out = json_object();
    json_object_set_new(out, "w", s_array(w, n));
    json_object_set_new(out, "m", s_array(m, n));
done:
    r->be->vt->free(r->be, w);
    r->be->vt->free(r->be, m);
    r->be->vt->free(r->be, g);
    return out;
}

static json_t *s_run_batch(runner_t *r, json_t *c)
{
    json_t *imj = json_object_get(c, "images"),
           *lj = json_object_get(c, "labels");
    json_t *ij = json_object_get(c, "index"), *out = NULL;
    int h = (int)s_int(c, "h", 0), w = (int)s_int(c, "w", 0);
    int n = (int)json_array_size(ij), total = (int)json_array_size(lj);
    size_t npix = json_array_size(imj);
    uint8_t *img = malloc(npix ? npix : 1);
    int32_t *labels = calloc((size_t)total + 1, sizeof(int32_t));
    int32_t *index = calloc((size_t)n + 1, sizeof(int32_t));
    int32_t *lout = calloc((size_t)n + 1, sizeof(int32_t));
    int8_t *sx = calloc((size_t)n + 1, 1), *sy = calloc((size_t)n + 1, 1);
    uint8_t *flip = calloc((size_t)n + 1, 1);
    float *o = s_floats(r, NULL, (int64_t)n * 3 * h * w, true);
    backend_batch_spec_t spec;

    if (!img || !labels || !index || !lout || !sx || !sy || !flip || !o)
        goto done;
    if (npix != (size_t)total * 3 * h * w) {
        snprintf(r->err, sizeof(r->err), "images do not fit labels");
        goto done;
    }
    for (size_t i = 0; i < npix; i++)
        img[i] = (uint8_t)json_integer_value(json_array_get(imj, i));
    for (int i = 0; i < total; i++)
        labels[i] = (int32_t)json_integer_value(json_array_get(lj, i));
    for (int i = 0; i < n; i++) {
        index[i] = (int32_t)json_integer_value(json_array_get(ij, i));
        sx[i] = (int8_t)json_integer_value(
            json_array_get(json_object_get(c, "shift_x"), i));
        sy[i] = (int8_t)json_integer_value(
            json_array_get(json_object_get(c, "shift_y"), i));
        flip[i] = (uint8_t)json_integer_value(
            json_array_get(json_object_get(c, "flip"), i));
    }
    memset(&spec, 0, sizeof(spec));
    spec.index = index;
    spec.shift_x = sx;
    spec.shift_y = sy;
    spec.flip = flip;
    spec.n = n;
    spec.pad = (int)s_int(c, "pad", 0);
    for (int k = 0; k < 3; k++) {
        spec.mean[k] = (float)json_number_value(
            json_array_get(json_object_get(c, "mean"), k));
        spec.std[k] = (float)json_number_value(
            json_array_get(json_object_get(c, "std"), k));
    }
    if (r->be->vt->batch(r->be, img, labels, h, w, &spec, o, lout)) {
        snprintf(r->err, sizeof(r->err), "%s", r->be->err);
        goto done;
    }
    out = json_object();
    json_object_set_new(out, "out", s_array(o, (int64_t)n * 3 * h * w));
    json_t *la = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(la, json_integer(lout[i]));
    json_object_set_new(out, "labels_out", la);
done:
    free(img);
    free(labels);
    free(index);
    free(lout);
    free(sx);
    free(sy);
    free(flip);
    r->be->vt->free(r->be, o);
    return out;
}

static json_t *s_run_case(runner_t *r, json_t *c)
{
    const char *name = json_string_value(json_object_get(c, "op"));
    graph_op_t op;

    r->err[0] = '\0';
    if (!name) {
        snprintf(r->err, sizeof(r->err), "case without an op");
        return NULL;
    }
    if (strcmp(name, "xent") == 0)
        return s_run_xent(r, c);
    if (strcmp(name, "sgd") == 0)
        return s_run_sgd(r, c);
    if (strcmp(name, "batch") == 0)
        return s_run_batch(r, c);
    op = graph_op_lookup(name, -1);
    if (op == GRAPH_OP_COUNT) {
        snprintf(r->err, sizeof(r->err), "unknown op '%s'", name);
        return NULL;
    }
    return s_run_op(r, c, op);
}

int main(int argc, char **argv)
{
    backend_options_t opt = {0};
    char err[256];
    runner_t r;
    json_error_t jerr;
    json_t *in, *cases, *res;
    int a = 1;

    if (argc > 2 && strcmp(argv[1], "--threads") == 0) {
        opt.threads = atoi(argv[2]);
        a = 3;
    }
    if (argc - a != 2) {
        fprintf(stderr, "usage: op_runner [--threads N] IN.json OUT.json\n");
        return 2;
    }
    in = json_load_file(argv[a], 0, &jerr);
    if (!in) {
        fprintf(stderr, "op_runner: %s:%d: %s\n", argv[a], jerr.line,
                jerr.text);
        return 1;
    }
    r.be = backend_new("cpu", &opt, err, sizeof(err));
    if (!r.be) {
        fprintf(stderr, "op_runner: %s\n", err);
        json_decref(in);
        return 1;
    }
    cases = json_object_get(in, "cases");
    res = json_array();
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i), *o = s_run_case(&r, c);
        if (!o) {
            o = json_object();
            json_object_set_new(o, "error", json_string(r.err));
        }
        json_array_append_new(res, o);
    }
    if (r.be->bytes_in_use != 0)
        fprintf(stderr, "op_runner: %lld bytes still allocated\n",
                (long long)r.be->bytes_in_use);
    json_t *doc = json_pack("{s:o, s:I, s:I}", "cases", res, "peak_bytes",
                            (json_int_t)r.be->peak_bytes, "bytes_in_use",
                            (json_int_t)r.be->bytes_in_use);
    backend_destroy(&r.be);
    json_decref(in);
    if (json_dump_file(doc, argv[a + 1], JSON_COMPACT)) {
        fprintf(stderr, "op_runner: cannot write %s\n", argv[a + 1]);
        json_decref(doc);
        return 1;
    }
    json_decref(doc);
    return 0;
}
