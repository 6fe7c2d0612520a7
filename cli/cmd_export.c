/*
 * cmd_export.c - `nader export`: take a design away as PyTorch code, a
 * Graphviz graph, JSON or block text, with its trained weights.
 *
 * The design comes from a block file, from a coordinator's store (a
 * design by hash, the design a job trained, or the best one), or from a
 * search's results folder (its best design).  A design taken from a job
 * is assembled exactly as the job trained it (skeleton, data set, width,
 * cells per stage, stem scale); flags override.  The generators are in
 * common/export_*.c; the weights in cli/export_weights.c; where designs
 * come from in cli/export_source.c.
 *
 * The text is generated in memory and the weights written before it goes
 * out - to standard output, or with -o to a file written whole under a
 * temporary name and renamed - so a failed export leaves no half of
 * itself behind.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "export.h"
#include "export_cli.h"

static void s_usage(FILE *out)
{
    fprintf(out,
        "usage: nader export DESIGN [options]\n"
        "       nader export --best [FOLDER] [options]\n"
        "       nader export --store DIR (--design HASH | --job ID) "
        "[options]\n\n"
        "Write a design's network as a self-contained PyTorch module (or "
        "Graphviz,\nJSON, block text), and its trained weights as "
        "safetensors named as the\nmodule's state_dict().\n\n"
        "what\n"
        "  DESIGN              a block file\n"
        "  --best              the best design of a search: FOLDER is its "
        "results\n"
        "                      folder (nader run) or a coordinator's state "
        "folder\n"
        "                      (default: --store, else ./nader-state)\n"
        "  --store DIR         a coordinator's state folder, read-only\n"
        "  --design HASH       a design of the store (a unique prefix "
        "will do)\n"
        "  --job ID            the design a job trained, as it trained it\n"
        "  --tag TAG           with --best: only jobs tagged TAG or "
        "TAG:... (a\n"
        "                      search's are search:NAME:screen, ...)\n\n"
        "how\n"
        "  --format F          pytorch (default), dot, json or block\n"
        "  -o, --output FILE   write to FILE instead of standard output\n"
        "  --skeleton S        nb201 or darts (default: the design's kind)\n"
        "  --dataset D         cifar10, cifar10-valid, cifar100, "
        "imagenet16-120\n"
        "  --width N           base width (default: searched for the "
        "budget)\n"
        "  --budget N          parameter budget of the width search "
        "(1500000)\n"
        "  --cells N           cells per stage (5)\n"
        "  --stem-scale S      the stem reduces the resolution S times: "
        "1, 2, 4, 8\n"
        "                      (default: the source's, else 1)\n\n"
        "weights\n"
        "  --weights FILE      also write the trained weights to FILE "
        "(safetensors)\n"
        "  --weights-from F    where they are: a file from nader train\n"
        "                      --save-weights, a checkpoint, or a PyTorch "
        "save_safetensors;\n"
        "                      with --job, the job's checkpoint in the "
        "store by default\n\n"
        "Exit status: 0 done, 1 the design is invalid or has no such "
        "weights, 2 bad\nusage or unreadable input.\n");
}

/* Parse an integer flag value into [lo, hi]; prints the error. */
static int s_int(const char *flag, const char *v, long long lo,
                 long long hi, long long *out)
{
    char *end;
    long long x;

    errno = 0;
    x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "nader export: %s wants an integer in %lld..%lld, "
                "not '%s'\n", flag, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int s_parse(int argc, char **argv, export_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->format = "pytorch";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 1;
        }
        if (strcmp(a, "--best") == 0) {
            o->best = true;
            continue;
        }
        if (a[0] != '-') {
            if (o->path) {
                fprintf(stderr, "nader export: one design at a time ('%s' "
                        "and '%s')\n", o->path, a);
                return -1;
            }
            o->path = a;
            continue;
        }
        if (!v) {
            fprintf(stderr, "nader export: %s needs a value (try --help)\n",
                    a);
            return -1;
        }
        i++;
        if (strcmp(a, "--format") == 0) {
            o->format = v;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            o->output = v;
        } else if (strcmp(a, "--store") == 0) {
            o->store = v;
        } else if (strcmp(a, "--design") == 0) {
            o->design = v;
        } else if (strcmp(a, "--tag") == 0) {
            o->tag = v;
        } else if (strcmp(a, "--skeleton") == 0) {
            o->skeleton = v;
        } else if (strcmp(a, "--dataset") == 0) {
            o->dataset = v;
        } else if (strcmp(a, "--weights") == 0) {
            o->weights = v;
        } else if (strcmp(a, "--weights-from") == 0) {
            o->weights_from = v;
        } else if (strcmp(a, "--job") == 0) {
            if (s_int(a, v, 1, (long long)(~0ULL >> 1), &x) < 0)
                return -1;
            o->job = (uint64_t)x;
        } else if (strcmp(a, "--width") == 0) {
            if (s_int(a, v, 1, 1 << 20, &x) < 0)
                return -1;
            o->width = (int)x;
        } else if (strcmp(a, "--cells") == 0) {
            if (s_int(a, v, 1, 64, &x) < 0)
                return -1;
            o->cells = (int)x;
        } else if (strcmp(a, "--stem-scale") == 0) {
            if (s_int(a, v, 1, 8, &x) < 0)
                return -1;
            if (!net_stem_scale_ok((int)x)) {
                fprintf(stderr, "nader export: --stem-scale wants 1, 2, 4 "
                        "or 8, not '%s'\n", v);
                return -1;
            }
            o->stem_scale = (int)x;
        } else if (strcmp(a, "--budget") == 0) {
            if (s_int(a, v, 1, (long long)1e12, &x) < 0)
                return -1;
            o->budget = x;
        } else {
            fprintf(stderr, "nader export: unknown option '%s' (try "
                    "--help)\n", a);
            return -1;
        }
    }
    if (strcmp(o->format, "pytorch") && strcmp(o->format, "dot") &&
        strcmp(o->format, "json") && strcmp(o->format, "block")) {
        fprintf(stderr, "nader export: --format %s: not one of pytorch, "
                "dot, json, block\n", o->format);
        return -1;
    }
    if ((o->design || o->job) && !o->store) {
        fprintf(stderr, "nader export: --design and --job need --store "
                "DIR\n");
        return -1;
    }
    if (!o->path && !o->best && !o->design && !o->job) {
        fprintf(stderr, "nader export: which design? give a block file, "
                "--best, --design or --job (try --help)\n");
        return -1;
    }
    if (o->weights_from && !o->weights) {
        fprintf(stderr, "nader export: --weights-from needs --weights "
                "FILE (where to write them)\n");
        return -1;
    }
    return 0;
}

