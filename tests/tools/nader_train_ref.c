/*
 * nader_train_ref.c - train one design in this process, for the runtime's
 * integration tests: the reference that a job trained through the
 * coordinator and a worker's trainer process must match exactly (the
 * engine is deterministic for a seed on the CPU).
 *
 *   nader_train_ref DESIGN --dataset D --data DIR --epochs E --seed S
 *                   --width W [--cells N] [--batch B] [--threads T]
 *
 * Prints one JSON object: status, width, params, and per-epoch
 * validation accuracy and training loss.  Part of the tests only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "net.h"
#include "train.h"

static char *s_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *t;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    t = malloc((size_t)n + 1);
    if (t && fread(t, 1, (size_t)n, f) == (size_t)n)
        t[n] = 0;
    fclose(f);
    return t;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *dataset = "cifar10", *data = ".";
    int epochs = 1, width = 0, cells = 0, batch = 0, threads = 1;
    unsigned long long seed = 777;
    graph_errors_t errs;
    graph_design_t *d = NULL;
    net_config_t ncfg;
    train_config_t tcfg;
    train_result_t r;
    char *text;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (a[0] != '-') {
            path = a;
            continue;
        }
        i++;
        if (!strcmp(a, "--dataset")) dataset = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--epochs")) epochs = atoi(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--width")) width = atoi(v);
        else if (!strcmp(a, "--cells")) cells = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (!path || !(text = s_read(path))) {
        fprintf(stderr, "usage: nader_train_ref DESIGN --dataset D --data "
                "DIR --epochs E --seed S --width W\n");
        return 2;
    }
    graph_errors_init(&errs);
    if (graph_design_parse(text, strlen(text), path, &d, &errs) < 0 ||
        net_config_default(&ncfg, dataset) < 0) {
        fprintf(stderr, "%s: %s\n", path, errs.n ? errs.v[0].message
                                               : "bad data set");
        return 1;
    }
    ncfg.width = width;
    if (cells)
        ncfg.cells_per_stage = cells;
    train_config_default(&tcfg);
    tcfg.dataset = dataset;
    tcfg.data_dir = data;
    tcfg.device = "cpu";
    tcfg.threads = threads;
    tcfg.epochs = epochs;
    tcfg.seed = seed;
    if (batch)
        tcfg.batch = batch;
    memset(&r, 0, sizeof r);
    train_run(d, &ncfg, &tcfg, NULL, &r);
    printf("{\"status\": \"%s\", \"reason\": \"%s\", \"width\": %d, "
           "\"params\": %lld, \"final_valid_acc\": %.17g, "
           "\"best_valid_acc\": %.17g, \"seconds\": %.3f, \"epochs\": [",
           train_status_name(r.status), r.reason, r.width,
           (long long)r.params, r.final_valid_acc, r.best_valid_acc,
           r.seconds);
    for (int e = 0; e < r.n_epochs; e++)
        printf("%s{\"valid_acc\": %.17g, \"train_loss\": %.17g}",
               e ? ", " : "", r.epochs[e].valid_acc, r.epochs[e].train_loss);
    printf("]}\n");
    train_result_free(&r);
    graph_design_destroy(&d);
    graph_errors_free(&errs);
    free(text);
    return r.status == TRAIN_OK ? 0 : 1;
}
