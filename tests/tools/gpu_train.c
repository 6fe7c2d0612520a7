/*
 * gpu_train.c - the GPU check's driver: train a design for a few steps on
 * a device and measure it, with the CPU backend as the reference.
 *
 *   gpu_train data DIR
 *       write a data set in the CIFAR-10 binary layout (five training
 *       files and a test file of 10,000 records each) whose classes are
 *       learnable patterns, for `nader train` runs without the real data.
 *   gpu_train run --design FILE [--width W] [--batch B] [--steps N]
 *                 [--warmup K] [--device D] [--precision P] [--cpu-ref]
 *                 [--cpu-ref-file F] [--cpu-threads T] [--no-capture] [--eval]
 *                 [--peak-tflops X] [--peak-gbs Y] [--label L] [--json F]
 *       build the network (the budget's width unless --width), train N
 *       steps of the nb201 recipe on in-memory data of that kind, and
 *       report the loss of every step; with --cpu-ref the same steps on
 *       the CPU backend (kept in and reused from F when given) and the
 *       relative difference step by step; then
 *       time steady-state steps (captured and replayed when the backend
 *       can) for images/s, step time, device memory, achieved FLOP/s and
 *       bytes/s of a minimum-traffic model against the given peaks, and
 *       with --eval an evaluation pass too.
 *   gpu_train convs --design FILE [--width W] [--batch B] [--device D]
 *                   [--precision P] [--peak-tflops X] [--peak-gbs Y]
 *                   [--json F]
 *       time forward and backward of every distinct Conv2d of the network
 *       alone, against the arithmetic and memory ceilings.
 *
 * It drives the engine's own network executor (network.h) through the
 * backend table, exactly as train.c does a step: batch built on the
 * device from uint8 images, forward, loss summed on the device, backward,
 * SGD; so the figures are those of `nader train`, minus the data feed.
 * Results go to stdout and, with --json, as one JSON object per line.
 * Exit status: 0 ok, 1 a failure or a trajectory outside tolerance,
 * 2 bad usage, 77 the device is absent.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backend.h"
#include "graph.h"
#include "graph_ops.h"
#include "net.h"
#include "network.h"
#include "rng.h"

#define IMG 32
#define PLANE (IMG * IMG)
#define RECORD (1 + 3 * PLANE)
#define SYN_IMAGES 10000
#define SEED 777

/* Tolerances of the loss trajectory (relative, worst step of 20). */
#define TRAJ_TOL_STRICT 1e-3
#define TRAJ_TOL_TF32 2e-2
#define TRAJ_TOL_BF16 5e-2

typedef struct opts {
    const char *design, *device, *prec_name, *label, *json, *cpu_file;
    backend_precision_t prec;
    int width, batch, steps, warmup, cpu_threads;
    bool cpu_ref, no_capture, eval;
    double peak_tflops, peak_gbs;
} opts_t;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------- synthetic data */

/*
 * Image i of the synthetic set: class i's pattern (a grating whose
 * frequencies and a colour tint depend on the class) at a random phase,
 * plus noise.  Writes 3 x 32 x 32 bytes and returns the class.
 */
static int s_image(uint64_t i, uint8_t *px)
{
    uint64_t key = engine_rng_mix(0x5eedULL ^ (i * 0x9e3779b97f4a7c15ULL));
    int y = (int)(engine_rng_mix(key) % 10);
    float fx = (float)(1 + y % 4), fy = (float)(1 + (y / 4) % 3);
    float phase = 6.2831853f * engine_rng_uniform(key, 1);

    for (int c = 0; c < 3; c++) {
        float tint = ((y >> c) & 1) ? 35.0f : -35.0f;
        for (int r = 0; r < IMG; r++)
            for (int q = 0; q < IMG; q++) {
                float t = 6.2831853f * (fx * q + fy * r) / IMG + phase;
                float noise =
                    60.0f * (engine_rng_uniform(
                                 key, 2 + (uint64_t)(c * PLANE + r * IMG + q)) -
                             0.5f);
                float v = 128.0f + 55.0f * sinf(t) + tint + noise;
                px[c * PLANE + r * IMG + q] = (uint8_t)(v < 0     ? 0
                                                        : v > 255 ? 255
                                                                  : v);
            }
    }
    return y;
}

