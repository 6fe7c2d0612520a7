/*
 * cmd_run.c - `nader run [EXPERIMENT.yaml]`: the main job on one machine.
 *
 * Without an experiment file it runs the built-in one: the quickstart
 * (examples/quickstart.yaml and its base design, compiled in), written
 * out under ./nader-quickstart so that it can be read, edited and run
 * again by name.
 *
 * One process holds the coordinator (its poll loop on a thread of its
 * own) and the search (on another); local workers are child processes
 * of the nader-worker program beside this one, one per GPU or one on
 * the CPU.  The main thread prints a live table until the search ends,
 * then writes the results folder and prints the leaderboard.  Ctrl-C (or
 * SIGTERM) stops the search where it is; running the same command again
 * resumes it, because everything is in the coordinator's store.
 *
 * Unless the experiment names its own endpoints, the coordinator binds
 * ipc:// sockets inside its state folder, so several runs on one machine
 * never collide on a port.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "commands.h"
#include "config.h"
#include "coordinator.h"
#include "datagen.h"
#include "fsutil.h"
#include "log.h"
#include "search.h"

#define MAX_WORKERS 64

static atomic_int s_signals;

static void s_on_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&s_signals, 1);
}

/* The built-in experiment and its base design (see the Makefile). */
static const char s_builtin_yaml[] =
#include "quickstart_yaml.h"
    ;
static const char s_builtin_base[] =
#include "quickstart_base.h"
    ;
#define BUILTIN_DIR NADER_QUICKSTART_DIR
#define BUILTIN_YAML NADER_QUICKSTART_YAML
#define BUILTIN_BASE BUILTIN_DIR "/experiment/blocks/resnet_basic.txt"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: nader run [EXPERIMENT.yaml] [--set KEY=VALUE]... "
               "[--quiet]\n\n"
               "Run a search on this machine: a coordinator, local workers "
               "(one per GPU,\nor one on the CPU) and the agents, with a live "
               "table; the results folder\nis written to run.results/NAME "
               "(docs/experiments.md).  Run it again to\nresume a search that "
               "was stopped.\n\n"
               "Without EXPERIMENT.yaml it runs the built-in quickstart (a "
               "small search on\nthe CPU, no LLM endpoint, generated data), "
               "written out first as\n" BUILTIN_YAML " in this folder.\n\n"
               "  --set KEY=VALUE   override a key of the experiment file\n"
               "  --llm-replay FILE answer every LLM call from an exchange log"
               "\n                    (llm.jsonl of a results folder): re-run "
               "a search\n"
               "  --doc             print the experiment keys (Markdown)\n"
               "  --quiet           no live table, only the leaderboard\n"
               "  --log-level L     debug, info, warn (default) or error\n");
}

static void s_set_str(char **field, const char *v)
{
    char *s = strdup(v);
    if (s) {
        free(*field);
        *field = s;
    }
}

/* ipc:// endpoints in the state folder instead of the default ports. */
static void s_local_endpoints(config_t *cfg)
{
    char path[PATH_MAX], ep[PATH_MAX + 16];

    if (!realpath(cfg->state_dir, path))
        snprintf(path, sizeof path, "%s", cfg->state_dir);
    if (strcmp(cfg->workers_endpoint, "tcp://127.0.0.1:5555") == 0) {
        if (strlen(path) < 80)
            snprintf(ep, sizeof ep, "ipc://%s/workers.sock", path);
        else
            snprintf(ep, sizeof ep, "ipc:///tmp/nader-%d-workers.sock",
                     (int)getpid());
        s_set_str(&cfg->workers_endpoint, ep);
    }
    if (strcmp(cfg->status_endpoint, "tcp://127.0.0.1:5556") == 0) {
        if (strlen(path) < 80)
            snprintf(ep, sizeof ep, "ipc://%s/status.sock", path);
        else
            snprintf(ep, sizeof ep, "ipc:///tmp/nader-%d-status.sock",
                     (int)getpid());
        s_set_str(&cfg->status_endpoint, ep);
    }
}

