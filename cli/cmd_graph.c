/*
 * cmd_graph.c - `nader graph check|show|hash|format`: the block-graph
 * library on the command line, for people and for scripts.
 *
 * check parses a design file, checks it completely at the width chosen
 * for the parameter budget (or at --width), and prints every error, one
 * per line, exactly as the language model sees them; --json prints one
 * object instead.  show prints a design back (text, Graphviz dot or
 * JSON) and hash prints its identity.  format prints the definition of
 * the format that the agents' prompts carry, made from the engine's
 * table of operations.  Exit codes follow commands.h: 0 valid, 1
 * invalid, 2 bad usage or an unreadable file.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "net.h"
#include "prompt.h"

#define FILE_MAX (4 << 20)

typedef struct opts {
    const char *file;
    const char *dataset;
    const char *format;
    int skeleton;           /* -1: from the design */
    int width;
    int stem_scale;
    int64_t budget;
    bool json;
} opts_t;

static void s_usage_check(FILE *out)
{
    fprintf(out,
            "usage: nader graph check FILE [--skeleton nb201|darts]\n"
            "         [--dataset cifar10|cifar100|imagenet16-120]\n"
            "         [--budget PARAMS] [--width W] [--stem-scale S] "
            "[--json]\n\n"
            "Check a design completely: structure, arguments, shapes and "
            "roles at\nthe base width chosen for the parameter budget "
            "(default 1.5M, within\n3%%, MACs per image under 0.2 G at "
            "32x32), or at --width W.  Every\nerror is printed on one "
            "line.  The skeleton defaults to darts for\ntwo-input cells "
            "and nb201 otherwise.  The stem must keep the input\n"
            "resolution, or with --stem-scale S (2, 4 or 8; 4 for "
            "ImageNet-style stems)\nreduce it S times; the stages run "
            "at the stem's resolution and the MAC\ncap stays the input "
            "size's.  FILE may be - for standard input.\n"
            "Exit status: 0 valid, 1 invalid, 2 bad usage or unreadable "
            "file.\n");
}

static void s_usage_show(FILE *out)
{
    fprintf(out,
            "usage: nader graph show FILE [--format text|dot|json]\n\n"
            "Print a design in canonical spelling (text, the default), as "
            "a Graphviz\ndigraph (dot) or as JSON.  Stem and downsample "
            "blocks the file lacks\nare printed as the skeleton's "
            "defaults.\n");
}

static void s_usage_hash(FILE *out)
{
    fprintf(out, "usage: nader graph hash FILE\n\n"
                 "Print the design's identity: 32 hex digits, the same for "
                 "every\nisomorphic design whatever its node numbering, "
                 "edge order and names.\n");
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: nader graph check|show|hash FILE [OPTIONS]\n"
                 "       nader graph format [--skeleton nb201|darts]\n\n"
                 "  check   validate a design and choose its width\n"
                 "  show    print a design (text, dot or json)\n"
                 "  hash    print a design's identity\n"
                 "  format  print the block format and its operations, as "
                 "the agents\n          are told them\n\n"
                 "nader graph COMMAND --help for each.\n");
}

/* "1500000", "1.5M", "800k". */
static int s_parse_count(const char *s, int64_t *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s)
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= 1e3, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1e6, end++;
    else if (*end == 'g' || *end == 'G')
        v *= 1e9, end++;
    if (*end != '\0' || !(v >= 1) || v > 1e15)
        return -1;
    *out = (int64_t)(v + 0.5);
    return 0;
}