/* Write the chosen format of the design to f. */
static int s_generate(FILE *f, const export_opts_t *o,
                      const export_design_t *x, graph_errors_t *errs)
{
    export_meta_t meta = {x->dataset, x->label, x->note};

    if (strcmp(o->format, "pytorch") == 0)
        return export_pytorch(f, x->design, &x->cfg, &meta, errs);
    if (strcmp(o->format, "dot") == 0)
        return export_dot(f, x->design, &x->cfg, &meta, errs);
    if (strcmp(o->format, "json") == 0)
        return export_json(f, x->design, &x->cfg, &meta, errs);

    /* block: check it assembles, then print it in canonical spelling. */
    net_t *net = NULL;
    if (net_build(x->design, &x->cfg, 1, &net, errs) < 0)
        return -1;
    net_destroy(&net);
    char *text = graph_design_print(x->design);
    int rc = text && fputs(text, f) >= 0 && fflush(f) == 0 ? 0 : -1;
    free(text);
    return rc;
}

/* Write len bytes of text to path whole: a temporary file, flushed to
 * disk, renamed over path.  Returns 0, or -1 with a message printed. */
static int s_write_file(const char *path, const char *text, size_t len)
{
    char tmp[4200];
    FILE *f;
    bool ok;

    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (!(f = fopen(tmp, "w"))) {
        fprintf(stderr, "nader export: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    ok = fwrite(text, 1, len, f) == len && fflush(f) == 0 &&
         fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "nader export: %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int cmd_export(int argc, char **argv)
{
    export_opts_t o;
    export_design_t x;
    graph_errors_t errs;
    char err[1024], *text = NULL;
    size_t len = 0;
    FILE *f;
    int rc;

    rc = s_parse(argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    graph_errors_init(&errs);
    rc = export_design_load(&o, &x, &errs, err, sizeof err);
    if (rc != 0) {
        for (int i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.v[i].message);
        if (err[0])
            fprintf(stderr, "nader export: %s\n", err);
        graph_errors_free(&errs);
        return rc;
    }

    /* The text first, in memory; then the weights; then the text goes
     * out, so a failure leaves neither half of an export behind. */
    if (!(f = open_memstream(&text, &len))) {
        fprintf(stderr, "nader export: out of memory\n");
        rc = 1;
        goto out;
    }
    rc = s_generate(f, &o, &x, &errs);
    if (fclose(f) != 0 || rc < 0) {
        for (int i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.v[i].message);
        if (!errs.n)
            fprintf(stderr, "nader export: cannot generate the %s text\n",
                    o.format);
        rc = 1;
        goto out;
    }
    if (o.weights &&
        export_weights_write(&o, &x, err, sizeof err) != 0) {
        fprintf(stderr, "nader export: %s\n", err);
        rc = 1;
        goto out;
    }
    if (o.output) {
        rc = s_write_file(o.output, text, len) < 0 ? 2 : 0;
    } else {
        rc = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0
                 ? 0 : 2;
        if (rc)
            fprintf(stderr, "nader export: cannot write the output\n");
    }
    if (rc && o.weights)
        unlink(o.weights);

out:
    free(text);
    export_design_free(&x);
    graph_errors_free(&errs);
    return rc;
}
