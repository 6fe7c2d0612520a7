/*
 * net_dump.c - print an assembled network as JSON, for tests that
 * compare nader's networks with other implementations (the PyTorch
 * reference in tests/py/nader_ref.py, the engine, the exporter).
 *
 *   net_dump FILE [--skeleton nb201|darts] [--dataset NAME] [--width W]
 *            [--batch B] [--budget PARAMS] [--stem-scale S]
 *
 * Output: {"width", "batch", "params", "macs", "hash", "nodes": [...],
 * "parameters": [{"name", "shape", "numel", "trainable"}]}.  Exit 0 on
 * success, 1 when the design is invalid (errors on stderr), 2 on bad
 * usage.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

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

static json_t *s_shape(const graph_shape_t *s)
{
    json_t *a = json_array();

    for (int i = 0; i < s->ndim; i++)
        json_array_append_new(a, json_integer(s->d[i]));
    return a;
}

static json_t *s_node(const net_t *n, int id)
{
    const net_node_t *x = &n->nodes[id];
    json_t *o = json_object(), *ins = json_array(), *dims = json_array();
    json_t *sizes = json_array();

    for (int i = 0; i < x->n_inputs; i++)
        json_array_append_new(ins, json_integer(x->inputs[i]));
    for (int i = 0; i < x->n_dims; i++)
        json_array_append_new(dims, json_integer(x->dims[i]));
    for (int i = 0; i < x->n_sizes; i++)
        json_array_append_new(sizes, json_integer(x->sizes[i]));
    json_object_set_new(o, "name", json_string(x->name));
    json_object_set_new(o, "op", json_string(graph_op_name(x->op)));
    json_object_set_new(o, "inputs", ins);
    json_object_set_new(o, "shape", s_shape(&x->shape));
    json_object_set_new(o, "in_ch", json_integer(x->in_ch));
    json_object_set_new(o, "out_ch", json_integer(x->out_ch));
    json_object_set_new(o, "kernel", json_integer(x->kernel));
    json_object_set_new(o, "stride", json_integer(x->stride));
    json_object_set_new(o, "dilation", json_integer(x->dilation));
    json_object_set_new(o, "groups", json_integer(x->groups));
    json_object_set_new(o, "pad", json_integer(x->pad));
    json_object_set_new(o, "crop", json_boolean(x->crop));
    json_object_set_new(o, "bias", json_boolean(x->bias));
    json_object_set_new(o, "out_size", json_integer(x->out_size));
    json_object_set_new(o, "out_size_w", json_integer(x->out_size_w));
    json_object_set_new(o, "dims", dims);
    json_object_set_new(o, "sizes", sizes);
    json_object_set_new(o, "prob", json_real(x->prob));
    json_object_set_new(o, "params", json_integer(x->params));
    json_object_set_new(o, "macs", json_integer(x->macs));
    return o;
}

int main(int argc, char **argv)
{
    const char *file = NULL, *dataset = "cifar10", *skeleton = NULL;
    int width = 0, batch = 2, stem_scale = 0;
    long long budget = 0;
    graph_design_t *d = NULL;
    graph_errors_t errs;
    net_config_t cfg;
    net_t *net = NULL;
    net_param_t *params = NULL;
    char hash[33], *text;
    size_t len = 0;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--skeleton") == 0 && v)
            skeleton = argv[++i];
        else if (strcmp(a, "--dataset") == 0 && v)
            dataset = argv[++i];
        else if (strcmp(a, "--width") == 0 && v)
            width = atoi(argv[++i]);
        else if (strcmp(a, "--batch") == 0 && v)
            batch = atoi(argv[++i]);
        else if (strcmp(a, "--stem-scale") == 0 && v)
            stem_scale = atoi(argv[++i]);
        else if (strcmp(a, "--budget") == 0 && v)
            budget = atoll(argv[++i]);
        else if (a[0] != '-' && !file)
            file = a;
        else {
            fprintf(stderr, "net_dump: bad argument '%s'\n", a);
            return 2;
        }
    }
    if (!file || net_config_default(&cfg, dataset) < 0) {
        fprintf(stderr, "usage: net_dump FILE [--skeleton S] [--dataset D] "
                        "[--width W] [--batch B] [--budget P] "
                        "[--stem-scale S]\n");
        return 2;
    }
    if (!(text = s_slurp(file, &len))) {
        fprintf(stderr, "net_dump: cannot read %s\n", file);
        return 2;
    }
    graph_errors_init(&errs);
    if (graph_design_parse(text, len, file, &d, &errs) < 0)
        goto report;
    if (skeleton)
        cfg.skeleton = (net_skeleton_t)net_skeleton_parse(skeleton);
    else
        cfg.skeleton = d->two_input ? NET_SKELETON_DARTS : NET_SKELETON_NB201;
    cfg.width = width;
    if (stem_scale > 0)
        cfg.stem_scale = stem_scale;
    if (budget > 0)
        cfg.budget = budget;
    if (net_build(d, &cfg, batch, &net, &errs) < 0)
        goto report;
    if (graph_design_hash(d, hash) < 0)
        goto report;

    int np = net_param_list(net, &params);
    json_t *o = json_object(), *nodes = json_array(), *plist = json_array();
    for (int i = 0; i < net->n_nodes; i++)
        json_array_append_new(nodes, s_node(net, i));
    for (int i = 0; i < np; i++) {
        json_t *p = json_object(), *shape = json_array();
        for (int k = 0; k < params[i].ndim; k++)
            json_array_append_new(shape, json_integer(params[i].shape[k]));
        json_object_set_new(p, "name", json_string(params[i].name));
        json_object_set_new(p, "shape", shape);
        json_object_set_new(p, "numel", json_integer(params[i].numel));
        json_object_set_new(p, "trainable",
                            json_boolean(params[i].trainable));
        json_array_append_new(plist, p);
    }
    json_object_set_new(o, "skeleton",
                        json_string(net_skeleton_name(cfg.skeleton)));
    json_object_set_new(o, "width", json_integer(net->width));
    json_object_set_new(o, "batch", json_integer(net->batch));
    json_object_set_new(o, "classes", json_integer(cfg.classes));
    json_object_set_new(o, "params", json_integer(net->params));
    json_object_set_new(o, "macs", json_integer(net->macs));
    json_object_set_new(o, "hash", json_string(hash));
    json_object_set_new(o, "output", json_integer(net->output));
    json_object_set_new(o, "nodes", nodes);
    json_object_set_new(o, "parameters", plist);
    json_dumpf(o, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(o);
    rc = 0;

report:
    for (int i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.v[i].message);
    free(params);
    net_destroy(&net);
    graph_design_destroy(&d);
    graph_errors_free(&errs);
    free(text);
    return rc;
}