static int s_parse_opts(int argc, char **argv, opts_t *o,
                        void (*usage)(FILE *))
{
    *o = (opts_t){.dataset = "cifar10", .format = "text", .skeleton = -1,
                  .stem_scale = 1};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = strcmp(a, "--skeleton") == 0 ||
                     strcmp(a, "--dataset") == 0 ||
                     strcmp(a, "--budget") == 0 ||
                     strcmp(a, "--width") == 0 ||
                     strcmp(a, "--stem-scale") == 0 ||
                     strcmp(a, "--format") == 0;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (takes && !v) {
            fprintf(stderr, "nader graph: %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--skeleton") == 0) {
            if ((o->skeleton = net_skeleton_parse(v)) < 0) {
                fprintf(stderr, "nader graph: unknown skeleton '%s' (nb201 "
                                "or darts)\n", v);
                return -1;
            }
        } else if (strcmp(a, "--dataset") == 0) {
            net_config_t c;
            if (net_config_default(&c, v) < 0) {
                fprintf(stderr, "nader graph: unknown data set '%s' "
                                "(cifar10, cifar100, imagenet16-120)\n", v);
                return -1;
            }
            o->dataset = v;
        } else if (strcmp(a, "--budget") == 0) {
            if (s_parse_count(v, &o->budget) < 0) {
                fprintf(stderr, "nader graph: bad budget '%s' (e.g. "
                                "1500000 or 1.5M)\n", v);
                return -1;
            }
        } else if (strcmp(a, "--width") == 0) {
            char *end;
            long w = strtol(v, &end, 10);
            if (*end || w < 1 || w > 65536) {
                fprintf(stderr, "nader graph: bad width '%s'\n", v);
                return -1;
            }
            o->width = (int)w;
        } else if (strcmp(a, "--stem-scale") == 0) {
            char *end;
            long s = strtol(v, &end, 10);
            if (*end || s < 1 || s > 8 || !net_stem_scale_ok((int)s)) {
                fprintf(stderr, "nader graph: bad stem scale '%s' (1, 2, 4 "
                                "or 8)\n", v);
                return -1;
            }
            o->stem_scale = (int)s;
        } else if (strcmp(a, "--format") == 0) {
            if (strcmp(v, "text") && strcmp(v, "dot") && strcmp(v, "json")) {
                fprintf(stderr, "nader graph: unknown format '%s' (text, "
                                "dot or json)\n", v);
                return -1;
            }
            o->format = v;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "nader graph: unknown option '%s'\n", a);
            return -1;
        } else if (!o->file) {
            o->file = a;
            continue;
        } else {
            fprintf(stderr, "nader graph: one FILE only ('%s')\n", a);
            return -1;
        }
        i++;
    }
    if (!o->file) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* The whole file (or standard input for "-"); NULL with errno. */
