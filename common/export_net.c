/*
 * export_net.c - the assembled network as Graphviz DOT and as JSON, and
 * the helpers every generator shares (see export.h, export_impl.h).
 *
 * Both formats describe what the engine runs, not the block text: one
 * node per operation of the network with its resolved arguments and
 * output shape, grouped by block instance.  `nader graph show` prints the
 * design's blocks themselves.
 */
#include "export.h"
#include "export_impl.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------- shared */

int export_nets_build(const graph_design_t *d, const net_config_t *cfg,
                      export_nets_t *out, graph_errors_t *errs)
{
    net_config_t alt_cfg;
    const net_t *a;
    bool same;

    memset(out, 0, sizeof *out);
    if (net_build(d, cfg, EXPORT_BATCH, &out->net, errs) < 0)
        return -1;
    alt_cfg = *cfg;
    alt_cfg.width = out->net->width;
    /* A design valid at one batch size only is exported with that batch
     * fixed: the second assembly is for comparison and may fail. */
    if (net_build(d, &alt_cfg, EXPORT_BATCH_ALT, &out->alt, NULL) < 0)
        return 0;
    a = out->alt;
    same = a->n_nodes == out->net->n_nodes;
    for (int i = 0; same && i < a->n_nodes; i++)
        same = a->nodes[i].op == out->net->nodes[i].op &&
               a->nodes[i].n_sizes == out->net->nodes[i].n_sizes;
    if (!same)
        net_destroy(&out->alt);
    return 0;
}

void export_nets_free(export_nets_t *n)
{
    net_destroy(&n->net);
    net_destroy(&n->alt);
}

int export_size(const export_nets_t *n, int id, int i, char *buf,
                size_t len)
{
    int64_t v = n->net->nodes[id].sizes[i];
    int64_t w = n->alt ? n->alt->nodes[id].sizes[i] : v;
    int64_t b1 = n->net->batch, b2 = n->alt ? n->alt->batch : b1;

    if (v == w) {
        snprintf(buf, len, "%lld", (long long)v);
        return 0;
    }
    if (v * b2 == w * b1 && v % b1 == 0) {
        if (v == b1)
            snprintf(buf, len, "B");
        else
            snprintf(buf, len, "B * %lld", (long long)(v / b1));
        return 1;
    }
    snprintf(buf, len, "%lld", (long long)v);
    return -1;
}

const graph_block_t *export_block_of(const graph_design_t *d,
                                     graph_role_t role)
{
    switch (role) {
    case GRAPH_ROLE_STEM:
        return d->stem;
    case GRAPH_ROLE_DOWNSAMPLE:
        return d->downsample;
    default:
        return d->cell;
    }
}

char *export_float(float v, char *buf, size_t len)
{
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, len, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    return buf;
}

/* ------------------------------------------------------------ node text */

/* The name of net node id inside its instance ("n5", "pre0.conv"). */
static const char *s_local(const net_t *n, int id)
{
    const net_node_t *x = &n->nodes[id];

    if (x->instance >= 0) {
        size_t k = strlen(n->instances[x->instance].name);
        if (strncmp(x->name, n->instances[x->instance].name, k) == 0 &&
            x->name[k] == '.')
            return x->name + k + 1;
    }
    return x->name;
}

