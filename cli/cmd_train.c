/*
 * cmd_train.c - `nader train DESIGN --dataset D --data DIR [options]`:
 * train one design locally and report its accuracy.
 *
 * A thin shell around train_run(): parse the options into a network and
 * a training configuration, check the design, show progress, and write
 * the result as JSON when asked.  On a terminal the progress line is
 * rewritten in place (at most ten times a second); otherwise one line per
 * epoch is printed, so logs stay readable.  Ctrl-C stops the run at the
 * next step (saving weights when asked); a second one kills it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "data.h"
#include "graph.h"
#include "net.h"
#include "train.h"

static volatile sig_atomic_t s_interrupted;

typedef struct train_cli {
    const char *design_path;
    const char *json_out;
    bool quiet;
    bool tty;
    double last_draw;
    size_t line_len;
} train_cli_t;

static void s_usage(FILE *f)
{
    fprintf(f,
        "usage: nader train DESIGN --dataset D --data DIR [options]\n"
        "\n"
        "Train one design (a file in the block format) on a data set and\n"
        "report its accuracy with the nb201 recipe.\n"
        "\n"
        "  --dataset D          cifar10, cifar10-valid, cifar100,\n"
        "                       imagenet16-120\n"
        "  --data DIR           folder holding the data set's files\n"
        "  --split FILE         NAS-Bench-201 index list for the split\n"
        "  --epochs N           epochs (200)\n"
        "  --batch N            batch size (256)\n"
        "  --seed N             random seed (777)\n"
        "  --lr X               peak learning rate (0.1)\n"
        "  --width N            base width; skips the budget search\n"
        "  --budget N           parameter budget of the width search\n"
        "                       (1500000)\n"
        "  --skeleton S         nb201 or darts (nb201)\n"
        "  --cells N            cells per stage (5)\n"
        "  --stem-scale S       the stem reduces the resolution S times:\n"
        "                       1, 2, 4 or 8 (1; 4 for ImageNet-style\n"
        "                       stems)\n"
        "  --max-steps N        stop after N training steps\n"
        "  --device D           cpu or cuda:N (cpu)\n"
        "  --precision P        fp32, strict-fp32 or bf16 (fp32)\n"
        "  --threads N          CPU threads, 0 = all (0)\n"
        "  --json-out FILE      write the whole result as JSON\n"
        "  --save-weights FILE  write the final weights (safetensors)\n"
        "  --init-weights FILE  start from these weights (safetensors)\n"
        "  --checkpoint FILE    write the training state after epochs\n"
        "  --checkpoint-every K every K epochs (1 with --checkpoint)\n"
        "  --resume FILE        continue from a checkpoint\n"
        "  --quiet              no progress, only the final line\n");
}

/* Whole integer in [lo, hi]; prints the error. */
static int s_int(const char *opt, const char *v, int64_t lo, int64_t hi,
                 int64_t *out)
{
    char *end;
    long long x;

    errno = 0;
    x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "nader train: %s wants an integer in %lld..%lld, "
                "not '%s'\n", opt, (long long)lo, (long long)hi, v);
        return -1;
    }
    *out = x;
    return 0;
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

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void s_on_sigint(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

/* ------------------------------------------------------------ progress */

static void s_clock(char *buf, size_t len, double s)
{
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

static int s_on_step(void *ctx, const train_step_t *s)
{
    train_cli_t *c = ctx;
    char left[32], line[200];
    double now;
    int n;

    if (s_interrupted)
        return 1;
    now = s_now();
    if (!c->tty || c->quiet ||
        (now - c->last_draw < 0.1 && s->step != s->steps_per_epoch))
        return 0;
    c->last_draw = now;
    s_clock(left, sizeof(left), s->seconds_left);
    n = snprintf(line, sizeof(line), "epoch %d/%d  step %" PRId64 "/%"
                 PRId64 "  loss %.4f  acc %.2f%%  %.0f img/s  left %s",
                 s->epoch + 1, s->epochs, s->step, s->steps_per_epoch,
                 s->loss, s->acc, s->images_per_s, left);
    printf("\r%s\033[K", line);
    fflush(stdout);
    c->line_len = n > 0 ? (size_t)n : 0;
    return 0;
}

static int s_on_epoch(void *ctx, const train_epoch_t *e)
{
    train_cli_t *c = ctx;
    char test[32] = "";

    if (c->quiet)
        return s_interrupted ? 1 : 0;
    if (c->tty && c->line_len)
        printf("\r\033[K");
    c->line_len = 0;
    if (e->test_acc >= 0)
        snprintf(test, sizeof(test), "  test %.2f%%", e->test_acc);
    printf("epoch %d/%d  lr %.4f  loss %.4f  train %.2f%%  valid %.2f%%%s"
           "  %.0f img/s  %.1f s\n", e->epoch + 1, e->epochs, e->lr,
           e->train_loss, e->train_acc, e->valid_acc, test, e->images_per_s,
           e->seconds);
    fflush(stdout);
    return s_interrupted ? 1 : 0;
}

static int s_on_checkpoint(void *ctx, const char *path, int epoch)
{
    train_cli_t *c = ctx;

    if (!c->quiet)
        printf("checkpoint after epoch %d: %s\n", epoch + 1, path);
    return s_interrupted ? 1 : 0;
}

/* ---------------------------------------------------------------- JSON */

static json_t *s_num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static int s_write_json(const char *path, const char *design,
                        const train_config_t *cfg, const train_result_t *r)
{
    json_t *o = json_object(), *epochs = json_array(), *c = json_object();
    int rc;

    for (int i = 0; i < r->n_epochs; i++) {
        const train_epoch_t *e = &r->epochs[i];
        json_t *j = json_object();
        json_object_set_new(j, "epoch", json_integer(e->epoch));
        json_object_set_new(j, "lr", s_num(e->lr));
        json_object_set_new(j, "train_loss", s_num(e->train_loss));
        json_object_set_new(j, "train_acc", s_num(e->train_acc));
        json_object_set_new(j, "valid_loss", s_num(e->valid_loss));
        json_object_set_new(j, "valid_acc", s_num(e->valid_acc));
        json_object_set_new(j, "test_acc", e->test_acc >= 0
                                               ? s_num(e->test_acc)
                                               : json_null());
        json_object_set_new(j, "images_per_s", s_num(e->images_per_s));
        json_object_set_new(j, "seconds", s_num(e->seconds));
        json_array_append_new(epochs, j);
    }
    json_object_set_new(c, "dataset", json_string(cfg->dataset));
    json_object_set_new(c, "epochs", json_integer(cfg->epochs));
    json_object_set_new(c, "batch", json_integer(cfg->batch));
    json_object_set_new(c, "seed", json_integer((json_int_t)cfg->seed));
    json_object_set_new(c, "lr", json_real(cfg->lr));
    json_object_set_new(c, "momentum", json_real(cfg->momentum));
    json_object_set_new(c, "weight_decay", json_real(cfg->weight_decay));
    json_object_set_new(c, "nesterov", json_boolean(cfg->nesterov));
    json_object_set_new(c, "max_steps", json_integer(cfg->max_steps));
    json_object_set_new(c, "threads", json_integer(cfg->threads));
    json_object_set_new(o, "status",
                        json_string(train_status_name(r->status)));
    json_object_set_new(o, "reason", json_string(r->reason));
    json_object_set_new(o, "design", json_string(design));
    json_object_set_new(o, "device", json_string(r->device));
    json_object_set_new(o, "width", json_integer(r->width));
    json_object_set_new(o, "params", json_integer(r->params));
    json_object_set_new(o, "macs", json_integer(r->macs));
    json_object_set_new(o, "epochs_done", json_integer(r->n_epochs));
    json_object_set_new(o, "best_valid_acc", s_num(r->best_valid_acc));
    json_object_set_new(o, "final_valid_acc", s_num(r->final_valid_acc));
    json_object_set_new(o, "best_test_acc", r->best_test_acc >= 0
                                                ? s_num(r->best_test_acc)
                                                : json_null());
    json_object_set_new(o, "final_test_acc", r->final_test_acc >= 0
                                                 ? s_num(r->final_test_acc)
                                                 : json_null());
    json_object_set_new(o, "images_per_s", s_num(r->images_per_s));
    json_object_set_new(o, "peak_bytes", json_integer(r->peak_bytes));
    json_object_set_new(o, "peak_rss_bytes",
                        json_integer(r->peak_rss_bytes));
    json_object_set_new(o, "seconds", s_num(r->seconds));
    json_object_set_new(o, "steps", json_integer(r->steps));
    json_object_set_new(o, "config", c);
    json_object_set_new(o, "epochs", epochs);
    rc = json_dump_file(o, path, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (rc != 0)
        fprintf(stderr, "nader train: cannot write %s\n", path);
    return rc;
}

/* ------------------------------------------------------------- options */

enum {
    OPT_DATASET = 256, OPT_DATA, OPT_SPLIT, OPT_EPOCHS, OPT_BATCH, OPT_SEED,
    OPT_LR, OPT_WIDTH, OPT_BUDGET, OPT_SKELETON, OPT_CELLS, OPT_STEM_SCALE,
    OPT_MAX_STEPS,
    OPT_DEVICE, OPT_PRECISION, OPT_THREADS, OPT_JSON, OPT_SAVE, OPT_INIT,
    OPT_CKPT, OPT_CKPT_EVERY, OPT_RESUME, OPT_QUIET, OPT_HELP
};

static const struct option s_opts[] = {
    {"dataset", required_argument, NULL, OPT_DATASET},
    {"data", required_argument, NULL, OPT_DATA},
    {"split", required_argument, NULL, OPT_SPLIT},
    {"epochs", required_argument, NULL, OPT_EPOCHS},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"seed", required_argument, NULL, OPT_SEED},
    {"lr", required_argument, NULL, OPT_LR},
    {"width", required_argument, NULL, OPT_WIDTH},
    {"budget", required_argument, NULL, OPT_BUDGET},
    {"skeleton", required_argument, NULL, OPT_SKELETON},
    {"cells", required_argument, NULL, OPT_CELLS},
    {"stem-scale", required_argument, NULL, OPT_STEM_SCALE},
    {"max-steps", required_argument, NULL, OPT_MAX_STEPS},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"precision", required_argument, NULL, OPT_PRECISION},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"json-out", required_argument, NULL, OPT_JSON},
    {"save-weights", required_argument, NULL, OPT_SAVE},
    {"init-weights", required_argument, NULL, OPT_INIT},
    {"checkpoint", required_argument, NULL, OPT_CKPT},
    {"checkpoint-every", required_argument, NULL, OPT_CKPT_EVERY},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Numbers that go into ncfg or cfg. */
static int s_opt_number(int opt, const char *v, net_config_t *n,
                        train_config_t *c, int64_t *cells)
{
    int64_t x = 0;
    char *end;

    switch (opt) {
    case OPT_EPOCHS:
        return s_int("--epochs", v, 1, 100000, &x) ? -1
               : (c->epochs = (int)x, 0);
    case OPT_BATCH:
        return s_int("--batch", v, 1, 65536, &x) ? -1
               : (c->batch = (int)x, 0);
    case OPT_SEED:
        return s_int("--seed", v, 0, INT64_MAX, &x) ? -1
               : (c->seed = (uint64_t)x, 0);
    case OPT_WIDTH:
        return s_int("--width", v, 1, 4096, &x) ? -1
               : (n->width = (int)x, 0);
    case OPT_BUDGET:
        return s_int("--budget", v, 1, INT64_MAX, &x) ? -1
               : (n->budget = x, 0);
    case OPT_CELLS:
        return s_int("--cells", v, 1, 64, cells);
    case OPT_STEM_SCALE:
        if (s_int("--stem-scale", v, 1, 8, &x))
            return -1;
        if (!net_stem_scale_ok((int)x)) {
            fprintf(stderr, "nader train: --stem-scale wants 1, 2, 4 or 8, "
                    "not '%s'\n", v);
            return -1;
        }
        n->stem_scale = (int)x;
        return 0;
    case OPT_MAX_STEPS:
        return s_int("--max-steps", v, 1, INT64_MAX, &x) ? -1
               : (c->max_steps = x, 0);
    case OPT_THREADS:
        return s_int("--threads", v, 0, 4096, &x) ? -1
               : (c->threads = (int)x, 0);
    case OPT_CKPT_EVERY:
        return s_int("--checkpoint-every", v, 1, 100000, &x) ? -1
               : (c->checkpoint_every = (int)x, 0);
    case OPT_LR:
        c->lr = strtod(v, &end);
        if (*v && !*end && c->lr > 0 && isfinite(c->lr))
            return 0;
        fprintf(stderr, "nader train: --lr wants a positive number, not "
                "'%s'\n", v);
        return -1;
    }
    return -1;
}

static int s_precision(const char *v, backend_precision_t *p)
{
    if (strcmp(v, "fp32") == 0)
        *p = BACKEND_FP32;
    else if (strcmp(v, "strict-fp32") == 0)
        *p = BACKEND_STRICT_FP32;
    else if (strcmp(v, "bf16") == 0)
        *p = BACKEND_BF16;
    else
        return -1;
    return 0;
}

typedef struct train_args {
    const char *skeleton, *precision;
    int64_t cells;
    train_cli_t cli;
} train_args_t;

static int s_parse(int argc, char **argv, net_config_t *n,
                   train_config_t *c, train_args_t *a)
{
    int opt;

    optind = 1;
    opterr = 1;
    while ((opt = getopt_long(argc, argv, "", s_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_DATASET: c->dataset = optarg; break;
        case OPT_DATA: c->data_dir = optarg; break;
        case OPT_SPLIT: c->split_file = optarg; break;
        case OPT_SKELETON: a->skeleton = optarg; break;
        case OPT_DEVICE: c->device = optarg; break;
        case OPT_PRECISION: a->precision = optarg; break;
        case OPT_JSON: a->cli.json_out = optarg; break;
        case OPT_SAVE: c->save_weights = optarg; break;
        case OPT_INIT: c->init_weights = optarg; break;
        case OPT_CKPT: c->checkpoint = optarg; break;
        case OPT_RESUME: c->resume = optarg; break;
        case OPT_QUIET: a->cli.quiet = true; break;
        case OPT_HELP: s_usage(stdout); return 1;
        case '?': return -1;
        default:
            if (s_opt_number(opt, optarg, n, c, &a->cells))
                return -1;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "nader train: give exactly one DESIGN file\n");
        return -1;
    }
    a->cli.design_path = argv[optind];
    return 0;
}

/* ------------------------------------------------------------------ run */

static int s_load_design(const char *path, graph_design_t **d)
{
    graph_errors_t errs;
    size_t len = 0;
    char *text = s_read(path, &len);
    int rc;

    if (!text) {
        fprintf(stderr, "nader train: %s: %s\n", path, strerror(errno));
        return 2;
    }
    graph_errors_init(&errs);
    rc = graph_design_parse(text, len, path, d, &errs);
    free(text);
    for (int i = 0; i < errs.n; i++)
        fprintf(stderr, "%s:%d: %s\n", path, errs.v[i].line,
                errs.v[i].message);
    graph_errors_free(&errs);
    return rc == 0 ? 0 : 1;
}

static int s_check_design(const graph_design_t *d, const net_config_t *n,
                          const char *path)
{
    graph_errors_t errs;
    int bad;

    graph_errors_init(&errs);
    bad = net_check(d, n, NULL, &errs);
    for (int i = 0; i < errs.n; i++)
        fprintf(stderr, "%s: %s\n", path, errs.v[i].message);
    graph_errors_free(&errs);
    return bad ? 1 : 0;
}

static void s_summary(const train_result_t *r)
{
    char test[64] = "";

    if (r->status != TRAIN_OK) {
        printf("%s: %s\n", train_status_name(r->status), r->reason);
        return;
    }
    if (r->best_test_acc >= 0)
        snprintf(test, sizeof(test), ", test %.2f%% (at best) %.2f%% "
                 "(final)", r->best_test_acc, r->final_test_acc);
    printf("ok: valid %.2f%% (best) %.2f%% (final)%s; width %d, %" PRId64
           " params, %.1f M MACs; %.0f img/s; peak %.1f MiB device, "
           "%.1f MiB RSS; %.1f s\n", r->best_valid_acc, r->final_valid_acc,
           test, r->width, r->params, (double)r->macs / 1e6,
           r->images_per_s, (double)r->peak_bytes / 1048576.0,
           (double)r->peak_rss_bytes / 1048576.0, r->seconds);
}

int cmd_train(int argc, char **argv)
{
    net_config_t ncfg;
    train_config_t cfg;
    train_args_t a = {0};
    train_hooks_t hooks = {&a.cli, s_on_epoch, s_on_step, s_on_checkpoint,
                           NULL};
    train_result_t r;
    graph_design_t *d = NULL;
    struct sigaction sa;
    int rc;

    train_config_default(&cfg);
    cfg.dataset = NULL;
    memset(&ncfg, 0, sizeof(ncfg));
    rc = s_parse(argc, argv, &ncfg, &cfg, &a);
    if (rc)
        return rc > 0 ? 0 : (s_usage(stderr), 2);
    {
        net_config_t dflt;
        if (!cfg.dataset || net_config_default(&dflt, cfg.dataset) != 0) {
            fprintf(stderr, "nader train: --dataset must be cifar10, "
                    "cifar10-valid, cifar100 or imagenet16-120\n");
            return 2;
        }
        if (ncfg.width)
            dflt.width = ncfg.width;
        if (ncfg.budget)
            dflt.budget = ncfg.budget;
        if (a.cells)
            dflt.cells_per_stage = (int)a.cells;
        if (ncfg.stem_scale)
            dflt.stem_scale = ncfg.stem_scale;
        ncfg = dflt;
    }
    if (a.skeleton) {
        int s = net_skeleton_parse(a.skeleton);
        if (s < 0) {
            fprintf(stderr, "nader train: unknown skeleton '%s' (nb201, "
                    "darts)\n", a.skeleton);
            return 2;
        }
        ncfg.skeleton = (net_skeleton_t)s;
    }
    if (a.precision && s_precision(a.precision, &cfg.precision)) {
        fprintf(stderr, "nader train: --precision must be fp32, "
                "strict-fp32 or bf16\n");
        return 2;
    }
    if (!cfg.data_dir || data_set_probe(cfg.dataset, cfg.data_dir) != 1) {
        fprintf(stderr, "nader train: no %s files in %s\n", cfg.dataset,
                cfg.data_dir ? cfg.data_dir : "(give --data DIR)");
        return 2;
    }
    if (cfg.checkpoint && cfg.checkpoint_every == 0)
        cfg.checkpoint_every = 1;
    rc = s_load_design(a.cli.design_path, &d);
    if (rc == 0)
        rc = s_check_design(d, &ncfg, a.cli.design_path);
    if (rc) {
        graph_design_destroy(&d);
        return rc;
    }

    a.cli.tty = isatty(STDOUT_FILENO);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_sigint;
    sa.sa_flags = (int)SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    train_run(d, &ncfg, &cfg, &hooks, &r);
    if (a.cli.tty && a.cli.line_len)
        printf("\r\033[K");
    s_summary(&r);
    rc = r.status == TRAIN_OK ? 0 : 1;
    if (a.cli.json_out &&
        s_write_json(a.cli.json_out, a.cli.design_path, &cfg, &r) != 0)
        rc = 2;
    train_result_free(&r);
    graph_design_destroy(&d);
    return rc;
}
