/*
 * net_forward.c - run a design's network forward on nader's engine, for
 * the tests that compare the engine with other implementations (the
 * exported PyTorch module in tests/py/test_export.py).
 *
 *   net_forward FILE --input X.st --out Y.st [--save-weights W.st]
 *               [--skeleton S] [--dataset D] [--width N] [--cells N]
 *               [--budget N] [--seed N] [--warmup K] [--device D]
 *               [--weights W.st]
 *
 * The network is initialised from --seed, its BN and LN scales and
 * shifts are then drawn away from 1 and 0 (so a swapped pair would
 * show), and K training-mode forward passes over random batches move the
 * BN running statistics away from their initial values.  Then the batch
 * "x" of X.st (B, C, H, W) goes through in evaluation mode and its
 * logits are written to Y.st as "logits"; the weights, as the engine
 * saves them, to W.st.  With --weights the network starts from that file
 * instead (trained weights, e.g. from `nader train --save-weights`) and
 * is not perturbed.  Exit 0 on success, 1 when the design is invalid
 * or the engine fails (message on stderr), 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "net.h"
#include "network.h"
#include "safetensors.h"

typedef struct opts {
    const char *file, *input, *out, *save, *skeleton, *dataset, *device;
    const char *weights;
    int width, cells, stem_scale, warmup;
    long long budget;
    unsigned long long seed;
} opts_t;

static int s_parse(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->dataset = "cifar10";
    o->device = "cpu";
    o->seed = 1;
    o->warmup = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-' && !o->file) {
            o->file = a;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (strcmp(a, "--input") == 0)
            o->input = v;
        else if (strcmp(a, "--out") == 0)
            o->out = v;
        else if (strcmp(a, "--save-weights") == 0)
            o->save = v;
        else if (strcmp(a, "--weights") == 0)
            o->weights = v;
        else if (strcmp(a, "--skeleton") == 0)
            o->skeleton = v;
        else if (strcmp(a, "--dataset") == 0)
            o->dataset = v;
        else if (strcmp(a, "--device") == 0)
            o->device = v;
        else if (strcmp(a, "--width") == 0)
            o->width = atoi(v);
        else if (strcmp(a, "--cells") == 0)
            o->cells = atoi(v);
        else if (strcmp(a, "--stem-scale") == 0)
            o->stem_scale = atoi(v);
        else if (strcmp(a, "--budget") == 0)
            o->budget = atoll(v);
        else if (strcmp(a, "--seed") == 0)
            o->seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--warmup") == 0)
            o->warmup = atoi(v);
        else
            return -1;
    }
    return o->file && o->input && o->out ? 0 : -1;
}

static char *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        *len = fread(buf, 1, (size_t)n, f);
        buf[*len] = '\0';
    }
    fclose(f);
    return buf;
}

/* A small deterministic stream for the test's own random numbers. */
static float s_uniform(unsigned long long *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*state >> 40) & 0xffffff) / 16777216.0f;
}

/* Move BN and LN scales and shifts away from 1 and 0. */
static void s_perturb(network_t *nw, backend_t *be, unsigned long long seed)
{
    const net_t *net = network_net(nw);

    for (int i = 0; i < network_param_count(nw); i++) {
        const net_param_t *p = network_param(nw, i);
        graph_op_t op = net->nodes[p->node].op;
        float *buf;

        if ((op != GRAPH_OP_BN && op != GRAPH_OP_LN) ||
            p->kind > NET_PARAM_BIAS)
            continue;
        buf = malloc((size_t)p->numel * sizeof *buf);
        if (!buf)
            continue;
        for (int64_t k = 0; k < p->numel; k++) {
            float u = s_uniform(&seed);
            buf[k] = p->kind == NET_PARAM_WEIGHT ? 0.5f + u : 0.4f * u - 0.2f;
        }
        be->vt->upload(be, network_param_data(nw, i), buf,
                       (size_t)p->numel * sizeof *buf);
        free(buf);
    }
}