static char *s_read(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (!f)
        return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *b = cap <= FILE_MAX ? realloc(buf, cap) : NULL;
            if (!b) {
                free(buf);
                buf = NULL;
                errno = cap > FILE_MAX ? EFBIG : ENOMEM;
                break;
            }
            buf = b;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) {
            if (ferror(f)) {
                free(buf);
                buf = NULL;
                errno = EIO;
            }
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* Read and parse; 0 ok, 1 invalid (errors filled), 2 unreadable. */
static int s_load(const opts_t *o, graph_design_t **d, graph_errors_t *errs)
{
    size_t len = 0;
    const char *name = strcmp(o->file, "-") == 0 ? "<stdin>" : o->file;
    char *text = s_read(o->file, &len);

    if (!text) {
        fprintf(stderr, "nader graph: cannot read %s: %s\n", name,
                strerror(errno));
        return 2;
    }
    int rc = graph_design_parse(text, len, name, d, errs) == 0 ? 0 : 1;
    free(text);
    return rc;
}

static void s_print_errors(const graph_errors_t *errs, FILE *out)
{
    for (int i = 0; i < errs->n; i++)
        fprintf(out, "%s\n", errs->v[i].message);
}

/* ---------------------------------------------------------------- check */

static json_t *s_errors_json(const graph_errors_t *errs)
{
    json_t *a = json_array();

    for (int i = 0; i < errs->n; i++) {
        const graph_error_t *e = &errs->v[i];
        json_t *o = json_object();
        json_object_set_new(o, "block", json_string(e->block));
        json_object_set_new(o, "node",
                            e->node >= 0 ? json_integer(e->node)
                                         : json_null());
        json_object_set_new(o, "line",
                            e->line > 0 ? json_integer(e->line)
                                        : json_null());
        json_object_set_new(o, "rule", json_string(graph_rule_name(e->rule)));
        json_object_set_new(o, "message", json_string(e->message));
        json_array_append_new(a, o);
    }
    return a;
}

static int s_check(int argc, char **argv)
{
    opts_t o;
    graph_design_t *d = NULL;
    graph_errors_t errs;
    net_config_t cfg;
    net_choice_t choice = {0};
    char hash[33] = "";
    int rc = s_parse_opts(argc, argv, &o, s_usage_check);

    if (rc != 0)
        return rc > 0 ? 0 : 2;
    graph_errors_init(&errs);
    net_config_default(&cfg, o.dataset);
    rc = s_load(&o, &d, &errs);
    if (rc == 2)
        goto out;
    if (d) {
        cfg.skeleton = o.skeleton >= 0 ? (net_skeleton_t)o.skeleton
                       : d->two_input  ? NET_SKELETON_DARTS
                                       : NET_SKELETON_NB201;
        cfg.width = o.width;
        cfg.stem_scale = o.stem_scale;
        if (o.budget > 0)
            cfg.budget = o.budget;
        rc = net_check(d, &cfg, &choice, &errs) == 0 ? 0 : 1;
        if (rc == 0 && graph_design_hash(d, hash) < 0)
            hash[0] = '\0';
    }
    bool valid = rc == 0;

    if (o.json) {
        json_t *j = json_object();
        json_object_set_new(j, "file", json_string(o.file));
        json_object_set_new(j, "valid", json_boolean(valid));
        json_object_set_new(j, "errors", s_errors_json(&errs));
        json_object_set_new(j, "skeleton",
                            json_string(net_skeleton_name(cfg.skeleton)));
        json_object_set_new(j, "dataset", json_string(o.dataset));
        json_object_set_new(j, "stem_scale", json_integer(cfg.stem_scale));
        json_object_set_new(j, "budget", json_integer(cfg.budget));
        json_object_set_new(j, "width", valid ? json_integer(choice.width)
                                              : json_null());
        json_object_set_new(j, "params", valid ? json_integer(choice.params)
                                               : json_null());
        json_object_set_new(j, "macs", valid ? json_integer(choice.macs)
                                             : json_null());
        json_object_set_new(j, "within_tolerance",
                            valid ? json_boolean(choice.within_tolerance)
                                  : json_null());
        json_object_set_new(j, "hash", valid && hash[0] ? json_string(hash)
                                                        : json_null());
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(j);
    } else if (valid) {
        printf("%s: valid (%s skeleton, %s", o.file,
               net_skeleton_name(cfg.skeleton), o.dataset);
        if (cfg.stem_scale > 1)
            printf(", stem_scale %d", cfg.stem_scale);
        printf(")\n");
        printf("  width %d, %lld parameters (budget %lld, %s %.0f%%), "
               "%.4f G MACs per image\n",
               choice.width, (long long)choice.params,
               (long long)cfg.budget,
               choice.within_tolerance ? "within" : "outside",
               cfg.tolerance * 100, (double)choice.macs / 1e9);
        printf("  hash %s\n", hash);
    } else {
        s_print_errors(&errs, stdout);
        printf("%s: invalid, %d error%s\n", o.file, errs.n,
               errs.n == 1 ? "" : "s");
    }

out:
    graph_design_destroy(&d);
    graph_errors_free(&errs);
    return rc;
}

/* ----------------------------------------------------------------- show */

static json_t *s_block_json(const graph_block_t *b, bool dflt)
{
    json_t *o = json_object(), *nodes = json_array(), *edges = json_array();

    json_object_set_new(o, "name", json_string(b->name ? b->name : ""));
    json_object_set_new(o, "role", json_string(graph_role_name(b->role)));
    json_object_set_new(o, "default", json_boolean(dflt));
    for (int i = 0; i < b->n_nodes; i++) {
        const graph_node_t *n = &b->nodes[i];
        const graph_op_info_t *info = graph_op_info(n->op);
        json_t *x = json_object(), *ins = json_array();
        json_t *args = info->variadic ? json_array() : json_object();

        for (int a = 0; a < n->n_args; a++) {
            const graph_arg_t *arg = &n->args[a];
            json_t *v;
            if (arg->tuple || arg->n_items != 1) {
                v = json_array();
                for (int k = 0; k < arg->n_items; k++) {
                    char *s = graph_expr_print(arg->items[k]);
                    json_array_append_new(v, json_string(s ? s : ""));
                    free(s);
                }
            } else {
                char *s = graph_expr_print(arg->items[0]);
                v = json_string(s ? s : "");
                free(s);
            }
            if (info->variadic)
                json_array_append_new(args, v);
            else
                json_object_set_new(args, arg->key ? arg->key : "?", v);
        }
        for (int k = 0; k < n->n_inputs; k++)
            json_array_append_new(ins,
                                  json_integer(b->nodes[n->inputs[k]].index));
        json_object_set_new(x, "index", json_integer(n->index));
        json_object_set_new(x, "op", json_string(graph_op_name(n->op)));
        json_object_set_new(x, "args", args);
        json_object_set_new(x, "inputs", ins);
        json_array_append_new(nodes, x);
    }
    for (int i = 0; i < b->n_edges; i++) {
        json_t *e = json_array();
        json_array_append_new(e, json_integer(b->edges[i].from));
        json_array_append_new(e, json_integer(b->edges[i].to));
        json_array_append_new(edges, e);
    }
    json_object_set_new(o, "nodes", nodes);
    json_object_set_new(o, "edges", edges);
    return o;
}

static void s_show_json(const graph_design_t *d)
{
    json_t *j = json_object(), *blocks = json_object();
    char hash[33];

    json_object_set_new(j, "name", json_string(d->cell->name));
    json_object_set_new(j, "two_input", json_boolean(d->two_input));
    if (graph_design_hash(d, hash) == 0)
        json_object_set_new(j, "hash", json_string(hash));
    json_object_set_new(blocks, "cell", s_block_json(d->cell, false));
    json_object_set_new(blocks, "stem", s_block_json(d->stem,
                                                     d->stem_default));
    json_object_set_new(blocks, "downsample",
                        s_block_json(d->downsample, d->downsample_default));
    json_object_set_new(j, "blocks", blocks);
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(j);
}

/* A dot string: the label with quotes and backslashes escaped. */
static void s_dot_label(const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        putchar(*s);
    }
}

