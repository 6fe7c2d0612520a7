/*
 * bench_search.c - the coordinator's own CPU time per design of a search:
 * reading the block out of a model's answer, parsing and validating it
 * at real widths (the width search included), hashing it, printing its
 * canonical text, adding it to the tree, and submitting it over the
 * link (the loop validates it again, stores it in LMDB and queues its
 * screening job in the scheduler).  The LLM and training are left out:
 * the answers are made beforehand (designs from the offline designer,
 * wrapped in chatter and a code fence), and no worker is connected.
 *
 *   bench_search [--designs N]
 *
 * Figures: CPU of the agent thread and of the whole process (agent
 * thread + the coordinator's poll loop) per design, the wall time per
 * design (which adds the fsync of each commit), and each step's share.
 * Target (issue 5): under 10 ms of CPU per design.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "coordinator.h"
#include "designer.h"
#include "log.h"
#include "modifier.h"
#include "text.h"
#include "tree.h"

static double s_thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double s_process_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double s_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *s_loop(void *arg)
{
    coord_run(arg);
    return NULL;
}

static bool s_known(void *ctx, const char *hash)
{
    return tree_find(ctx, hash) >= 0;
}

/* N distinct designs by offline edits, each from an earlier one. */
static char **s_answers(const graph_design_t *base, const net_config_t *net,
                        int n)
{
    char **out = calloc((size_t)n, sizeof *out);
    graph_design_t **pool = calloc((size_t)n + 1, sizeof *pool);
    tree_t *seen = tree_new();
    agent_env_t env = {.net = net, .rng = 42};
    char err[256], hash[33];

    pool[0] = graph_design_clone(base);
    graph_design_hash(base, hash);
    tree_add(seen, -1, 0, hash, "", -1, NULL);
    for (int i = 0; i < n; i++) {
        designer_result_t r;
        const graph_design_t *from = pool[agent_rand_below(&env, i + 1)];
        if (designer_mutate(&env, from, 200, s_known, seen, &r, err,
                            sizeof err) != 0) {
            fprintf(stderr, "bench_search: no new design at %d\n", i);
            exit(1);
        }
        tree_add(seen, 0, 1, r.hash, "", -1, NULL);
        char *cell = graph_block_print(r.design->cell);
        text_buf_t b;
        text_buf_init(&b);
        text_buf_printf(&b,
                        "Let me think about this step by step. The "
                        "inspiration asks for a change of the cell.\n\n"
                        "```text\n%s```\n\nThe cell keeps C channels "
                        "and the spatial size.\n",
                        cell);
        out[i] = text_buf_take(&b);
        free(cell);
        pool[i + 1] = r.design;
        r.design = NULL;
    }
    for (int i = 0; i <= n; i++)
        graph_design_destroy(&pool[i]);
    free(pool);
    tree_destroy(&seen);
    return out;
}

