/*
 * main.c - nader-worker: parse the command line, run the daemon until
 * SIGTERM or SIGINT.  With --trainer-fd it is instead a trainer process,
 * started by a daemon for one job (see trainer.h); users never run that.
 *
 * Exit codes: 0 after a clean stop, 1 on a failure, 2 for bad usage.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "trainer.h"

static worker_t *s_worker;

static void s_on_signal(int sig)
{
    (void)sig;
    if (s_worker)
        worker_stop(s_worker);
}

static void s_usage(FILE *out)
{
    fprintf(out,
        "usage: nader-worker --connect ENDPOINT --device cpu|cuda:N|all "
        "--data DIR [options]\n\n"
        "  --connect EP        the coordinator's worker endpoint "
        "(tcp://head:5555)\n"
        "  --device D          cpu, cuda:N, all (one job per GPU), or a "
        "comma list\n"
        "  --data DIR          folder holding the data sets "
        "(docs/data.md)\n"
        "  --name NAME         worker name (default HOST-PID-RANDOM)\n"
        "  --threads N         CPU threads per job (default: all)\n"
        "  --scratch DIR       folder for checkpoints in flight\n"
        "  --key FILE          this worker's CURVE key pair "
        "(nader keygen)\n"
        "  --server-key FILE   the coordinator's public key\n"
        "  --timeout DUR       silence before reconnecting (default 5s)\n"
        "  --backoff-max DUR   longest wait between reconnects "
        "(default 10s)\n"
        "  --stall-timeout DUR kill a job's trainer that finishes no "
        "training step or\n"
        "                      evaluation batch for DUR and report the "
        "attempt failed\n"
        "                      (default 30m; 0: never)\n"
        "  --log-level L       debug, info, warn, error\n"
        "  --instant-results-for-load-tests\n"
        "                      LOAD TESTS ONLY: answer every job at once "
        "without\n"
        "                      training; results are marked load_test\n"
        "  --load-test-job-time DUR\n"
        "                      with the above: each job seems to take DUR\n");
}

int main(int argc, char **argv)
{
    worker_options_t o;
    char err[1024];
    int level = LOG_INFO, rc;
    struct sigaction sa;

    if (argc == 3 && strcmp(argv[1], "--trainer-fd") == 0)
        return trainer_main(atoi(argv[2]));
    worker_options_default(&o);
    o.data_dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t ms;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(a, "--instant-results-for-load-tests") == 0) {
            o.instant = true;
            continue;
        }
        if (!v || strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "nader-worker: %s: %s\n", a,
                    strncmp(a, "--", 2) ? "unexpected argument"
                                        : "needs a value");
            s_usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(a, "--connect") == 0)
            o.endpoint = v;
        else if (strcmp(a, "--device") == 0)
            o.devices = v;
        else if (strcmp(a, "--data") == 0)
            o.data_dir = v;
        else if (strcmp(a, "--name") == 0)
            o.name = v;
        else if (strcmp(a, "--threads") == 0)
            o.threads = atoi(v);
        else if (strcmp(a, "--scratch") == 0)
            o.scratch_dir = v;
        else if (strcmp(a, "--key") == 0)
            o.key_file = v;
        else if (strcmp(a, "--server-key") == 0)
            o.server_key_file = v;
        else if (strcmp(a, "--log-level") == 0 &&
                 (level = log_level_parse(v)) >= 0)
            continue;
        else if (strcmp(a, "--stall-timeout") == 0 &&
                 config_parse_ms(v, &ms) == 0 && ms >= 0)
            o.stall_timeout_ms = ms;
        else if (strcmp(a, "--load-test-job-time") == 0 &&
                 config_parse_ms(v, &ms) == 0)
            o.instant_ms = ms;
        else if ((strcmp(a, "--timeout") == 0 ||
                  strcmp(a, "--backoff-max") == 0) &&
                 config_parse_ms(v, &ms) == 0 && ms > 0) {
            if (a[2] == 't')
                o.timeout_ms = ms;
            else
                o.backoff_max_ms = ms;
        } else {
            fprintf(stderr, "nader-worker: %s %s: unknown option or bad "
                    "value\n", a, v);
            s_usage(stderr);
            return 2;
        }
    }
    if (!o.data_dir && !o.instant) {
        fprintf(stderr, "nader-worker: --data DIR is required\n");
        s_usage(stderr);
        return 2;
    }
    log_init("worker", (log_level_t)level, NULL);
    if (worker_new(&o, &s_worker, err, sizeof err) < 0) {
        log_error("cannot start: %s", err);
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = worker_run(s_worker);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    worker_destroy(&s_worker);
    return rc == 0 ? 0 : 1;
}
