/*
 * bench_runtime.c - the runtime's figures: dispatch throughput and
 * latency with 100 load-test workers, and restart time and memory of a
 * coordinator whose store holds 100,000 results.
 *
 *   bench_runtime [--workers N] [--jobs N] [--results N]
 *
 * Part 1 runs a coordinator and N worker daemons (load-test mode, one
 * device each) as threads of this process on loopback TCP, queues the
 * jobs while paused, resumes, and times until every result is stored
 * (each one committed with fsync before its acknowledgement).  Latency
 * is per job, from its lease being made to its result being applied, as
 * recorded in the job's record.
 *
 * Part 2 writes a store with N finished jobs and their results (12
 * epochs of figures each), then starts the real nader-coordinator on it
 * and times until its admin socket answers, and reads its resident
 * memory (VmRSS, VmHWM) then and after it listed every result.
 *
 * Targets (issue 4): >= 5,000 jobs/s; restart < 2 s; < 200 MB resident.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "config.h"
#include "coordinator.h"
#include "daemon.h"
#include "log.h"
#include "store.h"
#include "wire.h"

static const char *s_design =
    "##cell##\n0:input\n1:output\n2:Conv2d(out_channels=C,kernel_size=3,"
    "stride=1)\n3:BN\n4:ReLU\n5:Add\n0->2\n2->3\n3->4\n4->5\n0->5\n5->1\n";

static double s_now(void)
{
    return (double)wire_mono_us() / 1e6;
}

/* One JSON request on a status/admin endpoint. */
static json_t *s_ask(void *ctx, const char *ep, json_t *req, int timeout_ms)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    char *text = json_dumps(req, JSON_COMPACT);
    json_t *reply = NULL;
    int zero = 0;

    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(s, ep);
    zmq_send(s, "", 0, ZMQ_SNDMORE);
    zmq_send(s, text, strlen(text), 0);
    free(text);
    if (zmq_poll(&it, 1, timeout_ms) > 0) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, s, 0);
        zmq_msg_close(&m);
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) >= 0)
            reply = json_loadb(zmq_msg_data(&m), zmq_msg_size(&m), 0, NULL);
        zmq_msg_close(&m);
    }
    zmq_close(s);
    return reply;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* --------------------------------------------------------- dispatch */

static void *s_coord_thread(void *arg)
{
    coord_run(arg);
    return NULL;
}

static void *s_worker_thread(void *arg)
{
    worker_run(arg);
    return NULL;
}

typedef struct s_lat {
    uint64_t *v;
    size_t n;
} s_lat_t;

static int s_lat_visit(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_lat_t *l = ctx;
    const Nader__JobRecord *j = (const Nader__JobRecord *)m;

    (void)id;
    if (j->state == NADER__JOB_STATE__JOB_DONE && j->leased_us &&
        j->finished_us >= j->leased_us)
        l->v[l->n++] = j->finished_us - j->leased_us;
    return 0;
}