static void s_show_dot(const graph_design_t *d)
{
    const graph_block_t *blocks[3] = {d->cell, d->stem, d->downsample};

    printf("digraph design {\n  rankdir=TB;\n"
           "  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
    for (int k = 0; k < 3; k++) {
        const graph_block_t *b = blocks[k];
        const char *role = graph_role_name(b->role);
        printf("  subgraph cluster_%s {\n    label=\"", role);
        s_dot_label(role);
        printf(": ");
        s_dot_label(b->name ? b->name : "");
        printf("\";\n");
        for (int i = 0; i < b->n_nodes; i++) {
            const graph_node_t *n = &b->nodes[i];
            char *text = graph_node_print(n);
            printf("    %s_%d [label=\"%d: ", role, n->index, n->index);
            s_dot_label(text ? text : "?");
            free(text);
            printf("\"%s];\n", n->op <= GRAPH_OP_OUTPUT
                                   ? ", shape=ellipse"
                                   : "");
        }
        for (int i = 0; i < b->n_nodes; i++) {
            const graph_node_t *n = &b->nodes[i];
            bool ordered = graph_op_info(n->op)->ordered;
            for (int j = 0; j < n->n_inputs; j++) {
                printf("    %s_%d -> %s_%d", role,
                       b->nodes[n->inputs[j]].index, role, n->index);
                if (ordered)
                    printf(" [label=\"%d\"]", j + 1);
                printf(";\n");
            }
        }
        printf("  }\n");
    }
    printf("}\n");
}

static int s_show(int argc, char **argv)
{
    opts_t o;
    graph_design_t *d = NULL;
    graph_errors_t errs;
    int rc = s_parse_opts(argc, argv, &o, s_usage_show);

    if (rc != 0)
        return rc > 0 ? 0 : 2;
    graph_errors_init(&errs);
    rc = s_load(&o, &d, &errs);
    if (rc == 1)
        s_print_errors(&errs, stderr);
    if (rc == 0) {
        if (strcmp(o.format, "json") == 0) {
            s_show_json(d);
        } else if (strcmp(o.format, "dot") == 0) {
            s_show_dot(d);
        } else {
            char *s = graph_design_print(d);
            fputs(s ? s : "", stdout);
            free(s);
        }
    }
    graph_design_destroy(&d);
    graph_errors_free(&errs);
    return rc;
}

static int s_hash(int argc, char **argv)
{
    opts_t o;
    graph_design_t *d = NULL;
    graph_errors_t errs;
    char hash[33];
    int rc = s_parse_opts(argc, argv, &o, s_usage_hash);

    if (rc != 0)
        return rc > 0 ? 0 : 2;
    graph_errors_init(&errs);
    rc = s_load(&o, &d, &errs);
    if (rc == 1)
        s_print_errors(&errs, stderr);
    if (rc == 0) {
        if (graph_design_hash(d, hash) == 0) {
            printf("%s\n", hash);
        } else {
            fprintf(stderr, "nader graph: cannot hash %s\n", o.file);
            rc = 1;
        }
    }
    graph_design_destroy(&d);
    graph_errors_free(&errs);
    return rc;
}

/* `nader graph format`: the prompts' definition of the format. */
static int s_format(int argc, char **argv)
{
    bool two_input = false;
    char err[256];

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: nader graph format [--skeleton nb201|darts]\n\n"
                   "Print how blocks are written and every operation with "
                   "its arguments,\nmade from the engine's table of "
                   "operations: the text the agents'\nprompts carry. darts "
                   "describes two-input cells.\n");
            return 0;
        }
        if (strcmp(argv[i], "--skeleton") == 0 && i + 1 < argc &&
            (strcmp(argv[i + 1], "nb201") == 0 ||
             strcmp(argv[i + 1], "darts") == 0)) {
            two_input = strcmp(argv[++i], "darts") == 0;
            continue;
        }
        fprintf(stderr, "nader graph format: unexpected argument '%s' "
                        "(--skeleton nb201|darts)\n", argv[i]);
        return 2;
    }
    prompts_t *p = prompts_new(NULL, err, sizeof err);
    char *text = p ? prompts_format(p, two_input) : NULL;
    if (!text) {
        fprintf(stderr, "nader graph format: %s\n",
                p ? "out of memory" : err);
        prompts_destroy(&p);
        return 1;
    }
    fputs(text, stdout);
    free(text);
    prompts_destroy(&p);
    return 0;
}

int cmd_graph(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "check") == 0)
        return s_check(argc, argv);
    if (strcmp(argv[1], "show") == 0)
        return s_show(argc, argv);
    if (strcmp(argv[1], "hash") == 0)
        return s_hash(argc, argv);
    if (strcmp(argv[1], "format") == 0)
        return s_format(argc, argv);
    fprintf(stderr, "nader graph: unknown command '%s' (check, show, "
                    "hash, format)\n", argv[1]);
    return 2;
}