/* One line about a node's operation and arguments, for DOT labels. */
static void s_describe(const export_nets_t *nets, int id, char *buf,
                       size_t len)
{
    const net_node_t *x = &nets->net->nodes[id];
    const char *op = graph_op_name(x->op);
    size_t at;
    char p[32];

    switch (x->op) {
    case GRAPH_OP_CONV2D:
        snprintf(buf, len, "%s %lld->%lld %lldx%lld s%lld%s%s", op,
                 (long long)x->in_ch, (long long)x->out_ch,
                 (long long)x->kernel, (long long)x->kernel,
                 (long long)x->stride, x->dilation > 1 ? " dilated" : "",
                 x->groups > 1 ? " grouped" : "");
        break;
    case GRAPH_OP_LINEAR:
        snprintf(buf, len, "%s %lld->%lld", op, (long long)x->in_ch,
                 (long long)x->out_ch);
        break;
    case GRAPH_OP_AVGPOOL2D:
    case GRAPH_OP_MAXPOOL2D:
        snprintf(buf, len, "%s %lldx%lld s%lld", op, (long long)x->kernel,
                 (long long)x->kernel, (long long)x->stride);
        break;
    case GRAPH_OP_ADAPTIVEAVGPOOL2D:
    case GRAPH_OP_ADAPTIVEMAXPOOL2D:
        snprintf(buf, len, "%s %lldx%lld", op, (long long)x->out_size,
                 (long long)x->out_size_w);
        break;
    case GRAPH_OP_CONCAT:
    case GRAPH_OP_SOFTMAX:
    case GRAPH_OP_MEAN:
    case GRAPH_OP_MAX:
    case GRAPH_OP_SUM:
    case GRAPH_OP_PERMUTE:
        at = (size_t)snprintf(buf, len, "%s(", op);
        for (int i = 0; i < x->n_dims && at < len; i++)
            at += (size_t)snprintf(buf + at, len - at, "%s%d", i ? "," : "",
                                   x->dims[i]);
        if (at < len)
            snprintf(buf + at, len - at, ")");
        break;
    case GRAPH_OP_REPEAT:
    case GRAPH_OP_RESHAPE:
        at = (size_t)snprintf(buf, len, "%s(", op);
        for (int i = 0; i < x->n_sizes && at < len; i++) {
            char t[48];
            export_size(nets, id, i, t, sizeof t);
            at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? "," : "",
                                   t);
        }
        if (at < len)
            snprintf(buf + at, len - at, ")");
        break;
    case GRAPH_OP_DROPPATH:
        snprintf(buf, len, "%s p=%s", op, export_float(x->prob, p, sizeof p));
        break;
    default:
        snprintf(buf, len, "%s", op);
        break;
    }
}

/* A shape with batch dimensions written as B: "(B,32,16,16)". */
static void s_shape(const graph_shape_t *s, char *buf, size_t len)
{
    size_t at = (size_t)snprintf(buf, len, "(");

    for (int i = 0; i < s->ndim && at < len; i++) {
        if (s->batch_mask & (1u << i))
            at += (size_t)snprintf(buf + at, len - at, "%sB", i ? "," : "");
        else
            at += (size_t)snprintf(buf + at, len - at, "%s%lld",
                                   i ? "," : "", (long long)s->d[i]);
    }
    if (at < len)
        snprintf(buf + at, len - at, ")");
}

/* A DOT string body: quotes and backslashes escaped. */
static void s_dot_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
}

/* ------------------------------------------------------------------ dot */

static void s_dot_node(FILE *f, const export_nets_t *nets, int id,
                       const char *indent)
{
    const net_t *n = nets->net;
    char what[160], shape[96];

    s_describe(nets, id, what, sizeof what);
    s_shape(&n->nodes[id].shape, shape, sizeof shape);
    fprintf(f, "%sx%d [label=\"", indent, id);
    s_dot_text(f, s_local(n, id));
    fputs(": ", f);
    s_dot_text(f, what);
    fprintf(f, "\\n%s\"%s];\n", shape,
            id == 0 || id == n->output ? ", shape=ellipse" : "");
}

int export_dot(FILE *out, const graph_design_t *d, const net_config_t *cfg,
               const export_meta_t *meta, graph_errors_t *errs)
{
    export_nets_t nets;
    const net_t *n;
    char hash[33] = "?";

    if (export_nets_build(d, cfg, &nets, errs) < 0)
        return -1;
    n = nets.net;
    graph_design_hash(d, hash);
    fprintf(out, "digraph network {\n  label=\"");
    s_dot_text(out, d->cell->name ? d->cell->name : "design");
    fprintf(out, " %s: %s skeleton, %s, width %d, %lld parameters\";\n"
            "  labelloc=t;\n  rankdir=TB;\n"
            "  node [shape=box, fontname=\"monospace\", fontsize=9];\n",
            hash, net_skeleton_name(n->config.skeleton),
            meta && meta->dataset ? meta->dataset : "?", n->width,
            (long long)n->params);
    s_dot_node(out, &nets, 0, "  ");
    for (int i = 0; i < n->n_instances; i++) {
        const net_instance_t *in = &n->instances[i];
        const graph_block_t *b = export_block_of(d, in->role);
        fprintf(out, "  subgraph cluster_%d {\n    label=\"", i);
        s_dot_text(out, in->name);
        fputs(": ", out);
        s_dot_text(out, b->name ? b->name : "");
        fprintf(out, " (C=%lld, dim=%lld)\";\n", (long long)in->bind.C,
                (long long)in->bind.dim);
        for (int id = in->first_node; id < in->end_node; id++)
            s_dot_node(out, &nets, id, "    ");
        fputs("  }\n", out);
    }
    for (int id = 1; id < n->n_nodes; id++)
        if (n->nodes[id].instance < 0)
            s_dot_node(out, &nets, id, "  ");
    for (int id = 1; id < n->n_nodes; id++) {
        const net_node_t *x = &n->nodes[id];
        bool ordered = graph_op_info(x->op)->ordered && x->n_inputs > 1;
        for (int k = 0; k < x->n_inputs; k++) {
            fprintf(out, "  x%d -> x%d", x->inputs[k], id);
            if (ordered)
                fprintf(out, " [label=\"%d\"]", k + 1);
            fputs(";\n", out);
        }
    }
    fputs("}\n", out);
    export_nets_free(&nets);
    if (fflush(out) != 0 || ferror(out)) {
        graph_errors_add(errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                         "export: cannot write the graph");
        return -1;
    }
    return 0;
}