int main(int argc, char **argv)
{
    opts_t o;
    graph_design_t *d = NULL;
    graph_errors_t errs;
    net_config_t cfg;
    net_t *net = NULL;
    backend_t *be = NULL;
    network_t *nw = NULL;
    safetensors_t *st = NULL;
    const safetensors_tensor_t *xt;
    backend_options_t bo = {0};
    float *hx = NULL, *dx = NULL, *hy = NULL;
    char err[512], *text = NULL;
    size_t len = 0, n_in;
    int rc = 1, batch, classes;

    if (s_parse(argc, argv, &o) < 0) {
        fprintf(stderr, "usage: net_forward FILE --input X.st --out Y.st "
                "[--save-weights W.st] [--skeleton S] [--dataset D] "
                "[--width N] [--cells N] [--stem-scale S] [--budget N] "
                "[--seed N] "
                "[--warmup K] [--device D] [--weights W.st]\n");
        return 2;
    }
    graph_errors_init(&errs);
    if (!(text = s_slurp(o.file, &len)) ||
        safetensors_load(o.input, &st, err, sizeof err) != 0 ||
        !(xt = safetensors_find(st, "x")) || xt->ndim != 4 ||
        net_config_default(&cfg, o.dataset) < 0) {
        fprintf(stderr, "net_forward: cannot read %s or %s (\"x\", 4-D)\n",
                o.file, o.input);
        rc = 2;
        goto out;
    }
    if (graph_design_parse(text, len, o.file, &d, &errs) < 0)
        goto report;
    cfg.skeleton = o.skeleton ? (net_skeleton_t)net_skeleton_parse(o.skeleton)
                   : d->two_input ? NET_SKELETON_DARTS : NET_SKELETON_NB201;
    cfg.width = o.width;
    if (o.cells > 0)
        cfg.cells_per_stage = o.cells;
    if (o.stem_scale > 0)
        cfg.stem_scale = o.stem_scale;
    if (o.budget > 0)
        cfg.budget = o.budget;
    batch = (int)xt->shape[0];
    if (net_build(d, &cfg, batch, &net, &errs) < 0)
        goto report;
    classes = cfg.classes;
    n_in = (size_t)xt->numel;

    if (!(be = backend_new(o.device, &bo, err, sizeof err)) ||
        network_new(be, net, NULL, &nw, err, sizeof err) != 0 ||
        network_init(nw, o.seed) != 0) {
        fprintf(stderr, "net_forward: %s\n", err);
        goto out;
    }
    if (o.weights) {
        safetensors_t *w = NULL;
        int wrc = safetensors_load(o.weights, &w, err, sizeof err);
        if (wrc == 0)
            wrc = network_weights_load(nw, w, false, err, sizeof err);
        safetensors_destroy(&w);
        if (wrc != 0) {
            fprintf(stderr, "net_forward: %s\n", err);
            goto out;
        }
    } else {
        s_perturb(nw, be, o.seed ^ 0x5eedULL);
    }
    hx = malloc(n_in * sizeof *hx);
    hy = malloc((size_t)batch * (size_t)classes * sizeof *hy);
    dx = be->vt->alloc(be, n_in * sizeof *dx);
    if (!hx || !hy || !dx) {
        fprintf(stderr, "net_forward: out of memory\n");
        goto out;
    }
    unsigned long long rs = o.seed * 7919ULL + 1;
    for (int k = 0; k < o.warmup; k++) {
        for (size_t i = 0; i < n_in; i++)
            hx[i] = 2.0f * s_uniform(&rs) - 1.0f;
        if (be->vt->upload(be, dx, hx, n_in * sizeof *hx) != 0 ||
            network_forward(nw, dx, true, o.seed, (uint64_t)k, err,
                            sizeof err) != 0) {
            fprintf(stderr, "net_forward: training pass: %s\n", err);
            goto out;
        }
    }
    memcpy(hx, xt->data, n_in * sizeof *hx);
    if (be->vt->upload(be, dx, hx, n_in * sizeof *hx) != 0 ||
        network_forward(nw, dx, false, o.seed, 0, err, sizeof err) != 0 ||
        be->vt->download(be, hy, network_logits(nw),
                         (size_t)batch * (size_t)classes * sizeof *hy) != 0) {
        fprintf(stderr, "net_forward: %s\n", err);
        goto out;
    }
    int64_t shape[2] = {batch, classes};
    safetensors_entry_t e = {"logits", 2, shape, hy};
    if (safetensors_save(o.out, &e, 1, NULL, err, sizeof err) != 0 ||
        (o.save && network_weights_save(nw, o.save, NULL, false, err,
                                        sizeof err) != 0)) {
        fprintf(stderr, "net_forward: %s\n", err);
        goto out;
    }
    printf("{\"width\": %d, \"params\": %lld, \"batch\": %d}\n", net->width,
           (long long)net->params, batch);
    rc = 0;
    goto out;

report:
    for (int i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.v[i].message);

out:
    if (dx)
        be->vt->free(be, dx);
    free(hx);
    free(hy);
    network_destroy(&nw);
    backend_destroy(&be);
    net_destroy(&net);
    safetensors_destroy(&st);
    graph_design_destroy(&d);
    graph_errors_free(&errs);
    free(text);
    return rc;
}
