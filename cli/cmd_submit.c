/*
 * cmd_submit.c - `nader submit DESIGN --dataset D --epochs E --seeds
 * 777,888,999`: queue evaluation jobs for a design file on a running
 * coordinator, without any agent (nader as an evaluation service).  The
 * coordinator validates the design and chooses its width; an invalid
 * design is refused with the validator's lines and exit code 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "commands.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nader submit DESIGN [--dataset D] [--epochs E] "
            "[--seeds S1,S2,...] [options]\n\n"
            "  --dataset D         cifar10 (default), cifar10-valid, "
            "cifar100, imagenet16-120\n"
            "  --epochs E          training epochs (default 200)\n"
            "  --seeds LIST        one job per seed (default 777)\n"
            "  --skeleton S        nb201 (default) or darts\n"
            "  --width W           base width (default: searched for the "
            "budget)\n"
            "  --budget P          parameter budget for the width search\n"
            "  --cells N           cells per stage\n"
            "  --stem-scale S      the stem reduces the resolution S times "
            "(1, 2, 4, 8;\n"
            "                      default 1; 4 for ImageNet-style stems)\n"
            "  --batch B, --lr LR, --max-steps N   recipe overrides\n"
            "  --priority P        higher runs first (default 0)\n"
            "  --tag T             a label kept with the jobs and results\n"
            "  --validate          check and measure only; queue nothing\n"
            "  --json              print the coordinator's answer as JSON\n"
            "%s", cli_client_usage());
}

static char *s_read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    long n;

    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)n + 1)) &&
        fread(text, 1, (size_t)n, f) == (size_t)n) {
        text[n] = 0;
    } else {
        snprintf(err, errlen, "%s: cannot read", path);
        free(text);
        text = NULL;
    }
    fclose(f);
    return text;
}

static int s_seeds(json_t *req, const char *list)
{
    json_t *a = json_array();
    char *copy = strdup(list), *save = NULL;

    for (char *t = strtok_r(copy, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        char *end;
        long long v = strtoll(t, &end, 10);
        if (*end || v < 0) {
            free(copy);
            json_decref(a);
            return -1;
        }
        json_array_append_new(a, json_integer(v));
    }
    free(copy);
    json_object_set_new(req, "seeds", a);
    return 0;
}

int cmd_submit(int argc, char **argv)
{
    cli_client_opts_t o;
    cli_client_t *c = NULL;
    json_t *req = json_object(), *reply = NULL, *v;
    const char *path = NULL;
    char err[1024], *text;
    int json = 0, rc = 2;
    size_t i;

    cli_client_opts_default(&o);
    json_object_set_new(req, "op", json_string("submit"));
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k], *val = k + 1 < argc ? argv[k + 1] : NULL;
        int r = cli_client_opt(&o, argc, argv, &k);
        if (r < 0)
            goto usage;
        if (r)
            continue;
        if (strcmp(a, "--help") == 0) {
            s_usage(stdout);
            json_decref(req);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--validate") == 0) {
            json_object_set_new(req, "validate_only", json_true());
        } else if (a[0] != '-' && !path) {
            path = a;
        } else if (!val) {
            goto usage;
        } else {
            k++;
            if (strcmp(a, "--dataset") == 0 || strcmp(a, "--skeleton") == 0 ||
                strcmp(a, "--tag") == 0)
                json_object_set_new(req, a + 2, json_string(val));
            else if (strcmp(a, "--seeds") == 0) {
                if (s_seeds(req, val) < 0) {
                    fprintf(stderr, "nader submit: --seeds %s: not a list "
                            "of whole numbers\n", val);
                    goto out;
                }
            } else if (strcmp(a, "--lr") == 0)
                json_object_set_new(req, "lr", json_real(atof(val)));
            else if (strcmp(a, "--epochs") == 0 ||
                     strcmp(a, "--width") == 0 ||
                     strcmp(a, "--budget") == 0 ||
                     strcmp(a, "--batch") == 0 ||
                     strcmp(a, "--priority") == 0)
                json_object_set_new(req, a + 2,
                                    json_integer(strtoll(val, NULL, 10)));
            else if (strcmp(a, "--cells") == 0)
                json_object_set_new(req, "cells_per_stage",
                                    json_integer(strtoll(val, NULL, 10)));
            else if (strcmp(a, "--stem-scale") == 0)
                json_object_set_new(req, "stem_scale",
                                    json_integer(strtoll(val, NULL, 10)));
            else if (strcmp(a, "--max-steps") == 0)
                json_object_set_new(req, "max_steps",
                                    json_integer(strtoll(val, NULL, 10)));
            else
                goto usage;
        }
    }
    if (!path)
        goto usage;
    text = s_read_file(path, err, sizeof err);
    if (!text) {
        fprintf(stderr, "nader submit: %s\n", err);
        goto out;
    }
    json_object_set_new(req, "design", json_string(text));
    json_object_set_new(req, "name", json_string(path));
    free(text);
    if (cli_client_open(&o, &c, err, sizeof err) < 0 ||
        cli_client_call(c, req, &reply, err, sizeof err) < 0) {
        fprintf(stderr, "nader submit: %s\n", err);
        rc = 1;
        goto out;
    }
    rc = json_is_true(json_object_get(reply, "ok")) ? 0 : 1;
    if (json) {
        json_dumpf(reply, stdout, JSON_INDENT(2));
        printf("\n");
    } else if (rc == 0) {
        printf("design %s (width %lld, %lld parameters)%s: ",
               json_string_value(json_object_get(reply, "design")),
               (long long)json_integer_value(json_object_get(reply, "width")),
               (long long)json_integer_value(json_object_get(reply,
                                                             "params")),
               json_is_true(json_object_get(reply, "design_new")) ? ", new"
                                                                  : "");
        if (!json_array_size(json_object_get(reply, "jobs")))
            printf("valid, nothing queued");
        else
            printf("jobs");
        json_array_foreach(json_object_get(reply, "jobs"), i, v)
            printf(" %lld", (long long)json_integer_value(v));
        printf("\n");
    } else {
        fprintf(stderr, "nader submit: %s: %s\n", path,
                json_string_value(json_object_get(reply, "error")));
        json_array_foreach(json_object_get(reply, "errors"), i, v)
            fprintf(stderr, "  %s\n", json_string_value(v));
    }
    goto out;
usage:
    s_usage(stderr);
out:
    json_decref(reply);
    json_decref(req);
    cli_client_close(&c);
    return rc;
}