/* ----------------------------------------------------------------- json */

static json_t *s_json_shape(const graph_shape_t *s)
{
    json_t *a = json_array();

    for (int i = 0; i < s->ndim; i++)
        json_array_append_new(a, s->batch_mask & (1u << i)
                                     ? json_string("B")
                                     : json_integer(s->d[i]));
    return a;
}

static json_t *s_json_ints(const int *v, int n)
{
    json_t *a = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

/* The resolved arguments of node id that its operation uses. */
static void s_json_args(json_t *o, const export_nets_t *nets, int id)
{
    const net_node_t *x = &nets->net->nodes[id];
    json_t *sizes;

    switch (x->op) {
    case GRAPH_OP_CONV2D:
        json_object_set_new(o, "in_channels", json_integer(x->in_ch));
        json_object_set_new(o, "out_channels", json_integer(x->out_ch));
        json_object_set_new(o, "kernel_size", json_integer(x->kernel));
        json_object_set_new(o, "stride", json_integer(x->stride));
        json_object_set_new(o, "dilation", json_integer(x->dilation));
        json_object_set_new(o, "groups", json_integer(x->groups));
        json_object_set_new(o, "pad", json_integer(x->pad));
        json_object_set_new(o, "crop", json_boolean(x->crop));
        json_object_set_new(o, "bias", json_boolean(x->bias));
        break;
    case GRAPH_OP_LINEAR:
        json_object_set_new(o, "in_features", json_integer(x->in_ch));
        json_object_set_new(o, "out_features", json_integer(x->out_ch));
        json_object_set_new(o, "bias", json_boolean(x->bias));
        break;
    case GRAPH_OP_AVGPOOL2D:
    case GRAPH_OP_MAXPOOL2D:
        json_object_set_new(o, "kernel_size", json_integer(x->kernel));
        json_object_set_new(o, "stride", json_integer(x->stride));
        json_object_set_new(o, "pad", json_integer(x->pad));
        json_object_set_new(o, "crop", json_boolean(x->crop));
        break;
    case GRAPH_OP_ADAPTIVEAVGPOOL2D:
    case GRAPH_OP_ADAPTIVEMAXPOOL2D:
        json_object_set_new(o, "output_size",
                            json_pack("[I,I]", (json_int_t)x->out_size,
                                      (json_int_t)x->out_size_w));
        break;
    case GRAPH_OP_BN:
    case GRAPH_OP_LN:
        json_object_set_new(o, "channels", json_integer(x->out_ch));
        break;
    case GRAPH_OP_CONCAT:
    case GRAPH_OP_SOFTMAX:
        json_object_set_new(o, "dim", json_integer(x->dims[0]));
        break;
    case GRAPH_OP_MEAN:
    case GRAPH_OP_MAX:
    case GRAPH_OP_SUM:
    case GRAPH_OP_PERMUTE:
        json_object_set_new(o, "dims", s_json_ints(x->dims, x->n_dims));
        break;
    case GRAPH_OP_REPEAT:
    case GRAPH_OP_RESHAPE:
        sizes = json_array();
        for (int i = 0; i < x->n_sizes; i++) {
            char t[48];
            if (export_size(nets, id, i, t, sizeof t) == 0)
                json_array_append_new(sizes, json_integer(x->sizes[i]));
            else
                json_array_append_new(sizes, json_string(t));
        }
        json_object_set_new(o, "sizes", sizes);
        break;
    case GRAPH_OP_DROPPATH:
        json_object_set_new(o, "prob", json_real(x->prob));
        break;
    default:
        break;
    }
}

static json_t *s_json_nodes(const export_nets_t *nets)
{
    const net_t *n = nets->net;
    json_t *a = json_array();

    for (int id = 0; id < n->n_nodes; id++) {
        const net_node_t *x = &n->nodes[id];
        json_t *o = json_object(), *ins = json_array();

        for (int k = 0; k < x->n_inputs; k++)
            json_array_append_new(ins,
                                  json_string(n->nodes[x->inputs[k]].name));
        json_object_set_new(o, "name", json_string(x->name));
        json_object_set_new(o, "op", json_string(graph_op_name(x->op)));
        json_object_set_new(o, "inputs", ins);
        json_object_set_new(o, "shape", s_json_shape(&x->shape));
        s_json_args(o, nets, id);
        json_object_set_new(o, "params", json_integer(x->params));
        json_object_set_new(o, "macs", json_integer(x->macs));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *s_json_params(const net_t *n)
{
    net_param_t *p = NULL;
    int np = net_param_list(n, &p);
    json_t *a = json_array();

    for (int i = 0; i < np; i++) {
        json_t *shape = json_array();
        for (int k = 0; k < p[i].ndim; k++)
            json_array_append_new(shape, json_integer(p[i].shape[k]));
        json_array_append_new(a, json_pack("{s:s,s:o,s:b}", "name",
                                           p[i].name, "shape", shape,
                                           "trainable", p[i].trainable));
    }
    free(p);
    if (np < 0) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static json_t *s_json_instances(const export_nets_t *nets,
                                const graph_design_t *d)
{
    const net_t *n = nets->net;
    json_t *a = json_array();

    for (int i = 0; i < n->n_instances; i++) {
        const net_instance_t *in = &n->instances[i];
        const graph_block_t *b = export_block_of(d, in->role);
        json_array_append_new(
            a, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:[s,s]}", "name",
                         in->name, "role", graph_role_name(in->role),
                         "block", b->name ? b->name : "", "C",
                         (json_int_t)in->bind.C, "dim",
                         (json_int_t)in->bind.dim, "H",
                         (json_int_t)in->bind.H, "W",
                         (json_int_t)in->bind.W, "nodes",
                         n->nodes[in->first_node < in->end_node
                                      ? in->first_node
                                      : 0].name,
                         n->nodes[in->end_node > in->first_node
                                      ? in->end_node - 1
                                      : 0].name));
    }
    return a;
}

int export_json(FILE *out, const graph_design_t *d, const net_config_t *cfg,
                const export_meta_t *meta, graph_errors_t *errs)
{
    export_nets_t nets;
    json_t *o = NULL, *params;
    char hash[33] = "", *text = NULL;
    int rc = -1;

    if (export_nets_build(d, cfg, &nets, errs) < 0)
        return -1;
    const net_t *n = nets.net;
    graph_design_hash(d, hash);
    text = graph_design_print(d);
    params = s_json_params(n);
    o = json_pack("{s:s,s:i,s:{s:s,s:s,s:s},s:s?,s:s,s:s?,s:i,s:[i,i,i],"
                  "s:i,s:i,s:i,s:I,s:I,s:o,s:o,s:o*}",
                  "format", "nader-network", "version", 1, "design", "hash",
                  hash, "name", d->cell->name ? d->cell->name : "", "text",
                  text ? text : "", "source", meta ? meta->source : NULL,
                  "skeleton", net_skeleton_name(n->config.skeleton),
                  "dataset", meta ? meta->dataset : NULL, "classes",
                  n->config.classes, "input", n->config.in_c,
                  n->config.in_h, n->config.in_w, "width", n->width,
                  "cells_per_stage", n->config.cells_per_stage,
                  "stem_scale", n->config.stem_scale, "params",
                  (json_int_t)n->params, "macs", (json_int_t)n->macs,
                  "instances", s_json_instances(&nets, d), "nodes",
                  s_json_nodes(&nets), "parameters", params);
    if (!o || !params || json_dumpf(o, out, JSON_INDENT(1)) != 0 ||
        fputc('\n', out) == EOF || fflush(out) != 0) {
        graph_errors_add(errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                         "export: cannot write the JSON");
        goto out;
    }
    rc = 0;

out:
    json_decref(o);
    free(text);
    export_nets_free(&nets);
    return rc;
}