static int s_dispatch_bench(const char *dir, int n_workers, int n_jobs)
{
    config_t cfg;
    coord_t *c = NULL;
    coord_link_t *link = NULL;
    worker_t **w = calloc((size_t)n_workers, sizeof *w);
    pthread_t ct, *wt = calloc((size_t)n_workers, sizeof *wt);
    char err[1024], state[512], admin[600];
    void *ctx = zmq_ctx_new();
    json_t *req, *rep;
    double t0, t1, t_wait;
    uint64_t results = 0;
    s_lat_t lat = {calloc((size_t)n_jobs, sizeof(uint64_t)), 0};
    struct rusage ru0, ru1;
    store_txn_t *t;
    int rc = 1;

    zmq_ctx_set(ctx, ZMQ_IO_THREADS, 1);
    snprintf(state, sizeof state, "%s/dispatch", dir);
    config_defaults(&cfg);
    config_set(&cfg, "state_dir", state, err, sizeof err);
    config_set(&cfg, "workers.endpoint", "tcp://127.0.0.1:*", err,
               sizeof err);
    config_set(&cfg, "status.endpoint", "", err, sizeof err);
    config_set(&cfg, "jobs.paused", "true", err, sizeof err);
    config_set(&cfg, "heartbeat.timeout", "20s", err, sizeof err);
    config_set(&cfg, "log.level", "warn", err, sizeof err);
    if (coord_new(&cfg, &c, err, sizeof err) < 0) {
        fprintf(stderr, "bench: coordinator: %s\n", err);
        goto out;
    }
    snprintf(admin, sizeof admin, "%s", coord_admin_endpoint(c));
    pthread_create(&ct, NULL, s_coord_thread, c);
    for (int i = 0; i < n_workers; i++) {
        worker_options_t o;
        char name[32];
        worker_options_default(&o);
        snprintf(name, sizeof name, "bench-%03d", i);
        o.endpoint = coord_workers_endpoint(c);
        o.name = name;
        o.instant = true;
        o.zmq_context = ctx;
        o.timeout_ms = 20000;
        if (worker_new(&o, &w[i], err, sizeof err) < 0) {
            fprintf(stderr, "bench: worker: %s\n", err);
            goto out;
        }
        pthread_create(&wt[i], NULL, s_worker_thread, w[i]);
    }
    /* Wait for every worker to join. */
    req = json_pack("{s:s}", "op", "status");
    for (int i = 0; i < 600; i++) {
        rep = s_ask(ctx, admin, req, 2000);
        size_t n = json_array_size(json_object_get(rep, "workers"));
        json_decref(rep);
        if ((int)n == n_workers)
            break;
        usleep(50000);
    }
    json_decref(req);

    /* Queue the jobs (paused), in requests of up to 10,000 seeds. */
    if (coord_link_new(c, &link, err, sizeof err) < 0) {
        fprintf(stderr, "bench: %s\n", err);
        goto out;
    }
    t0 = s_now();
    for (int done = 0; done < n_jobs;) {
        Nader__SubmitRequest sr = NADER__SUBMIT_REQUEST__INIT;
        Nader__LinkReply *lr = NULL;
        int n = n_jobs - done > 10000 ? 10000 : n_jobs - done;
        uint64_t *seeds = calloc((size_t)n, sizeof *seeds);
        for (int i = 0; i < n; i++)
            seeds[i] = (uint64_t)(done + i + 1);
        sr.design = (char *)s_design;
        sr.has_epochs = 1;
        sr.epochs = 1;
        sr.n_seeds = (size_t)n;
        sr.seeds = seeds;
        sr.tag = (char *)"bench";
        if (coord_link_submit(link, &sr, &lr, 60000, err, sizeof err) < 0 ||
            !lr->ok) {
            fprintf(stderr, "bench: submit: %s\n",
                    lr ? (lr->error ? lr->error : "?") : err);
            if (lr && lr->submit && lr->submit->n_errors)
                fprintf(stderr, "  %s\n", lr->submit->errors[0]);
            free(seeds);
            goto out;
        }
        nader__link_reply__free_unpacked(lr, NULL);
        free(seeds);
        done += n;
    }
    printf("queued %d jobs in %.2f s (%.0f jobs/s; requests of up to "
           "10,000 seeds, one validation each)\n", n_jobs, s_now() - t0,
           n_jobs / (s_now() - t0));

    /* Resume and time until all are stored. */
    {
        Nader__LinkRequest lq = NADER__LINK_REQUEST__INIT;
        Nader__SettingsRecord set = NADER__SETTINGS_RECORD__INIT;
        Nader__LinkReply *lr = NULL;
        set.has_paused = 1;
        set.paused = 0;
        lq.body_case = NADER__LINK_REQUEST__BODY_SETTINGS;
        lq.settings = &set;
        getrusage(RUSAGE_SELF, &ru0);
        t0 = s_now();
        if (coord_link_call(link, &lq, &lr, 10000, err, sizeof err) < 0) {
            fprintf(stderr, "bench: resume: %s\n", err);
            goto out;
        }
        nader__link_reply__free_unpacked(lr, NULL);
    }
    t_wait = t0 + 600;
    while (s_now() < t_wait) {
        if (store_begin(coord_store(c), false, &t, err, sizeof err) == 0) {
            store_count(t, STORE_RESULTS, &results);
            store_abort(&t);
        }
        if ((int)results >= n_jobs)
            break;
        usleep(2000);
    }
    t1 = s_now();
    getrusage(RUSAGE_SELF, &ru1);
    if ((int)results < n_jobs) {
        fprintf(stderr, "bench: only %llu of %d results\n",
                (unsigned long long)results, n_jobs);
        goto out;
    }
    if (store_begin(coord_store(c), false, &t, err, sizeof err) == 0) {
        store_scan_msg(t, STORE_JOBS, 0, &nader__job_record__descriptor,
                       s_lat_visit, &lat);
        store_abort(&t);
    }
    qsort(lat.v, lat.n, sizeof *lat.v, s_cmp_u64);
    req = json_pack("{s:s}", "op", "status");
    rep = s_ask(ctx, admin, req, 5000);
    json_decref(req);
    printf("dispatch: %d jobs, %d load-test workers on loopback TCP, "
           "every result fsync'd before its ack\n", n_jobs, n_workers);
    printf("  throughput       %.0f jobs/s  (target >= 5000; %.2f s)\n",
           n_jobs / (t1 - t0), t1 - t0);
    if (lat.n)
        printf("  lease->result    p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  "
               "max %.2f ms  (%zu jobs)\n",
               lat.v[lat.n / 2] / 1e3, lat.v[lat.n * 9 / 10] / 1e3,
               lat.v[lat.n * 99 / 100] / 1e3, lat.v[lat.n - 1] / 1e3, lat.n);
    printf("  commits          %lld for %d jobs (%.1f jobs per fsync)\n",
           (long long)json_integer_value(json_object_get(
               json_object_get(rep, "coordinator"), "commits")),
           n_jobs,
           n_jobs / (double)(json_integer_value(json_object_get(
                                 json_object_get(rep, "coordinator"),
                                 "commits")) + 1));
    printf("  CPU              %.2f s user + %.2f s system for the whole "
           "process (coordinator and all workers)\n",
           (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
               (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6,
           (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
               (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6);
    json_decref(rep);
    rc = 0;
out:
    for (int i = 0; i < n_workers; i++)
        if (w[i])
            worker_stop(w[i]);
    for (int i = 0; i < n_workers; i++)
        if (w[i]) {
            pthread_join(wt[i], NULL);
            worker_destroy(&w[i]);
        }
    coord_link_destroy(&link);
    if (c) {
        coord_stop(c);
        pthread_join(ct, NULL);
        coord_destroy(&c);
    }
    zmq_ctx_term(ctx);
    config_free(&cfg);
    free(lat.v);
    free(w);
    free(wt);
    return rc;
}

/* ----------------------------------------------------------- restart */

static int s_fill_store(const char *state, int n)
{
    store_t *s = NULL;
    store_txn_t *t = NULL;
    char err[512];
    Nader__DesignRecord d = NADER__DESIGN_RECORD__INIT;
    Nader__Epoch ep[12], *epp[12];
    Nader__CountsRecord k = NADER__COUNTS_RECORD__INIT;
    uint64_t id;

    if (store_open(state, NULL, &s, err, sizeof err) < 0) {
        fprintf(stderr, "bench: %s\n", err);
        return -1;
    }
    for (int e = 0; e < 12; e++) {
        nader__epoch__init(&ep[e]);
        ep[e].has_epoch = ep[e].has_train_loss = ep[e].has_valid_acc = 1;
        ep[e].has_train_acc = ep[e].has_valid_loss = 1;
        ep[e].has_images_per_s = ep[e].has_seconds = ep[e].has_lr = 1;
        ep[e].epoch = e;
        ep[e].train_loss = 2.0 / (e + 1);
        ep[e].valid_acc = 40 + 4.0 * e;
        ep[e].train_acc = 45 + 4.0 * e;
        ep[e].valid_loss = 1.8 / (e + 1);
        ep[e].images_per_s = 12345.6;
        ep[e].seconds = 31.5;
        ep[e].lr = 0.05;
        epp[e] = &ep[e];
    }
    for (int i = 0; i < n; i++) {
        Nader__JobRecord j = NADER__JOB_RECORD__INIT;
        Nader__JobSpec sp = NADER__JOB_SPEC__INIT;
        Nader__ResultRecord rr = NADER__RESULT_RECORD__INIT;
        Nader__Result r = NADER__RESULT__INIT;
        if (!t && store_begin(s, true, &t, err, sizeof err) < 0)
            goto fail;
        if (i == 0) {
            d.hash = (char *)"00000000000000000000000000000001";
            d.text = (char *)s_design;
            store_design_put(t, &d);
        }
        store_next_id(t, STORE_JOBS, &id);
        sp.design_hash = d.hash;
        sp.has_seed = sp.has_epochs = sp.has_width = 1;
        sp.seed = (uint64_t)i;
        sp.epochs = 12;
        sp.width = 16;
        j.has_id = j.has_state = j.has_attempts = 1;
        j.id = id;
        j.state = NADER__JOB_STATE__JOB_DONE;
        j.attempts = 1;
        j.spec = &sp;
        j.worker = (char *)"host-1234-abcd";
        j.device = (char *)"cuda:0";
        r.has_job = r.has_attempt = r.has_status = 1;
        r.job = id;
        r.attempt = 1;
        r.worker = j.worker;
        r.host = (char *)"host";
        r.device = j.device;
        r.n_epochs = 12;
        r.epochs = epp;
        r.has_final_valid_acc = r.has_best_valid_acc = 1;
        r.final_valid_acc = r.best_valid_acc = 84.0;
        rr.has_job = 1;
        rr.job = id;
        rr.result = &r;
        rr.design_hash = d.hash;
        rr.dataset = (char *)"cifar10";
        if (store_job_put(t, &j) < 0 || store_result_put(t, &rr) < 0)
            goto fail;
        if ((i + 1) % 20000 == 0 || i + 1 == n) {
            if (i + 1 == n) {
                k.has_done = k.has_results = 1;
                k.done = k.results = (uint64_t)n;
                store_counts_put(t, &k);
            }
            if (store_commit(&t, err, sizeof err) < 0)
                goto fail;
        }
    }
    store_close(&s);
    return 0;
fail:
    fprintf(stderr, "bench: filling the store: %s\n",
            t ? store_txn_error(t) : err);
    store_abort(&t);
    store_close(&s);
    return -1;
}

static long s_proc_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    FILE *f;
    long kb = -1;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            kb = atol(line + strlen(field) + 1);
    fclose(f);
    return kb;
}

static int s_restart_bench(const char *dir, int n_results)
{
    char state[512], cfgpath[600], exe[4096], coordexe[4200], admin[700];
    void *ctx = zmq_ctx_new();
    json_t *req, *rep = NULL;
    double t0, t1 = 0, tf;
    pid_t pid;
    FILE *f;
    ssize_t n;
    int status;

    snprintf(state, sizeof state, "%s/restart", dir);
    tf = s_now();
    if (s_fill_store(state, n_results) < 0)
        return 1;
    tf = s_now() - tf;
    snprintf(cfgpath, sizeof cfgpath, "%s/restart.yaml", dir);
    f = fopen(cfgpath, "w");
    fprintf(f, "state_dir: %s\nworkers.endpoint: tcp://127.0.0.1:*\n"
            "status.endpoint: \"\"\nlog.level: warn\n", state);
    fclose(f);
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    *strrchr(exe, '/') = 0;
    snprintf(coordexe, sizeof coordexe, "%s/../nader-coordinator", exe);
    snprintf(admin, sizeof admin, "ipc://%s/admin.sock", state);

    t0 = s_now();
    pid = fork();
    if (pid == 0) {
        execl(coordexe, "nader-coordinator", "--config", cfgpath,
              (char *)NULL);
        _exit(127);
    }
    req = json_pack("{s:s}", "op", "status");
    while (s_now() - t0 < 30) {
        if (access(state, F_OK) == 0) {
            char sock[800];
            snprintf(sock, sizeof sock, "%s/admin.sock", state);
            if (access(sock, F_OK) == 0 &&
                (rep = s_ask(ctx, admin, req, 200))) {
                t1 = s_now();
                break;
            }
        }
        usleep(2000);
    }
    json_decref(req);
    if (!rep) {
        fprintf(stderr, "bench: the coordinator did not answer\n");
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return 1;
    }
    {
        struct stat st;
        char path[700];
        snprintf(path, sizeof path, "%s/data.mdb", state);
        stat(path, &st);
        printf("restart: %d results in the store (data.mdb %.1f MiB on "
               "disk; written in %.1f s)\n", n_results,
               (double)st.st_blocks * 512 / 1048576.0, tf);
    }
    printf("  start to first answer  %.3f s  (target < 2 s)\n", t1 - t0);
    printf("  resident after start   %.1f MB  (VmRSS; target < 200 MB)\n",
           s_proc_kb(pid, "VmRSS") / 1024.0);
    json_decref(rep);
    {
        double tl = s_now();
        long total = 0;
        json_int_t after = 0;
        for (;;) {
            json_t *q = json_pack("{s:s,s:I,s:i}", "op", "results", "after",
                                  after, "limit", 1000);
            json_t *a = s_ask(ctx, admin, q, 30000);
            json_decref(q);
            if (!a)
                break;
            total += (long)json_array_size(json_object_get(a, "results"));
            after = json_integer_value(json_object_get(a, "last"));
            if (!json_is_true(json_object_get(a, "more"))) {
                json_decref(a);
                break;
            }
            json_decref(a);
        }
        printf("  listing all results    %ld in %.2f s over the admin "
               "socket (pages of 1,000, as nader results asks)\n", total,
               s_now() - tl);
        printf("  resident after that    %.1f MB now, %.1f MB at peak "
               "(VmRSS, VmHWM; the store's pages are mapped, shared with "
               "the page cache)\n", s_proc_kb(pid, "VmRSS") / 1024.0,
               s_proc_kb(pid, "VmHWM") / 1024.0);
    }
    kill(pid, SIGTERM);
    t0 = s_now();
    waitpid(pid, &status, 0);
    printf("  clean stop on SIGTERM  %.3f s (exit %d)\n", s_now() - t0,
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    zmq_ctx_term(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    int workers = 100, jobs = 50000, results = 100000, rc;
    char dir[] = "/tmp/nader-bench-XXXXXX", cmd[128];

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--workers") == 0)
            workers = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--jobs") == 0)
            jobs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--results") == 0)
            results = atoi(argv[i + 1]);
    }
    log_init("bench", LOG_WARN, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("bench_runtime: %ld cores online (shared with other work: "
           "figures are noisy)\n", sysconf(_SC_NPROCESSORS_ONLN));
    rc = s_dispatch_bench(dir, workers, jobs);
    rc |= s_restart_bench(dir, results);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", dir);
    return rc;
}