/* The folder of this program, for nader-worker. */
static void s_bindir(char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

    if (n <= 0) {
        snprintf(out, len, ".");
        return;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, len, "%s", self);
}

typedef struct s_run {
    config_t cfg;
    coord_t *coord;
    search_t *search;
    pthread_t coord_th, search_th;
    bool coord_started, search_started;
    atomic_bool search_done;
    int search_rc;
    pid_t workers[MAX_WORKERS];
    int n_workers;
    int restarts;
    int gpus;
    bool cuda;
    char prog[PATH_MAX + 16];
    char data[PATH_MAX];
    char state[PATH_MAX];
    char results[PATH_MAX];
} s_run_t;

static void *s_coord_main(void *arg)
{
    s_run_t *r = arg;
    coord_run(r->coord);
    return NULL;
}

static void *s_search_main(void *arg)
{
    s_run_t *r = arg;
    r->search_rc = search_run(r->search);
    atomic_store(&r->search_done, true);
    return NULL;
}

/* Start worker i (device and name follow from i); 0 or -1. */
static int s_spawn(s_run_t *r, int i, char *err, size_t errlen)
{
    char device[32], name[64], threads[32], logf[PATH_MAX + 32];
    char scratch[PATH_MAX + 64];

    if (r->cuda)
        snprintf(device, sizeof device, "cuda:%d", i % r->gpus);
    else
        snprintf(device, sizeof device, "cpu");
    /* Names and scratch folders are this run's own: a worker of a run
     * that was killed may still be on its way out, and other runs on
     * this machine have workers of their own. */
    snprintf(name, sizeof name, "local-%d-%s%d", (int)getpid(),
             r->cuda ? "gpu" : "cpu", i);
    snprintf(scratch, sizeof scratch, "%s/workers/%d-%d", r->state,
             (int)getpid(), i);
    snprintf(threads, sizeof threads, "%lld", (long long)r->cfg.run_threads);
    snprintf(logf, sizeof logf, "%s/worker-%d.log", r->results, i);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* The workers go when this process goes, however it goes. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        const char *argv[16];
        int k = 0;
        argv[k++] = r->prog;
        argv[k++] = "--connect";
        argv[k++] = r->cfg.workers_endpoint;
        argv[k++] = "--device";
        argv[k++] = device;
        argv[k++] = "--data";
        argv[k++] = r->data;
        argv[k++] = "--name";
        argv[k++] = name;
        argv[k++] = "--scratch";
        argv[k++] = scratch;
        if (r->cfg.run_threads > 0) {
            argv[k++] = "--threads";
            argv[k++] = threads;
        }
        argv[k] = NULL;
        execv(r->prog, (char *const *)argv);
        _exit(127);
    }
    r->workers[i] = pid;
    return 0;
}

static int s_start_workers(s_run_t *r, char *err, size_t errlen)
{
    char bindir[PATH_MAX];
    const char *dev = r->cfg.run_device;

    r->gpus = backend_cuda_count();
    if (strcmp(dev, "cuda") == 0 && r->gpus == 0) {
        snprintf(err, errlen,
                 "run.device cuda: no CUDA device usable by "
                 "this build");
        return -1;
    }
    r->cuda = strcmp(dev, "cpu") != 0 && r->gpus > 0;
    int n = r->cfg.run_workers > 0 ? (int)r->cfg.run_workers
            : r->cuda              ? r->gpus
                                   : 1;
    if (n > MAX_WORKERS)
        n = MAX_WORKERS;
    s_bindir(bindir, sizeof bindir);
    snprintf(r->prog, sizeof r->prog, "%s/nader-worker", bindir);
    if (access(r->prog, X_OK) != 0) {
        snprintf(err, errlen, "%.900s: not found (build it with make)",
                 r->prog);
        return -1;
    }
    if (!realpath(r->cfg.data_dir, r->data))
        snprintf(r->data, sizeof r->data, "%s", r->cfg.data_dir);
    if (!realpath(r->cfg.state_dir, r->state))
        snprintf(r->state, sizeof r->state, "%s", r->cfg.state_dir);
    for (int i = 0; i < n; i++) {
        if (s_spawn(r, i, err, errlen) != 0)
            return -1;
        r->n_workers = i + 1;
    }
    printf("workers: %d local (%s), logs in %s/worker-*.log\n", n,
           r->cuda ? "one per GPU" : "CPU", r->results);
    return 0;
}

