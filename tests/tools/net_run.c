/*
 * net_run.c - run a whole network on given weights and batches, for the
 * PyTorch parity tests of whole networks (tests/py/test_network_parity.py).
 *
 *   net_run DESIGN WEIGHTS BATCHES OUT [options]   (safetensors files)
 *     --width N --classes K --size S (input S x S) --cells N --batch B
 *     --steps N --lr X --momentum X --weight-decay X --no-nesterov
 *     --threads N --seed N --skeleton nb201|darts --stem-scale S --states
 *
 * WEIGHTS holds the starting weights under their net_param_list names,
 * BATCHES the batches: "x" (B, 3, S, S) and "labels" (B) as float32 (used
 * for every step), or "x.<step>" and "labels.<step>" per step.  The program
 * runs step 0 as forward (training mode), loss, backward and writes to
 * OUT the logits ("logits"), the mean loss ("loss") and every parameter
 * gradient ("grad.<name>"); then it runs `steps` SGD steps in all (step
 * 0 included) and writes each step's loss before its update ("losses"),
 * the weights and BN buffers after them ("final.<name>"), and the logits
 * of the last batch in evaluation mode ("eval_logits").  With --states
 * it also writes the state before each step s and after the last:
 * "w.<s>.<name>" for every parameter and BN buffer and "m.<s>.<name>"
 * for every momentum.  The metadata
 * "droppath" maps each DropPath node's name to its node id, from which
 * its masks are keyed (engine_rng_key(seed, step, id)).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "graph.h"
#include "net.h"
#include "network.h"
#include "safetensors.h"

typedef struct opts {
    int width, classes, size, cells, batch, steps, threads;
    double lr, momentum, wd;
    bool nesterov;
    uint64_t seed;
    int skeleton;
    int stem_scale;
    bool states;
} opts_t;

static int s_die(const char *what)
{
    fprintf(stderr, "net_run: %s\n", what);
    return 1;
}

static char *s_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        *len = fread(buf, 1, (size_t)n, f);
        buf[*len] = 0;
    }
    fclose(f);
    return buf;
}

static int s_parse(int argc, char **argv, opts_t *o)
{
    static const struct option lo[] = {
        {"width", 1, NULL, 'w'},   {"classes", 1, NULL, 'k'},
        {"size", 1, NULL, 's'},    {"cells", 1, NULL, 'c'},
        {"batch", 1, NULL, 'b'},   {"steps", 1, NULL, 'n'},
        {"lr", 1, NULL, 'l'},      {"momentum", 1, NULL, 'm'},
        {"weight-decay", 1, NULL, 'd'}, {"no-nesterov", 0, NULL, 'N'},
        {"threads", 1, NULL, 't'}, {"seed", 1, NULL, 'S'},
        {"skeleton", 1, NULL, 'K'}, {"states", 0, NULL, 'X'},
        {"stem-scale", 1, NULL, 'G'}, {NULL, 0, NULL, 0}};
    int c;

    *o = (opts_t){8, 10, 32, 1, 8, 1, 1, 0.1, 0.9, 5e-4, true, 777,
                  NET_SKELETON_NB201, 1, false};
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'w': o->width = atoi(optarg); break;
        case 'k': o->classes = atoi(optarg); break;
        case 's': o->size = atoi(optarg); break;
        case 'c': o->cells = atoi(optarg); break;
        case 'b': o->batch = atoi(optarg); break;
        case 'n': o->steps = atoi(optarg); break;
        case 'l': o->lr = atof(optarg); break;
        case 'm': o->momentum = atof(optarg); break;
        case 'd': o->wd = atof(optarg); break;
        case 'N': o->nesterov = false; break;
        case 't': o->threads = atoi(optarg); break;
        case 'S': o->seed = strtoull(optarg, NULL, 10); break;
        case 'X': o->states = true; break;
        case 'G': o->stem_scale = atoi(optarg); break;
        case 'K':
            o->skeleton = net_skeleton_parse(optarg);
            if (o->skeleton < 0)
                return -1;
            break;
        default: return -1;
        }
    }
    return argc - optind == 4 ? 0 : -1;
}

/* The batch of a step, uploaded: x and labels (from float32). */
static int s_batch(backend_t *be, const safetensors_t *in, int step,
                   const opts_t *o, float *x, int32_t *labels, char *err,
                   size_t errlen)
{
    int64_t xs[4] = {o->batch, 3, o->size, o->size}, ls[1] = {o->batch};
    size_t nx = (size_t)o->batch * 3 * o->size * o->size;
    float *hx = malloc(nx * sizeof(float));
    float *hl = malloc((size_t)o->batch * sizeof(float));
    int32_t *il = malloc((size_t)o->batch * sizeof(int32_t));
    char xn[32], ln[32];
    int rc = hx && hl && il ? 0 : -ENOMEM;

    snprintf(xn, sizeof(xn), "x.%d", step);
    snprintf(ln, sizeof(ln), "labels.%d", step);
    if (!safetensors_find(in, xn)) {
        snprintf(xn, sizeof(xn), "x");
        snprintf(ln, sizeof(ln), "labels");
    }
    if (rc == 0)
        rc = safetensors_read_f32(in, xn, 4, xs, hx, err, errlen);
    if (rc == 0)
        rc = safetensors_read_f32(in, ln, 1, ls, hl, err, errlen);
    for (int i = 0; rc == 0 && i < o->batch; i++)
        il[i] = (int32_t)hl[i];
    if (rc == 0 && (be->vt->upload(be, x, hx, nx * sizeof(float)) ||
                    be->vt->upload(be, labels, il,
                                   (size_t)o->batch * sizeof(int32_t))))
        rc = -EIO;
    free(hx);
    free(hl);
    free(il);
    return rc;
}