static int s_write_file(const char *path, uint64_t first, int n)
{
    uint8_t *buf = malloc((size_t)n * RECORD);
    FILE *f = NULL;
    int rc = -1;

    if (!buf) {
        fprintf(stderr, "gpu_train: out of memory\n");
        return -1;
    }
#pragma omp parallel for schedule(static)
    for (int k = 0; k < n; k++) {
        uint8_t *rec = buf + (size_t)k * RECORD;
        rec[0] = (uint8_t)s_image(first + (uint64_t)k, rec + 1);
    }
    if (!(f = fopen(path, "wb")) ||
        fwrite(buf, RECORD, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "gpu_train: cannot write %s: %s\n", path,
                strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (f && fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "gpu_train: closing %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    free(buf);
    return rc;
}

static int s_cmd_data(const char *dir)
{
    char sub[1024], path[1100];

    snprintf(sub, sizeof(sub), "%s/cifar-10-batches-bin", dir);
    if ((mkdir(dir, 0755) && errno != EEXIST) ||
        (mkdir(sub, 0755) && errno != EEXIST)) {
        fprintf(stderr, "gpu_train: cannot create %s: %s\n", sub,
                strerror(errno));
        return 1;
    }
    for (int b = 0; b < 6; b++) {
        if (b < 5)
            snprintf(path, sizeof(path), "%s/data_batch_%d.bin", sub, b + 1);
        else
            snprintf(path, sizeof(path), "%s/test_batch.bin", sub);
        if (s_write_file(path, (uint64_t)b * 10000, 10000))
            return 1;
    }
    printf("gpu_train: wrote 60000 images in the CIFAR-10 layout to %s\n", sub);
    return 0;
}

/* ------------------------------------------------------------- network */

static int s_load_net(const opts_t *o, net_t **out)
{
    graph_errors_t errs;
    graph_design_t *d = NULL;
    net_config_t cfg;
    char *text = NULL;
    long len;
    int rc = -1;
    FILE *f = fopen(o->design, "rb");

    graph_errors_init(&errs);
    if (!f) {
        fprintf(stderr, "gpu_train: cannot read %s: %s\n", o->design,
                strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) || !(text = malloc((size_t)len + 1)) ||
        fread(text, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "gpu_train: cannot read %s\n", o->design);
        goto done;
    }
    if (graph_design_parse(text, (size_t)len, o->design, &d, &errs) ||
        net_config_default(&cfg, "cifar10")) {
        for (int i = 0; i < errs.n; i++)
            fprintf(stderr, "gpu_train: %s\n", errs.v[i].message);
        goto done;
    }
    cfg.width = o->width;
    if (net_build(d, &cfg, o->batch, out, &errs)) {
        for (int i = 0; i < errs.n; i++)
            fprintf(stderr, "gpu_train: %s\n", errs.v[i].message);
        goto done;
    }
    rc = 0;
done:
    fclose(f);
    free(text);
    graph_design_destroy(&d);
    graph_errors_free(&errs);
    return rc;
}

/*
 * The minimum device traffic of one training step, in bytes: forward
 * reads each node's inputs and parameters and writes its output; backward
 * reads the output gradient and what the op keeps (inputs or output),
 * writes the input gradients and parameter gradients; SGD reads weights,
 * gradients and momenta and writes weights and momenta.
 */
static double s_step_bytes(const net_t *net)
{
    double b = 0;
    for (int i = 1; i < net->n_nodes; i++) {
        const net_node_t *nd = &net->nodes[i];
        const graph_op_info_t *info = graph_op_info(nd->op);
        double out = 4.0, in = 0;
        for (int k = 0; k < nd->shape.ndim; k++)
            out *= (double)nd->shape.d[k];
        for (int s = 0; s < nd->n_inputs; s++) {
            const graph_shape_t *xs = &net->nodes[nd->inputs[s]].shape;
            double t = 4.0;
            for (int k = 0; k < xs->ndim; k++)
                t *= (double)xs->d[k];
            in += t;
        }
        double par = 4.0 * (double)nd->params;
        b += in + out + par; /* forward */
        b += out + in + 2 * par + (info->bwd_needs_input ? in : 0) +
             (info->bwd_needs_output ? out : 0); /* backward */
    }
    return b + 5 * 4.0 * (double)net->params; /* SGD */
}

/* Device-side state of one run: the images, batch spec and loss sums. */
typedef struct dev {
    backend_t *be;
    network_t *nw;
    uint8_t *images;
    int32_t *labels, *index;
    int8_t *sx, *sy;
    uint8_t *flip;
    float *x, *acc;
    int32_t *blabels;
} dev_t_;

static void s_dev_close(dev_t_ *d)
{
    backend_t *be = d->be;
    if (!be)
        return;
    network_destroy(&d->nw);
    void *p[] = {d->images, d->labels, d->index, d->sx,     d->sy,
                 d->flip,   d->x,      d->acc,   d->blabels};
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
        if (p[i])
            be->vt->free(be, p[i]);
    backend_destroy(&d->be);
    memset(d, 0, sizeof(*d));
}

static int s_dev_open(dev_t_ *d, const char *device, backend_precision_t p,
                      int threads, const net_t *net, const uint8_t *images,
                      const int32_t *labels)
{
    backend_options_t bo = {.threads = threads, .precision = p};
    char err[400];
    int B = net->batch;

    memset(d, 0, sizeof(*d));
    d->be = backend_new(device, &bo, err, sizeof(err));
    if (!d->be) {
        fprintf(stderr, "gpu_train: %s\n", err);
        return -1;
    }
    backend_t *be = d->be;
    if (network_new(be, net, NULL, &d->nw, err, sizeof(err)) ||
        network_init(d->nw, SEED)) {
        fprintf(stderr, "gpu_train: network on %s: %s\n", device, err);
        return -1;
    }
    d->images = be->vt->alloc(be, (size_t)SYN_IMAGES * 3 * PLANE);
    d->labels = be->vt->alloc(be, SYN_IMAGES * sizeof(int32_t));
    d->index = be->vt->alloc(be, (size_t)B * sizeof(int32_t));
    d->sx = be->vt->alloc(be, (size_t)B);
    d->sy = be->vt->alloc(be, (size_t)B);
    d->flip = be->vt->alloc(be, (size_t)B);
    d->x = be->vt->alloc(be, (size_t)B * 3 * PLANE * sizeof(float));
    d->acc = be->vt->alloc(be, 2 * sizeof(float));
    d->blabels = be->vt->alloc(be, (size_t)B * sizeof(int32_t));
    if (!d->images || !d->labels || !d->index || !d->sx || !d->sy || !d->flip ||
        !d->x || !d->acc || !d->blabels) {
        fprintf(stderr, "gpu_train: %s: %s\n", device, be->err);
        return -1;
    }
    if (be->vt->upload(be, d->images, images, (size_t)SYN_IMAGES * 3 * PLANE) ||
        be->vt->upload(be, d->labels, labels, SYN_IMAGES * sizeof(int32_t))) {
        fprintf(stderr, "gpu_train: %s: %s\n", device, be->err);
        return -1;
    }
    return 0;
}

/* Host side of step k's batch: indices, crop shifts (pad 4) and flips. */
typedef struct spec_host {
    int32_t *index;
    int8_t *sx, *sy;
    uint8_t *flip;
} spec_host_t;

static void s_spec(spec_host_t *h, int B, int step)
{
    uint64_t st = engine_rng_mix(SEED + (uint64_t)step);
    for (int i = 0; i < B; i++) {
        uint64_t r = engine_rng_next(&st);
        h->index[i] = (int32_t)(((int64_t)step * B + i) % SYN_IMAGES);
        h->sx[i] = (int8_t)((int)(r % 9) - 4);
        h->sy[i] = (int8_t)((int)((r >> 8) % 9) - 4);
        h->flip[i] = (uint8_t)((r >> 16) & 1);
    }
}

static int s_upload_spec(dev_t_ *d, const spec_host_t *h, int B)
{
    backend_t *be = d->be;
    if (be->vt->upload(be, d->index, h->index, (size_t)B * 4) ||
        be->vt->upload(be, d->sx, h->sx, (size_t)B) ||
        be->vt->upload(be, d->sy, h->sy, (size_t)B) ||
        be->vt->upload(be, d->flip, h->flip, (size_t)B)) {
        fprintf(stderr, "gpu_train: upload: %s\n", be->err);
        return -1;
    }
    return 0;
}

/* The calls of one training step after the spec is uploaded. */
static int s_step_calls(dev_t_ *d, const net_t *net, int step)
{
    static const float mean[3] = {125.3f / 255, 123.0f / 255, 113.9f / 255};
    static const float sd[3] = {63.0f / 255, 62.1f / 255, 66.7f / 255};
    backend_t *be = d->be;
    backend_batch_spec_t spec = {d->index,
                                 d->sx,
                                 d->sy,
                                 d->flip,
                                 net->batch,
                                 4,
                                 {mean[0], mean[1], mean[2]},
                                 {sd[0], sd[1], sd[2]}};
    backend_sgd_t sgd = {0.1f, 0.9f, 5e-4f, true};
    char err[640];

    if (be->vt->batch(be, d->images, d->labels, IMG, IMG, &spec, d->x,
                      d->blabels)) {
        fprintf(stderr, "gpu_train: batch: %s\n", be->err);
        return -1;
    }
    if (network_forward(d->nw, d->x, true, SEED, (uint64_t)step, err,
                        sizeof(err))) {
        fprintf(stderr, "gpu_train: %s\n", err);
        return -1;
    }
    if (be->vt->xent(be, network_logits(d->nw), d->blabels, net->batch,
                     net->config.classes, network_dlogits(d->nw), d->acc)) {
        fprintf(stderr, "gpu_train: loss: %s\n", be->err);
        return -1;
    }
    if (network_backward(d->nw, err, sizeof(err)) ||
        network_sgd(d->nw, &sgd, err, sizeof(err))) {
        fprintf(stderr, "gpu_train: %s\n", err);
        return -1;
    }
    return 0;
}

/* Train steps [0, n) and record each step's mean loss. */
static int s_trajectory(dev_t_ *d, const net_t *net, spec_host_t *h, int n,
                        double *loss)
{
    backend_t *be = d->be;
    for (int k = 0; k < n; k++) {
        float a[2];
        s_spec(h, net->batch, k);
        if (be->vt->zero(be, d->acc, 2 * sizeof(float)) ||
            s_upload_spec(d, h, net->batch) || s_step_calls(d, net, k) ||
            be->vt->download(be, a, d->acc, sizeof(a))) {
            fprintf(stderr, "gpu_train: step %d: %s\n", k, be->err);
            return -1;
        }
        loss[k] = a[0] / net->batch;
    }
    return 0;
}

/* Seconds per step over n steady steps (captured when possible). */
static int s_time_steps(dev_t_ *d, const net_t *net, spec_host_t *h, int first,
                        int n, bool capture, double *sec)
{
    backend_t *be = d->be;
    bool cap = capture && be->vt->capture_begin;
    double t0;

    if (be->vt->sync(be))
        return -1;
    t0 = s_now();
    for (int k = first; k < first + n; k++) {
        s_spec(h, net->batch, k);
        if (s_upload_spec(d, h, net->batch))
            return -1;
        if (cap && k == first) {
            if (be->vt->capture_begin(be) || s_step_calls(d, net, k) ||
                be->vt->capture_end(be)) {
                fprintf(stderr, "gpu_train: capture: %s\n", be->err);
                return -1;
            }
            if (be->vt->sync(be))
                return -1;
            t0 = s_now(); /* capture time is not step time */
        }
        if (cap ? be->vt->replay(be) : s_step_calls(d, net, k)) {
            fprintf(stderr, "gpu_train: step %d: %s\n", k, be->err);
            return -1;
        }
    }
    if (be->vt->sync(be)) {
        fprintf(stderr, "gpu_train: sync: %s\n", be->err);
        return -1;
    }
    *sec = (s_now() - t0) / n;
    return 0;
}

/* Seconds for a forward-only evaluation pass over the in-memory set. */
static int s_time_eval(dev_t_ *d, const net_t *net, spec_host_t *h, double *sec)
{
    backend_t *be = d->be;
    int B = net->batch, batches = SYN_IMAGES / B;
    char err[640];
    double t0;

    if (be->vt->sync(be))
        return -1;
    t0 = s_now();
    for (int k = 0; k < batches; k++) {
        s_spec(h, B, k);
        memset(h->sx, 0, (size_t)B);
        memset(h->sy, 0, (size_t)B);
        memset(h->flip, 0, (size_t)B);
        backend_batch_spec_t spec = {d->index,
                                     NULL,
                                     NULL,
                                     NULL,
                                     B,
                                     0,
                                     {0.49f, 0.48f, 0.45f},
                                     {0.25f, 0.24f, 0.26f}};
        if (s_upload_spec(d, h, B) ||
            be->vt->batch(be, d->images, d->labels, IMG, IMG, &spec, d->x,
                          d->blabels) ||
            network_forward(d->nw, d->x, false, SEED, 0, err, sizeof(err)) ||
            be->vt->xent(be, network_logits(d->nw), d->blabels, B,
                         net->config.classes, NULL, d->acc)) {
            fprintf(stderr, "gpu_train: evaluation: %s\n", be->err);
            return -1;
        }
    }
    if (be->vt->sync(be))
        return -1;
    *sec = (s_now() - t0) / (batches * B); /* per image */
    return 0;
}

/*
 * The CPU trajectory is the same for every precision of a device run, so
 * the check computes it once: a file of one loss per line.  Returns true
 * when path holds n losses (loaded into l).
 */
static bool s_losses_load(const char *path, double *l, int n)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    int k = 0;

    if (!f)
        return false;
    while (k < n && fscanf(f, "%lf", &l[k]) == 1)
        k++;
    fclose(f);
    return k == n;
}

static int s_losses_save(const char *path, const double *l, int n)
{
    FILE *f;

    if (!path)
        return 0;
    if (!(f = fopen(path, "w"))) {
        fprintf(stderr, "gpu_train: cannot write %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    for (int k = 0; k < n; k++)
        fprintf(f, "%.9g\n", l[k]);
    return fclose(f) ? -1 : 0;
}

static double s_traj_tol(backend_precision_t p)
{
    return p == BACKEND_STRICT_FP32 ? TRAJ_TOL_STRICT
           : p == BACKEND_BF16      ? TRAJ_TOL_BF16
                                    : TRAJ_TOL_TF32;
}

static void s_json_losses(FILE *f, const char *key, const double *l, int n)
{
    fprintf(f, ", \"%s\": [", key);
    for (int k = 0; k < n; k++)
        fprintf(f, "%s%.6f", k ? ", " : "", l[k]);
    fprintf(f, "]");
}

static int s_cmd_run(const opts_t *o)
{
    uint8_t *images = malloc((size_t)SYN_IMAGES * 3 * PLANE);
    int32_t *labels = malloc(SYN_IMAGES * sizeof(int32_t));
    double *gl = calloc((size_t)o->steps, sizeof(double));
    double *cl = calloc((size_t)o->steps, sizeof(double));
    spec_host_t h = {malloc((size_t)o->batch * 4), malloc((size_t)o->batch),
                     malloc((size_t)o->batch), malloc((size_t)o->batch)};
    net_t *net = NULL;
    dev_t_ g = {0}, c = {0};
    double worst = 0, step_s = 0, eval_s = 0;
    int rc = 1;

    if (!images || !labels || !gl || !cl || !h.index || !h.sx || !h.sy ||
        !h.flip) {
        fprintf(stderr, "gpu_train: out of memory\n");
        goto done;
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < SYN_IMAGES; i++)
        labels[i] = s_image((uint64_t)i, images + (size_t)i * 3 * PLANE);
    if (s_load_net(o, &net))
        goto done;
    /* on the CPU (the harness test) both runs get --cpu-threads: the CPU
     * backend sums in another order at another thread count */
    if (s_dev_open(&g, o->device, o->prec,
                   strcmp(o->device, "cpu") == 0 ? o->cpu_threads : 0, net,
                   images, labels))
        goto done;
    printf("%s: %s, %s, width %d, %lld parameters, %.1f MMAC/image, batch "
           "%d\n",
           o->label, g.be->description, o->prec_name, net->width,
           (long long)net->params, net->macs / 1e6, net->batch);

    /* The trajectory, and the CPU's for the same steps. */
    if (s_trajectory(&g, net, &h, o->steps, gl))
        goto done;
    if (o->cpu_ref) {
        if (!s_losses_load(o->cpu_file, cl, o->steps)) {
            double t0 = s_now();
            if (s_dev_open(&c, "cpu", BACKEND_FP32, o->cpu_threads, net, images,
                           labels) ||
                s_trajectory(&c, net, &h, o->steps, cl))
                goto done;
            printf("  (CPU reference: %d steps in %.1f s on %s)\n", o->steps,
                   s_now() - t0, c.be->description);
            s_dev_close(&c);
            if (s_losses_save(o->cpu_file, cl, o->steps))
                goto done;
        }
        printf("  step   loss %-8s loss cpu    rel diff\n", o->device);
        for (int k = 0; k < o->steps; k++) {
            double r = fabs(gl[k] - cl[k]) / fmax(fabs(cl[k]), 1e-12);
            if (!(r <= worst))
                worst = isnan(r) ? INFINITY : fmax(worst, r);
            printf("  %4d   %-13.6f %-11.6f %.2e\n", k, gl[k], cl[k], r);
        }
        printf("  worst relative difference %.2e (tolerance %.0e)\n", worst,
               s_traj_tol(o->prec));
    } else {
        for (int k = 0; k < o->steps; k++)
            printf("  step %d loss %.6f\n", k, gl[k]);
    }

    /* Steady-state speed. */
    int n = o->warmup > 0 ? o->warmup : 0;
    if (n && s_time_steps(&g, net, &h, o->steps, n, !o->no_capture, &step_s))
        goto done;
    if (o->eval && s_time_eval(&g, net, &h, &eval_s))
        goto done;
    {
        double ips = step_s > 0 ? net->batch / step_s : 0;
        double flops = 6.0 * (double)net->macs * ips;
        double bytes = s_step_bytes(net) / (step_s > 0 ? step_s : 1);
        double epoch = step_s > 0 ? 50000.0 / ips + 10000.0 * eval_s : 0;
        if (n) {
            printf("  %.0f images/s (%.2f ms/step, %s), peak device memory "
                   "%.1f MiB\n",
                   ips, 1e3 * step_s,
                   o->no_capture || !g.be->vt->capture_begin ? "not captured"
                                                             : "graph replay",
                   g.be->peak_bytes / 1048576.0);
            printf("  %.1f TFLOP/s achieved (6 x MACs), %.1f%% of %.0f; "
                   "%.0f GB/s by the traffic model, %.1f%% of %.0f\n",
                   flops / 1e12, 100 * flops / (o->peak_tflops * 1e12),
                   o->peak_tflops, bytes / 1e9,
                   100 * bytes / (o->peak_gbs * 1e9), o->peak_gbs);
        }
        if (o->eval && n)
            printf("  evaluation %.0f images/s; one CIFAR-10 epoch (50,000 "
                   "trained, 10,000 evaluated) %.2f s; 200 epochs %.1f "
                   "min\n",
                   1.0 / eval_s, epoch, 200 * epoch / 60);
        if (o->json) {
            FILE *f = fopen(o->json, "a");
            if (!f) {
                fprintf(stderr, "gpu_train: cannot write %s: %s\n", o->json,
                        strerror(errno));
                goto done;
            }
            fprintf(f,
                    "{\"kind\": \"run\", \"label\": \"%s\", \"device\": "
                    "\"%s\", \"precision\": \"%s\", \"width\": %d, "
                    "\"params\": %lld, \"macs\": %lld, \"batch\": %d, "
                    "\"images_per_s\": %.1f, \"step_ms\": %.4f, "
                    "\"peak_bytes\": %lld, \"tflops\": %.3f, "
                    "\"tflops_fraction\": %.4f, \"gbs_model\": %.1f, "
                    "\"gbs_fraction\": %.4f, \"eval_images_per_s\": %.1f, "
                    "\"epoch_s\": %.3f, \"protocol_200_min\": %.2f",
                    o->label, g.be->description, o->prec_name, net->width,
                    (long long)net->params, (long long)net->macs, net->batch,
                    ips, 1e3 * step_s, (long long)g.be->peak_bytes,
                    flops / 1e12, flops / (o->peak_tflops * 1e12), bytes / 1e9,
                    bytes / (o->peak_gbs * 1e9),
                    eval_s > 0 ? 1.0 / eval_s : 0.0, epoch, 200 * epoch / 60);
            s_json_losses(f, "loss", gl, o->steps);
            if (o->cpu_ref) {
                s_json_losses(f, "loss_cpu", cl, o->steps);
                fprintf(f, ", \"traj_worst_rel\": %.4e, \"traj_tol\": %.0e",
                        isfinite(worst) ? worst : -1.0, s_traj_tol(o->prec));
            }
            fprintf(f, "}\n");
            fclose(f);
        }
    }
    rc = o->cpu_ref && !(worst <= s_traj_tol(o->prec)) ? 1 : 0;
done:
    s_dev_close(&c);
    s_dev_close(&g);
    net_destroy(&net);
    free(images);
    free(labels);
    free(gl);
    free(cl);
    free(h.index);
    free(h.sx);
    free(h.sy);
    free(h.flip);
    return rc;
}

/* ------------------------------------------------------------ convs */

/* Forward and backward of one Conv2d node alone, timed over reps. */
static int s_conv_one(backend_t *be, const net_t *net, const net_node_t *nd,
                      int reps, double *fwd_s, double *bwd_s)
{
    const graph_shape_t *xs = &net->nodes[nd->inputs[0]].shape;
    size_t nx = 4, ny = 4,
           nw = 4 * (size_t)(nd->out_ch * (nd->in_ch / nd->groups) *
                             nd->kernel * nd->kernel);
    for (int k = 0; k < xs->ndim; k++)
        nx *= (size_t)xs->d[k];
    for (int k = 0; k < nd->shape.ndim; k++)
        ny *= (size_t)nd->shape.d[k];
    size_t nb = 4 * (size_t)nd->out_ch;
    size_t ws = be->vt->workspace_bytes(be, net, nd);
    float *x = be->vt->alloc(be, nx), *y = be->vt->alloc(be, ny);
    float *dy = be->vt->alloc(be, ny), *dx = be->vt->alloc(be, nx);
    float *w = be->vt->alloc(be, nw), *b = be->vt->alloc(be, nb);
    float *dw = be->vt->alloc(be, nw), *db = be->vt->alloc(be, nb);
    void *work = be->vt->alloc(be, ws ? ws : 4);
    int rc = -1;

    if (!x || !y || !dy || !dx || !w || !b || !dw || !db || !work) {
        fprintf(stderr, "gpu_train: %s\n", be->err);
        goto done;
    }
    /* Non-zero operands: zeros can run faster than real data. */
    {
        size_t n = (nx > nw ? nx : nw) / 4;
        float *hbuf = malloc((n > ny / 4 ? n : ny / 4) * sizeof(float));
        if (!hbuf)
            goto done;
        for (size_t i = 0; i < (n > ny / 4 ? n : ny / 4); i++)
            hbuf[i] = engine_rng_uniform(99, i) - 0.5f;
        int e = be->vt->upload(be, x, hbuf, nx) ||
                be->vt->upload(be, w, hbuf, nw) ||
                be->vt->upload(be, b, hbuf, nb) ||
                be->vt->upload(be, dy, hbuf, ny);
        free(hbuf);
        if (e)
            goto done;
    }
    const float *xin[1] = {x}, *wv[2] = {w, b};
    float *dxv[1] = {dx}, *dwv[2] = {dw, db};
    bool acc[1] = {false};
    backend_op_t op = {.net = net,
                       .node = nd,
                       .n_inputs = 1,
                       .x = xin,
                       .y = y,
                       .w = wv,
                       .dw = dwv,
                       .dx = dxv,
                       .dx_accumulate = acc,
                       .dy = dy,
                       .workspace = work,
                       .workspace_size = ws,
                       .training = true};
    for (int pass = 0; pass < 2; pass++) {
        for (int r = 0; r < 3; r++)
            if (pass ? be->vt->backward(be, &op) : be->vt->forward(be, &op))
                goto fail;
        if (be->vt->sync(be))
            goto fail;
        double t0 = s_now();
        for (int r = 0; r < reps; r++)
            if (pass ? be->vt->backward(be, &op) : be->vt->forward(be, &op))
                goto fail;
        if (be->vt->sync(be))
            goto fail;
        *(pass ? bwd_s : fwd_s) = (s_now() - t0) / reps;
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "gpu_train: %s: %s\n", nd->name, be->err);
done:;
    void *all[] = {x, y, dy, dx, w, b, dw, db, work};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i])
            be->vt->free(be, all[i]);
    return rc;
}

static int s_cmd_convs(const opts_t *o)
{
    backend_options_t bo = {.precision = o->prec};
    char err[400];
    net_t *net = NULL;
    backend_t *be;
    FILE *jf = NULL;
    int rc = 1, seen[512], n_seen = 0;

    if (s_load_net(o, &net))
        return 1;
    be = backend_new(o->device, &bo, err, sizeof(err));
    if (!be) {
        fprintf(stderr, "gpu_train: %s\n", err);
        net_destroy(&net);
        return 1;
    }
    if (o->json && !(jf = fopen(o->json, "a"))) {
        fprintf(stderr, "gpu_train: cannot write %s\n", o->json);
        goto done;
    }
    printf("%s: Conv2d alone on %s, %s, batch %d\n", o->label, be->description,
           o->prec_name, net->batch);
    printf("  %-18s %-16s %8s %8s %7s %7s %6s %6s\n", "node", "in -> out",
           "fwd us", "bwd us", "TFLOP/s", "GB/s", "bound", "of it");
    for (int i = 1; i < net->n_nodes; i++) {
        const net_node_t *nd = &net->nodes[i];
        const graph_shape_t *xs;
        bool dup = false;
        double fs, bs;

        if (nd->op != GRAPH_OP_CONV2D)
            continue;
        xs = &net->nodes[nd->inputs[0]].shape;
        for (int k = 0; k < n_seen && !dup; k++) {
            const net_node_t *e = &net->nodes[seen[k]];
            const graph_shape_t *es = &net->nodes[e->inputs[0]].shape;
            dup = memcmp(es->d, xs->d, sizeof(xs->d)) == 0 &&
                  e->out_ch == nd->out_ch && e->kernel == nd->kernel &&
                  e->stride == nd->stride && e->dilation == nd->dilation &&
                  e->groups == nd->groups && e->crop == nd->crop;
        }
        if (dup || n_seen == 512)
            continue;
        seen[n_seen++] = i;
        if (s_conv_one(be, net, nd, 20, &fs, &bs))
            goto done;
        /* forward 2*MACs; backward data and filter 2*MACs each */
        double fl = 2.0 * (double)nd->macs * net->batch;
        double xb = 4.0, yb = 4.0;
        for (int k = 0; k < xs->ndim; k++)
            xb *= (double)xs->d[k];
        for (int k = 0; k < nd->shape.ndim; k++)
            yb *= (double)nd->shape.d[k];
        double wb = 4.0 * (double)nd->params;
        double bytes = (xb + wb + yb) + (yb + wb + xb) + (xb + yb + wb);
        double t = fs + bs, flops = 3 * fl / t, gbs = bytes / t;
        double tf = 3 * fl / (o->peak_tflops * 1e12);
        double tb = bytes / (o->peak_gbs * 1e9);
        double floor_t = tf > tb ? tf : tb;
        char io[48];
        snprintf(io, sizeof(io), "%lldx%lld->%lld s%lld", (long long)xs->d[1],
                 (long long)xs->d[2], (long long)nd->out_ch,
                 (long long)nd->stride);
        printf("  %-18.18s %-16s %8.1f %8.1f %7.1f %7.0f %6s %5.0f%%\n",
               nd->name, io, 1e6 * fs, 1e6 * bs, flops / 1e12, gbs / 1e9,
               tf > tb ? "math" : "memory", 100 * floor_t / t);
        if (jf)
            fprintf(jf,
                    "{\"kind\": \"conv\", \"label\": \"%s\", \"node\": "
                    "\"%s\", \"shape\": \"%s\", \"precision\": \"%s\", "
                    "\"fwd_us\": %.2f, \"bwd_us\": %.2f, \"tflops\": %.3f, "
                    "\"gbs\": %.1f, \"bound\": \"%s\", \"of_bound\": %.4f}\n",
                    o->label, nd->name, io, o->prec_name, 1e6 * fs, 1e6 * bs,
                    flops / 1e12, gbs / 1e9, tf > tb ? "math" : "memory",
                    floor_t / t);
    }
    rc = 0;
done:
    if (jf)
        fclose(jf);
    backend_destroy(&be);
    net_destroy(&net);
    return rc;
}

/* ------------------------------------------------------------------ main */

static int s_usage(void)
{
    fprintf(stderr,
            "usage: gpu_train data DIR\n"
            "       gpu_train run --design FILE [--width W] [--batch B] "
            "[--steps N] [--warmup K]\n"
            "                 [--device D] [--precision fp32|strict|bf16] "
            "[--cpu-ref] [--cpu-ref-file F] [--cpu-threads T]\n"
            "                 [--no-capture] [--eval] [--peak-tflops X] "
            "[--peak-gbs Y] [--label L] [--json F]\n"
            "       gpu_train convs --design FILE [--width W] [--batch B] "
            "[--device D] [--precision P] ...\n");
    return 2;
}

int main(int argc, char **argv)
{
    opts_t o = {.device = "cuda:0",
                .prec_name = "fp32",
                .label = "run",
                .prec = BACKEND_FP32,
                .batch = 256,
                .steps = 20,
                .warmup = 0,
                .peak_tflops = 494.7,
                .peak_gbs = 4800};

    if (argc < 2)
        return s_usage();
    if (strcmp(argv[1], "data") == 0)
        return argc == 3 ? s_cmd_data(argv[2]) : s_usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--design") == 0 && has)
            o.design = argv[++i];
        else if (strcmp(a, "--width") == 0 && has)
            o.width = atoi(argv[++i]);
        else if (strcmp(a, "--batch") == 0 && has)
            o.batch = atoi(argv[++i]);
        else if (strcmp(a, "--steps") == 0 && has)
            o.steps = atoi(argv[++i]);
        else if (strcmp(a, "--warmup") == 0 && has)
            o.warmup = atoi(argv[++i]);
        else if (strcmp(a, "--device") == 0 && has)
            o.device = argv[++i];
        else if (strcmp(a, "--precision") == 0 && has)
            o.prec_name = argv[++i];
        else if (strcmp(a, "--cpu-threads") == 0 && has)
            o.cpu_threads = atoi(argv[++i]);
        else if (strcmp(a, "--peak-tflops") == 0 && has)
            o.peak_tflops = atof(argv[++i]);
        else if (strcmp(a, "--peak-gbs") == 0 && has)
            o.peak_gbs = atof(argv[++i]);
        else if (strcmp(a, "--label") == 0 && has)
            o.label = argv[++i];
        else if (strcmp(a, "--json") == 0 && has)
            o.json = argv[++i];
        else if (strcmp(a, "--cpu-ref") == 0)
            o.cpu_ref = true;
        else if (strcmp(a, "--cpu-ref-file") == 0 && has)
            o.cpu_file = argv[++i];
        else if (strcmp(a, "--no-capture") == 0)
            o.no_capture = true;
        else if (strcmp(a, "--eval") == 0)
            o.eval = true;
        else
            return s_usage();
    }
    if (strcmp(o.prec_name, "fp32") == 0 || strcmp(o.prec_name, "tf32") == 0)
        o.prec = BACKEND_FP32;
    else if (strcmp(o.prec_name, "strict") == 0)
        o.prec = BACKEND_STRICT_FP32;
    else if (strcmp(o.prec_name, "bf16") == 0)
        o.prec = BACKEND_BF16;
    else
        return s_usage();
    if (!o.design || o.batch < 2 || o.steps < 1 || o.width < 0 ||
        o.peak_tflops <= 0 || o.peak_gbs <= 0)
        return s_usage();
    if (strncmp(o.device, "cuda", 4) == 0 && backend_cuda_count() == 0) {
        printf("skip: %s\n", backend_cuda_why() ? backend_cuda_why()
                                  : "no CUDA device visible");
        return 77;
    }
    if (strcmp(argv[1], "run") == 0)
        return s_cmd_run(&o);
    if (strcmp(argv[1], "convs") == 0)
        return s_cmd_convs(&o);
    return s_usage();
}