/* Start again a worker that died (a crash must not stall the search). */
static void s_watch_workers(s_run_t *r)
{
    char err[256];

    for (int i = 0; i < r->n_workers; i++) {
        int st;
        if (r->workers[i] <= 0 ||
            waitpid(r->workers[i], &st, WNOHANG) != r->workers[i])
            continue;
        r->workers[i] = 0;
        if (++r->restarts > 20) {
            fprintf(stderr,
                    "nader run: worker %d ended (%s %d) and has "
                    "been restarted too often; see its log\n",
                    i, WIFSIGNALED(st) ? "signal" : "status",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            continue;
        }
        fprintf(stderr,
                "nader run: worker %d ended (%s %d); starting it "
                "again\n",
                i, WIFSIGNALED(st) ? "signal" : "status",
                WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        if (s_spawn(r, i, err, sizeof err) != 0)
            fprintf(stderr, "nader run: %s\n", err);
    }
}

static void s_stop_workers(s_run_t *r)
{
    for (int i = 0; i < r->n_workers; i++)
        if (r->workers[i] > 0)
            kill(r->workers[i], SIGTERM);
    for (int i = 0; i < r->n_workers; i++) {
        int st;
        if (r->workers[i] <= 0)
            continue;
        for (int t = 0; t < 100; t++) {
            if (waitpid(r->workers[i], &st, WNOHANG) == r->workers[i])
                goto next;
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
        kill(r->workers[i], SIGKILL);
        waitpid(r->workers[i], &st, 0);
    next:;
    }
    r->n_workers = 0;
}

static void s_table_header(void)
{
    printf("%7s %7s %7s %8s %7s %6s %7s  %-18s %7s %9s %8s\n", "time", "iter",
           "designs", "screened", "pending", "failed", "full", "best", "calls",
           "tokens", "cost");
}

static void s_table_line(const search_status_t *st)
{
    char best[80] = "-", when[16], iter[24], full[24];
    int secs = (int)st->elapsed_s;

    if (st->best >= 0 && !isnan(st->best_acc))
        snprintf(best, sizeof best, "%s %.2f%%", st->best_name, st->best_acc);
    snprintf(when, sizeof when, "%d:%02d", secs / 60, secs % 60);
    snprintf(iter, sizeof iter, "%d/%d", st->iteration, st->iterations);
    snprintf(full, sizeof full, "%d/%d", st->full_done,
             st->full_done + st->full_pending);
    printf("%7s %7s %7d %8d %7d %6d %7s  %-18s %7lld %9lld %8.4f\n", when, iter,
           st->designs, st->screened, st->pending, st->failed, full, best,
           (long long)st->usage.calls,
           (long long)(st->usage.prompt_tokens + st->usage.completion_tokens),
           st->usage.cost);
    fflush(stdout);
}

/*
 * The key reference of docs/experiments.md, from the configuration
 * table: the keys of a search and of nader run, by section.
 */
static void s_doc(void)
{
    static const char *const sections[][2] = {
        {"search.", "The search"},
        {"train.", "Training and the fidelity ladder"},
        {"budget.", "Budgets"},
        {"llm.", "The language model"},
        {"run.", "nader run"},
        {"data.", "Data"}};
    static const char *const types[] = {"string",  "path",   "integer",
                                        "boolean", "number", "duration",
                                        "size",    "list"};
    int n;
    const config_key_t *k = config_keys(&n);

    for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++) {
        printf("### %s\n\n| key | type | default | meaning |\n"
               "|---|---|---|---|\n",
               sections[s][1]);
        size_t plen = strlen(sections[s][0]);
        for (int i = 0; i < n; i++)
            if (strncmp(k[i].name, sections[s][0], plen) == 0)
                printf("| `%s` | %s | %s%s%s | %s |\n", k[i].name,
                       types[k[i].type], k[i].def[0] ? "`" : "(empty)",
                       k[i].def, k[i].def[0] ? "`" : "", k[i].doc);
        printf("\n");
    }
}

/*
 * Write text to path unless a file is there already (a rerun resumes,
 * and the user may have edited it).  Returns 0, or -1 with err set.
 */
static int s_write_new(const char *path, const char *text, char *err,
                       size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    size_t n = strlen(text), at = 0;

    if (fd < 0 && errno == EEXIST)
        return 0;
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    while (at < n) {
        ssize_t w = write(fd, text + at, n - at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, errlen, "cannot write %s: %s", path,
                     strerror(errno));
            close(fd);
            unlink(path);
            return -1;
        }
        at += (size_t)w;
    }
    if (close(fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

/* Write the built-in experiment out (once) and name its file. */
static const char *s_builtin(char *err, size_t errlen)
{
    if (fs_mkdirs(BUILTIN_DIR "/experiment/blocks", 0755) != 0) {
        snprintf(err, errlen, "cannot make %s/experiment/blocks: %s",
                 BUILTIN_DIR, strerror(errno));
        return NULL;
    }
    if (s_write_new(BUILTIN_BASE, s_builtin_base, err, errlen) != 0 ||
        s_write_new(BUILTIN_YAML, s_builtin_yaml, err, errlen) != 0)
        return NULL;
    printf("nader run: no experiment file given: the built-in quickstart, "
           "%s\n", BUILTIN_YAML);
    return BUILTIN_YAML;
}

/* Parse arguments into r->cfg.  Returns 0, or an exit code. */
static int s_args(int argc, char **argv, s_run_t *r, bool *quiet, int *level)
{
    const char *path = NULL;
    char err[1024];

    /* Options first, then the file (given or built in), then the
     * overrides in their order on the command line. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return -1;
        } else if (strcmp(argv[i], "--doc") == 0) {
            s_doc();
            return -1;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            *quiet = true;
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            *level = log_level_parse(argv[++i]);
            if (*level < 0) {
                fprintf(stderr, "nader run: unknown log level %s\n", argv[i]);
                return 2;
            }
        } else if ((strcmp(argv[i], "--llm-replay") == 0 ||
                    strcmp(argv[i], "--set") == 0) &&
                   i + 1 < argc) {
            i++;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "nader run: unexpected argument '%s'\n", argv[i]);
            s_usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path && !(path = s_builtin(err, sizeof err))) {
        fprintf(stderr, "nader run: the built-in experiment: %s\n", err);
        return 1;
    }
    if (config_load_file(&r->cfg, path, err, sizeof err) < 0) {
        fprintf(stderr, "nader run: %s\n", err);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--log-level") == 0) {
            i++;
        } else if (strcmp(argv[i], "--llm-replay") == 0) {
            if (config_set(&r->cfg, "llm.replay", argv[++i], err,
                           sizeof err) < 0) {
                fprintf(stderr, "nader run: --llm-replay: %s\n", err);
                return 2;
            }
        } else if (strcmp(argv[i], "--set") == 0 &&
                   config_set_pair(&r->cfg, argv[++i], err, sizeof err) < 0) {
            fprintf(stderr, "nader run: --set: %s\n", err);
            return 2;
        }
    }
    if (!r->cfg.search_base[0]) {
        fprintf(stderr,
                "nader run: %s: search.base is not set (the block "
                "file of the base design)\n",
                path);
        return 2;
    }
    return 0;
}

/* The sub-folder a worker looks for, per data set (docs/data.md). */
static const char *s_data_folder(const char *dataset)
{
    if (strncmp(dataset, "cifar100", 8) == 0)
        return "cifar-100-binary";
    if (strncmp(dataset, "cifar10", 7) == 0)
        return "cifar-10-batches-bin";
    return "Imagenet16_train";
}

static int s_data(s_run_t *r)
{
    char err[1024], sub[PATH_MAX + 64];
    const char *folder = s_data_folder(r->cfg.search_dataset);

    snprintf(sub, sizeof sub, "%s/%s", r->cfg.data_dir, folder);
    if (strcmp(r->cfg.data_generate, "synthetic") == 0) {
        if (strcmp(folder, "cifar-10-batches-bin") != 0) {
            fprintf(stderr,
                    "nader run: data.generate synthetic makes the "
                    "CIFAR-10 layout; search.dataset is %s\n",
                    r->cfg.search_dataset);
            return -1;
        }
        if (!datagen_present(sub)) {
            if (fs_mkdirs(sub, 0755) != 0 ||
                datagen_cifar10(sub, (int)r->cfg.data_train_images,
                                (int)r->cfg.data_test_images, 1, err,
                                sizeof err) != 0) {
                fprintf(stderr, "nader run: data.generate: %s\n", err);
                return -1;
            }
        }
        printf("data: %s: %s\n", sub, DATAGEN_NOTE);
        return 0;
    }
    struct stat stt;
    if (stat(sub, &stt) != 0 || !S_ISDIR(stt.st_mode)) {
        fprintf(stderr,
                "nader run: data.dir %s has no %s folder for %s (see "
                "docs/data.md), or set data.generate: synthetic for a "
                "small generated data set\n",
                r->cfg.data_dir, folder, r->cfg.search_dataset);
        return -1;
    }
    printf("data: %s (%s)\n", sub, r->cfg.search_dataset);
    return 0;
}

int cmd_run(int argc, char **argv)
{
    s_run_t r;
    char err[1024];
    bool quiet = false;
    int level = LOG_WARN, rc = 1;
    struct sigaction sa;

    memset(&r, 0, sizeof r);
    if (config_defaults(&r.cfg) < 0) {
        fprintf(stderr, "nader run: out of memory\n");
        return 1;
    }
    int arc = s_args(argc, argv, &r, &quiet, &level);
    if (arc != 0) {
        config_free(&r.cfg);
        return arc < 0 ? 0 : arc;
    }
    log_init("nader-run", (log_level_t)level, NULL);
    snprintf(r.results, sizeof r.results, "%s/%s", r.cfg.run_results,
             r.cfg.search_name);
    if (fs_mkdirs(r.results, 0755) != 0 ||
        fs_mkdirs(r.cfg.state_dir, 0755) != 0) {
        fprintf(stderr, "nader run: cannot make %s or %s: %s\n", r.results,
                r.cfg.state_dir, strerror(errno));
        goto out;
    }
    {   /* name the folder plainly: run.results is relative to the
           experiment file, which gives paths like examples/../results */
        char real[PATH_MAX];
        if (realpath(r.results, real))
            snprintf(r.results, sizeof r.results, "%s", real);
    }
    s_local_endpoints(&r.cfg);
    search_config_t scfg;
    if (search_config_from(&r.cfg, &scfg, err, sizeof err) != 0) {
        fprintf(stderr, "nader run: %s\n", err);
        rc = 2;
        goto out;
    }
    printf("nader run: search '%s' on %s, base %s\n", scfg.name, scfg.dataset,
           scfg.base);
    if (!scfg.use_llm || scfg.offline)
        printf("designer: offline (random programmatic edits, no LLM%s)\n",
               scfg.use_llm ? "" : ": llm.base_url is not set");
    else
        printf("designer: LLM agents (%s)\n", scfg.llm_replay[0]
                                                  ? "replaying a recorded log"
                                                  : scfg.llm_model);
    if (s_data(&r) != 0) {
        search_config_free(&scfg);
        goto out;
    }
    if (coord_new(&r.cfg, &r.coord, err, sizeof err) < 0) {
        fprintf(stderr, "nader run: coordinator: %s\n", err);
        search_config_free(&scfg);
        goto out;
    }
    int src = search_new(&scfg, r.coord, &r.search, err, sizeof err);
    search_config_free(&scfg);
    if (src != 0) {
        fprintf(stderr, "nader run: %s\n", err);
        rc = 2;
        goto out;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (pthread_create(&r.coord_th, NULL, s_coord_main, &r) != 0) {
        fprintf(stderr, "nader run: cannot start the coordinator thread\n");
        goto out;
    }
    r.coord_started = true;
    if (s_start_workers(&r, err, sizeof err) != 0) {
        fprintf(stderr, "nader run: %s\n", err);
        goto out;
    }
    atomic_init(&r.search_done, false);
    if (pthread_create(&r.search_th, NULL, s_search_main, &r) != 0) {
        fprintf(stderr, "nader run: cannot start the search thread\n");
        goto out;
    }
    r.search_started = true;

    /* The live table. */
    if (!quiet)
        s_table_header();
    char last[512] = "";
    int quiet_ticks = 0;
    bool asked = false;
    while (!atomic_load(&r.search_done)) {
        struct timespec ts = {0, 250000000};
        nanosleep(&ts, NULL);
        if (atomic_load(&s_signals) > 0 && !asked) {
            printf("stopping (run the same command again to resume)\n");
            search_stop(r.search);
            asked = true;
        }
        if (atomic_load(&s_signals) > 1)
            break;
        if (!asked)
            s_watch_workers(&r);
        search_status_t st;
        search_status_get(r.search, &st);
        char now[512];
        snprintf(now, sizeof now, "%d %d %d %d %d %d %lld %s", st.iteration,
                 st.designs, st.screened, st.pending, st.failed, st.full_done,
                 (long long)st.usage.calls, st.phase);
        if (!quiet && (strcmp(now, last) != 0 || ++quiet_ticks >= 120)) {
            s_table_line(&st);
            snprintf(last, sizeof last, "%s", now);
            quiet_ticks = 0;
        }
    }
    /* Wait for the search thread even after a second signal: it was
     * asked to stop, and the results are read from it next. */
    if (r.search_started) {
        search_stop(r.search);
        pthread_join(r.search_th, NULL);
        r.search_started = false;
    }
    search_status_t st;
    search_status_get(r.search, &st);
    if (!quiet)
        s_table_line(&st);
    if (search_export(r.search, r.results, err, sizeof err) != 0)
        fprintf(stderr, "nader run: results: %s\n", err);
    char *board = search_leaderboard(r.search, 10);
    printf("\n%s: %s\n", st.done ? "finished" : "stopped",
           st.stop_reason[0] ? st.stop_reason : "interrupted");
    printf("\nleaderboard (%s, %s):\n%s", r.cfg.search_dataset,
           strcmp(r.cfg.data_generate, "synthetic") == 0
               ? "synthetic data, not CIFAR-10"
               : r.cfg.data_dir,
           board ? board : "");
    free(board);
    printf("\nresults: %s (best.txt, leaderboard.txt, tree.txt, "
           "designs.jsonl, results.jsonl, llm.jsonl)\n",
           r.results);
    printf("state:   %s (the same command %s; remove it or change "
           "search.name to start afresh)\n", r.state,
           st.done ? "shows this search again" : "resumes this search");
    rc = st.done || !atomic_load(&s_signals) ? (r.search_rc == 0 ? 0 : 1) : 0;
out:
    if (r.search_started) {
        search_stop(r.search);
        pthread_join(r.search_th, NULL);
    }
    s_stop_workers(&r);
    if (r.coord_started) {
        coord_stop(r.coord);
        pthread_join(r.coord_th, NULL);
    }
    search_destroy(&r.search);
    coord_destroy(&r.coord);
    config_free(&r.cfg);
    return rc;
}