typedef struct out {
    safetensors_entry_t *t;
    int n, cap;
    int64_t *shapes;          /* 4 per entry */
    char **names;
} out_t;

/* Append a copy of device data as tensor name. */
static void s_add(out_t *o, backend_t *be, const char *name, int ndim,
                  const int64_t *shape, const float *dev)
{
    size_t n = 1;
    float *h;

    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    h = malloc((n ? n : 1) * sizeof(float));
    be->vt->download(be, h, dev, n * sizeof(float));
    o->names[o->n] = strdup(name);
    memcpy(o->shapes + 4 * o->n, shape, (size_t)ndim * sizeof(int64_t));
    o->t[o->n] = (safetensors_entry_t){o->names[o->n], ndim,
                                       o->shapes + 4 * o->n, h};
    o->n++;
}

/* {"cells.0.n7": 41, ...}: the DropPath nodes and their ids. */
static char *s_droppath_json(const net_t *net)
{
    size_t cap = 64 + (size_t)net->n_nodes * 64, at = 0;
    char *s = malloc(cap);

    if (!s)
        return NULL;
    at += (size_t)snprintf(s, cap, "{");
    for (int i = 0; i < net->n_nodes; i++)
        if (net->nodes[i].op == GRAPH_OP_DROPPATH)
            at += (size_t)snprintf(s + at, cap - at, "%s\"%s\": %d",
                                   at > 1 ? ", " : "", net->nodes[i].name,
                                   i);
    snprintf(s + at, cap - at, "}");
    return s;
}

/* "w.<s>.<name>" and "m.<s>.<name>" for the state before step s. */
static void s_add_state(out_t *out, backend_t *be, network_t *nw, int s)
{
    char name[128];

    for (int i = 0; i < network_param_count(nw); i++) {
        const net_param_t *p = network_param(nw, i);
        snprintf(name, sizeof(name), "w.%d.%s", s, p->name);
        s_add(out, be, name, p->ndim, p->shape, network_param_data(nw, i));
        if (!p->trainable)
            continue;
        snprintf(name, sizeof(name), "m.%d.%s", s, p->name);
        s_add(out, be, name, p->ndim, p->shape,
              network_param_momentum(nw, i));
    }
}

