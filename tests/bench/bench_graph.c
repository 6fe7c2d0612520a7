/*
 * bench_graph.c - how long the graph library takes on a 50-node cell:
 * parse (with linking), validate at one width, choose the width for the
 * budget, hash, and assemble at batch 128.  The target is under 5 ms for
 * each of parse, validate and width search.  As a reference measured in
 * the same run, the width search is compared with an exhaustive scan of
 * every width in 1..1024, which is what the search replaces.
 *
 *   build/bench/bench_graph [ITERATIONS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net_impl.h"

#define TARGET_MS 5.0

/* A 50-node cell: six bottleneck units with residuals, an SE gate and a
 * concat of two branches.  C/4 makes three of four widths invalid, so
 * the search has widths to skip. */
static size_t s_cell(char *buf, size_t len)
{
    size_t k = 0;
    int prev = 0, id = 2;

    k += (size_t)snprintf(buf + k, len - k, "##Bench50##\n0:input\n"
                                             "1:output\n");
    for (int u = 0; u < 6; u++) {
        int a = id;
        k += (size_t)snprintf(
            buf + k, len - k,
            "%d:Conv2d(out_channels=C/4,kernel_size=1)\n%d:BN\n%d:ReLU\n"
            "%d:Conv2d(out_channels=C/4,kernel_size=3,groups=C/4)\n%d:BN\n"
            "%d:Conv2d(out_channels=C,kernel_size=1)\n%d:Add\n"
            "%d->%d\n%d->%d\n%d->%d\n%d->%d\n%d->%d\n%d->%d\n%d->%d\n"
            "%d->%d\n",
            a, a + 1, a + 2, a + 3, a + 4, a + 5, a + 6, prev, a, a, a + 1,
            a + 1, a + 2, a + 2, a + 3, a + 3, a + 4, a + 4, a + 5, a + 5,
            a + 6, prev, a + 6);
        prev = a + 6;
        id += 7;
    }
    /* id == 44: SE gate (5 nodes) and the join. */
    k += (size_t)snprintf(
        buf + k, len - k,
        "44:AdaptiveAvgPool2d(output_size=1)\n45:reshape(B,C)\n"
        "46:Linear(out_channels=C/4)\n47:Sigmoid\n48:reshape(B,C/4,1,1)\n"
        "49:repeat(1,4,1,1)\n50:Mul\n51:ReLU\n"
        "%d->44\n44->45\n45->46\n46->47\n47->48\n48->49\n49->50\n%d->50\n"
        "50->51\n51->1\n",
        prev, prev);
    return k;
}

static double s_now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void s_report(const char *what, double *ms, int n, const char *extra)
{
    double sum = 0;

    qsort(ms, (size_t)n, sizeof *ms, s_cmp);
    for (int i = 0; i < n; i++)
        sum += ms[i];
    printf("  %-16s mean %8.4f ms  p50 %8.4f  p90 %8.4f  p99 %8.4f  "
           "max %8.4f  (%.3fx of the %.0f ms target)%s\n",
           what, sum / n, ms[n / 2], ms[n * 9 / 10], ms[n * 99 / 100],
           ms[n - 1], sum / n / TARGET_MS, TARGET_MS, extra);
}

static void s_fail(const char *what, const graph_errors_t *e)
{
    fprintf(stderr, "bench_graph: %s failed\n", what);
    for (int i = 0; e && i < e->n; i++)
        fprintf(stderr, "  %s\n", e->v[i].message);
    exit(1);
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 500;
    static char text[16384];
    size_t len = s_cell(text, sizeof text);
    double *ms = malloc((size_t)iters * sizeof *ms);
    graph_design_t *d = NULL;
    graph_errors_t e;
    net_config_t cfg;
    net_choice_t choice;
    char extra[96], hash[33];

    if (iters < 10 || !ms) {
        fprintf(stderr, "usage: bench_graph [ITERATIONS >= 10]\n");
        return 2;
    }
    graph_errors_init(&e);
    net_config_default(&cfg, "cifar10");
    if (graph_design_parse(text, len, "bench", &d, &e) < 0)
        s_fail("parse", &e);
    printf("bench_graph: %d-node cell (+ default stem and downsample), "
           "nb201, cifar10, %d iterations each\n", d->cell->n_nodes, iters);

    for (int i = 0; i < iters; i++) {
        graph_design_t *x = NULL;
        double t0 = s_now();
        if (graph_design_parse(text, len, "bench", &x, &e) < 0)
            s_fail("parse", &e);
        ms[i] = (s_now() - t0) * 1e3;
        graph_design_destroy(&x);
    }
    s_report("parse", ms, iters, "");

    for (int i = 0; i < iters; i++) {
        double t0 = s_now();
        if (net_choose_width(d, &cfg, &choice, &e) < 0)
            s_fail("width search", &e);
        ms[i] = (s_now() - t0) * 1e3;
    }
    snprintf(extra, sizeof extra, "  width %d, %lld params", choice.width,
             (long long)choice.params);
    s_report("width search", ms, iters, extra);
    double search_mean = 0;
    for (int i = 0; i < iters; i++)
        search_mean += ms[i] / iters;

    net_config_t forced = cfg;
    forced.width = choice.width;
    for (int i = 0; i < iters; i++) {
        double t0 = s_now();
        if (net_check(d, &forced, NULL, &e) != 0)
            s_fail("validate", &e);
        ms[i] = (s_now() - t0) * 1e3;
    }
    s_report("validate", ms, iters, "  (all 18 instances at one width)");

    for (int i = 0; i < iters; i++) {
        double t0 = s_now();
        if (graph_design_hash(d, hash) < 0)
            s_fail("hash", NULL);
        ms[i] = (s_now() - t0) * 1e3;
    }
    s_report("hash", ms, iters, "");

    int builds = iters / 10;
    for (int i = 0; i < builds; i++) {
        net_t *n = NULL;
        double t0 = s_now();
        if (net_build(d, &forced, 128, &n, &e) < 0)
            s_fail("build", &e);
        ms[i] = (s_now() - t0) * 1e3;
        net_destroy(&n);
    }
    s_report("build (B=128)", ms, builds, "");

    /* Reference: every width of 1..1024 measured, as a plain scan. */
    int scans = 5;
    double t0 = s_now();
    int valid = 0;
    for (int r = 0; r < scans; r++)
        for (int w = 1; w <= 1024; w++)
            valid += net_measure(d, &cfg, w, NULL, NULL, NULL, true) == 0;
    double scan_ms = (s_now() - t0) * 1e3 / scans;
    printf("  %-16s mean %8.4f ms  (%d valid widths); the search is %.0fx "
           "faster\n", "exhaustive scan", scan_ms, valid / scans,
           scan_ms / search_mean);

    graph_design_destroy(&d);
    graph_errors_free(&e);
    free(ms);
    return 0;
}