int main(int argc, char **argv)
{
    int n = 300;
    char dir[] = "/tmp/nader-bench-search-XXXXXX", err[512];
    config_t cfg;
    coord_t *c = NULL;
    coord_link_t *link = NULL;
    pthread_t th;
    size_t len;

    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--designs") == 0)
            n = atoi(argv[++i]);
    log_init("bench", LOG_WARN, NULL);
    if (!mkdtemp(dir))
        return 1;
    config_defaults(&cfg);
    config_set(&cfg, "state_dir", dir, err, sizeof err);
    config_set(&cfg, "workers.endpoint", "tcp://127.0.0.1:*", err, sizeof err);
    config_set(&cfg, "status.endpoint", "", err, sizeof err);
    config_set(&cfg, "jobs.paused", "true", err, sizeof err);
    if (coord_new(&cfg, &c, err, sizeof err) < 0) {
        fprintf(stderr, "bench_search: %s\n", err);
        return 1;
    }
    pthread_create(&th, NULL, s_loop, c);
    if (coord_link_new(c, &link, err, sizeof err) < 0) {
        fprintf(stderr, "bench_search: %s\n", err);
        return 1;
    }

    net_config_t net;
    graph_errors_t errs;
    graph_design_t *base = NULL;
    net_config_default(&net, "cifar10");
    graph_errors_init(&errs);
    char *text = text_file_read("examples/blocks/resnet_basic.txt", 0, &len,
                                err, sizeof err);
    if (!text || graph_design_parse(text, len, NULL, &base, &errs) != 0) {
        fprintf(stderr, "bench_search: examples/blocks/resnet_basic.txt: "
                        "run from the repository root\n");
        return 1;
    }
    char *stem = graph_block_print(base->stem);
    char *down = graph_block_print(base->downsample);
    char **answers = s_answers(base, &net, n);
    tree_t *tree = tree_new();
    char hash[33];
    graph_design_hash(base, hash);
    tree_add(tree, -1, 0, hash, text, -1, NULL);

    double t_extract = 0, t_check = 0, t_hash = 0, t_print = 0, t_submit = 0;
    double p0 = s_process_cpu(), w0 = s_wall(), a0 = s_thread_cpu();
    int ok = 0;
    for (int i = 0; i < n; i++) {
        double t = s_thread_cpu(), u;
        char *cell = modifier_extract(answers[i], NULL, NULL);
        u = s_thread_cpu();
        t_extract += u - t;
        graph_design_t *d = NULL;
        net_choice_t choice;
        char *lines = NULL;
        int rc = cell ? modifier_check(&net, 3, cell, stem, down, &d, &choice,
                                       &lines)
                      : 1;
        t = s_thread_cpu();
        t_check += t - u;
        free(cell);
        free(lines);
        if (rc != 0) {
            fprintf(stderr, "bench_search: design %d did not validate\n", i);
            return 1;
        }
        graph_design_hash(d, hash);
        u = s_thread_cpu();
        t_hash += u - t;
        char name[32];
        snprintf(name, sizeof name, "d%d", tree_size(tree));
        char *dt = modifier_design_text(d, name);
        tree_add(tree, 0, 1, hash, dt, 1, "an inspiration");
        t = s_thread_cpu();
        t_print += t - u;

        Nader__SubmitRequest sr = NADER__SUBMIT_REQUEST__INIT;
        Nader__LinkReply *reply = NULL;
        uint64_t seed = 777;
        sr.design = dt;
        sr.name = name;
        sr.has_epochs = 1;
        sr.epochs = 12;
        sr.n_seeds = 1;
        sr.seeds = &seed;
        sr.tag = (char *)"search:bench:screen";
        sr.source = (char *)"search:bench";
        sr.parent_hash = tree_get(tree, 0)->hash;
        if (coord_link_submit(link, &sr, &reply, 10000, err, sizeof err) == 0 &&
            reply->submit && reply->submit->ok)
            ok++;
        if (reply)
            nader__link_reply__free_unpacked(reply, NULL);
        u = s_thread_cpu();
        t_submit += u - t;
        free(dt);
        graph_design_destroy(&d);
    }
    double agent = s_thread_cpu() - a0;
    double proc = s_process_cpu() - p0, wall = s_wall() - w0;
    double per = proc / n * 1000;

    printf("designs submitted: %d of %d (each validated, hashed, stored "
           "and queued)\n",
           ok, n);
    printf("agent thread CPU:   %7.3f ms/design  (extract %.3f, check %.3f, "
           "hash %.3f, print+tree %.3f, link %.3f)\n",
           agent / n * 1000, t_extract / n * 1000, t_check / n * 1000,
           t_hash / n * 1000, t_print / n * 1000, t_submit / n * 1000);
    printf("whole process CPU:  %7.3f ms/design  (agent thread and the "
           "coordinator's loop: validation again, LMDB, scheduler)\n",
           per);
    printf("wall time:          %7.3f ms/design  (adds one fsync per "
           "commit)\n",
           wall / n * 1000);
    printf("target 10 ms of CPU per design: %.3f of it (%s)\n", per / 10.0,
           per < 10 ? "met" : "NOT met");

    coord_link_destroy(&link);
    coord_stop(c);
    pthread_join(th, NULL);
    coord_destroy(&c);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_search: could not remove %s\n", dir);
    for (int i = 0; i < n; i++)
        free(answers[i]);
    free(answers);
    free(stem);
    free(down);
    free(text);
    tree_destroy(&tree);
    graph_design_destroy(&base);
    graph_errors_free(&errs);
    config_free(&cfg);
    return ok == n ? 0 : 1;
}