int main(int argc, char **argv)
{
    opts_t o;
    backend_options_t bo = {1, BACKEND_STRICT_FP32};
    graph_errors_t errs;
    graph_design_t *d = NULL;
    net_config_t cfg;
    net_t *net = NULL;
    network_t *nw = NULL;
    safetensors_t *in = NULL, *wts = NULL;
    backend_t *be;
    char err[512];
    size_t len = 0;
    char *text;

    if (s_parse(argc, argv, &o))
        return s_die("usage: net_run DESIGN WEIGHTS BATCHES OUT [options]");
    bo.threads = o.threads;
    text = s_read(argv[optind], &len);
    if (!text)
        return s_die("cannot read the design");
    graph_errors_init(&errs);
    if (graph_design_parse(text, len, argv[optind], &d, &errs) != 0)
        return s_die(errs.n ? errs.v[0].message : "bad design");
    net_config_default(&cfg, "cifar10");
    cfg.classes = o.classes;
    cfg.in_h = cfg.in_w = o.size;
    cfg.width = o.width;
    cfg.cells_per_stage = o.cells;
    cfg.stem_scale = o.stem_scale;
    cfg.skeleton = (net_skeleton_t)o.skeleton;
    if (net_build(d, &cfg, o.batch, &net, &errs) != 0)
        return s_die(errs.n ? errs.v[0].message : "net_build failed");
    be = backend_new("cpu", &bo, err, sizeof(err));
    if (!be)
        return s_die(err);
    if (network_new(be, net, NULL, &nw, err, sizeof(err)) ||
        safetensors_load(argv[optind + 1], &wts, err, sizeof(err)) ||
        safetensors_load(argv[optind + 2], &in, err, sizeof(err)) ||
        network_weights_load(nw, wts, false, err, sizeof(err)))
        return s_die(err);

    int np = network_param_count(nw);
    size_t cap = (size_t)np * (o.states ? 2 * (o.steps + 1) + 2 : 2) + 8;
    out_t out = {calloc(cap, sizeof(safetensors_entry_t)), 0, (int)cap,
                 calloc(cap * 4, sizeof(int64_t)),
                 calloc(cap, sizeof(char *))};
    float *x = be->vt->alloc(be, (size_t)o.batch * 3 * o.size * o.size * 4);
    int32_t *labels = be->vt->alloc(be, (size_t)o.batch * 4);
    float *acc = be->vt->alloc(be, 2 * sizeof(float));
    float *losses = calloc((size_t)o.steps + 1, sizeof(float));
    backend_sgd_t sgd = {(float)o.lr, (float)o.momentum, (float)o.wd,
                         o.nesterov};
    int64_t lshape[2] = {o.batch, o.classes}, one[1] = {1};
    int64_t nsteps[1] = {o.steps};
    char name[128];

    for (int s = 0; s < o.steps; s++) {
        float h[2];
        if (o.states)
            s_add_state(&out, be, nw, s);
        if (s_batch(be, in, s, &o, x, labels, err, sizeof(err)))
            return s_die(err);
        be->vt->zero(be, acc, sizeof(h));
        if (network_forward(nw, x, true, o.seed, (uint64_t)s, err,
                            sizeof(err)))
            return s_die(err);
        if (be->vt->xent(be, network_logits(nw), labels, o.batch, o.classes,
                         network_dlogits(nw), acc))
            return s_die(be->err);
        if (s == 0) /* before backward, which reuses its memory */
            s_add(&out, be, "logits", 2, lshape, network_logits(nw));
        if (network_backward(nw, err, sizeof(err)))
            return s_die(err);
        be->vt->download(be, h, acc, sizeof(h));
        losses[s] = h[0] / (float)o.batch;
        if (s == 0) {
            for (int i = 0; i < np; i++) {
                const net_param_t *p = network_param(nw, i);
                if (!p->trainable)
                    continue;
                snprintf(name, sizeof(name), "grad.%s", p->name);
                s_add(&out, be, name, p->ndim, p->shape,
                      network_param_grad(nw, i));
            }
        }
        if (network_sgd(nw, &sgd, err, sizeof(err)))
            return s_die(err);
    }
    {
        float *lv = malloc(sizeof(float));
        *lv = losses[0];
        out.names[out.n] = strdup("loss");
        out.t[out.n++] = (safetensors_entry_t){out.names[out.n - 1], 1, one,
                                               lv};
        out.names[out.n] = strdup("losses");
        out.t[out.n++] = (safetensors_entry_t){out.names[out.n - 1], 1,
                                               nsteps, losses};
    }
    if (o.states)
        s_add_state(&out, be, nw, o.steps);
    for (int i = 0; i < np; i++) {
        const net_param_t *p = network_param(nw, i);
        snprintf(name, sizeof(name), "final.%s", p->name);
        s_add(&out, be, name, p->ndim, p->shape, network_param_data(nw, i));
    }
    if (network_forward(nw, x, false, o.seed, 0, err, sizeof(err)))
        return s_die(err);
    s_add(&out, be, "eval_logits", 2, lshape, network_logits(nw));
    char *dp = s_droppath_json(net);
    const char *meta[] = {"droppath", dp, NULL};
    if (!dp || safetensors_save(argv[optind + 3], out.t, out.n, meta, err,
                                sizeof(err)))
        return s_die(dp ? err : "out of memory");
    free(dp);
    for (int i = 0; i < out.n; i++) {
        free(out.names[i]);
        if (out.t[i].data != losses)
            free((void *)out.t[i].data);
    }
    free(out.t);
    free(out.names);
    free(out.shapes);
    free(losses);
    free(text);
    be->vt->free(be, x);
    be->vt->free(be, labels);
    be->vt->free(be, acc);
    network_destroy(&nw);
    backend_destroy(&be);
    safetensors_destroy(&in);
    safetensors_destroy(&wts);
    net_destroy(&net);
    graph_design_destroy(&d);
    graph_errors_free(&errs);
    return 0;
}
