/*
 * main.c - nader-coordinator: read the configuration, start the
 * coordinator, run until SIGTERM or SIGINT, stop cleanly.
 *
 *   nader-coordinator --config search.yaml [--set KEY=VALUE ...]
 *   nader-coordinator --check --config search.yaml   (validate and exit)
 *
 * Exit codes: 0 after a clean stop, 1 when it could not start or failed,
 * 2 for bad usage or a bad configuration.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "coordinator.h"
#include "log.h"

static coord_t *s_coord;

static void s_on_signal(int sig)
{
    (void)sig;
    if (s_coord)
        coord_stop(s_coord);
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nader-coordinator [--config FILE] [--set KEY=VALUE]... "
            "[--check]\n\n"
            "  --config FILE     YAML configuration (docs/configuration.md);"
            "\n                    without one, the defaults (one machine)\n"
            "  --set KEY=VALUE   override one key, after the file\n"
            "  --check           validate the configuration and exit\n"
            "  --keys            list every configuration key and exit\n");
}

static void s_list_keys(void)
{
    int n;
    const config_key_t *k = config_keys(&n);

    for (int i = 0; i < n; i++)
        printf("%-24s %-14s %s\n    %s\n", k[i].name,
               k[i].def[0] ? k[i].def : "\"\"", k[i].live ? "(live)" : "",
               k[i].doc);
}

int main(int argc, char **argv)
{
    config_t cfg;
    char err[1024];
    const char *path = NULL;
    bool check = false;
    FILE *logf = NULL;
    struct sigaction sa;
    int rc;

    if (config_defaults(&cfg) < 0) {
        fprintf(stderr, "nader-coordinator: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path = argv[++i];
            if (config_load_file(&cfg, path, err, sizeof err) < 0) {
                fprintf(stderr, "nader-coordinator: %s\n", err);
                config_free(&cfg);
                return 2;
            }
        } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
            char *kv = argv[++i], *eq = strchr(kv, '=');
            if (!eq) {
                fprintf(stderr, "nader-coordinator: --set needs KEY=VALUE, "
                        "not '%s'\n", kv);
                config_free(&cfg);
                return 2;
            }
            *eq = 0;
            if (config_set(&cfg, kv, eq + 1, err, sizeof err) < 0) {
                fprintf(stderr, "nader-coordinator: --set: %s\n", err);
                config_free(&cfg);
                return 2;
            }
        } else if (strcmp(argv[i], "--check") == 0) {
            check = true;
        } else if (strcmp(argv[i], "--keys") == 0) {
            s_list_keys();
            config_free(&cfg);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            config_free(&cfg);
            return 0;
        } else {
            fprintf(stderr, "nader-coordinator: unknown argument '%s'\n",
                    argv[i]);
            s_usage(stderr);
            config_free(&cfg);
            return 2;
        }
    }
    if (check) {
        printf("%s: configuration is valid\n", path ? path : "defaults");
        config_free(&cfg);
        return 0;
    }
    if (cfg.log_file[0]) {
        logf = fopen(cfg.log_file, "a");
        if (!logf) {
            fprintf(stderr, "nader-coordinator: log.file %s: cannot open\n",
                    cfg.log_file);
            config_free(&cfg);
            return 2;
        }
    }
    log_init("coordinator", (log_level_t)log_level_parse(cfg.log_level),
             logf);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (coord_new(&cfg, &s_coord, err, sizeof err) < 0) {
        log_error("cannot start: %s", err);
        config_free(&cfg);
        if (logf)
            fclose(logf);
        return 1;
    }
    config_free(&cfg);
    rc = coord_run(s_coord);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    coord_destroy(&s_coord);
    log_info("coordinator stopped");
    if (logf)
        fclose(logf);
    return rc == 0 ? 0 : 1;
}
